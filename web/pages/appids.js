// A project's App IDs: the list, and making one — whose token is shown once, with the three `DAPR_*`
// variables an app sets to use it, ready to copy.

import { api, seg } from "../lib/api.js";
import { copyBlock, DNS_LABEL, field, form, h, heading, modal, select, table, when } from "../lib/dom.js";
import { pager } from "../lib/pager.js";

/** `DAPR_HTTP_ENDPOINT`, `DAPR_GRPC_ENDPOINT` and `DAPR_API_TOKEN` for `app` of `project`, as shell lines. */
export function connectBlock(project, app, token) {
  const text = [
    `# App ID ${app} of project ${project.name}`,
    `export DAPR_HTTP_ENDPOINT=${project.httpEndpoint}`,
    `export DAPR_GRPC_ENDPOINT=${project.grpcEndpoint}`,
    `export DAPR_API_TOKEN=${token ?? "<the App ID's token, shown when it was made or rotated>"}`,
  ].join("\n");
  return h("div", { class: "connect" }, copyBlock(text, "Copy variables"));
}

/** The token of a new App ID or a rotation, shown once, with the variables to use it. */
export function tokenShownOnce(project, app, token) {
  return h(
    "div",
    { class: "secret stack", role: "status" },
    h("strong", {}, `The token of ${app}, shown only now: copy it before closing.`),
    connectBlock(project, app, token),
  );
}

/** The fields an App ID is made or changed with (`app` fills them for a change). */
export function appIdFields(app = {}) {
  return [
    field({ label: "App endpoint", name: "appEndpoint", type: "url", value: app.appEndpoint ?? "", placeholder: "https://orders.example.com", hint: "Where Outrigger calls the app: invocations, pub/sub deliveries, jobs, bindings. Leave empty for an app that only calls out." }),
    field({ label: "App protocol", control: select({ name: "appProtocol" }, ["http", "grpc"], app.appProtocol ?? "http") }),
    field({ label: "Health check path", name: "appHealthCheckPath", value: app.appHealthCheckPath ?? "", placeholder: "/healthz", hint: "Probed every 5 s; after 3 failures deliveries pause and invocations are refused." }),
    field({ label: "Configuration", name: "config", value: app.config ?? "", hint: "The name of a Configuration resource of the project (access control, tracing)." }),
    field({ label: "App token", name: "appToken", type: "password", autocomplete: "off", hint: app.hasAppToken ? "Set: leave empty to keep it." : "Sent to the app as dapr-api-token, so it can tell Outrigger's calls from others." }),
  ];
}

export default async function appIds(context) {
  const path = `/projects/${seg(context.project)}/appids`;
  const project = await api("GET", `/projects/${seg(context.project)}`);
  const list = pager(
    (continuationToken) => api("GET", path, { query: { limit: 50, continuationToken } }),
    (items) =>
      table(
        [
          { title: "App ID", cell: (a) => h("a", { href: `#/p/${seg(context.project)}/appids/${seg(a.name)}` }, a.name) },
          { title: "Endpoint", cell: (a) => (a.appEndpoint ? h("span", { class: "mono" }, a.appEndpoint) : "—") },
          { title: "Protocol", cell: (a) => a.appProtocol },
          { title: "Health check", cell: (a) => a.appHealthCheckPath ?? "—" },
          { title: "Configuration", cell: (a) => a.config ?? "—" },
          { title: "Created", cell: (a) => when(a.createdAt) },
        ],
        items,
        context.can("developer") ? "No App IDs yet: create one with New App ID." : "No App IDs yet.",
      ),
  );
  return h(
    "div",
    {},
    heading("App IDs", context.can("developer") && h("button", { type: "button", onclick: () => create(context, project, path) }, "New App ID")),
    await list.first(),
  );
}

function create(context, project, path) {
  const dialog = modal(
    "New App ID",
    form(
      [field({ label: "Name", name: "name", required: true, pattern: DNS_LABEL, maxlength: 63, hint: "What the app is called in invocations: /v1.0/invoke/<name>/method/..." }), ...appIdFields()],
      async (values) => {
        const body = { name: values.name, appProtocol: values.appProtocol };
        for (const name of ["appEndpoint", "appHealthCheckPath", "config", "appToken"]) if (values[name]) body[name] = values[name];
        const made = await api("POST", path, { body });
        dialog.querySelector("form").replaceWith(
          h(
            "div",
            { class: "stack" },
            tokenShownOnce(project, made.name, made.apiToken),
            h("div", { class: "actions" }, h("button", { type: "button", onclick: () => (dialog.close(), context.reload()) }, "Done")),
          ),
        );
      },
      "Create App ID",
    ),
  );
}
