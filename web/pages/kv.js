// The KV explorer of a project's managed state store `kvstore`: the keys its App IDs keep, filtered by App ID and
// key prefix (kept in the address so a reload or a shared link shows the same list), a page at a time; a key's
// value (pretty JSON when it is JSON); and, for developers, deleting a key after asking.

import { api, appIdNames, seg } from "../lib/api.js";
import { confirmAction, errorPanel, field, h, heading, select, table, when } from "../lib/dom.js";
import { pager } from "../lib/pager.js";

const PAGE_SIZE = 50;

/** A byte count as people read it. */
function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} KiB`;
  return `${(count / (1024 * 1024)).toFixed(1)} MiB`;
}

/** A value as shown: JSON pretty-printed, other text as is, bytes that are not text as base64. */
function valueBlock(item) {
  if (item.valueBase64 !== undefined) {
    return [h("p", { class: "hint" }, "Not UTF-8 text: the bytes in base64."), h("pre", { class: "scroll kv-value" }, item.valueBase64)];
  }
  let shown = item.value;
  let kind = "Text";
  try {
    shown = JSON.stringify(JSON.parse(item.value), null, 2);
    kind = "JSON";
  } catch {
    // Not JSON: shown as the text it is.
  }
  return [h("p", { class: "hint" }, kind), h("pre", { class: "scroll kv-value", tabindex: "0" }, shown)];
}

export default async function kv(context) {
  const project = context.project;
  const route = `/p/${seg(project)}/kv`;
  const base = `/projects/${seg(project)}/kv`;
  const query = context.query;

  const { names: appIds, failure: appIdsFailure } = await appIdNames(project);

  const detail = h("section", { class: "card kv-detail", "aria-live": "polite" }, h("p", { class: "hint" }, "Choose a key to see its value."));

  async function show(item) {
    detail.replaceChildren(h("p", { class: "loading" }, "Loading…"));
    try {
      const found = await api("GET", `${base}/${seg(item.appId)}/${seg(item.key)}`);
      detail.replaceChildren(
        h("h2", { class: "mono" }, found.key),
        h(
          "div",
          { class: "detail" },
          h(
            "dl",
            {},
            h("dt", {}, "App ID"),
            h("dd", {}, found.appId),
            h("dt", {}, "Size"),
            h("dd", {}, bytes(item.size)),
            h("dt", {}, "ETag"),
            h("dd", { class: "mono" }, found.etag ?? "—"),
            h("dt", {}, "Expires"),
            h("dd", {}, found.expiresAt ? when(found.expiresAt) : "never"),
          ),
        ),
        h("div", {}, valueBlock(found)),
        context.can("developer") && h("div", { class: "actions" }, h("button", { type: "button", class: "danger", onclick: () => remove(found) }, "Delete key")),
      );
    } catch (error) {
      detail.replaceChildren(errorPanel(error));
    }
  }

  async function remove(item) {
    const agreed = await confirmAction(`Delete key “${item.key}” of App ID ${item.appId}? Its value is gone for good; the app reads it as absent.`);
    if (!agreed) return;
    try {
      await api("DELETE", `${base}/${seg(item.appId)}/${seg(item.key)}`);
      context.reload();
    } catch (error) {
      detail.prepend(errorPanel(error));
    }
  }

  const filtered = Boolean(query.appId || query.prefix);
  const list = await pager(
    (continuationToken) =>
      api("GET", base, { query: { appId: query.appId, prefix: query.appId ? query.prefix : undefined, limit: PAGE_SIZE, continuationToken } }),
    (items) => keyTable(items, filtered, show, context.can("developer") ? remove : null),
  ).first();

  return h(
    "div",
    { class: "kv-page" },
    heading("KV explorer", h("button", { type: "button", class: "secondary", onclick: () => context.reload() }, "Refresh")),
    h("p", { class: "lead" }, "The keys the project's App IDs keep in its managed state store ", h("code", {}, "kvstore"), ", as each App ID wrote them."),
    appIdsFailure && errorPanel(appIdsFailure),
    filterForm(context, route, query, appIds),
    h("div", { class: "split" }, h("div", {}, list), detail),
  );
}

function keyTable(items, filtered, show, remove) {
  const columns = [
    { title: "Key", cell: (item) => h("button", { type: "button", class: "link mono", onclick: () => show(item) }, item.key) },
    { title: "App ID", cell: (item) => item.appId },
    { title: "Size", class: "num", cell: (item) => bytes(item.size) },
    { title: "Expires", cell: (item) => (item.expiresAt ? when(item.expiresAt) : "never") },
  ];
  if (remove) {
    columns.push({ title: "Actions", cell: (item) => h("button", { type: "button", class: "secondary", "aria-label": `Delete ${item.key}`, onclick: () => remove(item) }, "Delete") });
  }
  return table(
    columns,
    items,
    filtered
      ? "No key matches: choose another App ID or prefix, or clear the filters."
      : "No keys yet: an App ID saves state with POST /v1.0/state/kvstore (or its SDK's save_state).",
  );
}

function filterForm(context, route, query, appIds) {
  const choices = [["", "All App IDs"], ...appIds];
  if (query.appId && !appIds.includes(query.appId)) choices.push(query.appId);
  const appSelect = select({ name: "appId" }, choices, query.appId ?? "");
  const prefix = h("input", { name: "prefix", value: query.prefix ?? "", placeholder: "order-", disabled: !query.appId });
  appSelect.addEventListener("change", () => (prefix.disabled = !appSelect.value));
  const element = h(
    "form",
    { class: "filters", "aria-label": "Filter keys" },
    field({ label: "App ID", control: appSelect }),
    field({ label: "Key prefix", control: prefix, hint: "Keys of the chosen App ID starting with this." }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Show keys"), h("a", { class: "button secondary", href: `#${route}` }, "Clear")),
  );
  element.addEventListener("submit", (event) => {
    event.preventDefault();
    const appId = appSelect.value || undefined;
    context.navigate(route, { appId, prefix: appId ? prefix.value : undefined });
  });
  return element;
}
