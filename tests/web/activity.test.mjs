// The activity pages of the console — API logs, metrics, app graph — against a real all-in-one server whose
// API log is filled by a real app: tests/web/apps/sdk_app.py (the official Python SDK) saves a state key,
// publishes to a topic a second App ID subscribes to (a declarative Subscription; the subscriber is a small
// HTTP server here), and runs a workflow with one activity. The pages must show those calls, filter them,
// open one with its trace id, tail new ones live, chart them, and draw who-called-what; and tenant-controlled
// text (a user agent, a topic name) full of markup must be shown as text, never run.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe } from "node:test";

import { testReportingOutput } from "../sdk/js/helpers/outrigger.mjs";
import { PHONE, assertNoConsoleErrors, eventually, randomName, runSdkApp, screenshot, signInWithKey, startConsole, variablesOf } from "./helpers/console.mjs";

const TOPIC = "orders";

let run;
let project;
let subscriber;
const it = testReportingOutput(() => run.server);

/** The project's logged calls (newest first) matching `query`. */
async function calls(projectName, query = {}) {
  const search = new URLSearchParams({ limit: "1000", ...query }).toString();
  return (await run.server.expect(200, "GET", `/projects/${projectName}/logs?${search}`)).items;
}

/** A subscriber app: answers every delivery 200 and counts them. */
async function startSubscriberApp() {
  const received = [];
  const http = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      if (request.method === "POST") received.push({ path: request.url, body });
      response.writeHead(request.method === "GET" && request.url !== "/dapr/subscribe" ? 404 : 200, { "Content-Type": "application/json" });
      response.end(request.url === "/dapr/subscribe" ? "[]" : "{}");
    });
  });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  return { http, received, url: `http://127.0.0.1:${http.address().port}`, close: () => new Promise((resolve) => http.close(resolve)) };
}

/** No horizontal scroll of the document itself. */
async function assertNoPageOverflow(page, what) {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
  assert.ok(scrollWidth <= innerWidth, `${what}: the page scrolls sideways (${scrollWidth} > ${innerWidth})`);
}

before(async () => {
  run = await startConsole();
  const server = run.server;
  project = await server.newProject(["sdkapp"]);
  subscriber = await startSubscriberApp();
  await server.addApp(project, "billing", { appEndpoint: subscriber.url });
  await server.expect(201, "PUT", `/projects/${project.name}/subscriptions/orders-to-billing`, {
    apiVersion: "dapr.io/v2alpha1",
    kind: "Subscription",
    metadata: { name: "orders-to-billing" },
    spec: { pubsubname: "pubsub", topic: TOPIC, routes: { default: "/orders" } },
    scopes: ["billing"],
  });
  // The subscription is live once a probe arrives: only then is sdk_app's publish sure to be delivered.
  const app = project.apps.sdkapp;
  let probe = 0;
  await eventually("a probe delivered to billing", async () => {
    probe += 1;
    const answer = await fetch(`${app.httpEndpoint}/v1.0/publish/pubsub/${TOPIC}`, {
      method: "POST",
      headers: { "dapr-api-token": app.token, "Content-Type": "application/json" },
      body: JSON.stringify({ probe }),
    });
    assert.equal(answer.status, 204, `publishing a probe answered ${answer.status}`);
    return eventually("the probe", () => subscriber.received.length > 0, 1000).catch(() => false);
  });
  const output = await runSdkApp(variablesOf(app), ["--key", "greeting", "--topic", TOPIC, "--workflow", "greet_workflow"]);
  assert.match(output, /saved state kvstore\/greeting/);
  assert.match(output, /COMPLETED/);
  // The API log is written in batches: wait for every kind of call the pages must show.
  await eventually("the app's calls in the API log", async () => {
    const logged = await calls(project.name);
    const has = (predicate) => logged.some(predicate);
    return (
      has((c) => c.appId === "sdkapp" && c.method === "SaveState") &&
      has((c) => c.appId === "sdkapp" && c.method === "PublishEvent" && c.target === TOPIC) &&
      has((c) => c.appId === "sdkapp" && c.api === "workflows" && c.method === "StartInstance") &&
      has((c) => c.appId === "billing" && c.direction === "to_app" && c.target === TOPIC)
    );
  });
});

after(async () => {
  await subscriber?.close();
  await run?.close();
});

