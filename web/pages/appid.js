// One App ID: what it is, changing its endpoint, protocol, health check and configuration; its tokens
// (rotate with a grace period, revoke one); whether it is live (its newest calls, both ways, re-read every
// few seconds while the page is open); deleting it.

import { api, seg } from "../lib/api.js";
import { attempt, badge, confirmAction, errorPanel, field, form, h, heading, modal, table, when } from "../lib/dom.js";
import { appIdFields, connectBlock, tokenShownOnce } from "./appids.js";

const LIVE_EVERY_MS = 5000;

export default async function appId(context) {
  const projectPath = `/projects/${seg(context.project)}`;
  const path = `${projectPath}/appids/${seg(context.params.app)}`;
  const [project, app, tokens] = await Promise.all([api("GET", projectPath), api("GET", path), api("GET", `${path}/tokens`, { query: { limit: 100 } })]);
  const developer = context.can("developer");

  const live = h("div", { class: "grid", "aria-live": "polite" });
  const refreshLive = async () => {
    try {
      live.replaceChildren(...(await liveness(projectPath, app.name)));
    } catch (error) {
      live.replaceChildren(errorPanel(error));
    }
  };
  await refreshLive();
  const timer = setInterval(refreshLive, LIVE_EVERY_MS);
  context.onLeave(() => clearInterval(timer));

  const edit = form(
    appIdFields(app),
    async (values, element) => {
      const body = { appProtocol: values.appProtocol };
      // An emptied field clears the setting; the app token is only ever replaced, never shown.
      for (const name of ["appEndpoint", "appHealthCheckPath", "config"]) body[name] = values[name] || null;
      if (values.appToken) body.appToken = values.appToken;
      await api("PATCH", path, { body });
      element.querySelector(".notice")?.remove();
      element.prepend(h("p", { class: "notice", role: "status" }, "Saved."));
    },
    "Save changes",
  );

  return h(
    "div",
    {},
    heading(`App ID ${app.name}`, developer && h("button", { type: "button", class: "secondary", onclick: () => rotate(context, project, app.name, path) }, "Rotate token"), developer && h("button", { type: "button", class: "danger", onclick: () => remove(context, path, app.name) }, "Delete App ID")),
    h("section", {}, h("h2", {}, "Live"), live),
    h("section", { class: "card" }, h("h2", {}, "Connect"), connectBlock(project, app.name, null)),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Settings"),
      developer
        ? edit
        : h("div", { class: "detail" }, h("dl", {}, h("dt", {}, "Endpoint"), h("dd", {}, app.appEndpoint ?? "—"), h("dt", {}, "Protocol"), h("dd", {}, app.appProtocol), h("dt", {}, "Health check"), h("dd", {}, app.appHealthCheckPath ?? "—"), h("dt", {}, "Configuration"), h("dd", {}, app.config ?? "—"))),
    ),
    h(
      "section",
      {},
      h("h2", {}, "Tokens"),
      table(
        [
          { title: "Token", cell: (t) => h("code", {}, t.id) },
          { title: "Made", cell: (t) => when(t.createdAt) },
          { title: "Expires", cell: (t) => (t.expiresAt ? when(t.expiresAt) : "never") },
          { title: "", cell: (t) => developer && h("button", { type: "button", class: "secondary", "aria-label": `Revoke ${t.id}`, onclick: () => revoke(context, path, t.id) }, "Revoke") },
        ],
        tokens.items,
        "No tokens: rotate to make one.",
      ),
    ),
  );
}

/** The newest call the app made and the newest made to it, from the API log. */
async function liveness(projectPath, app) {
  const newest = (direction) => api("GET", `${projectPath}/logs`, { query: { appId: app, direction, limit: 1 } }).then((page) => page.items[0]);
  const [fromApp, toApp] = await Promise.all([newest("from_app"), newest("to_app")]);
  const card = (title, call, none) =>
    h(
      "div",
      { class: "card stat" },
      h("span", {}, title),
      call ? h("strong", {}, badge(call.status)) : h("strong", {}, "—"),
      call ? h("span", {}, when(call.time), ` · ${call.method} ${call.path}`) : h("span", {}, none),
    );
  return [
    card("Last call by the app", fromApp, "The app has not called yet: set the variables below and start it."),
    card("Last call to the app", toApp, "Outrigger has not called the app yet (invocations, deliveries, jobs)."),
  ];
}

function rotate(context, project, app, path) {
  const dialog = modal(
    "Rotate the token",
    form(
      [field({ label: "Grace period (seconds)", name: "graceSeconds", type: "number", min: 0, value: 86400, hint: "How long the tokens in use keep working, so running apps can move to the new one." })],
      async (values) => {
        const made = await api("POST", `${path}/tokens`, { body: { graceSeconds: Number(values.graceSeconds) } });
        dialog.querySelector("form").replaceWith(h("div", { class: "stack" }, tokenShownOnce(project, app, made.apiToken), h("div", { class: "actions" }, h("button", { type: "button", onclick: () => (dialog.close(), context.reload()) }, "Done"))));
      },
      "Rotate",
    ),
  );
}

async function revoke(context, path, token) {
  if (!(await confirmAction(`Revoke ${token}? Apps using it are refused at once.`, "Revoke"))) return;
  await attempt(() => api("DELETE", `${path}/tokens/${seg(token)}`), () => context.reload());
}

async function remove(context, path, app) {
  if (!(await confirmAction(`Delete App ID ${app} and its tokens? Its apps are refused at once.`))) return;
  await attempt(() => api("DELETE", path), () => context.navigate(`/p/${seg(context.project)}/appids`));
}
