// The workflows and jobs pages against a real server and a real Dapr Python SDK app (apps/workflow_app.py):
// finding a running instance with the filters, its timeline and graph, following it through suspend, resume,
// an external event and a purge; terminating another; the jobs an App ID scheduled, and deleting one; and a
// viewer, who sees all of it but is offered none of the controls.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";

import { assertNoConsoleErrors, eventually, PHONE, PYTHON, randomName, screenshot, signInWithKey, signInWithPassword, startConsole } from "./helpers/console.mjs";

const WORKFLOW_APP = join(dirname(fileURLToPath(import.meta.url)), "apps", "workflow_app.py");
// The app connects, runs each instance up to its wait for approval and schedules its job in a few seconds; a
// loaded machine gets much more.
const APP_READY_MS = 90_000;
const APP_STOP_MS = 10_000;
// How long the server may take to show an effect (a job's first fire).
const EFFECT_MS = 20_000;

let run;
before(async () => (run = await startConsole()));
after(async () => run?.close());

/** A port nothing listens on now (the App ID's app endpoint, where the app answers job triggers). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * A fresh project with App ID `orders` and workflow_app.py running for it: `{ project, instances, stop() }`.
 * `count` instances are started (each waits for "approve"); `job` names a job the app schedules.
 */
async function startWorkflowApp(server, { count = 1, job } = {}) {
  const port = await freePort();
  const project = await server.newProject([]);
  const app = await server.addApp(project, "orders", { appEndpoint: `http://127.0.0.1:${port}` });
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("DAPR_")));
  Object.assign(env, {
    DAPR_HTTP_ENDPOINT: app.httpEndpoint,
    DAPR_GRPC_ENDPOINT: app.grpcEndpoint,
    DAPR_API_TOKEN: app.token,
    APP_PORT: String(port),
    WORKFLOW_COUNT: String(count),
    ...(job ? { JOB_NAME: job } : {}),
  });
  const child = spawn(PYTHON, [WORKFLOW_APP], { env, stdio: ["ignore", "pipe", "pipe"] });
  const output = [];
  createInterface({ input: child.stderr }).on("line", (line) => output.push(line));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), APP_STOP_MS);
    await exited;
    clearTimeout(timer);
  };
  let timer;
  try {
    const instances = await Promise.race([
      new Promise((resolve) =>
        createInterface({ input: child.stdout }).on("line", (line) => {
          if (line.startsWith("READY ")) resolve(line.slice("READY ".length).trim().split(/\s+/));
        }),
      ),
      exited.then((how) => {
        throw new Error(`workflow_app.py exited (${how}) before READY:\n${output.join("\n")}`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`workflow_app.py printed no READY within ${APP_READY_MS} ms:\n${output.join("\n")}`)), APP_READY_MS);
      }),
      new Promise((_, reject) => child.on("error", reject)),
    ]);
    return { project, instances, stop };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The instance's status badge on its page shows `status`. */
async function statusShows(page, status) {
  await page.locator(".workflow-summary .badge", { hasText: new RegExp(`^${status}$`) }).waitFor();
}

