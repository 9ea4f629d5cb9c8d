// Organizations: the ones the caller belongs to (every one, for the operator token), switching the one the
// console works in, and — for the operator — making and deleting them.

import { api, seg } from "../lib/api.js";
import { attempt, confirmAction, DNS_LABEL, field, form, h, heading, modal, table, when } from "../lib/dom.js";
import { session } from "../lib/session.js";

export default async function orgs(context) {
  const operator = context.whoami.kind === "operator";
  const current = session.load()?.organization ?? context.whoami.organization;
  const items = (await api("GET", "/orgs")).items;
  const limit = (value) => (value ? String(value) : "—");
  return h(
    "div",
    {},
    heading("Organizations", operator && h("button", { type: "button", onclick: () => create(context) }, "New organization")),
    table(
      [
        { title: "Organization", cell: (o) => [o.name, o.name === current && h("span", { class: "tag" }, "current")] },
        { title: "Projects (max)", cell: (o) => limit(o.quotas.projects), class: "num" },
        { title: "App IDs (max)", cell: (o) => limit(o.quotas.appIds), class: "num" },
        { title: "Requests/s per App ID (max)", cell: (o) => limit(o.quotas.requestsPerSecond), class: "num" },
        { title: "Created", cell: (o) => when(o.createdAt) },
        {
          title: "",
          cell: (o) =>
            h(
              "div",
              { class: "actions" },
              o.name !== current && h("button", { type: "button", class: "secondary", onclick: () => switchTo(context, o.name) }, `Work in ${o.name}`),
              operator && o.name !== "default" && h("button", { type: "button", class: "secondary", "aria-label": `Delete ${o.name}`, onclick: () => remove(context, o.name) }, "Delete"),
            ),
        },
      ],
      items,
    ),
  );
}

async function switchTo(context, name) {
  session.setOrganization(name);
  await context.signedIn();
  context.navigate("/projects");
}

function create(context) {
  const dialog = modal(
    "New organization",
    form(
      [field({ label: "Name", name: "name", required: true, pattern: DNS_LABEL, maxlength: 63 })],
      async (values) => {
        await api("POST", "/orgs", { body: { name: values.name } });
        dialog.close();
        context.reload();
      },
      "Create organization",
    ),
  );
}

async function remove(context, name) {
  if (!(await confirmAction(`Delete organization ${name}? It must have no projects left.`))) return;
  await attempt(() => api("DELETE", `/orgs/${seg(name)}`), () => context.reload());
}
