// A project's jobs: for each of its App IDs (a page of App IDs at a time, or the one the filter names), the
// jobs it scheduled through Dapr's jobs API with what the scheduler did with them (next fire, last fire and
// its outcome, occurrences fired, failed tries); a developer may delete one.

import { api, appIdNames, seg } from "../lib/api.js";
import { confirmAction, errorPanel, field, h, heading, select, table, when } from "../lib/dom.js";
import { pager } from "../lib/pager.js";

const APP_IDS_PER_PAGE = 10;
const JOBS_PER_PAGE = 50;

export default async function jobs(context) {
  const project = context.project;
  const path = `/p/${seg(project)}/jobs`;
  const chosen = context.query.appId;

  const { names: appIds, failure: appIdsFailure } = await appIdNames(project);

  const choices = [["", "All App IDs"], ...appIds];
  if (chosen && !appIds.includes(chosen)) choices.push(chosen);
  const filter = select({ name: "appId" }, choices, chosen ?? "");
  filter.addEventListener("change", () => context.navigate(path, { appId: filter.value || undefined }));

  // One section per App ID, made once: the App ID pager redraws every section it holds at each page.
  const sections = new Map();
  const sectionOf = (app) => {
    if (!sections.has(app)) sections.set(app, appSection(context, project, app));
    return sections.get(app);
  };

  const body = chosen
    ? sectionOf(chosen)
    : await pager(
        (continuationToken) => api("GET", `/projects/${seg(project)}/appids`, { query: { limit: APP_IDS_PER_PAGE, continuationToken } }),
        (apps) => (apps.length ? h("div", { class: "stack" }, apps.map((app) => sectionOf(app.name))) : h("p", { class: "empty" }, "No App IDs yet: create one on the App IDs page; its app schedules jobs with the Dapr jobs API.")),
      ).first();

  return h(
    "div",
    { class: "jobs-page" },
    heading("Jobs", h("button", { type: "button", class: "secondary", onclick: () => context.reload() }, "Refresh")),
    h("p", { class: "lead" }, "Jobs the project's App IDs scheduled, with when the scheduler fires them next and how the last try went."),
    appIdsFailure && errorPanel(appIdsFailure),
    h("div", { class: "filters" }, field({ label: "App ID", control: filter })),
    body,
  );
}

/** An App ID's jobs, loading on its own; `reload()` on the element draws it again. */
function appSection(context, project, app) {
  const content = h("div", {}, h("p", { class: "loading" }, "Loading jobs…"));
  const section = h("section", { class: "card app-jobs", "aria-label": `Jobs of ${app}` }, h("h2", {}, "App ID ", h("a", { href: `#/p/${seg(project)}/appids/${seg(app)}` }, app)), content);
  const load = async () => {
    const list = await pager(
      (continuationToken) => api("GET", `/projects/${seg(project)}/appids/${seg(app)}/jobs`, { query: { limit: JOBS_PER_PAGE, continuationToken } }),
      (items) => jobTable(context, project, app, items, load),
    ).first();
    content.replaceChildren(list);
  };
  load();
  return section;
}

/** "in 5 min" / "3 s ago" beside a time. */
function relative(time) {
  if (!time) return null;
  const delta = new Date(time).getTime() - Date.now();
  const size = Math.abs(delta);
  const text = size < 60_000 ? `${Math.round(size / 1000)} s` : size < 3_600_000 ? `${Math.round(size / 60_000)} min` : size < 172_800_000 ? `${Math.round(size / 3_600_000)} h` : `${Math.round(size / 86_400_000)} d`;
  return h("small", { class: "relative" }, delta >= 0 ? `in ${text}` : `${text} ago`);
}

function schedule(job) {
  const parts = [
    ["schedule", job.schedule],
    ["due", job.dueTime],
    ["repeats", job.repeats],
    ["ttl", job.ttl],
  ].filter(([, value]) => value !== undefined && value !== null);
  if (!parts.length) return "—";
  return h("dl", { class: "job-schedule" }, parts.map(([name, value]) => [h("dt", {}, name), h("dd", {}, h("code", {}, String(value)))]));
}

function outcome(text) {
  if (!text) return null;
  return h("span", { class: `badge ${text === "delivered" ? "good" : "bad"}` }, text);
}

function jobTable(context, project, app, items, reload) {
  const failure = h("div", { class: "form-error" });
  const remove = async (job) => {
    if (!(await confirmAction(`Delete job ${job.name} of App ID ${app}? It fires no more.`))) return;
    try {
      await api("DELETE", `/projects/${seg(project)}/appids/${seg(app)}/jobs/${seg(job.name)}`);
      await reload();
    } catch (error) {
      failure.replaceChildren(errorPanel(error));
    }
  };
  const columns = [
    { title: "Job", cell: (job) => h("span", { class: "mono" }, job.name) },
    { title: "Schedule", cell: schedule },
    { title: "Next fire", cell: (job) => [when(job.nextFire), " ", relative(job.nextFire)] },
    { title: "Last fire", cell: (job) => (job.lastFire ? [when(job.lastFire), " ", outcome(job.lastOutcome)] : "not yet") },
    { title: "Fired", class: "num", cell: (job) => String(job.fired) },
    { title: "Failures", class: "num", cell: (job) => String(job.failures) },
    { title: "Created", cell: (job) => when(job.createdAt) },
  ];
  if (context.can("developer")) {
    columns.push({
      title: "",
      cell: (job) => h("button", { type: "button", class: "secondary", "aria-label": `Delete job ${job.name}`, onclick: () => remove(job) }, "Delete"),
    });
  }
  return h("div", {}, failure, table(columns, items, "No jobs: the app schedules one with the Dapr jobs API (POST /v1.0-alpha1/jobs/{name} or the SDK's schedule_job)."));
}
