// A project's call metrics (`#/p/:project/metrics?window=1h`): the totals of the chosen window (requests, rate,
// error rate, latency percentiles) as stat cards; requests, error rate and p95 latency per step as charts for
// the whole project, per App ID and per API; and this month's usage. All from GET /metrics and GET /usage.

import { api, seg } from "../lib/api.js";
import { barChart, compactNumber, lineChart } from "../lib/chart.js";
import { errorPanel, h, heading } from "../lib/dom.js";

const WINDOWS = [
  ["1h", "1 hour"],
  ["6h", "6 hours"],
  ["24h", "24 hours"],
  ["7d", "7 days"],
];

/** Most series a chart draws (the busiest ones); the rest are named under it. */
const MOST_SERIES = 8;

const percent = (value) => (Number.isFinite(value) ? `${trimmed(value * 100)}%` : "—");
const milliseconds = (value) => (Number.isFinite(value) ? `${trimmed(value)} ms` : "—");
const trimmed = (value) => String(Number(value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)));
/** A rate that may be tiny (a few calls an hour): two significant digits below 0.01. */
const rate = (value) => (value > 0 && value < 0.01 ? String(Number(value.toPrecision(2))) : trimmed(value));

export default async function metrics(context) {
  const project = context.params.project;
  const window = WINDOWS.some(([value]) => value === context.query.window) ? context.query.window : "1h";
  const base = `#/p/${seg(project)}/metrics`;
  const switcher = h(
    "nav",
    { class: "tabs", "aria-label": "Window" },
    WINDOWS.map(([value, label]) => h("a", { href: `${base}?window=${value}`, "aria-current": value === window ? "page" : false }, `Last ${label}`)),
  );
  const [figures, usage] = await Promise.allSettled([
    api("GET", `/projects/${seg(project)}/metrics`, { query: { window } }),
    api("GET", `/projects/${seg(project)}/usage`),
  ]);
  return h(
    "div",
    { class: "activity-page" },
    heading("Metrics", h("a", { class: "button secondary", href: `#/p/${seg(project)}/logs` }, "API logs")),
    h("p", { class: "muted" }, "Calls the project's App IDs made through the Dapr APIs, from the API log. Errors are answers of 4xx and 5xx."),
    switcher,
    figures.status === "fulfilled" ? body(figures.value) : errorPanel(figures.reason),
    h("section", { class: "card", "aria-labelledby": "usage-title" }, h("h2", { id: "usage-title" }, "Usage this month"), usage.status === "fulfilled" ? usageView(usage.value) : errorPanel(usage.reason)),
  );
}

function statCard(label, value, id) {
  return h("div", { class: "card stat", id }, h("strong", {}, value), h("span", {}, label));
}

function body(answer) {
  const total = answer.total;
  const times = answer.series.map((point) => point.time);
  const stepMinutes = Math.round(answer.stepSeconds / 60);
  const step = stepMinutes >= 60 ? `${stepMinutes / 60} h` : `${stepMinutes} min`;
  return h(
    "div",
    {},
    h(
      "section",
      { "aria-label": "Totals" },
      h(
        "div",
        { class: "stat-grid" },
        statCard("Requests", compactNumber(total.requests), "stat-requests"),
        statCard("Requests per second", rate(total.rps), "stat-rps"),
        statCard(`Error rate (${compactNumber(total.errors)} errors)`, percent(total.errorRate), "stat-error-rate"),
        statCard("p50 latency", milliseconds(total.p50Ms), "stat-p50"),
        statCard("p95 latency", milliseconds(total.p95Ms), "stat-p95"),
        statCard("p99 latency", milliseconds(total.p99Ms), "stat-p99"),
      ),
      h("p", { class: "muted" }, `Since ${new Date(answer.since).toLocaleString()}, one point per ${step}. Latencies are estimated from latency buckets.`),
    ),
    total.requests === 0 && h("p", { class: "empty" }, "No calls in this window. Calls appear here a few seconds after an App ID makes them; pick a longer window to see older ones."),
    breakdownSection("Project", [{ name: "All App IDs", total, series: answer.series }], times, "project"),
    breakdownSection("Per App ID", answer.byAppId, times, "app"),
    breakdownSection("Per API", answer.byApi, times, "api"),
  );
}

/** Three charts (requests, error rate, p95) of `breakdowns`, the busiest first, plus their totals as bars. */
function breakdownSection(title, breakdowns, times, key) {
  const id = `metrics-${key}`;
  const busiest = [...breakdowns].sort((a, b) => b.total.requests - a.total.requests);
  const drawn = busiest.slice(0, MOST_SERIES);
  const left = busiest.slice(MOST_SERIES);
  const seriesOf = (pick) => drawn.map((entry) => ({ name: entry.name, values: entry.series.map(pick) }));
  const content = breakdowns.length
    ? [
        key !== "project" && barChart({ title: `${title}: requests in the window`, bars: busiest.slice(0, 12).map((entry) => ({ name: entry.name, value: entry.total.requests })) }),
        h(
          "div",
          { class: "chart-grid" },
          lineChart({ title: `${title}: requests per step`, times, series: seriesOf((point) => point.requests), yLabel: "requests" }),
          lineChart({ title: `${title}: error rate`, times, series: seriesOf((point) => (point.requests ? point.errorRate * 100 : null)), format: (value) => `${compactNumber(value)}%`, yLabel: "% errors" }),
          lineChart({ title: `${title}: p95 latency`, times, series: seriesOf((point) => point.p95Ms ?? null), format: (value) => `${compactNumber(value)} ms`, yLabel: "ms" }),
        ),
        left.length > 0 && h("p", { class: "muted" }, `Not drawn (fewer calls): ${left.map((entry) => entry.name).join(", ")}.`),
      ]
    : h("p", { class: "empty" }, "No calls in this window.");
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), content);
}

function bytes(value) {
  if (!Number.isFinite(value)) return "not measured (the store could not be reached)";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? size : size.toFixed(1)} ${units[unit]}`;
}

function usageView(usage) {
  const rows = [
    ["Period", usage.period],
    ["Requests", compactNumber(usage.requests)],
    ["Publish requests", compactNumber(usage.publishRequests)],
    ["Workflow instances", compactNumber(usage.workflowInstances)],
    ["App IDs", compactNumber(usage.appIds)],
    ["Components", compactNumber(usage.components)],
    ["Stored state", bytes(usage.storedStateBytes)],
  ];
  return h(
    "div",
    {},
    h(
      "dl",
      { class: "usage-list" },
      rows.map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value))),
    ),
    h("p", { class: "muted" }, "Counted for the calendar month (UTC) so far; stored state is the managed kvstore's keys and values, measured now."),
  );
}