it("finds a running instance, shows its timeline and graph, and follows it through suspend, resume, an event and a purge", async () => {
  const { server } = run;
  const app = await startWorkflowApp(server);
  try {
    const [instanceId] = app.instances;
    const project = app.project.name;
    const page = await run.open();
    await signInWithKey(page, server);
    await page.goto(`${server.controlApi}/#/p/${project}/workflows`);
    await page.getByRole("heading", { name: "Workflows", level: 1 }).waitFor();
    // Unfiltered, the completed child is listed too; filtered by RUNNING only the parent is.
    await page.getByRole("link", { name: `${instanceId}-ship` }).first().waitFor();
    await page.getByLabel("RUNNING").check();
    await page.getByLabel("App ID").selectOption("orders");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForURL(/status=RUNNING/);
    assert.match(page.url(), /appId=orders/);
    // The address changes before the filtered list replaces the unfiltered one, where the child's row links its
    // parent too: the list is the filtered one once the child's own link is gone.
    await page.getByRole("link", { name: `${instanceId}-ship` }).first().waitFor({ state: "detached" });
    await page.getByRole("link", { name: instanceId, exact: true }).waitFor();
    assert.equal(await page.getByRole("link", { name: `${instanceId}-ship` }).count(), 0, "the completed child workflow is listed under RUNNING");
    assert.ok(await page.getByLabel("RUNNING").isChecked(), "the status filter did not survive navigation");
    await screenshot(page, "workflows");

    await page.getByRole("link", { name: instanceId, exact: true }).click();
    await page.getByRole("heading", { name: "Workflow approval_workflow", level: 1 }).waitFor();
    await statusShows(page, "RUNNING");
    const timeline = page.locator("ol.timeline");
    for (const kind of ["ExecutionStarted", "TaskScheduled", "TaskCompleted", "ChildWorkflowInstanceCreated", "ChildWorkflowInstanceCompleted"]) {
      await timeline.locator(".kind", { hasText: kind }).first().waitFor();
    }
    await timeline.getByText(/^\+\d+ ms$|^\+[\d.]+ s$/).first().waitFor();
    const graph = page.locator("svg.workflow-graph");
    const activity = graph.locator(".node.activity", { hasText: "reserve_stock" });
    await activity.waitFor();
    assert.match(await activity.getAttribute("class"), /completed/);
    assert.match(await activity.textContent(), /completed in \d/);
    const child = graph.locator(".node.child", { hasText: "ship_order" });
    assert.match(await child.getAttribute("class"), /completed/);
    await page.locator(".workflow-summary pre", { hasText: "awaiting approval" }).waitFor();
    await screenshot(page, "workflow");

    // The child workflow's node leads to its page, which links back to its parent.
    await graph.locator(`a[href$="/workflows/${instanceId}-ship"]`).click();
    await page.getByRole("heading", { name: "Workflow ship_order", level: 1 }).waitFor();
    await graph.locator(".node.activity", { hasText: "book_courier" }).waitFor();
    await page.locator(".workflow-summary").getByRole("link", { name: instanceId, exact: true }).click();
    await page.getByRole("heading", { name: "Workflow approval_workflow", level: 1 }).waitFor();

    await page.getByRole("button", { name: "Suspend" }).click();
    await statusShows(page, "SUSPENDED");
    assert.equal((await server.expect(200, "GET", `/projects/${project}/workflows/${instanceId}`)).status, "SUSPENDED");
    await page.getByRole("button", { name: "Resume" }).click();
    await statusShows(page, "RUNNING");
    await timeline.locator(".kind", { hasText: "ExecutionResumed" }).waitFor();

    await page.getByRole("button", { name: "Raise event" }).click();
    const raise = page.getByRole("dialog", { name: "Raise an event" });
    await raise.getByLabel("Event name").fill("approve");
    await raise.getByLabel("Data (JSON, optional)").fill('{"approvedBy": "console"}');
    await raise.getByRole("button", { name: "Raise event" }).click();
    await statusShows(page, "COMPLETED");
    await page.locator(".workflow-summary pre", { hasText: '"approvedBy": "console"' }).first().waitFor();
    await graph.locator(".node.event.received", { hasText: "approve" }).waitFor();
    const done = await server.expect(200, "GET", `/projects/${project}/workflows/${instanceId}`);
    assert.equal(done.status, "COMPLETED");
    assert.deepEqual(JSON.parse(done.output).approval, { approvedBy: "console" });
    // A finished instance offers no suspend, terminate or event.
    assert.equal(await page.getByRole("button", { name: "Terminate" }).count(), 0);

    await page.getByRole("button", { name: "Purge" }).click();
    await page.getByRole("dialog", { name: "Are you sure?" }).getByRole("button", { name: "Purge" }).click();
    await page.waitForURL(new RegExp(`#/p/${project}/workflows$`));
    await page.getByRole("heading", { name: "Workflows", level: 1 }).waitFor();
    await page.locator("table, .empty").first().waitFor();
    assert.equal(await page.getByRole("link", { name: instanceId, exact: true }).count(), 0, "the purged instance is still listed");
    assert.equal((await server.control("GET", `/projects/${project}/workflows/${instanceId}`)).status, 404);
    assertNoConsoleErrors(page);
  } finally {
    await app.stop();
  }
});

it("terminates an instance and force-purges a running one from the console, at a phone's width", async () => {
  const { server } = run;
  const app = await startWorkflowApp(server, { count: 2 });
  try {
    const [instanceId, runningId] = app.instances;
    const project = app.project.name;
    const page = await run.open(PHONE);
    await signInWithKey(page, server);
    await page.goto(`${server.controlApi}/#/p/${project}/workflows/${instanceId}`);
    await page.getByRole("heading", { name: "Workflow approval_workflow", level: 1 }).waitFor();
    await statusShows(page, "RUNNING");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the instance page is ${overflow} px wider than a phone's screen`);

    // Output that is not JSON is refused in the form, before anything is sent.
    await page.getByRole("button", { name: "Terminate" }).click();
    const dialog = page.getByRole("dialog", { name: "Terminate the instance" });
    await dialog.getByLabel("Output (JSON, optional)").fill("not json");
    await dialog.getByRole("button", { name: "Terminate" }).click();
    await dialog.getByRole("alert").getByText(/not valid JSON/).waitFor();
    await dialog.getByLabel("Output (JSON, optional)").fill('"stopped from the console"');
    assert.ok(await dialog.getByLabel("Terminate its child workflows too").isChecked());
    await dialog.getByRole("button", { name: "Terminate" }).click();
    await statusShows(page, "TERMINATED");
    await page.locator(".workflow-page .notice", { hasText: "TERMINATED" }).waitFor();
    const terminated = await server.expect(200, "GET", `/projects/${project}/workflows/${instanceId}`);
    assert.equal(terminated.status, "TERMINATED");
    assert.equal(JSON.parse(terminated.output), "stopped from the console");

    await page.goto(`${server.controlApi}/#/p/${project}/workflows?status=TERMINATED`);
    await page.getByRole("link", { name: instanceId, exact: true }).waitFor();

    // A running instance is purged only when the user says to force it; its child workflow goes with it.
    await page.goto(`${server.controlApi}/#/p/${project}/workflows/${runningId}`);
    await statusShows(page, "RUNNING");
    await page.getByRole("button", { name: "Purge" }).click();
    const purge = page.getByRole("dialog", { name: "Purge a running instance" });
    await purge.getByLabel("Purge it although it has not finished (force)").check();
    await purge.getByRole("button", { name: "Purge" }).click();
    await page.waitForURL(new RegExp(`#/p/${project}/workflows$`));
    await page.getByRole("link", { name: instanceId, exact: true }).first().waitFor();
    assert.equal(await page.getByRole("link", { name: runningId, exact: true }).count(), 0, "the purged instance is still listed");
    assert.equal((await server.control("GET", `/projects/${project}/workflows/${runningId}`)).status, 404);
    assert.equal((await server.control("GET", `/projects/${project}/workflows/${runningId}-ship`)).status, 404);

    // What the API refuses is shown as it said it: the instance was purged behind the page's back.
    await page.goto(`${server.controlApi}/#/p/${project}/workflows/${instanceId}`);
    await statusShows(page, "TERMINATED");
    await server.expect(204, "DELETE", `/projects/${project}/workflows/${instanceId}`);
    await page.getByRole("button", { name: "Purge" }).click();
    await page.getByRole("dialog", { name: "Are you sure?" }).getByRole("button", { name: "Purge" }).click();
    await page.getByRole("alert").getByText(`workflow instance '${instanceId}' not found`).waitFor();
    assertNoConsoleErrors(page, [/status of 404/]);
  } finally {
    await app.stop();
  }
});

