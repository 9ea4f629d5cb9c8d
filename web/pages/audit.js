// The organization's audit trail (admins only): every change, who made it and from where, newest first,
// filtered by actor, action, project and time; each entry's before and after.

import { api, seg } from "../lib/api.js";
import { badge, field, form, h, heading, modal, table, when } from "../lib/dom.js";
import { pager } from "../lib/pager.js";
import { session } from "../lib/session.js";

export default async function audit(context) {
  const org = session.load()?.organization ?? context.whoami.organization;
  const filters = { actor: context.query.actor, action: context.query.action, project: context.query.project, since: context.query.since };
  const list = pager(
    (continuationToken) => api("GET", `/orgs/${seg(org)}/audit`, { query: { ...filters, limit: 50, continuationToken } }),
    (items) =>
      table(
        [
          { title: "When", cell: (e) => when(e.at) },
          { title: "Who", cell: (e) => e.actor.display },
          { title: "Action", cell: (e) => h("code", {}, e.action) },
          { title: "Project", cell: (e) => e.project ?? "—" },
          { title: "Target", cell: (e) => e.target },
          { title: "Status", cell: (e) => badge(e.status) },
          { title: "From", cell: (e) => e.sourceAddr ?? "—" },
          { title: "", cell: (e) => (e.before || e.after) && h("button", { type: "button", class: "secondary", onclick: () => show(e) }, "Changes") },
        ],
        items,
        "No changes recorded for these filters.",
      ),
  );
  const filterForm = form(
    [
      field({ label: "Actor", name: "actor", value: filters.actor ?? "", hint: "A member id (usr_…, sva_…)." }),
      field({ label: "Action", name: "action", value: filters.action ?? "", placeholder: "resource.put" }),
      field({ label: "Project", name: "project", value: filters.project ?? "" }),
    ],
    async (values) => context.navigate("/org/audit", values),
    "Filter",
  );
  filterForm.classList.add("filters");
  return h("div", {}, heading(`Audit log of ${org}`), filterForm, await list.first());
}

function show(entry) {
  const text = (value) => (value === undefined || value === null ? "—" : JSON.stringify(value, null, 2));
  modal(
    `${entry.action} ${entry.target}`,
    h("div", { class: "split" }, h("div", {}, h("h3", {}, "Before"), h("pre", { class: "scroll" }, text(entry.before))), h("div", {}, h("h3", {}, "After"), h("pre", { class: "scroll" }, text(entry.after)))),
  );
}
