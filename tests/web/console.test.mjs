// The console's own flows in Chromium: signing in (password, API key), projects, App IDs with their token and
// variables copied and used, token rotation and revocation, organizations, members, API keys and the audit
// log; what a viewer is offered; the page at a phone's width; the console's answers' protective headers.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";

import {
  assertNoConsoleErrors,
  PHONE,
  randomName,
  screenshot,
  signInWithKey,
  signInWithPassword,
  startConsole,
} from "./helpers/console.mjs";

let run;
before(async () => (run = await startConsole()));
after(async () => run?.close());

const PASSWORD = "a long enough password 1";

/** Adds a person to the default organization as the operator: `role` on it, or on `project` when given. */
async function addPerson(role, project) {
  const email = `${randomName("u")}@example.com`;
  await run.server.expect(201, "POST", "/orgs/default/members", { email, password: PASSWORD, role, ...(project && { project }) });
  return email;
}

/** What `page` has on its clipboard. */
const clipboard = (page) => page.evaluate(() => navigator.clipboard.readText());

it("an admin signs in, makes a project and an App ID, and the copied variables reach the data plane", async () => {
  const page = await run.open();
  await page.goto(`${run.server.controlApi}/`);
  await page.getByRole("heading", { name: "Sign in to Outrigger" }).waitFor();
  await screenshot(page, "signin");
  await signInWithPassword(page, run.server, await addPerson("admin"), PASSWORD);

  const project = randomName("p");
  await page.getByRole("button", { name: "New project" }).click();
  await page.getByLabel("Name").fill(project);
  await page.getByRole("button", { name: "Create project" }).click();
  await page.getByRole("heading", { name: `Project ${project}` }).waitFor();
  await page.getByText("No App IDs yet.").waitFor();

  await page.getByRole("link", { name: "App IDs" }).click();
  await page.getByRole("button", { name: "New App ID" }).click();
  await page.getByLabel("Name").fill("orders");
  await page.getByRole("button", { name: "Create App ID" }).click();
  await page.getByText("The token of orders, shown only now").waitFor();
  await screenshot(page, "appid-created");
  await page.getByRole("button", { name: "Copy variables" }).click();
  const copied = await clipboard(page);
  const variables = Object.fromEntries([...copied.matchAll(/^export (DAPR_\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  assert.deepEqual(Object.keys(variables).sort(), ["DAPR_API_TOKEN", "DAPR_GRPC_ENDPOINT", "DAPR_HTTP_ENDPOINT"]);
  assert.equal(variables.DAPR_HTTP_ENDPOINT, run.server.daprHttp);

  // The copied token works against the copied endpoint: a state save and read through Dapr's HTTP API.
  const headers = { "dapr-api-token": variables.DAPR_API_TOKEN, "Content-Type": "application/json" };
  const saved = await fetch(`${variables.DAPR_HTTP_ENDPOINT}/v1.0/state/kvstore`, { method: "POST", headers, body: JSON.stringify([{ key: "greeting", value: "hello" }]) });
  assert.equal(saved.status, 204, await saved.text());
  const read = await fetch(`${variables.DAPR_HTTP_ENDPOINT}/v1.0/state/kvstore/greeting`, { headers });
  assert.equal(await read.json(), "hello");

  await page.getByRole("button", { name: "Done" }).click();
  await page.getByRole("link", { name: "orders" }).click();
  await page.getByRole("heading", { name: "App ID orders" }).waitFor();
  // Live: the state calls just made show as the app's last call.
  await page.getByText("/v1.0/state/kvstore", { exact: false }).first().waitFor();
  await screenshot(page, "appid");

  // Settings change, then a rotation whose new token works and a revocation of the old one.
  await page.getByLabel("Health check path").fill("/healthz");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText("Saved.").waitFor();
  const changed = await run.server.expect(200, "GET", `/projects/${project}/appids/orders`);
  assert.equal(changed.appHealthCheckPath, "/healthz");
  await page.getByRole("button", { name: "Rotate token" }).click();
  await page.getByLabel("Grace period (seconds)").fill("0");
  await page.getByRole("button", { name: "Rotate", exact: true }).click();
  await page.getByRole("dialog", { name: "Rotate the token" }).getByRole("button", { name: "Copy variables" }).click();
  const rotated = (await clipboard(page)).match(/DAPR_API_TOKEN=(.*)/)[1];
  assert.notEqual(rotated, variables.DAPR_API_TOKEN);
  await page.getByRole("button", { name: "Done" }).click();
  const probe = (token) => fetch(`${run.server.daprHttp}/v1.0/state/kvstore/greeting`, { headers: { "dapr-api-token": token } }).then((r) => r.status);
  assert.equal(await probe(rotated), 200);
  assert.equal(await probe(variables.DAPR_API_TOKEN), 401, "a zero grace period ends the old token at once");

  await page.getByRole("link", { name: "Overview" }).click();
  await page.getByRole("heading", { name: `Project ${project}` }).waitFor();
  await page.getByRole("button", { name: "Copy variables" }).waitFor();
  await screenshot(page, "overview");
  await page.getByRole("link", { name: "Projects", exact: true }).click();
  await page.getByRole("link", { name: project }).waitFor();
  await screenshot(page, "projects");
  assertNoConsoleErrors(page);
});

it("members, API keys and the audit log: an admin adds a viewer, makes a key that signs in, and sees both in the trail", async () => {
  const page = await run.open();
  await signInWithPassword(page, run.server, await addPerson("admin"), PASSWORD);
  await page.getByRole("link", { name: "Members" }).click();
  await page.getByRole("button", { name: "Add member" }).click();
  const viewer = `${randomName("v")}@example.com`;
  await page.getByLabel("Email or service account name").fill(viewer);
  await page.getByLabel("Password for a new person").fill(PASSWORD);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("cell", { name: viewer, exact: true }).waitFor();
  await screenshot(page, "members");

  await page.getByRole("link", { name: "API keys" }).click();
  await page.getByRole("button", { name: "New API key" }).click();
  await page.getByLabel("Name").fill("deploy");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByRole("button", { name: "Copy key" }).click();
  const key = await clipboard(page);
  assert.match(key, /^ork_[0-9a-f]{64}$/);
  await page.getByRole("button", { name: "Done" }).click();
  await page.getByRole("cell", { name: "deploy", exact: true }).waitFor();
  await screenshot(page, "apikeys");

  const withKey = await run.open();
  await signInWithKey(withKey, run.server, key);
  assertNoConsoleErrors(withKey);

  await page.getByRole("link", { name: "Audit log" }).click();
  await page.getByRole("cell", { name: "member.add" }).first().waitFor();
  await page.getByRole("cell", { name: "apikey.create" }).first().waitFor();
  await screenshot(page, "audit");
  await page.getByLabel("Action").fill("apikey.create");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/action=apikey\.create/);
  assert.equal(await page.getByRole("cell", { name: "member.add" }).count(), 0);
  assertNoConsoleErrors(page);
});

it("a viewer is shown what it may read and offered nothing it may not do", async () => {
  const project = await run.server.newProject(["orders"]);
  const page = await run.open();
  await signInWithPassword(page, run.server, await addPerson("viewer", project.name), PASSWORD);
  await page.getByRole("link", { name: project.name }).click();
  await page.getByRole("heading", { name: `Project ${project.name}` }).waitFor();
  await page.getByRole("link", { name: "App IDs" }).click();
  await page.getByRole("link", { name: "orders" }).click();
  await page.getByRole("heading", { name: "App ID orders" }).waitFor();
  for (const name of ["Rotate token", "Delete App ID", "Save changes", "Revoke"]) {
    assert.equal(await page.getByRole("button", { name }).count(), 0, `a viewer is offered ${name}`);
  }
  await page.getByRole("link", { name: "App IDs" }).click();
  await page.getByRole("heading", { name: "App IDs" }).waitFor();
  assert.equal(await page.getByRole("button", { name: "New App ID" }).count(), 0);
  await page.getByRole("link", { name: "Projects", exact: true }).click();
  await page.getByRole("link", { name: project.name }).waitFor();
  assert.equal(await page.getByRole("button", { name: "New project" }).count(), 0);
  for (const name of ["Members", "Audit log"]) assert.equal(await page.getByRole("link", { name }).count(), 0, `a viewer is offered ${name}`);
  assertNoConsoleErrors(page);
});

it("an error from the API is shown with its message and what to do, and changes nothing", async () => {
  const page = await run.open();
  // A wrong key on the sign-in page says to check it, not that a session ended.
  await page.goto(`${run.server.controlApi}/#/signin`);
  await page.getByLabel("API key or operator token").fill("ork_" + "0".repeat(64));
  await page.getByRole("button", { name: "Use key" }).click();
  const refused = page.getByRole("alert");
  await refused.waitFor();
  assert.match(await refused.textContent(), /401 unauthorized.*Check the email and password \(or the key\)/s);
  await signInWithKey(page, run.server);
  const taken = (await run.server.newProject([])).name;
  await page.getByRole("button", { name: "New project" }).click();
  await page.getByLabel("Name").fill(taken);
  await page.getByRole("button", { name: "Create project" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.textContent(), /409 already_exists/);
  assert.match(await alert.textContent(), /try again/i);
  assertNoConsoleErrors(page, [/409 \(Conflict\)/, /401 \(Unauthorized\)/]);
});

it("reads at a phone's width without scrolling sideways, and by keyboard alone", async () => {
  const project = await run.server.newProject(["orders"]);
  const page = await run.open(PHONE);
  await signInWithKey(page, run.server);
  await page.goto(`${run.server.controlApi}/#/p/${project.name}`);
  await page.getByRole("heading", { name: `Project ${project.name}` }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than the phone`);
  await screenshot(page, "overview-phone");

  // Tab from the top reaches the skip link first, then the navigation; Enter follows a link.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  await page.getByRole("link", { name: "App IDs" }).focus();
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "App IDs" }).waitFor();
  assertNoConsoleErrors(page);
});

it("security: the console's answers forbid inline script, framing and sniffing, and serve nothing outside web/", async () => {
  const page = await fetch(`${run.server.controlApi}/`);
  assert.equal(page.status, 200);
  const policy = page.headers.get("content-security-policy");
  assert.match(policy, /script-src 'self'/);
  assert.match(policy, /frame-ancestors 'none'/);
  assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval/);
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  for (const path of ["/console/..%2fCargo.toml", "/console/%2e%2e/%2e%2e/Cargo.toml", "/console/../../etc/passwd", "/console/lib/../../Cargo.toml"]) {
    const answer = await fetch(`${run.server.controlApi}${path}`);
    const text = await answer.text();
    assert.ok(answer.status === 404 || !text.includes("[workspace]"), `${path} answered ${answer.status}: ${text.slice(0, 80)}`);
    assert.doesNotMatch(text, /root:x:0:0|\[workspace\]/);
  }
});

it("the operator makes an organization, works in it and deletes it once it holds no project", async () => {
  const page = await run.open();
  await signInWithKey(page, run.server);
  const org = randomName("o");
  await page.getByRole("navigation").getByRole("link", { name: "Organizations" }).click();
  await page.getByRole("button", { name: "New organization" }).click();
  await page.getByLabel("Name").fill(org);
  await page.getByRole("button", { name: "Create organization" }).click();
  await page.getByRole("button", { name: `Work in ${org}` }).click();
  await page.getByRole("heading", { name: "Projects", level: 1 }).waitFor();
  assert.equal(await page.getByLabel("Organization", { exact: true }).inputValue(), org);

  // A project made here belongs to the new organization, and not to default.
  const project = randomName("p");
  await page.getByRole("button", { name: "New project" }).click();
  await page.getByLabel("Name").fill(project);
  await page.getByRole("button", { name: "Create project" }).click();
  await page.getByRole("heading", { name: `Project ${project}` }).waitFor();
  const inDefault = await run.server.expect(200, "GET", "/projects?limit=1000");
  assert.ok(!inDefault.items.some((p) => p.name === project), "the project landed in default");

  await page.getByRole("navigation").getByRole("link", { name: "Organizations" }).click();
  await page.getByRole("button", { name: `Delete ${org}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await page.getByRole("alert").filter({ hasText: "409" }).waitFor();
  await screenshot(page, "orgs");

  await page.getByLabel("Organization", { exact: true }).selectOption(org);
  await page.getByRole("link", { name: project }).waitFor();
  await page.getByRole("button", { name: `Delete ${project}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await page.getByText("No projects yet").waitFor();
  await page.getByLabel("Organization", { exact: true }).selectOption("default");
  await page.getByRole("navigation").getByRole("link", { name: "Organizations" }).click();
  await page.getByRole("button", { name: `Delete ${org}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await page.getByRole("button", { name: `Delete ${org}` }).waitFor({ state: "detached" });
  assertNoConsoleErrors(page, [/409 \(Conflict\)/]);
});