it("lists the jobs an App ID scheduled with their next fire and deletes one", async () => {
  const { server } = run;
  const app = await startWorkflowApp(server, { job: "nightly-report" });
  try {
    const project = app.project.name;
    const jobPath = `/projects/${project}/appids/orders/jobs/nightly-report`;
    // Due at once, then every hour: wait for the first fire to be delivered.
    await eventually("the job's first delivered fire", async () => (await server.expect(200, "GET", jobPath)).lastOutcome === "delivered", EFFECT_MS);
    const page = await run.open();
    await signInWithKey(page, server);
    await page.goto(`${server.controlApi}/#/p/${project}/jobs`);
    await page.getByRole("heading", { name: "Jobs", level: 1 }).waitFor();
    const section = page.getByRole("region", { name: "Jobs of orders" });
    const row = section.getByRole("row").filter({ hasText: "nightly-report" });
    await row.waitFor();
    const text = await row.textContent();
    assert.match(text, /@every 1h/);
    assert.match(text, /in (59|60) min/, "the next fire is an hour after the first");
    assert.match(text, /delivered/);
    await screenshot(page, "jobs");

    await page.getByLabel("App ID").selectOption("orders");
    await page.waitForURL(/jobs\?appId=orders/);
    await row.waitFor();
    await row.getByRole("button", { name: "Delete job nightly-report" }).click();
    await page.getByRole("dialog", { name: "Are you sure?" }).getByRole("button", { name: "Delete" }).click();
    await section.getByText(/^No jobs/).waitFor();
    assert.equal((await server.control("GET", jobPath)).status, 404);
    assertNoConsoleErrors(page);
  } finally {
    await app.stop();
  }
});

it("shows a viewer the instance and the jobs but no controls", async () => {
  const { server } = run;
  const app = await startWorkflowApp(server, { job: "hourly-sync" });
  try {
    const [instanceId] = app.instances;
    const project = app.project.name;
    const email = `${randomName("viewer")}@example.com`;
    const password = "viewer-password-42";
    await server.expect(201, "POST", "/orgs/default/members", { email, password, role: "viewer" });
    const page = await run.open();
    await signInWithPassword(page, server, email, password);

    await page.goto(`${server.controlApi}/#/p/${project}/workflows`);
    // The child's row links to its parent too: open the parent from its own row.
    await page.getByRole("row").filter({ hasText: "approval_workflow" }).getByRole("link", { name: instanceId, exact: true }).click();
    await page.getByRole("heading", { name: "Workflow approval_workflow", level: 1 }).waitFor();
    await statusShows(page, "RUNNING");
    await page.locator("svg.workflow-graph .node.activity", { hasText: "reserve_stock" }).waitFor();
    for (const control of ["Suspend", "Resume", "Terminate", "Raise event", "Purge"]) {
      assert.equal(await page.getByRole("button", { name: control }).count(), 0, `a viewer is offered ${control}`);
    }

    await page.goto(`${server.controlApi}/#/p/${project}/jobs`);
    await page.getByRole("region", { name: "Jobs of orders" }).getByRole("row").filter({ hasText: "hourly-sync" }).waitFor();
    assert.equal(await page.getByRole("button", { name: /^Delete/ }).count(), 0, "a viewer is offered Delete");
    assertNoConsoleErrors(page);
  } finally {
    await app.stop();
  }
});
