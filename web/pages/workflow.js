// One workflow instance: its summary (status, App ID, parent, times, input, output, custom status, failure),
// a graph of the activities, child workflows, timers and events its history shows (coloured by outcome, with
// durations; a child workflow links to its own page), its history as a timeline, and the controls a developer
// may use on it (suspend, resume, terminate, raise an event, purge). After a control the page follows the
// instance until it changes, so the effect shows without reloading by hand.

import { api, seg } from "../lib/api.js";
import { badge, confirmAction, errorPanel, field, form, h, heading, modal, svg, when } from "../lib/dom.js";

/** Statuses an instance does not leave. */
const FINISHED = ["COMPLETED", "FAILED", "TERMINATED", "CANCELED"];
/** How long the page follows an instance after a control, and how often it looks. */
const FOLLOW_FOR_MS = 15_000;
const FOLLOW_EVERY_MS = 300;
/** The SDKs wait for an event without a deadline behind a timer set to fire in the year 9999: not a real timer. */
const NEVER_YEAR = 9000;

export default async function workflow(context) {
  const project = context.project;
  const instanceId = context.params.instance;
  const listPath = `/p/${seg(project)}/workflows`;
  const path = `/projects/${seg(project)}/workflows/${seg(instanceId)}`;
  const backLink = h("a", { href: `#${listPath}` }, "← All workflow instances");
  let left = false;
  context.onLeave(() => (left = true));

  let instance;
  try {
    instance = await api("GET", path);
  } catch (error) {
    return h("div", {}, heading(`Workflow ${instanceId}`), backLink, errorPanel(error));
  }

  const page = h("div", { class: "workflow-page" });
  const draw = (notice) => page.replaceChildren(...render(instance, notice).filter(Boolean));

  /**
   * Runs a control, then follows the instance until `settled(before, after)` holds (by default: its status
   * changed and its history recorded the change) or the deadline passes.
   */
  async function control(label, call, settled = (before, after) => before.status !== after.status && after.history.length > before.history.length) {
    const before = instance;
    await call();
    draw(h("p", { class: "notice", role: "status" }, `${label}: accepted, waiting for the instance to change…`));
    const deadline = Date.now() + FOLLOW_FOR_MS;
    while (!left) {
      try {
        instance = await api("GET", path);
      } catch (error) {
        return draw(errorPanel(error));
      }
      const done = settled(before, instance);
      if (done || Date.now() > deadline) {
        const news = instance.status !== before.status || done
          ? `${label}: the instance is now ${instance.status}.`
          : `${label}: accepted; the instance has not changed yet (it does at its next turn). Refresh to look again.`;
        return draw(h("p", { class: "notice", role: "status" }, news));
      }
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_EVERY_MS));
    }
  }

  /** A control run from a button: its failure is shown above the page. */
  const run = (label, call, changed) => async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      await control(label, call, changed);
    } catch (error) {
      draw(errorPanel(error));
    } finally {
      button.disabled = false;
    }
  };

  function actions() {
    if (!context.can("developer")) return [];
    const active = !FINISHED.includes(instance.status);
    const post = (suffix, body = {}) => () => api("POST", `${path}/${suffix}`, { body });
    return [
      active && instance.status !== "SUSPENDED" && h("button", { type: "button", class: "secondary", onclick: run("Suspend", post("suspend")) }, "Suspend"),
      instance.status === "SUSPENDED" && h("button", { type: "button", class: "secondary", onclick: run("Resume", post("resume")) }, "Resume"),
      active && h("button", { type: "button", class: "secondary", onclick: raiseEvent }, "Raise event"),
      active && h("button", { type: "button", class: "danger", onclick: terminate }, "Terminate"),
      h("button", { type: "button", class: "danger", onclick: purge }, "Purge"),
    ];
  }

  function raiseEvent() {
    const dialog = modal(
      "Raise an event",
      form(
        [
          field({ label: "Event name", name: "name", required: true, placeholder: "approve", hint: "The name the workflow waits for, as written in its code." }),
          field({ label: "Data (JSON, optional)", name: "data", control: h("textarea", { name: "data", rows: 4, placeholder: '{"approved": true}' }) }),
        ],
        async (values) => {
          const data = parseJson(values.data, "The data");
          await api("POST", `${path}/events/${seg(values.name)}`, { body: data === undefined ? {} : { data } });
          dialog.close();
          // Settled once the event is in the history (another turn may grow it first), or the instance ended
          // (an event for a finished instance goes nowhere).
          const received = (of) => of.history.filter((e) => e.kind === "EventRaised" && e.details.name === values.name).length;
          await control(`Event ${values.name}`, async () => {}, (before, after) => received(after) > received(before) || FINISHED.includes(after.status));
        },
        "Raise event",
      ),
    );
  }

  function terminate() {
    const dialog = modal(
      "Terminate the instance",
      form(
        [
          h("p", {}, `Instance ${instanceId} stops at its next turn and does not run again.`),
          field({ label: "Output (JSON, optional)", name: "output", control: h("textarea", { name: "output", rows: 3, placeholder: '"stopped by hand"' }) }),
          h("label", { class: "field inline" }, h("input", { type: "checkbox", name: "recursive", checked: true }), "Terminate its child workflows too"),
        ],
        async (values) => {
          const output = parseJson(values.output, "The output");
          const body = { recursive: values.recursive === "on" };
          if (output !== undefined) body.output = output;
          await api("POST", `${path}/terminate`, { body });
          dialog.close();
          await control("Terminate", async () => {});
        },
        "Terminate",
      ),
    );
  }

  async function purge() {
    const question = `Purge instance ${instanceId} with its history and its child workflows? This cannot be undone.`;
    const remove = async (force) => {
      await api("DELETE", path, { query: { force: force ? "true" : undefined } });
      context.navigate(listPath);
    };
    if (FINISHED.includes(instance.status)) {
      if (!(await confirmAction(question, "Purge"))) return;
      try {
        await remove(false);
      } catch (error) {
        draw(errorPanel(error));
      }
      return;
    }
    const dialog = modal(
      "Purge a running instance",
      form(
        [
          h("p", {}, question),
          h("p", {}, `It is ${instance.status}: purging it stops it wherever it is.`),
          h("label", { class: "field inline" }, h("input", { type: "checkbox", name: "force", required: true }), "Purge it although it has not finished (force)"),
        ],
        async (values) => {
          await remove(values.force === "on");
          dialog.close();
        },
        "Purge",
      ),
    );
  }

  function render(current, notice) {
    return [
      heading(`Workflow ${current.name}`, h("button", { type: "button", class: "secondary", onclick: refresh }, "Refresh"), actions()),
      backLink,
      notice,
      summary(project, current),
      h("section", { class: "card" }, h("h2", {}, "Activities and child workflows"), graph(project, current)),
      h("section", { class: "card" }, h("h2", {}, "History"), timeline(current)),
    ];
  }

  async function refresh() {
    try {
      instance = await api("GET", path);
      draw();
    } catch (error) {
      draw(errorPanel(error));
    }
  }

  draw();
  return page;
}

