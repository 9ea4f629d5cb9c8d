// The resources page in Chromium: a state.redis component built with the form from the component registry,
// previewed (a dry-run apply) and applied; exported as a file; edited, with the stored YAML diffed against the
// new; YAML refused on a line (a syntax error, and the second of two documents) with that line marked in the
// editor; a subscription written as YAML; deleting with a confirmation; what a viewer is offered.
//
// The component points at Redis on 127.0.0.1:6379: the control API stores it (the egress rule judges a
// component's address when a worker opens it, not when it is written), which is all this page does with it.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, it } from "node:test";

import { assertNoConsoleErrors, PHONE, randomName, screenshot, signInWithKey, signInWithPassword, startConsole } from "./helpers/console.mjs";

let run;
before(async () => (run = await startConsole()));
after(async () => run?.close());

const PASSWORD = "a long enough password 1";
const SECRET = "redis-secret-value-42";
/** The browser logs each refused request; the refusals provoked here are expected. */
const REFUSED = [/status of 400/];

const editorText = (page) => page.locator("textarea.yaml-text");
const markedLine = (page) => page.locator(".yaml-gutter .line.marked");

/** The caret's line and column (1-based) in the editor. */
async function caret(page) {
  return editorText(page).evaluate((textarea) => {
    const before = textarea.value.slice(0, textarea.selectionStart).split("\n");
    return { line: before.length, column: before[before.length - 1].length + 1, focused: document.activeElement === textarea };
  });
}

async function openResources(page, project, kind = "") {
  await page.goto(`${run.server.controlApi}/#/p/${project}/resources${kind ? `/${kind}` : ""}`);
  await page.getByRole("heading", { name: "Components & resources", level: 1 }).waitFor();
}

