// The organization's projects: the list (a page at a time), creating one, deleting one.

import { api, seg } from "../lib/api.js";
import { attempt, confirmAction, DNS_LABEL, field, form, h, heading, modal, table, when } from "../lib/dom.js";
import { pager } from "../lib/pager.js";

export default async function projects(context) {
  const canCreate = context.canInOrg("operator");
  const list = pager(
    (continuationToken) => api("GET", "/projects", { query: { limit: 50, continuationToken } }),
    (items) =>
      table(
        [
          { title: "Project", cell: (p) => h("a", { href: `#/p/${seg(p.name)}` }, p.name) },
          { title: "Managed components", cell: (p) => p.managedComponents.map((c) => c.name).join(", ") },
          { title: "Pool", cell: (p) => p.pool },
          { title: "Created", cell: (p) => when(p.createdAt) },
          {
            title: "",
            cell: (p) =>
              context.canInOrg("operator", p.name) &&
              h("button", { type: "button", class: "secondary", "aria-label": `Delete ${p.name}`, onclick: () => remove(context, p.name) }, "Delete"),
          },
        ],
        items,
        canCreate ? "No projects yet: create the first with New project." : "You hold no role on a project of this organization yet: ask its admin.",
      ),
  );
  return h(
    "div",
    {},
    heading("Projects", canCreate && h("button", { type: "button", onclick: () => create(context) }, "New project")),
    await list.first(),
  );
}

function create(context) {
  const dialog = modal(
    "New project",
    form(
      [
        field({ label: "Name", name: "name", required: true, pattern: DNS_LABEL, maxlength: 63, hint: "Lower-case letters, digits and dashes." }),
        h("label", { class: "field inline" }, h("input", { type: "checkbox", name: "managedKvstore", checked: true }), "Managed state store (kvstore)"),
        h("label", { class: "field inline" }, h("input", { type: "checkbox", name: "managedPubsub", checked: true }), "Managed pub/sub (pubsub)"),
      ],
      async (values) => {
        const body = { name: values.name, managedKvstore: values.managedKvstore === "on", managedPubsub: values.managedPubsub === "on" };
        await api("POST", "/projects", { body });
        dialog.close();
        context.navigate(`/p/${seg(values.name)}`);
      },
      "Create project",
    ),
  );
}

async function remove(context, name) {
  if (!(await confirmAction(`Delete project ${name} with its App IDs, components, state and messages? This cannot be undone.`))) return;
  await attempt(() => api("DELETE", `/projects/${seg(name)}`), () => context.reload());
}