/** A JSON text the user typed, parsed; undefined when blank. */
function parseJson(text, what) {
  if (!text || !text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${what} is not valid JSON (${error.message}). Write JSON: {"approved": true}, 42, or "text" in double quotes.`);
  }
}

/** A JSON text as indented JSON; anything else as written. */
function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return String(text);
  }
}

/** A length of time, short: 12 ms, 1.2 s, 3 min 4 s, 2 h 5 min. */
export function duration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}

function summary(project, instance) {
  const instanceLink = (id) => h("a", { href: `#/p/${seg(project)}/workflows/${seg(id)}`, class: "mono" }, id);
  const rows = [
    ["Instance", h("span", { class: "mono" }, instance.instanceId)],
    ["Workflow", instance.name],
    ["App ID", h("a", { href: `#/p/${seg(project)}/appids/${seg(instance.appId)}` }, instance.appId)],
    ["Status", badge(instance.status)],
    ["Parent", instance.parentInstanceId ? instanceLink(instance.parentInstanceId) : "—"],
    ["Created", when(instance.createdAt)],
    ["Updated", when(instance.updatedAt)],
    ["Completed", when(instance.completedAt)],
  ];
  const payloads = [
    ["Input", instance.input],
    ["Output", instance.output],
    ["Custom status", instance.customStatus],
    ["Failure", instance.failure && JSON.stringify(instance.failure)],
  ].filter(([, value]) => value !== undefined && value !== null);
  return h(
    "section",
    { class: "card detail workflow-summary" },
    h("dl", {}, rows.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)])),
    payloads.map(([label, value]) =>
      h("div", { class: `payload${label === "Failure" ? " failure" : ""}` }, h("h3", {}, label), h("pre", { tabindex: "0" }, pretty(value))),
    ),
  );
}