it("a developer builds a state.redis component with the form, previews, applies, exports, edits and deletes it", async () => {
  const { server } = run;
  const project = await server.newProject(["web"]);
  const page = await run.open();
  await signInWithKey(page, server);
  await openResources(page, project.name);
  // The managed components are listed, read-only.
  const managed = page.locator("section.managed");
  for (const name of ["kvstore", "pubsub", "configstore"]) await managed.getByRole("cell", { name, exact: true }).waitFor();
  await page.getByText("No components yet").waitFor();

  // The form: the type from the registry, a name, the fields of state.redis, a scope.
  await page.getByRole("button", { name: "New component" }).click();
  const type = page.getByLabel("Type", { exact: true });
  assert.ok(!(await type.locator("option").allTextContents()).some((name) => name.endsWith(".outrigger")), "managed types are not offered");
  await type.selectOption("state.redis");
  assert.deepEqual(await page.getByLabel("Version", { exact: true }).locator("option").allTextContents(), ["v1"]);
  await page.getByLabel("Name", { exact: true }).fill("cache");
  const host = page.getByLabel("redisHost (required)");
  assert.equal(await host.getAttribute("required"), "");
  await host.fill("127.0.0.1:6379");
  await page.getByText("Optional fields").click();
  const password = page.getByLabel("redisPassword", { exact: true });
  assert.equal(await password.getAttribute("type"), "password", "a sensitive field is a password input");
  await password.fill(SECRET);
  await page.getByLabel("web", { exact: true }).check();
  await page.getByRole("button", { name: "Build YAML" }).click();

  // The document it built, in the editor; the preview says it would be created.
  const built = await editorText(page).inputValue();
  for (const line of ["kind: Component", "  name: cache", "  type: state.redis", "  - name: redisHost", "    value: 127.0.0.1:6379", `    value: ${SECRET}`, "scopes:", "- web"]) {
    assert.ok(built.split("\n").includes(line), `the built YAML has "${line}":\n${built}`);
  }
  assert.equal(await page.getByRole("button", { name: "Apply" }).isDisabled(), true, "Apply waits for a preview");
  await page.getByRole("button", { name: "Validate / preview" }).click();
  await page.locator('[data-outcome="created"]').getByText("Component cache").waitFor();
  // Nothing is stored by the preview.
  await server.expect(404, "GET", `/projects/${project.name}/components/cache`);

  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByRole("status").getByText("created Component cache").waitFor();
  await page.getByRole("cell", { name: "cache", exact: true }).waitFor();
  await page.getByRole("cell", { name: "state.redis v1" }).waitFor();
  await page.getByRole("cell", { name: "web", exact: true }).waitFor();
  await page.getByText("1 withheld").waitFor();
  const stored = await server.expect(200, "GET", `/projects/${project.name}/components/cache`);
  assert.equal(stored.spec.type, "state.redis");
  assert.deepEqual(stored.scopes, ["web"]);
  await screenshot(page, "resources");

  // Export downloads the project's YAML, with the component and without its secret.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export" }).click()]);
  assert.equal(download.suggestedFilename(), `${project.name}.yaml`);
  const exported = readFileSync(await download.path(), "utf8");
  assert.match(exported, /name: cache/);
  assert.match(exported, /type: state\.redis/);
  assert.ok(!exported.includes(SECRET), "the export withholds the secret");

  // Viewing shows the stored YAML and explains the withheld value.
  await page.getByRole("button", { name: "View cache" }).click();
  const dialog = page.getByRole("dialog", { name: "Component cache" });
  await dialog.getByText("Secret values withheld").waitFor();
  await dialog.getByText("outrigger.io/withheld: spec.metadata.redisPassword").waitFor();
  await dialog.getByRole("button", { name: "Close" }).click();

  // Editing: a change previews as an update with a line diff against what is stored; applying keeps the secret.
  await page.getByRole("button", { name: "Edit cache" }).click();
  await page.locator(".resource-editor").getByText("Secret values withheld").waitFor();
  const current = await editorText(page).inputValue();
  assert.match(current, /outrigger\.io\/withheld: spec\.metadata\.redisPassword/);
  assert.ok(!current.includes(SECRET));
  await editorText(page).fill(current.replace("127.0.0.1:6379", "127.0.0.1:6380"));
  await page.getByRole("button", { name: "Validate / preview" }).click();
  const updated = page.locator('[data-outcome="updated"]');
  await updated.getByText("Component cache").waitFor();
  await updated.locator(".diff-line.removed", { hasText: "value: 127.0.0.1:6379" }).waitFor();
  await updated.locator(".diff-line.added", { hasText: "value: 127.0.0.1:6380" }).waitFor();
  assert.equal(await updated.locator(".diff-line.added").count(), 1);
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByRole("status").getByText("updated Component cache").waitFor();
  const applied = await server.expect(200, "GET", `/projects/${project.name}/components/cache`);
  assert.deepEqual(applied.spec.metadata.find((entry) => entry.name === "redisHost"), { name: "redisHost", value: "127.0.0.1:6380" });
  assert.equal(applied.metadata.annotations["outrigger.io/withheld"], "spec.metadata.redisPassword", "the stored secret is kept");

  // A YAML syntax error: the message, its line marked in the gutter, the caret put there.
  await page.getByRole("button", { name: "Edit cache" }).click();
  const lines = (await editorText(page).inputValue()).split("\n");
  const nameLine = lines.indexOf("  name: cache") + 1;
  lines.splice(nameLine, 0, " oops: : x");
  const brokenLine = nameLine + 1;
  await editorText(page).fill(lines.join("\n"));
  await page.getByRole("button", { name: "Validate / preview" }).click();
  const failure = page.locator(".editor-error");
  await failure.getByRole("alert").waitFor();
  await failure.getByText(`line ${brokenLine} column`).first().waitFor();
  await failure.getByText(`The error is in document 1 (Component cache), line ${brokenLine}.`).waitFor();
  assert.equal(await markedLine(page).textContent(), String(brokenLine));
  let at = await caret(page);
  assert.equal(at.line, brokenLine);
  assert.ok(at.focused, "the caret is in the editor");
  assert.equal(await page.getByRole("button", { name: "Apply" }).isDisabled(), true);
  await screenshot(page, "resource-editor");

  // Two documents, the second invalid: the error names document 2 and marks its offending line.
  // (Comments first, so that the line is far enough down for the editor to scroll to it.)
  const comments = Array.from({ length: 40 }, (_, index) => `# note ${index + 1}`).join("\n");
  const valid = `${comments}\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: scratch\nspec:\n  type: state.in-memory\n  version: v1\n`;
  const invalid = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\nspec:\n  type: state.nope\n  version: v1\n";
  await editorText(page).fill(`${valid}---\n${invalid}`);
  await page.getByRole("button", { name: "Validate / preview" }).click();
  await failure.getByText("unknown component type 'state.nope'").waitFor();
  const typeLine = valid.split("\n").length + 6; // the `---` line, then the second document's sixth line
  await failure.getByText(`The error is in document 2 (Component broken), line ${typeLine}.`).waitFor();
  assert.equal(await markedLine(page).textContent(), String(typeLine));
  at = await caret(page);
  assert.equal(at.line, typeLine);
  // The editor scrolled to the line, and the gutter with it: the marked number is beside its line.
  const scrolled = await page.evaluate(() => {
    const textarea = document.querySelector("textarea.yaml-text");
    const gutter = document.querySelector(".yaml-gutter");
    const mark = gutter.querySelector(".marked").getBoundingClientRect();
    const box = textarea.getBoundingClientRect();
    return { textarea: textarea.scrollTop, gutter: gutter.scrollTop, visible: mark.top >= box.top && mark.bottom <= box.bottom };
  });
  assert.ok(scrolled.textarea > 0, "the editor scrolled to the line");
  assert.equal(scrolled.gutter, scrolled.textarea, "the gutter follows the editor");
  assert.ok(scrolled.visible, "the marked line number is in view");
  // Moving away and using "Go to line" comes back.
  await editorText(page).evaluate((textarea) => textarea.setSelectionRange(0, 0));
  await failure.getByRole("button", { name: `Go to line ${typeLine}` }).click();
  assert.equal((await caret(page)).line, typeLine);
  await server.expect(404, "GET", `/projects/${project.name}/components/scratch`);

  // Deleting asks first.
  await page.getByRole("button", { name: "Close", exact: true }).click();
  await page.getByRole("button", { name: "Delete cache" }).click();
  const confirm = page.getByRole("dialog", { name: "Are you sure?" });
  await confirm.getByText("Delete component cache?").waitFor();
  await confirm.getByRole("button", { name: "Delete" }).click();
  await page.getByText("No components yet").waitFor();
  await server.expect(404, "GET", `/projects/${project.name}/components/cache`);
  assertNoConsoleErrors(page, REFUSED);
});

