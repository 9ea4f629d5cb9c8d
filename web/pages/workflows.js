// A project's workflow instances: the filters (App ID, workflow name, statuses, created between), kept in the
// address so a reload or a shared link shows the same list, and the instances newest first, a page at a time,
// each linking to its own page.

import { api, appIdNames, seg } from "../lib/api.js";
import { badge, errorPanel, field, h, heading, select, table, when } from "../lib/dom.js";
import { pager } from "../lib/pager.js";

/** Every status the API filters by, in the order offered. */
export const WORKFLOW_STATUSES = ["RUNNING", "PENDING", "SUSPENDED", "COMPLETED", "FAILED", "TERMINATED", "CANCELED", "CONTINUED_AS_NEW", "STALLED"];

const PAGE_SIZE = 50;

/** A `datetime-local` value (the reader's local time) as RFC 3339, or undefined when empty or unreadable. */
function rfc3339(local) {
  if (!local) return undefined;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** The statuses named in the address (`status=RUNNING,SUSPENDED`). */
function chosenStatuses(query) {
  return (query.status ?? "")
    .split(",")
    .map((status) => status.trim().toUpperCase())
    .filter((status) => WORKFLOW_STATUSES.includes(status));
}

export default async function workflows(context) {
  const project = context.project;
  const path = `/p/${seg(project)}/workflows`;
  const query = context.query;
  const statuses = chosenStatuses(query);

  const { names: appIds, failure: appIdsFailure } = await appIdNames(project);

  const filters = filterForm(context, path, query, statuses, appIds);
  const apiQuery = {
    appId: query.appId,
    name: query.name,
    status: statuses.join(",") || undefined,
    createdFrom: rfc3339(query.createdFrom),
    createdTo: rfc3339(query.createdTo),
    limit: PAGE_SIZE,
  };
  const filtered = Boolean(query.appId || query.name || statuses.length || query.createdFrom || query.createdTo);

  const list = await pager(
    (continuationToken) => api("GET", `/projects/${seg(project)}/workflows`, { query: { ...apiQuery, continuationToken } }),
    (items) => instanceTable(project, items, filtered),
  ).first();

  return h(
    "div",
    { class: "workflows-page" },
    heading("Workflows", h("button", { type: "button", class: "secondary", onclick: () => context.reload() }, "Refresh")),
    h("p", { class: "lead" }, "Workflow instances the project's App IDs started, newest first."),
    appIdsFailure && errorPanel(appIdsFailure),
    filters,
    list,
  );
}

function instanceTable(project, items, filtered) {
  const instanceLink = (id) => h("a", { href: `#/p/${seg(project)}/workflows/${seg(id)}`, class: "mono" }, id);
  return table(
    [
      { title: "Instance", cell: (instance) => instanceLink(instance.instanceId) },
      { title: "Workflow", cell: (instance) => instance.name },
      { title: "App ID", cell: (instance) => instance.appId },
      { title: "Status", cell: (instance) => badge(instance.status) },
      { title: "Parent", cell: (instance) => (instance.parentInstanceId ? instanceLink(instance.parentInstanceId) : "—") },
      { title: "Created", cell: (instance) => when(instance.createdAt) },
      { title: "Updated", cell: (instance) => when(instance.completedAt ?? instance.updatedAt) },
    ],
    items,
    filtered
      ? "No instance matches these filters: widen them or clear them."
      : "No workflow instances yet: an app starts one with the Dapr workflow API (for example DaprWorkflowClient.schedule_new_workflow).",
  );
}

function filterForm(context, path, query, statuses, appIds) {
  const appChoices = [["", "All App IDs"], ...appIds];
  if (query.appId && !appIds.includes(query.appId)) appChoices.push(query.appId);
  const statusBoxes = WORKFLOW_STATUSES.map((status) =>
    h(
      "label",
      { class: "status-choice" },
      h("input", { type: "checkbox", name: "status", value: status, checked: statuses.includes(status) }),
      status,
    ),
  );
  const element = h(
    "form",
    { class: "filters workflow-filters", "aria-label": "Filter instances" },
    field({ label: "App ID", name: "appId", control: select({ name: "appId" }, appChoices, query.appId ?? "") }),
    field({ label: "Workflow name", name: "name", value: query.name ?? "", placeholder: "exact name" }),
    field({ label: "Created from", name: "createdFrom", type: "datetime-local", value: query.createdFrom ?? "" }),
    field({ label: "Created to", name: "createdTo", type: "datetime-local", value: query.createdTo ?? "" }),
    h("fieldset", { class: "status-filter" }, h("legend", {}, "Status"), statusBoxes),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Apply filters"),
      h("a", { class: "button secondary", href: `#${path}` }, "Clear"),
    ),
  );
  element.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(element);
    context.navigate(path, {
      appId: data.get("appId") || undefined,
      name: String(data.get("name") ?? "").trim() || undefined,
      status: data.getAll("status").join(",") || undefined,
      createdFrom: data.get("createdFrom") || undefined,
      createdTo: data.get("createdTo") || undefined,
    });
  });
  return element;
}
