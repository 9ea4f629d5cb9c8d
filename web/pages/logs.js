// A project's API log (`#/p/:project/logs?appId=&api=&status=&direction=&range=&since=&until=&q=`): the
// filters (kept in the address, so a reload or a shared link shows the same calls), the calls newest first a
// page at a time, a live tail that adds calls newer than the newest shown while it is on, and a panel with
// every field of the call chosen. Every text here (paths, user agents, targets) comes from tenants and is
// shown as text only.

import { all, api, seg } from "../lib/api.js";
import { badge, copyButton, errorPanel, field, h, heading, modal, select } from "../lib/dom.js";

const PAGE_SIZE = 50;
const TAIL_EVERY_MS = 2000;
/** The tail asks again for this much before the newest call shown: calls are written in batches, slightly late. */
const TAIL_OVERLAP_MS = 10_000;
/** Most calls the page keeps drawn; older ones fall off while the tail adds new ones. */
const MOST_ROWS = 2000;

const APIS = ["state", "pubsub", "invocation", "workflows", "jobs", "bindings", "secrets", "lock", "configuration", "metadata", "other"];
const RANGES = [
  ["", "Any time"],
  ["15m", "Last 15 minutes"],
  ["1h", "Last hour"],
  ["24h", "Last 24 hours"],
  ["custom", "Custom…"],
];
const RANGE_MS = { "15m": 15 * 60_000, "1h": 3_600_000, "24h": 86_400_000 };
const FILTER_NAMES = ["appId", "api", "status", "direction", "range", "since", "until", "q"];

/** The API's filters for the address's query: relative ranges become `since` now. */
function apiFilters(query) {
  const filters = { appId: query.appId, api: query.api, status: query.status, direction: query.direction, q: query.q };
  if (RANGE_MS[query.range]) filters.since = new Date(Date.now() - RANGE_MS[query.range]).toISOString();
  else if (query.range === "custom") Object.assign(filters, { since: query.since, until: query.until });
  return filters;
}

