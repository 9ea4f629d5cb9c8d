// The console's shell: sign-in state, the organization worked in, the navigation, and the routes (the part
// of the address after `#`) each page answers. A page is a module under pages/ whose default export renders
// it: `render(context) -> Node`; the context says who is signed in, what they may do, and which project.

import { api, ApiFailure, whenSignedOut } from "./lib/api.js";
import { errorPanel, h, select } from "./lib/dom.js";
import { session } from "./lib/session.js";

/** Pattern → page module. `:name` parts become `params.name`. The first match wins. */
const ROUTES = [
  ["/signin", "signin"],
  ["/orgs", "orgs"],
  ["/projects", "projects"],
  ["/org/members", "members"],
  ["/org/apikeys", "apikeys"],
  ["/org/audit", "audit"],
  ["/p/:project", "overview"],
  ["/p/:project/appids", "appids"],
  ["/p/:project/appids/:app", "appid"],
  ["/p/:project/resources", "resources"],
  ["/p/:project/resources/:kind", "resources"],
  ["/p/:project/graph", "graph"],
  ["/p/:project/logs", "logs"],
  ["/p/:project/metrics", "metrics"],
  ["/p/:project/workflows", "workflows"],
  ["/p/:project/workflows/:instance", "workflow"],
  ["/p/:project/jobs", "jobs"],
  ["/p/:project/kv", "kv"],
  ["/p/:project/topics", "topics"],
];

/** What each project page is called in the navigation, in order, with the role it needs to be offered. */
const PROJECT_PAGES = [
  ["", "Overview"],
  ["/appids", "App IDs"],
  ["/resources", "Components & resources"],
  ["/graph", "App graph"],
  ["/logs", "API logs"],
  ["/metrics", "Metrics"],
  ["/workflows", "Workflows"],
  ["/jobs", "Jobs"],
  ["/kv", "KV explorer"],
  ["/topics", "Topics"],
];

const RANKS = { viewer: 1, developer: 2, operator: 3, admin: 4 };

function match(path) {
  const parts = path.split("/").filter(Boolean);
  for (const [pattern, page] of ROUTES) {
    const wanted = pattern.split("/").filter(Boolean);
    if (wanted.length !== parts.length) continue;
    const params = {};
    const fits = wanted.every((part, index) => {
      if (part.startsWith(":")) {
        params[part.slice(1)] = decodeURIComponent(parts[index]);
        return true;
      }
      return part === parts[index];
    });
    if (fits) return { page, params };
  }
  return null;
}

/** The address's route and its query (`#/p/x/logs?appId=a`). */
function currentRoute() {
  const hash = location.hash.replace(/^#/, "") || "/projects";
  const [path, search = ""] = hash.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(search)) };
}

export function navigate(path, query) {
  const search = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== "")).toString() : "";
  location.hash = search ? `${path}?${search}` : path;
}

/** What the signed-in caller may do: `can("developer", project)` (the higher of its organization and project roles). */
function permissions(whoami) {
  return (role, project) => {
    if (whoami.kind === "operator") return true;
    const onOrg = RANKS[whoami.role] ?? 0;
    const onProject = Math.max(0, ...whoami.projectRoles.filter((r) => r.project === project).map((r) => RANKS[r.role] ?? 0));
    return Math.max(onOrg, onProject) >= RANKS[role];
  };
}

let leaving = [];
let whoami = null;
let organizations = [];

async function loadIdentity() {
  whoami = await api("GET", "/auth/whoami");
  organizations = (await api("GET", "/orgs")).items ?? [];
  if (!session.load()?.organization) session.setOrganization(whoami.organization);
}

function navigation(project, can) {
  const current = currentRoute().path;
  const link = (href, label) => h("a", { href: `#${href}`, "aria-current": current === href ? "page" : false }, label);
  return h(
    "nav",
    { class: "sidebar", "aria-label": "Console" },
    h("a", { class: "brand", href: "#/projects" }, "Outrigger"),
    h("ul", {}, h("li", {}, link("/projects", "Projects")), h("li", {}, link("/orgs", "Organizations"))),
    project &&
      h(
        "section",
        {},
        h("h2", {}, project),
        h("ul", {}, PROJECT_PAGES.map(([suffix, label]) => h("li", {}, link(`/p/${encodeURIComponent(project)}${suffix}`, label)))),
      ),
    h(
      "section",
      {},
      h("h2", {}, "Organization"),
      h(
        "ul",
        {},
        can("admin") && h("li", {}, link("/org/members", "Members")),
        h("li", {}, link("/org/apikeys", "API keys")),
        can("admin") && h("li", {}, link("/org/audit", "Audit log")),
      ),
    ),
  );
}

function topBar() {
  const current = session.load()?.organization ?? whoami.organization;
  const names = organizations.map((org) => org.name);
  if (!names.includes(current)) names.push(current);
  const switcher = select({ "aria-label": "Organization", id: "org-switcher" }, names, current);
  switcher.addEventListener("change", () => {
    session.setOrganization(switcher.value);
    navigate("/projects");
    render();
  });
  const who = whoami.email ?? whoami.name ?? (whoami.kind === "operator" ? "operator" : whoami.id);
  return h(
    "div",
    { class: "topbar" },
    h("label", { class: "org" }, "Organization ", switcher),
    h("span", { class: "who" }, who, whoami.role && h("span", { class: "role" }, whoami.role)),
    h("button", { type: "button", class: "secondary", onclick: signOut }, "Sign out"),
  );
}

async function signOut() {
  if (session.load()?.kind === "session") await api("POST", "/auth/logout").catch(() => {});
  session.clear();
  whoami = null;
  navigate("/signin");
}

const root = document.getElementById("app");

/** Draws the page the address names. */
async function render() {
  for (const leave of leaving) leave();
  leaving = [];
  const { path, query } = currentRoute();
  const found = match(path);
  const signedIn = Boolean(session.load()?.credential);
  if (!signedIn && found?.page !== "signin") return navigate("/signin");
  if (found?.page === "signin") return show(found, query, null);
  try {
    if (!whoami) await loadIdentity();
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 401) return;
    return root.replaceChildren(h("main", { class: "page" }, errorPanel(error)));
  }
  return show(found, query, permissions(whoami));
}

async function show(found, query, can) {
  const main = h("main", { class: "page", id: "main", tabindex: "-1" });
  const project = found?.params.project;
  if (can) {
    root.replaceChildren(h("a", { class: "skip", href: "#main", onclick: (e) => (e.preventDefault(), main.focus()) }, "Skip to content"), navigation(project, can), h("div", { class: "content" }, topBar(), main));
  } else {
    root.replaceChildren(main);
  }
  if (!found) return main.replaceChildren(errorPanel(new Error("No such page: choose one from the menu.")));
  main.setAttribute("aria-busy", "true");
  try {
    const module = await import(`./pages/${found.page}.js`);
    const context = {
      params: found.params,
      query,
      project,
      whoami,
      can: can ? (role) => can(role, project) : () => false,
      canInOrg: can ?? (() => false),
      navigate,
      reload: () => render(),
      signedIn: async () => {
        whoami = null;
        await loadIdentity();
      },
      onLeave: (callback) => leaving.push(callback),
    };
    const node = await module.default(context);
    main.replaceChildren(node);
    document.title = `${node.querySelector?.("h1")?.textContent ?? "Console"} · Outrigger`;
  } catch (error) {
    main.replaceChildren(errorPanel(error));
  } finally {
    main.removeAttribute("aria-busy");
  }
}

whenSignedOut(() => {
  session.clear();
  whoami = null;
  navigate("/signin");
});
window.addEventListener("hashchange", render);
render();