it("a subscription written as YAML on its tab is previewed, applied and listed, at a phone's width", async () => {
  const { server } = run;
  const project = await server.newProject(["web"]);
  const page = await run.open(PHONE);
  await signInWithKey(page, server);
  await openResources(page, project.name);
  await page.getByRole("link", { name: "Subscriptions" }).click();
  await page.getByRole("heading", { name: "Subscriptions", level: 2 }).waitFor();
  await page.getByRole("button", { name: "New subscription" }).click();
  assert.match(await editorText(page).inputValue(), /kind: Subscription/, "the editor starts from a template");
  const subscription = [
    "apiVersion: dapr.io/v2alpha1",
    "kind: Subscription",
    "metadata:",
    "  name: orders-sub",
    "spec:",
    "  pubsubname: pubsub",
    "  topic: orders",
    "  routes:",
    "    default: /orders",
    "scopes:",
    "- web",
    "",
  ].join("\n");
  await editorText(page).fill(subscription);
  await page.getByRole("button", { name: "Validate / preview" }).click();
  await page.locator('[data-outcome="created"]').getByText("Subscription orders-sub").waitFor();
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByRole("cell", { name: "orders-sub", exact: true }).waitFor();
  await page.getByRole("cell", { name: "topic orders on pubsub" }).waitFor();
  const stored = await server.expect(200, "GET", `/projects/${project.name}/subscriptions/orders-sub`);
  assert.equal(stored.spec.topic, "orders");
  // The same YAML again changes nothing, and says so.
  await page.getByRole("button", { name: "Edit orders-sub" }).click();
  await page.getByRole("button", { name: "Validate / preview" }).click();
  await page.locator('[data-outcome="unchanged"]').getByText("Subscription orders-sub").waitFor();
  assert.equal(await page.getByRole("button", { name: "Apply" }).isDisabled(), true, "nothing to apply");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `with the editor open the page is ${overflow}px wider than the phone`);
  assertNoConsoleErrors(page);
});

it("a viewer sees the resources but is offered no New, Edit or Delete", async () => {
  const { server } = run;
  const project = await server.newProject(["web"]);
  await server.putComponent(
    project.name,
    "cache",
    "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: cache\nspec:\n  type: state.in-memory\n  version: v1\n",
  );
  const email = `${randomName("u")}@example.com`;
  await server.expect(201, "POST", "/orgs/default/members", { email, password: PASSWORD, role: "viewer", project: project.name });
  const page = await run.open();
  await signInWithPassword(page, server, email, PASSWORD);
  await openResources(page, project.name);
  await page.getByRole("cell", { name: "cache", exact: true }).waitFor();
  for (const name of ["New component", "Write YAML", "Edit cache", "Delete cache"]) {
    assert.equal(await page.getByRole("button", { name }).count(), 0, `a viewer is offered ${name}`);
  }
  await page.getByRole("button", { name: "View cache" }).click();
  await page.getByRole("dialog", { name: "Component cache" }).getByText("type: state.in-memory").waitFor();
  await page.getByRole("dialog").getByRole("button", { name: "Close" }).click();
  await page.getByRole("button", { name: "Export" }).waitFor();
  await page.getByRole("link", { name: "HTTP endpoints" }).click();
  await page.getByText("No http endpoints yet.").waitFor();
  assert.equal(await page.getByRole("button", { name: "New HTTP endpoint" }).count(), 0);

  // At a phone's width the page itself does not scroll sideways.
  const phone = await run.open(PHONE);
  await signInWithPassword(phone, server, email, PASSWORD);
  await openResources(phone, project.name);
  await phone.getByRole("cell", { name: "cache", exact: true }).waitFor();
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  assertNoConsoleErrors(page);
  assertNoConsoleErrors(phone);
});
