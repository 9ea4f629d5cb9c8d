// The KV and topic explorers in Chromium against a real all-in-one: App IDs write state over Dapr's HTTP API and
// publish to a topic whose subscriber's app endpoint answers nothing, so its messages stay pending; the console
// lists the keys by App ID and prefix, shows a value, deletes a key (gone for the app too), and shows the topic, its
// subscription and the pending count. A viewer is offered no delete; the pages fit a phone's width.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";

import { assertNoConsoleErrors, eventually, PHONE, randomName, screenshot, signInWithKey, signInWithPassword, startConsole } from "./helpers/console.mjs";

let run;
before(async () => (run = await startConsole()));
after(async () => run?.close());

const PASSWORD = "a long enough password 1";

/** Saves `items` (`[{ key, value }]`) as App ID `app` through Dapr's state API. */
async function saveState(app, items) {
  const response = await fetch(`${run.server.daprHttp}/v1.0/state/kvstore`, {
    method: "POST",
    headers: { "dapr-api-token": app.token, "Content-Type": "application/json" },
    body: JSON.stringify(items),
  });
  assert.equal(response.status, 204, await response.text());
}

/** Publishes `data` to `topic` of the managed pubsub as App ID `app`. */
async function publish(app, topic, data) {
  const response = await fetch(`${run.server.daprHttp}/v1.0/publish/pubsub/${topic}`, {
    method: "POST",
    headers: { "dapr-api-token": app.token, "Content-Type": "application/json" },
    body: JSON.stringify(data),
  });
  assert.equal(response.status, 204, await response.text());
}

/**
 * A project whose App IDs `orders` and `billing` keep state, and whose `shipping` subscribes (a Subscription
 * resource) to `shipments` at an app endpoint nothing listens on, with three messages published there.
 */
async function projectWithStateAndBacklog() {
  const server = run.server;
  const project = await server.newProject(["orders", "billing"]);
  await server.addApp(project, "shipping", { appEndpoint: "http://127.0.0.1:9" });
  const { orders, billing } = project.apps;
  await saveState(orders, [
    { key: "order-1", value: { total: 3, items: ["tea", "milk"] } },
    { key: "order-2", value: { total: 7 } },
    { key: "customer-ada", value: "Ada Lovelace" },
  ]);
  await saveState(billing, [{ key: "invoice-1", value: { paid: false } }]);
  const subscription = [
    "apiVersion: dapr.io/v2alpha1",
    "kind: Subscription",
    "metadata:",
    "  name: shipments-sub",
    "spec:",
    "  pubsubname: pubsub",
    "  topic: shipments",
    "  routes:",
    "    default: /shipments",
    "  deadLetterTopic: shipments-dead",
    "scopes:",
    "- shipping",
    "",
  ].join("\n");
  await server.expect(201, "PUT", `/projects/${project.name}/subscriptions/shipments-sub`, subscription, "application/yaml");
  for (const id of [1, 2, 3]) await publish(orders, "shipments", { shipment: id });
  // The delivery loop makes the subscription's consumer group; what it cannot deliver stays pending.
  await eventually("a pending count on shipments", async () => {
    const topics = await server.expect(200, "GET", `/projects/${project.name}/topics`);
    return topics.items.find((topic) => topic.topic === "shipments")?.subscriptions.some((sub) => sub.pending > 0);
  });
  return project;
}