describe("activity pages", () => {
  it("API logs show the app's calls, filter them, open one with its trace id, and tail new ones live", async () => {
    const page = await run.open();
    await signInWithKey(page, run.server);
    await page.goto(`${run.server.controlApi}/#/p/${project.name}/logs`);
    await page.getByRole("heading", { name: "API logs", level: 1 }).waitFor();
    const rows = page.locator("table.calls tbody tr");
    await rows.filter({ hasText: "SaveState" }).first().waitFor();
    await rows.filter({ hasText: "PublishEvent" }).first().waitFor();
    await rows.filter({ hasText: "StartInstance" }).first().waitFor();
    await rows.filter({ hasText: "← billing" }).first().waitFor();
    await screenshot(page, "logs");

    // Filter by API: only pub/sub calls (the publish and its delivery), and the filter survives a reload.
    await page.getByLabel("API", { exact: true }).selectOption("pubsub");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForURL(/api=pubsub/);
    await rows.filter({ hasText: "PublishEvent" }).first().waitFor();
    await rows.filter({ hasText: "← billing" }).first().waitFor();
    assert.equal(await rows.filter({ hasText: "SaveState" }).count(), 0, "a state call is listed under api=pubsub");
    const apis = await page.locator("table.calls tbody tr td:nth-child(3)").allTextContents();
    assert.ok(apis.length > 0 && apis.every((api) => api === "pubsub"), `APIs listed under api=pubsub: ${apis}`);
    await page.reload();
    await page.getByRole("heading", { name: "API logs", level: 1 }).waitFor();
    assert.equal(await page.getByLabel("API", { exact: true }).inputValue(), "pubsub");

    // A row is reached with the keyboard and opened with Enter: every field, the trace id among them.
    const publish = (await calls(project.name, { api: "pubsub", appId: "sdkapp" })).find((c) => c.method === "PublishEvent" && c.protocol === "grpc");
    assert.ok(publish?.traceId, `the publish has a trace id: ${JSON.stringify(publish)}`);
    const detailButton = rows.filter({ hasText: "PublishEvent" }).first().getByRole("button");
    await detailButton.focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: "Call details" });
    await dialog.waitFor();
    await dialog.getByText(publish.traceId, { exact: true }).waitFor();
    await dialog.getByText(publish.spanId, { exact: true }).waitFor();
    await dialog.getByText(publish.userAgent, { exact: true }).waitFor();
    await dialog.getByText("Caller address").waitFor();
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });

    // A click on the row opens it too.
    await rows.filter({ hasText: "← billing" }).first().locator("td").nth(3).click();
    await dialog.getByText("to_app (the platform called the App ID)").waitFor();
    await dialog.getByRole("button", { name: "Close" }).click();

    // Live tail: a call made after it was turned on appears at the top without reloading.
    await page.getByRole("button", { name: "Clear" }).click();
    await page.waitForURL((url) => !url.hash.includes("api="));
    await rows.filter({ hasText: "SaveState" }).first().waitFor();
    await page.getByRole("button", { name: "Live tail", exact: true }).click();
    await page.getByRole("button", { name: "Stop live tail" }).waitFor();
    const key = randomName("tailed");
    const app = project.apps.sdkapp;
    const answer = await fetch(`${app.httpEndpoint}/v1.0/state/kvstore/${key}`, { headers: { "dapr-api-token": app.token } });
    assert.equal(answer.status, 204);
    await rows.first().filter({ hasText: key }).waitFor({ timeout: 20_000 });
    await page.getByRole("status").filter({ hasText: "new call" }).waitFor();
    await page.getByRole("button", { name: "Stop live tail" }).click();
    await page.getByRole("button", { name: "Live tail", exact: true }).waitFor();
    assertNoConsoleErrors(page);
  });

  it("metrics show the project's requests, charts per App ID and per API, and this month's usage", async () => {
    await eventually("requests counted in the metrics", async () => (await run.server.expect(200, "GET", `/projects/${project.name}/metrics?window=1h`)).total.requests > 0);
    const page = await run.open();
    await signInWithKey(page, run.server);
    await page.goto(`${run.server.controlApi}/#/p/${project.name}/metrics`);
    await page.getByRole("heading", { name: "Metrics", level: 1 }).waitFor();
    const requests = Number((await page.locator("#stat-requests strong").textContent()).replace(/[^0-9.]/g, ""));
    assert.ok(requests > 0, `the requests card shows ${requests}`);
    for (const section of ["Project", "Per App ID", "Per API"]) {
      await page.getByRole("heading", { name: section, level: 2 }).waitFor();
    }
    const charts = page.locator("figure.activity-chart svg[role=img]");
    assert.ok((await charts.count()) >= 9, `${await charts.count()} charts`);
    await page.getByRole("img", { name: /Per App ID: requests per step: sdkapp peaks at/ }).waitFor();
    await page.getByRole("img", { name: /Per API: requests in the window: .*state/ }).waitFor();
    const usage = page.locator("section[aria-labelledby=usage-title]");
    await usage.getByText("Publish requests").waitFor();
    const usageFigures = await run.server.expect(200, "GET", `/projects/${project.name}/usage`);
    assert.ok(usageFigures.requests > 0);
    await usage.getByText("Workflow instances").waitFor();
    await screenshot(page, "metrics");

    await page.getByRole("link", { name: "Last 7 days" }).click();
    await page.waitForURL(/window=7d/);
    await page.getByRole("link", { name: "Last 7 days", exact: true }).and(page.locator("[aria-current=page]")).waitFor();
    const weekly = Number((await page.locator("#stat-requests strong").textContent()).replace(/[^0-9.]/g, ""));
    assert.ok(weekly > 0, `the 7-day requests card shows ${weekly}`);
    assertNoConsoleErrors(page);
  });

  it("the app graph shows App ID → kvstore, App ID → topic and topic → subscriber with their counts", async () => {
    const page = await run.open();
    await signInWithKey(page, run.server);
    // What the page should count: the last hour's calls, as the API log has them now.
    const logged = await calls(project.name, { since: new Date(Date.now() - 3_600_000).toISOString() });
    const count = (predicate) => logged.filter(predicate).length;
    const stateCalls = count((c) => c.appId === "sdkapp" && c.direction === "from_app" && c.api === "state" && c.component === "kvstore");
    const publishes = count((c) => c.appId === "sdkapp" && c.direction === "from_app" && c.api === "pubsub" && c.target === TOPIC);
    const deliveries = count((c) => c.appId === "billing" && c.direction === "to_app" && c.target === TOPIC);
    assert.ok(stateCalls >= 1 && publishes >= 1 && deliveries >= 1, JSON.stringify({ stateCalls, publishes, deliveries }));

    await page.goto(`${run.server.controlApi}/#/p/${project.name}/graph`);
    await page.getByRole("heading", { name: "App graph", level: 1 }).waitFor();
    await page.getByRole("img", { name: /App graph: 2 App IDs/ }).waitFor();
    const edges = page.locator("table.graph-edges tbody tr");
    const edge = async (from, to, kind) => {
      const row = edges.filter({ has: page.locator("td:nth-child(1)", { hasText: from }) }).filter({ has: page.locator("td:nth-child(2)", { hasText: to }) }).filter({ has: page.locator("td:nth-child(3)", { hasText: kind }) });
      assert.equal(await row.count(), 1, `one edge ${from} → ${to} (${kind})`);
      return { calls: Number(await row.locator("td:nth-child(4)").textContent()), errors: await row.locator("td:nth-child(6)").textContent() };
    };
    assert.deepEqual(await edge("sdkapp", "kvstore", "state use"), { calls: stateCalls, errors: "0%" });
    assert.deepEqual(await edge("sdkapp", TOPIC, "publish"), { calls: publishes, errors: "0%" });
    assert.deepEqual(await edge(TOPIC, "billing", "delivery"), { calls: deliveries, errors: "0%" });
    assert.ok((await edge("sdkapp", "workflows", "workflow")).calls > 0);
    // The drawing says the same: each edge names itself with its count.
    await page.locator("svg.app-graph path title", { hasText: `sdkapp → kvstore (state use): ${stateCalls} call` }).waitFor({ state: "attached" });
    await page.locator("svg.app-graph g.edge-label text", { hasText: `${publishes} call` }).first().waitFor();
    await screenshot(page, "graph");

    await page.getByRole("link", { name: "Last 15 minutes" }).click();
    await page.waitForURL(/window=15m/);
    await page.getByRole("img", { name: /App graph/ }).waitFor();
    assertNoConsoleErrors(page);
  });

  it("API logs page through older calls, and filter by status and time range", async () => {
    const busy = await run.server.newProject(["chatty"]);
    const app = busy.apps.chatty;
    const get = (path) => fetch(`${app.httpEndpoint}${path}`, { headers: { "dapr-api-token": app.token } }).then((answer) => answer.status);
    for (let index = 0; index < 60; index += 1) assert.equal(await get(`/v1.0/state/kvstore/key-${index}`), 204);
    for (let index = 0; index < 3; index += 1) assert.equal(await get(`/v1.0/state/nostore/key-${index}`), 400);
    await eventually("63 calls in the API log", async () => (await calls(busy.name)).length >= 63);

    const page = await run.open();
    await signInWithKey(page, run.server);
    await page.goto(`${run.server.controlApi}/#/p/${busy.name}/logs`);
    const rows = page.locator("table.calls tbody tr");
    await rows.first().waitFor();
    assert.equal(await rows.count(), 50, "the first page holds 50 calls");
    await page.getByRole("button", { name: "Load more" }).click();
    await rows.nth(62).waitFor();
    assert.equal(await rows.count(), 63);
    await page.getByRole("button", { name: "Load more" }).waitFor({ state: "detached" });
    // Newest first: the first call made came with the second page.
    const first = await rows.evaluateAll((all) => all.findIndex((row) => row.textContent.includes("/v1.0/state/kvstore/key-0")));
    assert.ok(first >= 50, `the oldest call is row ${first}`);

    await page.getByLabel("Status").fill("4xx");
    await page.getByLabel("Time").selectOption("15m");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForURL(/status=4xx/);
    assert.match(page.url(), /range=15m/);
    await rows.filter({ hasText: "nostore" }).first().waitFor();
    await page.waitForFunction(() => document.querySelectorAll("table.calls tbody tr").length === 3);
    const statuses = await page.locator("table.calls tbody tr .badge").allTextContents();
    assert.deepEqual(statuses, ["400", "400", "400"]);

    // A custom range in the future holds nothing: the page says so and how to see calls.
    await page.getByLabel("Time").selectOption("custom");
    await page.getByLabel("From").fill("2999-01-01T00:00");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForURL(/range=custom/);
    await page.getByText("No calls match these filters.").waitFor();
    assert.equal(await page.getByLabel("From").inputValue(), "2999-01-01T00:00", "the custom range survives the redraw");
    assertNoConsoleErrors(page);
  });

  it("the activity pages fit a 390 px wide screen", async () => {
    const page = await run.open(PHONE);
    await signInWithKey(page, run.server);
    for (const [suffix, title] of [["logs", "API logs"], ["metrics", "Metrics"], ["graph", "App graph"]]) {
      await page.goto(`${run.server.controlApi}/#/p/${project.name}/${suffix}`);
      await page.getByRole("heading", { name: title, level: 1 }).waitFor();
      await assertNoPageOverflow(page, title);
    }
    // The call detail fits too.
    await page.goto(`${run.server.controlApi}/#/p/${project.name}/logs`);
    await page.locator("table.calls tbody tr").first().getByRole("button").click();
    await page.getByRole("dialog", { name: "Call details" }).waitFor();
    await assertNoPageOverflow(page, "call details");
    assertNoConsoleErrors(page);
  });

  it("security: markup in a user agent and a topic name is shown as text and never runs", async () => {
    const hostile = await run.server.newProject(["mallory"]);
    const app = hostile.apps.mallory;
    const userAgent = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;
    const topic = `<img src=x onerror="window.__xss=3">`;
    const answer = await fetch(`${app.httpEndpoint}/v1.0/state/kvstore/innocent`, { headers: { "dapr-api-token": app.token, "User-Agent": userAgent } });
    assert.equal(answer.status, 204);
    await runSdkApp(variablesOf(app), ["--skip", "state", "--skip", "workflow", "--topic", topic]);
    await eventually("both hostile calls in the API log", async () => {
      const logged = await calls(hostile.name);
      return logged.some((c) => c.userAgent === userAgent) && logged.some((c) => c.target === topic);
    });

    const page = await run.open();
    await signInWithKey(page, run.server);
    await page.goto(`${run.server.controlApi}/#/p/${hostile.name}/logs`);
    await page.getByRole("heading", { name: "API logs", level: 1 }).waitFor();
    const rows = page.locator("table.calls tbody tr");
    await rows.filter({ hasText: `pubsub → ${topic}` }).waitFor();
    await rows.filter({ hasText: "/v1.0/state/kvstore/innocent" }).getByRole("button").click();
    const dialog = page.getByRole("dialog", { name: "Call details" });
    await dialog.getByText(userAgent, { exact: true }).waitFor();
    await page.keyboard.press("Escape");
    await rows.filter({ hasText: topic }).getByRole("button").click();
    await dialog.getByText(topic, { exact: true }).waitFor();
    await page.keyboard.press("Escape");

    await page.goto(`${run.server.controlApi}/#/p/${hostile.name}/graph`);
    await page.getByRole("heading", { name: "App graph", level: 1 }).waitFor();
    await page.locator("table.graph-edges td", { hasText: topic }).first().waitFor();
    await page.locator("svg.app-graph text", { hasText: topic.slice(0, 20) }).first().waitFor();

    // Nothing of it became an element or ran.
    assert.equal(await page.evaluate(() => window.__xss), undefined, "the payload ran");
    assert.equal(await page.locator("img").count(), 0, "an <img> was made from tenant text");
    assert.equal(await page.locator("body script").count(), 0, "a <script> was made from tenant text");
    assertNoConsoleErrors(page);
  });
});
