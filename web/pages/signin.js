// Signing in: with an email and password, through the installation's single sign-on provider, or with an
// API key (or the operator token). Single sign-on comes back here with a refresh token in the address's
// fragment, which is swapped for a session at once and wiped from the address.

import { api } from "../lib/api.js";
import { errorPanel, field, form, h } from "../lib/dom.js";
import { session } from "../lib/session.js";

export default async function signIn(context) {
  if (context.query.refreshToken) {
    const refreshToken = context.query.refreshToken;
    history.replaceState(null, "", "#/signin");
    try {
      session.signedIn(await api("POST", "/auth/refresh", { body: { refreshToken } }));
      await context.signedIn();
      context.navigate("/projects");
      return h("p", {}, "Signed in.");
    } catch (error) {
      return page(context, errorPanel(error));
    }
  }
  const methods = await api("GET", "/auth/methods").catch(() => ({ password: true, oidc: false }));
  return page(context, null, methods);
}

/**
 * Runs a sign-in `attempt`; on this page a 401 means what was typed is wrong, not that a session ended, and the
 * hint says so.
 */
async function signingIn(attempt) {
  try {
    await attempt();
  } catch (error) {
    if (error.status === 401) error.hint = "Check the email and password (or the key) and try again.";
    throw error;
  }
}

function page(context, problem, methods = { password: true, oidc: false }) {
  const done = async () => {
    await context.signedIn();
    context.navigate("/projects");
  };
  const password = form(
    [
      field({ label: "Email", name: "email", type: "email", autocomplete: "username", required: true }),
      field({ label: "Password", name: "password", type: "password", autocomplete: "current-password", required: true }),
      field({ label: "Organization", name: "organization", hint: "Optional: the first you belong to otherwise." }),
    ],
    (values) =>
      signingIn(async () => {
        const body = { email: values.email, password: values.password };
        if (values.organization) body.organization = values.organization;
        session.signedIn(await api("POST", "/auth/login", { body }));
        await done();
      }),
    "Sign in",
  );
  const key = form(
    [field({ label: "API key or operator token", name: "credential", type: "password", autocomplete: "off", required: true })],
    (values) =>
      signingIn(async () => {
        session.withKey(values.credential.trim());
        try {
          await done();
        } catch (error) {
          session.clear();
          throw error;
        }
      }),
    "Use key",
  );
  return h(
    "div",
    { class: "signin" },
    h("h1", {}, "Sign in to Outrigger"),
    problem,
    methods.password && h("section", { class: "card" }, h("h2", {}, "With your password"), password),
    methods.oidc &&
      h(
        "section",
        { class: "card" },
        h("h2", {}, "With your organization's identity provider"),
        h("a", { class: "button", href: "/api/v1/auth/oidc/login?returnTo=%2F", id: "sso" }, "Sign in with single sign-on"),
      ),
    h("section", { class: "card" }, h("h2", {}, "With an API key"), key),
  );
}
