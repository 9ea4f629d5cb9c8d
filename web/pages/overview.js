// A project at a glance: where its apps connect, the three `DAPR_*` variables for a chosen App ID, its managed
// components, quotas and this month's usage.

import { api, seg } from "../lib/api.js";
import { h, heading, select, table, when } from "../lib/dom.js";
import { connectBlock } from "./appids.js";

export default async function overview(context) {
  const path = `/projects/${seg(context.project)}`;
  const [project, apps, quotas, usage] = await Promise.all([
    api("GET", path),
    api("GET", `${path}/appids`, { query: { limit: 100 } }),
    api("GET", `${path}/quotas`),
    api("GET", `${path}/usage`).catch(() => null),
  ]);
  const names = apps.items.map((app) => app.name);
  const chosen = names.includes(context.query.app) ? context.query.app : names[0];
  const picker = select({ "aria-label": "App ID", id: "connect-app" }, names, chosen);
  picker.addEventListener("change", () => context.navigate(`/p/${seg(context.project)}`, { app: picker.value }));

  const connect = chosen
    ? h(
        "div",
        { class: "stack" },
        h("label", { class: "field inline" }, "App ID ", picker),
        connectBlock(project, chosen, null),
        h(
          "p",
          { class: "hint" },
          "An App ID's token is shown once, when it is made or rotated. ",
          h("a", { href: `#/p/${seg(context.project)}/appids/${seg(chosen)}` }, "Rotate it on the App ID's page"),
          " to get a new one (the old one keeps working for the grace period).",
        ),
      )
    : h(
        "p",
        { class: "empty" },
        "No App IDs yet. ",
        h("a", { href: `#/p/${seg(context.project)}/appids` }, "Create one"),
        " and point a Dapr SDK at the endpoints with its token.",
      );

  const stat = (label, value) => h("div", { class: "card stat" }, h("strong", {}, value ?? "—"), h("span", {}, label));
  const limit = (value) => (value ? String(value) : "no limit");
  return h(
    "div",
    {},
    heading(`Project ${project.name}`),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Endpoints"),
      h(
        "div",
        { class: "detail" },
        h("dl", {}, h("dt", {}, "Dapr HTTP"), h("dd", { class: "mono" }, project.httpEndpoint), h("dt", {}, "Dapr gRPC"), h("dd", { class: "mono" }, project.grpcEndpoint), h("dt", {}, "Worker pool"), h("dd", {}, project.pool), h("dt", {}, "Created"), h("dd", {}, when(project.createdAt))),
      ),
    ),
    h("section", { class: "card" }, h("h2", {}, "Connect an app"), connect),
    usage &&
      h(
        "section",
        {},
        h("h2", {}, `Usage in ${usage.period}`),
        h(
          "div",
          { class: "grid" },
          stat("App IDs", usage.appIds),
          stat("Components", usage.components),
          stat("Requests", usage.requests),
          stat("Messages published", usage.publishRequests),
          stat("Workflow instances", usage.workflowInstances),
          stat("Stored state (bytes)", usage.storedStateBytes),
        ),
      ),
    h(
      "section",
      {},
      h("h2", {}, "Managed components"),
      table(
        [
          { title: "Name", cell: (c) => c.name },
          { title: "Type", cell: (c) => h("code", {}, c.type) },
        ],
        project.managedComponents,
      ),
    ),
    h(
      "section",
      {},
      h("h2", {}, "Quotas"),
      table(
        [
          { title: "Limit", cell: (row) => row[0] },
          { title: "In effect", cell: (row) => limit(quotas.effective[row[1]]) },
        ],
        [
          ["Requests per second per App ID", "requestsPerSecond"],
          ["App IDs", "appIds"],
          ["Components", "components"],
          ["Stored bytes", "storedBytes"],
        ],
      ),
    ),
  );
}
