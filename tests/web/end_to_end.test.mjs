// The whole story in one browser session: sign in, make a project and an App ID, copy its variables,
// run a Python SDK app with exactly those (it saves state, publishes and runs a workflow), then find its
// calls in the API logs, its edges in the app graph, its workflow instance and its key in the KV explorer.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";

import { testReportingOutput } from "../sdk/js/helpers/outrigger.mjs";
import { assertNoConsoleErrors, eventually, randomName, runSdkApp, signInWithPassword, startConsole } from "./helpers/console.mjs";

let run;
before(async () => (run = await startConsole()));
after(async () => run?.close());
const test = testReportingOutput(() => run.server);

test("from sign-in to an SDK app's calls, edges, workflow and key", async () => {
  const email = `${randomName("dev")}@example.com`;
  const password = "a long enough password 2";
  await run.server.expect(201, "POST", "/orgs/default/members", { email, password, role: "operator" });
  const page = await run.open();
  await signInWithPassword(page, run.server, email, password);

  const project = randomName("p");
  await page.getByRole("button", { name: "New project" }).click();
  await page.getByLabel("Name").fill(project);
  await page.getByRole("button", { name: "Create project" }).click();
  await page.getByRole("heading", { name: `Project ${project}` }).waitFor();
  await page.getByRole("link", { name: "App IDs" }).click();
  await page.getByRole("button", { name: "New App ID" }).click();
  await page.getByLabel("Name").fill("shop");
  await page.getByRole("button", { name: "Create App ID" }).click();
  await page.getByRole("button", { name: "Copy variables" }).click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  const variables = Object.fromEntries([...copied.matchAll(/^export (DAPR_\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  await page.getByRole("button", { name: "Done" }).click();

  const instance = randomName("order-");
  await runSdkApp(variables, ["--key", "cart-42", "--topic", "checkout", "--workflow", "fulfil", "--instance-id", instance]);
  // The API log is written in batches, off the request path: wait until the app's calls are there.
  await eventually("the app's calls in the API log", async () => {
    const logged = await run.server.expect(200, "GET", `/projects/${project}/logs?appId=shop&limit=100`);
    const apis = new Set(logged.items.map((call) => call.api));
    return apis.has("state") && apis.has("pubsub") && apis.has("workflows");
  });

  const nav = (name) => page.getByRole("navigation").getByRole("link", { name, exact: true }).click();
  await nav("API logs");
  await page.getByRole("heading", { name: "API logs", level: 1 }).waitFor();
  for (const text of ["SaveState", "PublishEvent", "StartInstance"]) {
    await page.locator("table.calls tbody tr", { hasText: text }).first().waitFor();
  }

  await nav("App graph");
  await page.getByRole("heading", { name: "App graph", level: 1 }).waitFor();
  const edges = page.locator("table.graph-edges tbody tr");
  await edges.filter({ hasText: "kvstore" }).filter({ hasText: "shop" }).first().waitFor();
  await edges.filter({ hasText: "checkout" }).filter({ hasText: "publish" }).first().waitFor();

  await nav("Workflows");
  await page.getByRole("link", { name: instance, exact: true }).click();
  await page.getByRole("heading", { name: "Workflow fulfil", level: 1 }).waitFor();
  await page.locator(".badge", { hasText: /^COMPLETED$/ }).first().waitFor();

  await nav("KV explorer");
  await page.getByRole("heading", { name: "KV explorer", level: 1 }).waitFor();
  await page.getByRole("button", { name: "cart-42", exact: true }).click();
  const value = await page.locator("pre.kv-value").textContent();
  assert.ok(value.length > 0, "the key's value is shown");
  assertNoConsoleErrors(page);
});
