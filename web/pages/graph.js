// The app graph of a project (`#/p/:project/graph?window=1h`): which App ID called what in a recent window,
// built from the API log. Nodes are the project's App IDs (left column) and what they used (right column):
// pub/sub topics, components (state stores, bindings, …), HTTP endpoints and other invocation targets, and
// the Dapr APIs called without a component (workflows, jobs, …). Edges are invocations (App ID → App ID),
// publishes (App ID → topic), deliveries (topic → subscribing App ID, from the platform's `to_app` calls),
// component use and workflow calls, each with its number of calls and error rate (label and colour). The
// SVG is drawn by hand; the table under it lists the same edges for readers who cannot see it.

import { all, api, seg } from "../lib/api.js";
import { errorPanel, h, heading, svg } from "../lib/dom.js";

const WINDOWS = [
  ["15m", "15 minutes", 15 * 60_000],
  ["1h", "1 hour", 3_600_000],
  ["24h", "24 hours", 86_400_000],
];
/** Most calls read to draw the graph (newest first); past it the graph says it is partial. */
const MOST_CALLS = 5000;
const PAGE_SIZE = 1000;

const COMPONENT_KINDS = {
  state: "state store",
  pubsub: "pub/sub",
  bindings: "binding",
  secrets: "secret store",
  lock: "lock store",
  configuration: "configuration store",
  workflows: "workflows",
};
const NODE_COLORS = {
  app: ["#e8f0fc", "#1f5fbf"],
  topic: ["#f3edfd", "#7c3aed"],
  component: ["#ecf7ef", "#1e7b34"],
  api: ["#fdf6e7", "#a16207"],
  endpoint: ["#f1f3f6", "#5b6776"],
};
const TONES = { good: "#1e7b34", warn: "#a16207", bad: "#b42318" };

/** What the reader sees of a node's kind. */
const KIND_NAMES = { app: "App ID", topic: "topic", component: "component", api: "Dapr API", endpoint: "HTTP endpoint or other target" };

export default async function graph(context) {
  const project = context.params.project;
  const chosen = WINDOWS.find(([value]) => value === context.query.window) ?? WINDOWS[1];
  const [window, windowLabel, windowMs] = chosen;
  const base = `#/p/${seg(project)}/graph`;
  const switcher = h(
    "nav",
    { class: "tabs", "aria-label": "Window" },
    WINDOWS.map(([value, label]) => h("a", { href: `${base}?window=${value}`, "aria-current": value === window ? "page" : false }, `Last ${label}`)),
  );
  const head = heading("App graph", h("button", { type: "button", class: "secondary", onclick: () => context.reload() }, "Refresh"));
  const since = new Date(Date.now() - windowMs).toISOString();
  const [appIds, calls] = await Promise.allSettled([all(`/projects/${seg(project)}/appids`, {}, 1000), readCalls(project, since)]);
  if (calls.status === "rejected") return h("div", { class: "activity-page" }, head, switcher, errorPanel(calls.reason));
  const projectApps = appIds.status === "fulfilled" ? appIds.value.map((app) => app.name) : [];
  const built = build(calls.value.items, projectApps);
  return h(
    "div",
    { class: "activity-page" },
    head,
    h("p", { class: "muted" }, `Who called what in the last ${windowLabel}, from the project's API log: each edge is labelled with its calls and error rate (4xx and 5xx).`),
    switcher,
    appIds.status === "rejected" && errorPanel(appIds.reason),
    calls.value.capped &&
      h("p", { class: "notice", role: "note" }, `The graph is built from the newest ${MOST_CALLS.toLocaleString()} calls: the last ${windowLabel} holds more, so older calls of it are not counted. Choose a shorter window to see all of it.`),
    h("p", { class: "muted" }, `${calls.value.items.length.toLocaleString()} call${calls.value.items.length === 1 ? "" : "s"} read, ${built.edges.length} edge${built.edges.length === 1 ? "" : "s"}.`),
    built.edges.length ? [draw(built), legend(), edgeTable(built)] : h("p", { class: "empty" }, `No calls in the last ${windowLabel}. Once the project's App IDs call the Dapr APIs, what they use appears here; try a longer window.`),
  );
}