/** An ISO time as the value of a datetime-local input (the reader's local time). */
function localInput(iso) {
  if (!iso || Number.isNaN(Date.parse(iso))) return "";
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** One call's identity, to drop the repeats the tail's overlap brings (calls have no id). */
const identity = (call) => JSON.stringify(call);

export default async function logs(context) {
  const project = context.params.project;
  const path = `/p/${seg(project)}/logs`;
  const query = Object.fromEntries(FILTER_NAMES.map((name) => [name, context.query[name] ?? ""]));
  const appIds = await all(`/projects/${seg(project)}/appids`, {}, 1000).catch(() => null);

  const state = { calls: [], seen: new Set(), token: undefined, tail: null, newest: null };
  const status = h("p", { class: "tail-status", role: "status", "aria-live": "polite" });
  const rows = h("tbody", {});
  const more = h("div", { class: "more-holder" });
  const problems = h("div", {});
  const tableHolder = h("div", {});

  const listing = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "calls" },
      h("caption", { class: "visually-hidden" }, "Calls, newest first. Choose a call's time to see all its fields."),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Time", "App ID", "API", "Call", "Component / target", "Status", "Latency"].map((title) => h("th", { scope: "col", class: title === "Latency" ? "num" : null }, title)),
        ),
      ),
      rows,
    ),
  );
  const empty = h("p", { class: "empty" }, "No calls match these filters. Calls appear a second or two after an App ID makes them: widen the time range or turn on the live tail.");

  function rowFor(call) {
    const when = new Date(call.time);
    const open = () => showCall(call);
    const target = [call.component, call.target].filter(Boolean).join(" → ");
    const row = h(
      "tr",
      { class: "call", onclick: (event) => event.target.closest("button") || open() },
      h("td", {}, h("button", { type: "button", class: "link", title: when.toISOString(), onclick: open, "aria-label": `Details of ${call.method} at ${when.toLocaleTimeString()}` }, when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }))),
      h("td", {}, call.direction === "to_app" ? h("span", { title: "Called by the platform" }, "← ", call.appId) : call.appId),
      h("td", {}, call.api),
      h("td", { class: "mono" }, `${call.protocol === "grpc" ? "gRPC " : ""}${call.method}${call.streamEnded ? " (stream ended)" : ""} `, h("span", { class: "call-path" }, call.path)),
      h("td", {}, target || "—"),
      h("td", {}, badge(call.status), call.grpcCode !== undefined && call.grpcCode !== 0 ? h("small", {}, ` grpc ${call.grpcCode}`) : null),
      h("td", { class: "num" }, `${call.latencyMs} ms`),
    );
    return row;
  }

  function redraw() {
    rows.replaceChildren(...state.calls.map(rowFor));
    tableHolder.replaceChildren(state.calls.length ? listing : empty);
    more.replaceChildren(...(state.token ? [h("button", { type: "button", class: "secondary more", onclick: loadMore }, "Load more")] : []));
  }

  function remember(call) {
    const key = identity(call);
    if (state.seen.has(key)) return false;
    state.seen.add(key);
    // Times are compared as times: "…:03Z" and "…:03.5Z" do not sort as text.
    if (!state.newest || Date.parse(call.time) > Date.parse(state.newest)) state.newest = call.time;
    return true;
  }

  const filters = apiFilters(query);
  const fetchPage = (extra) => api("GET", `/projects/${seg(project)}/logs`, { query: { ...filters, limit: PAGE_SIZE, ...extra } });

  async function loadMore(event) {
    const button = event?.currentTarget;
    if (button) button.disabled = true;
    try {
      const page = await fetchPage({ continuationToken: state.token });
      state.calls.push(...page.items.filter(remember));
      state.token = page.continuationToken;
      redraw();
    } catch (error) {
      if (button) button.disabled = false;
      problems.replaceChildren(errorPanel(error));
    }
  }

  // --- Live tail ---------------------------------------------------------------------------------------
  const loadedAt = new Date().toISOString();
  const tailButton = h("button", { type: "button", class: "secondary", "aria-pressed": "false", onclick: () => (state.tail ? stopTail() : startTail()) }, "Live tail");

  function startTail() {
    state.tail = { timer: null, stopped: false };
    tailButton.setAttribute("aria-pressed", "true");
    tailButton.textContent = "Stop live tail";
    status.textContent = `Live tail on: new calls are added at the top every ${TAIL_EVERY_MS / 1000} s.`;
    poll(state.tail);
  }

  function stopTail() {
    if (!state.tail) return;
    state.tail.stopped = true;
    clearTimeout(state.tail.timer);
    state.tail = null;
    tailButton.setAttribute("aria-pressed", "false");
    tailButton.textContent = "Live tail";
    status.textContent = "Live tail off.";
  }

  async function poll(tail) {
    if (tail.stopped) return;
    // The page was replaced without the shell saying so: nothing to add rows to.
    if (!tailButton.isConnected) return stopTail();
    const from = Date.parse(state.newest ?? loadedAt) - TAIL_OVERLAP_MS;
    const since = new Date(Math.max(from, filters.since ? Date.parse(filters.since) : -Infinity)).toISOString();
    try {
      // At most 200 a round: a burst of more in 2 s shows its newest 200 (the rest stay a search away).
      const page = await api("GET", `/projects/${seg(project)}/logs`, { query: { ...filters, until: undefined, since, limit: 200 } });
      if (tail.stopped) return;
      const fresh = page.items.filter(remember);
      if (fresh.length) {
        // A call written late (another process's batch) may be older than the newest shown: keep time order.
        state.calls = [...fresh, ...state.calls].sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
        if (state.calls.length > MOST_ROWS) {
          state.calls.length = MOST_ROWS;
          state.token = undefined;
        }
        redraw();
        status.textContent = `Live tail on: ${fresh.length} new call${fresh.length === 1 ? "" : "s"} at ${new Date().toLocaleTimeString()}.`;
      }
      problems.replaceChildren();
    } catch (error) {
      problems.replaceChildren(errorPanel(error));
      if (error.status && error.status < 500 && error.status !== 429) return stopTail();
    }
    if (!tail.stopped) tail.timer = setTimeout(() => poll(tail), TAIL_EVERY_MS);
  }
  context.onLeave(stopTail);

  // --- First page ------------------------------------------------------------------------------------------
  let failure = null;
  try {
    const page = await fetchPage({});
    state.calls = page.items.filter(remember);
    state.token = page.continuationToken;
  } catch (error) {
    failure = error;
  }
  redraw();

  return h(
    "div",
    { class: "activity-page" },
    heading("API logs", tailButton, h("a", { class: "button secondary", href: `#/p/${seg(project)}/metrics` }, "Metrics")),
    filterForm(context, path, query, appIds),
    appIds === null && !failure && h("p", { class: "muted" }, "The App ID list could not be read: type an App ID in the address (appId=…) to filter by one."),
    status,
    problems,
    failure ? errorPanel(failure) : [tableHolder, more],
  );
}