// --- History --------------------------------------------------------------------------------------------------

/** The time from the instance's first event to `timestamp`, as "+1.2 s". */
function offsetFrom(start, timestamp) {
  if (!timestamp || start === undefined) return "";
  return `+${duration(new Date(timestamp).getTime() - start)}`;
}

function detailValue(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (text.length <= 200) return h("code", {}, text);
  return h("details", {}, h("summary", {}, h("code", {}, `${text.slice(0, 80)}…`)), h("pre", { tabindex: "0" }, pretty(text)));
}

function timeline(instance) {
  if (!instance.history.length) return h("p", { class: "empty" }, "No events yet: the instance has not had its first turn.");
  const first = instance.history.find((event) => event.timestamp)?.timestamp ?? instance.createdAt;
  const start = new Date(first).getTime();
  return h(
    "ol",
    { class: "timeline", "aria-label": "History, oldest first" },
    instance.history.map((event) =>
      h(
        "li",
        { class: `event kind-${event.kind}` },
        h("span", { class: "offset", title: event.timestamp ?? "" }, offsetFrom(start, event.timestamp)),
        h("span", { class: "kind" }, event.kind, event.eventId >= 0 && h("span", { class: "event-id" }, ` #${event.eventId}`)),
        Object.keys(event.details).length > 0 &&
          h("dl", { class: "event-details" }, Object.entries(event.details).map(([name, value]) => [h("dt", {}, name), h("dd", {}, detailValue(value))])),
      ),
    ),
  );
}

// --- Graph ----------------------------------------------------------------------------------------------------

/**
 * The steps the history shows, in columns: what one turn of the workflow scheduled together (activities,
 * child workflows, timers) is one column, run side by side; an event the instance received is a column of its
 * own where it arrived. Each step: `{ kind, name, state: pending|completed|failed|received, started, ended,
 * instanceId?, failure? }`.
 */
export function stepsOf(history) {
  const columns = new Map();
  const scheduled = new Map();
  let turn = 0;
  const place = (key, step) => {
    if (!columns.has(key)) columns.set(key, []);
    columns.get(key).push(step);
  };
  const finish = (id, state, event, failure) => {
    const step = scheduled.get(id);
    if (!step) return;
    step.state = state;
    step.ended = event.timestamp;
    if (failure) step.failure = failure;
  };
  for (const event of history) {
    const details = event.details ?? {};
    switch (event.kind) {
      case "WorkflowStarted":
        turn += 1;
        break;
      case "TaskScheduled":
      case "ChildWorkflowInstanceCreated":
      case "TimerCreated": {
        if (event.kind === "TimerCreated" && details.fireAt && new Date(details.fireAt).getUTCFullYear() >= NEVER_YEAR) break;
        const kind = { TaskScheduled: "activity", ChildWorkflowInstanceCreated: "child", TimerCreated: "timer" }[event.kind];
        const name = kind === "timer" ? `until ${details.fireAt ? new Date(details.fireAt).toLocaleTimeString() : "?"}` : details.name;
        const step = { kind, name, state: "pending", started: event.timestamp, instanceId: details.instanceId };
        scheduled.set(event.eventId, step);
        place(`out:${turn}`, step);
        break;
      }
      case "TaskCompleted":
      case "ChildWorkflowInstanceCompleted":
        finish(details.taskScheduledId, "completed", event);
        break;
      case "TaskFailed":
      case "ChildWorkflowInstanceFailed":
        finish(details.taskScheduledId, "failed", event, details.failure?.errorMessage);
        break;
      case "TimerFired":
        finish(details.timerId, "completed", event);
        break;
      case "EventRaised":
        place(`in:${turn}`, { kind: "event", name: details.name, state: "received", started: event.timestamp, ended: event.timestamp });
        break;
      default:
    }
  }
  return [...columns.values()];
}

const KIND_LABEL = { activity: "activity", child: "child workflow", timer: "timer", event: "event received", start: "workflow", end: "result" };
const NODE = { width: 164, height: 58, column: 192, row: 72, pad: 12 };