/** The window's calls, newest first, at most MOST_CALLS: `{ items, capped }`. */
async function readCalls(project, since) {
  const items = [];
  let continuationToken;
  do {
    const page = await api("GET", `/projects/${seg(project)}/logs`, { query: { since, limit: Math.min(PAGE_SIZE, MOST_CALLS - items.length), continuationToken } });
    items.push(...page.items);
    continuationToken = page.continuationToken;
  } while (continuationToken && items.length < MOST_CALLS);
  return { items, capped: Boolean(continuationToken) };
}

/** Nodes and edges from calls: `{ nodes: Map(id → node), edges: [edge] }`. */
export function build(calls, projectApps) {
  const nodes = new Map();
  const edges = new Map();
  const apps = new Set(projectApps);
  const node = (id, label, kind, note) => {
    if (!nodes.has(id)) nodes.set(id, { id, label, kind, note });
    return id;
  };
  const appNode = (name) => node(`app:${name}`, name, "app", "App ID");
  for (const name of projectApps) appNode(name);
  const componentNode = (name, apiName) => node(`component:${name}`, name, "component", COMPONENT_KINDS[apiName] ?? apiName);
  const apiNode = (apiName) => node(`api:${apiName}`, apiName, "api", "Dapr API");
  const topicNode = (pubsub, topic) => node(`topic:${pubsub ?? ""}/${topic}`, topic, "topic", pubsub ? `topic on ${pubsub}` : "topic");

  for (const call of calls) {
    let from;
    let to;
    let kind;
    if (call.direction === "to_app") {
      to = appNode(call.appId);
      if (call.api === "pubsub" && call.target) [from, kind] = [topicNode(call.component, call.target), "delivery"];
      else if (call.component) [from, kind] = [componentNode(call.component, call.api), `${call.api} event`];
      else [from, kind] = [apiNode(call.api), call.api === "jobs" ? "job trigger" : `${call.api} call`];
    } else {
      from = appNode(call.appId);
      if (call.api === "invocation") {
        kind = "invocation";
        if (!call.target) to = apiNode("invocation");
        else if (apps.has(call.target)) to = appNode(call.target);
        else to = node(`endpoint:${call.target}`, call.target, "endpoint", "HTTP endpoint or other App ID");
      } else if (call.api === "pubsub" && call.target) {
        [to, kind] = [topicNode(call.component, call.target), "publish"];
      } else if (call.api === "workflows") {
        [to, kind] = [call.component ? componentNode(call.component, "workflows") : apiNode("workflows"), "workflow"];
      } else if (call.component) {
        [to, kind] = [componentNode(call.component, call.api), `${call.api} use`];
      } else {
        [to, kind] = [apiNode(call.api), `${call.api} call`];
      }
    }
    const key = `${from}\u0000${to}\u0000${kind}`;
    const edge = edges.get(key) ?? { from, to, kind, calls: 0, errors: 0 };
    edge.calls += 1;
    if (call.status >= 400) edge.errors += 1;
    edges.set(key, edge);
  }
  return { nodes, edges: [...edges.values()].sort((a, b) => b.calls - a.calls || a.from.localeCompare(b.from)) };
}

const rate = (edge) => edge.errors / edge.calls;
const percent = (edge) => `${Number((rate(edge) * 100).toFixed(rate(edge) < 0.1 ? 1 : 0))}%`;
const tone = (edge) => (edge.errors === 0 ? "good" : rate(edge) < 0.05 ? "warn" : "bad");
const callsText = (count) => `${count.toLocaleString()} call${count === 1 ? "" : "s"}`;
const shorten = (text, most) => (text.length > most ? `${text.slice(0, most - 1)}…` : text);

const WIDTH = 900;
const NODE_WIDTH = 200;
const NODE_HEIGHT = 44;
const ROW = 66;
const PAD = 24;
const LEFT_X = 110;
const RIGHT_X = WIDTH - 40 - NODE_WIDTH;
const TARGET_ORDER = { topic: 0, component: 1, api: 2, endpoint: 3, app: 4 };

/** The point at `t` (0-1) of the cubic Bézier curve p0 p1 p2 p3. */
function bezierPoint(p0, p1, p2, p3, t) {
  const u = 1 - t;
  const weights = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t];
  const along = (axis) => weights[0] * p0[axis] + weights[1] * p1[axis] + weights[2] * p2[axis] + weights[3] * p3[axis];
  return { x: along(0), y: along(1) };
}

