// Drives the web console in Debian's Chromium (/usr/bin/chromium, installed by scripts/web-tests) with
// Playwright, against a real all-in-one server (the SDK suites' harness: clean environment, port 0, fresh data
// directory).
//
// Every page a test opens records what the browser's console reported as an error and every uncaught
// exception; `done()` fails the test if there was any, so "no console errors" holds for every flow. Screenshots
// go to docs/screenshots/, where the README shows them.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { startServer } from "../../sdk/js/helpers/outrigger.mjs";

export { randomName } from "../../sdk/js/helpers/outrigger.mjs";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const SCREENSHOTS = join(REPO_ROOT, "docs", "screenshots");
export const PYTHON = join(REPO_ROOT, "tests", "sdk", ".venv", "bin", "python");

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
// Without these Chromium reaches for Google's services at start, which this machine's closed network refuses.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/**
 * A server and a browser for one test file: `{ server, browser, open(viewport?), close() }`. `serverEnv`
 * adds settings to the server's environment; `browserArgs(server)` adds Chromium switches.
 */
export async function startConsole(serverEnv = {}, browserArgs = () => []) {
  const server = await startServer(serverEnv);
  // Playwright gives the browser a fresh, empty profile of its own.
  const args = [...CHROMIUM_ARGS, ...browserArgs(server)];
  const browser = await chromium.launch({ executablePath: CHROMIUM, args, headless: true });
  return {
    server,
    browser,
    /** A new browser tab at 1280×800 (or `viewport`), with clipboard access, recording errors. */
    async open(viewport = DESKTOP) {
      const context = await browser.newContext({ viewport, permissions: ["clipboard-read", "clipboard-write"] });
      const page = await context.newPage();
      page.consoleErrors = [];
      page.on("console", (message) => {
        if (message.type() === "error") page.consoleErrors.push(`${message.text()} (${message.location().url})`);
      });
      page.on("pageerror", (error) => page.consoleErrors.push(`uncaught: ${error.message}`));
      return page;
    },
    async close() {
      await browser.close().catch(() => {});
      await server.stop();
    },
  };
}

/**
 * Fails when the browser reported an error on `page`, other than the ones `expected` matches (a test that
 * provokes a refusal on purpose sees the browser log the failed request).
 */
export function assertNoConsoleErrors(page, expected = []) {
  const unexpected = page.consoleErrors.filter((line) => !expected.some((pattern) => pattern.test(line)));
  assert.deepEqual(unexpected, [], `the browser's console reported errors:\n${unexpected.join("\n")}`);
}

/** Signs in on the sign-in page with an API key or the operator token, and waits for the projects page. */
export async function signInWithKey(page, server, key = server.adminToken) {
  await page.goto(`${server.controlApi}/#/signin`);
  await page.getByLabel("API key or operator token").fill(key);
  await page.getByRole("button", { name: "Use key" }).click();
  await page.getByRole("heading", { name: "Projects", level: 1 }).waitFor();
}

/** Signs in with an email and password. */
export async function signInWithPassword(page, server, email, password) {
  await page.goto(`${server.controlApi}/#/signin`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Projects", level: 1 }).waitFor();
}

/** Saves what `page` shows as docs/screenshots/`name`.png (the README shows these). */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: false });
}

/**
 * Polls `check()` every 200 ms until it answers something truthy, and answers that; fails naming `what` after
 * `timeoutMs` (an error `check` threw is kept for the message).
 */
export async function eventually(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms${last ? `: ${last.message}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const SDK_APP = join(REPO_ROOT, "tests", "web", "apps", "sdk_app.py");

/**
 * Runs tests/web/apps/sdk_app.py (the official Python SDK: a state save, a publish, a workflow) with
 * `variables` (`DAPR_HTTP_ENDPOINT`, `DAPR_GRPC_ENDPOINT`, `DAPR_API_TOKEN`) and `args`; resolves to what it
 * printed once it exits 0, within two minutes.
 */
export function runSdkApp(variables, args = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SDK_APP, ...args], { env: { ...process.env, ...variables }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`sdk_app.py exited with ${code ?? signal}:\n${output}`));
    });
  });
}

/** The `DAPR_*` variables of an App ID made by the server harness (`server.newProject`). */
export const variablesOf = (app) => ({ DAPR_HTTP_ENDPOINT: app.httpEndpoint, DAPR_GRPC_ENDPOINT: app.grpcEndpoint, DAPR_API_TOKEN: app.token });