function shorten(text, length = 24) {
  const value = String(text ?? "");
  return value.length > length ? `${value.slice(0, length - 1)}…` : value;
}

function stepOutcome(step, now) {
  const took = step.started && step.ended ? duration(new Date(step.ended) - new Date(step.started)) : null;
  switch (step.state) {
    case "completed":
      return `completed in ${took}`;
    case "failed":
      return `failed after ${took}`;
    case "received":
      return "received";
    default:
      return step.started ? `pending for ${duration(now - new Date(step.started))}` : "pending";
  }
}

function node(project, step, x, y, now) {
  const title = [KIND_LABEL[step.kind], step.name, step.instanceId, stepOutcome(step, now), step.failure].filter(Boolean).join(" — ");
  const shape = svg(
    "g",
    { class: `node ${step.kind} ${step.state}`, transform: `translate(${x},${y})` },
    svg("title", {}, title),
    svg("rect", { width: NODE.width, height: NODE.height, rx: 8 }),
    svg("text", { x: 10, y: 17, class: "node-kind" }, KIND_LABEL[step.kind]),
    svg("text", { x: 10, y: 34, class: "node-name" }, shorten(step.name)),
    svg("text", { x: 10, y: 50, class: "node-outcome" }, shorten(step.outcome ?? stepOutcome(step, now), 28)),
  );
  if (step.kind !== "child" || !step.instanceId) return shape;
  return svg("a", { href: `#/p/${seg(project)}/workflows/${seg(step.instanceId)}`, "aria-label": `Child workflow ${step.name}: ${step.instanceId}` }, shape);
}

function graph(project, instance) {
  const now = Date.now();
  const columns = stepsOf(instance.history);
  if (!columns.length) {
    return h("p", { class: "empty" }, "No activity, child workflow, timer or event yet: they appear here as the workflow schedules them.");
  }
  const started = instance.history.find((event) => event.kind === "ExecutionStarted")?.timestamp ?? instance.createdAt;
  const finished = FINISHED.includes(instance.status);
  const ended = instance.completedAt ?? instance.updatedAt;
  const startStep = { kind: "start", name: instance.name, state: "completed", outcome: `started ${new Date(started).toLocaleTimeString()}` };
  const endStep = {
    kind: "end",
    name: instance.status,
    state: { COMPLETED: "completed", FAILED: "failed", TERMINATED: "failed", CANCELED: "failed" }[instance.status] ?? "pending",
    outcome: finished ? `after ${duration(new Date(ended) - new Date(started))}` : `running for ${duration(now - new Date(started))}`,
  };
  const all = [[startStep], ...columns, [endStep]];
  const tallest = Math.max(...all.map((column) => column.length));
  const width = NODE.pad * 2 + (all.length - 1) * NODE.column + NODE.width;
  const height = NODE.pad * 2 + (tallest - 1) * NODE.row + NODE.height;
  const positions = all.map((column, index) => {
    const top = NODE.pad + ((tallest - column.length) * NODE.row) / 2;
    return column.map((_, row) => ({ x: NODE.pad + index * NODE.column, y: top + row * NODE.row }));
  });
  const edges = [];
  for (let index = 0; index + 1 < all.length; index += 1) {
    for (const from of positions[index]) {
      for (const to of positions[index + 1]) {
        const x1 = from.x + NODE.width;
        const y1 = from.y + NODE.height / 2;
        const x2 = to.x;
        const y2 = to.y + NODE.height / 2;
        const bend = (x2 - x1) / 2;
        edges.push(svg("path", { class: "edge", d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}` }));
      }
    }
  }
  const nodes = all.flatMap((column, index) => column.map((step, row) => node(project, step, positions[index][row].x, positions[index][row].y, now)));
  const picture = svg(
    "svg",
    { class: "workflow-graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "Activities, child workflows, timers and events of the instance, in the order they ran" },
    edges,
    nodes,
  );
  const legend = h(
    "ul",
    { class: "graph-legend", "aria-label": "Colours" },
    ["completed", "failed", "pending", "received"].map((state) => h("li", { class: state }, state === "failed" ? "failed or terminated" : state)),
  );
  return h("div", {}, h("div", { class: "graph-wrap" }, picture), legend);
}