/** The graph as SVG: App IDs in the left column, what they used in the right one. */
function draw({ nodes, edges }) {
  const left = [...nodes.values()].filter((n) => n.kind === "app").sort((a, b) => a.label.localeCompare(b.label));
  const right = [...nodes.values()].filter((n) => n.kind !== "app").sort((a, b) => TARGET_ORDER[a.kind] - TARGET_ORDER[b.kind] || a.label.localeCompare(b.label));
  const rows = Math.max(left.length, right.length, 1);
  const height = rows * ROW + PAD * 2;
  const place = (column, x) =>
    column.forEach((n, index) => {
      n.x = x;
      n.y = PAD + (rows - column.length) * (ROW / 2) + index * ROW + ROW / 2;
    });
  // Arcs between App IDs bulge out left of their column, with their labels beyond them: make room when there are any.
  const appToApp = edges.some((edge) => edge.from.startsWith("app:") && edge.to.startsWith("app:"));
  place(left, appToApp ? LEFT_X + 90 : LEFT_X);
  place(right, RIGHT_X);

  let loops = 0;
  const placed = edges.map((edge) => {
    const from = nodes.get(edge.from);
    const to = nodes.get(edge.to);
    let path;
    let at;
    if (from.kind === "app" && to.kind === "app") {
      // Between App IDs of the left column: an arc bulging out to its left.
      const bulge = 40 + (loops++ % 4) * 14;
      const [y1, y2] = from === to ? [from.y - 10, from.y + 10] : [from.y - 6, to.y + 6];
      path = `M${from.x},${y1} C${from.x - bulge},${y1} ${to.x - bulge},${y2} ${to.x},${y2}`;
      at = { x: from.x - bulge * 0.75, y: (y1 + y2) / 2, beside: true };
    } else {
      // Forward (left to right) edges leave above the centre line, backward ones (deliveries) below it.
      const forward = from.x < to.x;
      const shift = forward ? -7 : 7;
      const x1 = forward ? from.x + NODE_WIDTH : from.x;
      const x2 = forward ? to.x : to.x + NODE_WIDTH;
      const [y1, y2] = [from.y + shift, to.y + shift];
      const middle = (x1 + x2) / 2;
      path = `M${x1},${y1} C${middle},${y1} ${middle},${y2} ${x2},${y2}`;
      // On the curve, nearer its end than its start: labels of edges leaving one node part ways.
      at = bezierPoint([x1, y1], [middle, y1], [middle, y2], [x2, y2], 0.7);
    }
    const text = `${callsText(edge.calls)} · ${percent(edge)} err`;
    const width = text.length * 6.4 + 10;
    // An arc's label sits left of the arc's apex, not on the App IDs' boxes.
    if (at.beside) at.x = Math.max(width / 2 + 2, at.x - width / 2 - 2);
    return { edge, from, to, path, at, text, width };
  });
  // Labels that would overlap are moved down, in order, until they clear the ones above them.
  const settled = [];
  for (const label of [...placed].sort((a, b) => a.at.y - b.at.y)) {
    for (const other of settled) {
      const apart = Math.abs(label.at.x - other.at.x) >= (label.width + other.width) / 2 + 4;
      if (!apart && label.at.y < other.at.y + 20) label.at.y = other.at.y + 20;
    }
    settled.push(label);
  }
  const drawnHeight = Math.max(height, ...placed.map((label) => label.at.y + 16));

  const drawnEdges = placed.map(({ edge, from, to, path, at, text, width }) => {
    const color = TONES[tone(edge)];
    const description = `${from.label} → ${to.label} (${edge.kind}): ${callsText(edge.calls)}, ${percent(edge)} errors`;
    return {
      line: svg(
        "path",
        { d: path, fill: "none", stroke: color, "stroke-width": (1.5 + Math.min(4, Math.log10(edge.calls + 1) * 1.5)).toFixed(1), "marker-end": `url(#graph-arrow-${tone(edge)})`, "stroke-opacity": 0.85 },
        svg("title", {}, description),
      ),
      label: svg(
        "g",
        { class: "edge-label" },
        svg("title", {}, description),
        svg("rect", { x: at.x - width / 2, y: at.y - 9, width, height: 17, rx: 3, fill: "#ffffff", "fill-opacity": 0.92, stroke: color, "stroke-width": 0.8 }),
        svg("text", { x: at.x, y: at.y + 4, "text-anchor": "middle", fill: color }, text),
      ),
    };
  });

  const drawnNodes = [...left, ...right].map((n) => {
    const [fill, stroke] = NODE_COLORS[n.kind];
    const top = n.y - NODE_HEIGHT / 2;
    return svg(
      "g",
      { class: `graph-node ${n.kind}` },
      svg("title", {}, `${KIND_NAMES[n.kind]}: ${n.label}${n.note && n.kind !== "app" ? ` (${n.note})` : ""}`),
      svg("rect", { x: n.x, y: top, width: NODE_WIDTH, height: NODE_HEIGHT, rx: n.kind === "topic" ? 20 : 6, fill, stroke, "stroke-width": 1.5 }),
      svg("text", { x: n.x + 10, y: top + 18, class: "node-name", fill: "#1c2430" }, shorten(n.label, 26)),
      svg("text", { x: n.x + 10, y: top + 35, class: "node-note", fill: "#5b6776" }, shorten(n.note, 30)),
    );
  });

  const markers = Object.entries(TONES).map(([name, color]) =>
    svg(
      "marker",
      { id: `graph-arrow-${name}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse", markerUnits: "userSpaceOnUse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", fill: color }),
    ),
  );
  const apps = left.length;
  const summary = `App graph: ${apps} App ID${apps === 1 ? "" : "s"}, ${right.length} topic${right.length === 1 ? "" : "s"}, components and targets, ${edges.length} edge${edges.length === 1 ? "" : "s"}. The table below lists every edge.`;
  return h(
    "div",
    { class: "app-graph-wrap" },
    svg(
      "svg",
      { class: "app-graph", viewBox: `0 0 ${WIDTH} ${drawnHeight}`, role: "img", "aria-label": summary },
      svg("title", {}, summary),
      svg("defs", {}, markers),
      drawnEdges.map((edge) => edge.line),
      drawnNodes,
      drawnEdges.map((edge) => edge.label),
    ),
  );
}

/** What the colours mean. */
function legend() {
  const swatch = (fill, stroke) => svg("svg", { width: 16, height: 12, viewBox: "0 0 16 12", "aria-hidden": "true", focusable: "false" }, svg("rect", { x: 1, y: 1, width: 14, height: 10, rx: 2, fill, stroke }));
  const line = (color) => svg("svg", { width: 22, height: 12, viewBox: "0 0 22 12", "aria-hidden": "true", focusable: "false" }, svg("line", { x1: 1, y1: 6, x2: 21, y2: 6, stroke: color, "stroke-width": 3 }));
  return h(
    "ul",
    { class: "chart-legend app-graph-legend", "aria-label": "Legend" },
    Object.entries(NODE_COLORS).map(([kind, [fill, stroke]]) => h("li", {}, swatch(fill, stroke), h("span", {}, KIND_NAMES[kind]))),
    h("li", {}, line(TONES.good), h("span", {}, "no errors")),
    h("li", {}, line(TONES.warn), h("span", {}, "under 5% errors")),
    h("li", {}, line(TONES.bad), h("span", {}, "5% errors or more")),
  );
}

/** The edges as a table: the graph for screen readers and for copying figures. */
function edgeTable({ nodes, edges }) {
  const describe = (id) => {
    const n = nodes.get(id);
    return [n.label, n.kind !== "app" && h("small", { class: "muted" }, ` ${n.note}`)];
  };
  return h(
    "section",
    { "aria-labelledby": "graph-edges" },
    h("h2", { id: "graph-edges" }, "Edges"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "graph-edges" },
        h("thead", {}, h("tr", {}, ["From", "To", "Kind", "Calls", "Errors", "Error rate"].map((title, index) => h("th", { scope: "col", class: index >= 3 ? "num" : null }, title)))),
        h(
          "tbody",
          {},
          edges.map((edge) =>
            h(
              "tr",
              { class: `edge ${tone(edge)}` },
              h("td", {}, describe(edge.from)),
              h("td", {}, describe(edge.to)),
              h("td", {}, edge.kind),
              h("td", { class: "num" }, edge.calls.toLocaleString()),
              h("td", { class: "num" }, edge.errors.toLocaleString()),
              h("td", { class: "num" }, h("span", { class: `badge ${tone(edge)}` }, percent(edge))),
            ),
          ),
        ),
      ),
    ),
  );
}
