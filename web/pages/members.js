// The organization's members (admins only): people and service accounts with their roles on the
// organization or on single projects; adding one, granting a role, removing a role or the member.

import { all, api, seg } from "../lib/api.js";
import { attempt, confirmAction, field, form, h, heading, modal, select, table } from "../lib/dom.js";
import { session } from "../lib/session.js";

const ROLES = ["viewer", "developer", "operator", "admin"];

function organization(context) {
  return session.load()?.organization ?? context.whoami.organization;
}

export default async function members(context) {
  const org = organization(context);
  const path = `/orgs/${seg(org)}/members`;
  const items = (await api("GET", path)).items;
  const grant = (g) => (g.project ? `${g.role} on ${g.project}` : `${g.role} (organization)`);
  return h(
    "div",
    {},
    heading(`Members of ${org}`, h("button", { type: "button", onclick: () => add(context, path) }, "Add member")),
    table(
      [
        { title: "Member", cell: (m) => m.email ?? m.name },
        { title: "Kind", cell: (m) => (m.kind === "serviceAccount" ? "service account" : m.kind) },
        {
          title: "Roles",
          cell: (m) =>
            h(
              "ul",
              { class: "plain" },
              m.roles.map((g) =>
                h("li", {}, grant(g), " ", g.project && h("button", { type: "button", class: "link", "aria-label": `Remove ${grant(g)} from ${m.email ?? m.name}`, onclick: () => removeRole(context, path, m, g) }, "remove")),
              ),
            ),
        },
        { title: "", cell: (m) => h("button", { type: "button", class: "secondary", "aria-label": `Remove ${m.email ?? m.name}`, onclick: () => removeMember(context, path, m) }, "Remove") },
      ],
      items,
      "No members yet.",
    ),
  );
}

async function add(context, path) {
  const projects = await all("/projects", {}, 1000);
  const kind = select({ name: "kind" }, [["user", "A person (email)"], ["serviceAccount", "A service account"]], "user");
  const dialog = modal(
    "Add a member or grant a role",
    form(
      [
        field({ label: "Who", control: kind }),
        field({ label: "Email or service account name", name: "who", required: true }),
        field({ label: "Password for a new person", name: "password", type: "password", autocomplete: "new-password", hint: "At least 12 characters. Leave empty for an existing person or one who signs in with single sign-on." }),
        field({ label: "Role", control: select({ name: "role" }, ROLES, "viewer") }),
        field({ label: "On", control: select({ name: "project" }, [["", "the whole organization"], ...projects.map((p) => [p.name, `project ${p.name}`])], "") }),
      ],
      async (values) => {
        const body = { role: values.role };
        if (values.kind === "user") body.email = values.who;
        else body.serviceAccount = values.who;
        if (values.password) body.password = values.password;
        if (values.project) body.project = values.project;
        await api("POST", path, { body });
        dialog.close();
        context.reload();
      },
      "Add",
    ),
  );
}

/** A role on one project (the organization's role goes with the member). */
async function removeRole(context, path, member, grant) {
  if (!(await confirmAction(`Remove ${member.email ?? member.name}'s role on project ${grant.project}?`, "Remove"))) return;
  await attempt(() => api("DELETE", `${path}/${seg(member.id)}`, { query: { project: grant.project } }), () => context.reload());
}

async function removeMember(context, path, member) {
  if (!(await confirmAction(`Remove ${member.email ?? member.name} from the organization, with every role, key and session here?`, "Remove"))) return;
  await attempt(() => api("DELETE", `${path}/${seg(member.id)}`), () => context.reload());
}