/** The filters, as a form whose submission puts them in the address (`navigate`), which draws the page again. */
function filterForm(context, path, query, appIds) {
  const appChoices = [["", "All App IDs"], ...(appIds ?? []).map((app) => [app.name, app.name])];
  if (query.appId && !appChoices.some(([value]) => value === query.appId)) appChoices.push([query.appId, query.appId]);
  const custom = h(
    "div",
    { class: "filters custom-range", hidden: query.range !== "custom" },
    field({ label: "From", name: "since", type: "datetime-local", value: localInput(query.since) }),
    field({ label: "Until", name: "until", type: "datetime-local", value: localInput(query.until) }),
  );
  const range = select({ name: "range" }, RANGES, query.range);
  range.addEventListener("change", () => (custom.hidden = range.value !== "custom"));
  const element = h(
    "form",
    { class: "log-filters", role: "search", "aria-label": "Filter calls" },
    h(
      "div",
      { class: "filters" },
      field({ label: "App ID", control: select({ name: "appId" }, appChoices, query.appId) }),
      field({ label: "API", control: select({ name: "api" }, [["", "All APIs"], ...APIS.map((value) => [value, value])], query.api) }),
      field({ label: "Status", name: "status", value: query.status, placeholder: "404, 5xx or error", pattern: "([1-5][0-9][0-9]|[1-5][xX][xX]|[eE][rR][rR][oO][rR])", title: "A code (404), a class (5xx) or error", size: 12 }),
      field({ label: "Direction", control: select({ name: "direction" }, [["", "Both"], ["from_app", "Calls by App IDs"], ["to_app", "Calls to App IDs"]], query.direction) }),
      field({ label: "Time", control: range }),
      field({ label: "Text", name: "q", type: "search", value: query.q, placeholder: "path, target, component…" }),
    ),
    custom,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply filters"), h("button", { type: "button", class: "secondary", onclick: () => context.navigate(path) }, "Clear")),
  );
  element.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(element).entries());
    const next = { appId: values.appId, api: values.api, status: values.status?.trim(), direction: values.direction, range: values.range, q: values.q?.trim() };
    if (values.range === "custom") {
      next.since = values.since ? new Date(values.since).toISOString() : undefined;
      next.until = values.until ? new Date(values.until).toISOString() : undefined;
    }
    context.navigate(path, next);
  });
  return element;
}

/** Every field of one call, in a dialog. */
function showCall(call) {
  const rows = [
    ["Time", new Date(call.time).toISOString()],
    ["App ID", call.appId],
    ["Direction", call.direction === "to_app" ? "to_app (the platform called the App ID)" : "from_app (the App ID called a Dapr API)"],
    ["API", call.api],
    ["Protocol", call.protocol],
    ["Method", call.method],
    ["Path", call.path],
    ["Component", call.component],
    ["Target", call.target],
    ["Status", call.status],
    ["gRPC code", call.grpcCode],
    ["Latency", `${call.latencyMs} ms`],
    ...(call.streamEnded ? [["Stream", "ended: the time is its end, the latency how long it was open"]] : []),
    ["Trace ID", call.traceId, true],
    ["Span ID", call.spanId, true],
    ["User agent", call.userAgent],
    ["Caller address", call.callerAddress],
  ];
  modal(
    "Call details",
    h(
      "div",
      { class: "detail call-detail" },
      h(
        "dl",
        {},
        rows.map(([label, value, copyable]) => [
          h("dt", {}, label),
          h(
            "dd",
            {},
            h("span", { class: copyable ? "mono" : null }, value === undefined || value === null || value === "" ? "—" : String(value)),
            copyable && value ? copyButton(value, `Copy ${label.toLowerCase()}`) : null,
          ),
        ]),
      ),
    ),
  );
}
