// API keys of the organization: a member's own (an admin's: everyone's), making one — its value shown once —
// and revoking one.

import { api, seg } from "../lib/api.js";
import { attempt, confirmAction, copyBlock, field, form, h, heading, modal, table, when } from "../lib/dom.js";
import { session } from "../lib/session.js";

export default async function apiKeys(context) {
  const org = session.load()?.organization ?? context.whoami.organization;
  const path = `/orgs/${seg(org)}/apikeys`;
  const items = (await api("GET", path)).items;
  const admin = context.canInOrg("admin");
  return h(
    "div",
    {},
    heading("API keys", context.whoami.kind !== "operator" && h("button", { type: "button", onclick: () => create(context, path, admin) }, "New API key")),
    h("p", {}, "An API key acts with its owner's roles in this organization, for scripts and the CLI (", h("code", {}, "outrigger --api-key"), ")."),
    table(
      [
        { title: "Name", cell: (k) => k.name },
        { title: "Key", cell: (k) => h("code", {}, k.id) },
        { title: "Owner", cell: (k) => k.owner },
        { title: "Made", cell: (k) => when(k.createdAt) },
        { title: "Expires", cell: (k) => (k.expiresAt ? when(k.expiresAt) : "never") },
        { title: "", cell: (k) => h("button", { type: "button", class: "secondary", "aria-label": `Revoke ${k.name}`, onclick: () => revoke(context, path, k) }, "Revoke") },
      ],
      items,
      "No API keys yet.",
    ),
  );
}

function create(context, path, admin) {
  const dialog = modal(
    "New API key",
    form(
      [
        field({ label: "Name", name: "name", required: true, maxlength: 100, hint: "What it is for, e.g. deploy-pipeline." }),
        field({ label: "Expires in days", name: "expiresInDays", type: "number", min: 1, hint: "Empty: it never expires (revoke it when done)." }),
        admin && field({ label: "For service account", name: "serviceAccount", hint: "Admins only: the key acts as this service account instead of you." }),
      ],
      async (values) => {
        const body = { name: values.name };
        if (values.expiresInDays) body.expiresInDays = Number(values.expiresInDays);
        if (values.serviceAccount) body.serviceAccount = values.serviceAccount;
        const made = await api("POST", path, { body });
        dialog.querySelector("form").replaceWith(
          h(
            "div",
            { class: "stack" },
            h("div", { class: "secret stack", role: "status" }, h("strong", {}, "The key, shown only now: copy it before closing."), copyBlock(made.key, "Copy key")),
            h("div", { class: "actions" }, h("button", { type: "button", onclick: () => (dialog.close(), context.reload()) }, "Done")),
          ),
        );
      },
      "Create key",
    ),
  );
}

async function revoke(context, path, key) {
  if (!(await confirmAction(`Revoke API key ${key.name}? Whatever uses it is refused at once.`, "Revoke"))) return;
  await attempt(() => api("DELETE", `${path}/${seg(key.id)}`), () => context.reload());
}