it("the KV explorer filters by App ID and prefix, shows a value and deletes a key; the topic explorer shows what is pending", async () => {
  const project = await projectWithStateAndBacklog();
  const page = await run.open();
  await signInWithKey(page, run.server);

  await page.goto(`${run.server.controlApi}/#/p/${project.name}/kv`);
  await page.getByRole("heading", { name: "KV explorer", level: 1 }).waitFor();
  for (const key of ["order-1", "order-2", "customer-ada", "invoice-1"]) await page.getByRole("button", { name: key, exact: true }).waitFor();

  // One App ID's keys starting with a prefix; the filters live in the address.
  await page.getByLabel("App ID").selectOption("orders");
  await page.getByLabel("Key prefix").fill("order-");
  await page.getByRole("button", { name: "Show keys" }).click();
  await page.waitForURL(/appId=orders&prefix=order-/);
  await page.getByRole("button", { name: "order-2", exact: true }).waitFor();
  assert.equal(await page.getByRole("button", { name: "customer-ada", exact: true }).count(), 0);
  assert.equal(await page.getByRole("button", { name: "invoice-1", exact: true }).count(), 0);

  // A value, pretty-printed JSON.
  await page.getByRole("button", { name: "order-1", exact: true }).click();
  const value = page.locator("pre.kv-value");
  await value.waitFor();
  const shown = await value.textContent();
  assert.deepEqual(JSON.parse(shown), { total: 3, items: ["tea", "milk"] });
  assert.match(shown, /^\{\n {2}"/, "pretty-printed, two spaces deep");
  await page.getByText("JSON", { exact: true }).waitFor();
  await screenshot(page, "kv");

  // Delete, after confirming: gone from the list, and for the app.
  await page.getByRole("button", { name: "Delete key" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await page.getByRole("button", { name: "order-2", exact: true }).waitFor();
  await page.getByRole("button", { name: "order-1", exact: true }).waitFor({ state: "detached" });
  const read = await fetch(`${run.server.daprHttp}/v1.0/state/kvstore/order-1`, { headers: { "dapr-api-token": project.apps.orders.token } });
  assert.equal(read.status, 204, "Dapr's GET finds no order-1 any more");
  const other = await fetch(`${run.server.daprHttp}/v1.0/state/kvstore/order-2`, { headers: { "dapr-api-token": project.apps.orders.token } });
  assert.deepEqual(await other.json(), { total: 7 });

  // The topic, its subscription and what waits for it.
  await page.getByRole("link", { name: "Topics" }).click();
  await page.getByRole("heading", { name: "Topics", level: 1 }).waitFor();
  const shipments = page.getByRole("region", { name: "Topic shipments", exact: true });
  await shipments.waitFor();
  const row = shipments.getByRole("row").filter({ hasText: "shipping" });
  await row.getByText("Subscription resource shipments-sub").waitFor();
  const pending = Number(await row.locator("td").nth(2).textContent());
  assert.ok(pending > 0, `pending ${pending}`);
  await row.getByText("shipments-dead").waitFor();
  await page.getByRole("region", { name: "Topic shipments-dead" }).getByText("dead-letter topic").waitFor();
  await page.getByRole("button", { name: "Refresh" }).click();
  await shipments.waitFor();
  await screenshot(page, "topics");
  assertNoConsoleErrors(page);
});

it("a viewer browses keys and topics without being offered a delete, and both pages fit a phone", async () => {
  const project = await run.server.newProject(["orders"]);
  await saveState(project.apps.orders, [{ key: "order-1", value: { total: 3 } }]);
  const email = `${randomName("u")}@example.com`;
  await run.server.expect(201, "POST", "/orgs/default/members", { email, password: PASSWORD, role: "viewer", project: project.name });
  const page = await run.open(PHONE);
  await signInWithPassword(page, run.server, email, PASSWORD);

  await page.goto(`${run.server.controlApi}/#/p/${project.name}/kv`);
  await page.getByRole("button", { name: "order-1", exact: true }).click();
  await page.locator("pre.kv-value").waitFor();
  assert.equal(await page.getByRole("button", { name: /^Delete/ }).count(), 0, "no delete offered to a viewer");
  const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth);
  assert.ok(await fits(), "the KV explorer overflows a phone's width");

  await page.goto(`${run.server.controlApi}/#/p/${project.name}/topics`);
  await page.getByRole("heading", { name: "Topics", level: 1 }).waitFor();
  await page.getByText("No topics yet").waitFor();
  assert.ok(await fits(), "the topic explorer overflows a phone's width");
  assertNoConsoleErrors(page);
});
