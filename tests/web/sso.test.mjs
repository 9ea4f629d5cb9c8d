// Signing in to the console through single sign-on, in Chromium, against the test OpenID Connect provider
// (crates/test-oidc, run as a process): the console's button, the provider, the callback, and back to the
// console with a session — whose refresh token, carried in the address's fragment, is used up at once.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, it } from "node:test";

import { assertNoConsoleErrors, REPO_ROOT, screenshot, startConsole } from "./helpers/console.mjs";

const EMAIL = "sso-person@example.com";
let provider;
let run;

before(async () => {
  const binary = process.env.TEST_OIDC_BIN || join(REPO_ROOT, "target", "debug", "outrigger-test-oidc");
  provider = spawn(binary, [EMAIL], { stdio: ["ignore", "pipe", "inherit"] });
  const [line] = await once(createInterface({ input: provider.stdout }), "line");
  const oidc = JSON.parse(line);
  const env = {
    OUTRIGGER_OIDC_ISSUER: oidc.issuer,
    OUTRIGGER_OIDC_CLIENT_ID: oidc.clientId,
    OUTRIGGER_OIDC_CLIENT_SECRET: oidc.clientSecret,
    OUTRIGGER_OIDC_REDIRECT_URL: oidc.redirectUrl,
  };
  // The provider sends people back to the redirect URL registered with it, on `control.test`: this server.
  const redirectHost = new URL(oidc.redirectUrl).host;
  run = await startConsole(env, (server) => [`--host-resolver-rules=MAP ${redirectHost} ${new URL(server.controlApi).host}`]);
  run.origin = `http://${redirectHost}`;
});
after(async () => {
  await run?.close();
  provider?.kill();
});

it("signs in with single sign-on and the refresh token in the address is used up", async () => {
  // Added without a password: this person signs in through the provider only.
  await run.server.expect(201, "POST", "/orgs/default/members", { email: EMAIL, role: "developer" });
  const page = await run.open();
  const swapped = page.waitForResponse((answer) => answer.url().endsWith("/api/v1/auth/refresh"));
  await page.goto(`${run.origin}/#/signin`);
  await page.getByRole("link", { name: "Sign in with single sign-on" }).click();
  await page.getByRole("heading", { name: "Projects", level: 1 }).waitFor();
  assert.equal((await swapped).status(), 200);
  await page.getByText(EMAIL).waitFor();
  assert.doesNotMatch(page.url(), /refreshToken/, "the token left the address");
  await screenshot(page, "signed-in-sso");

  // The token the provider's redirect carried was swapped: the same one is refused now.
  const carried = (await swapped).request().postDataJSON().refreshToken;
  const reuse = await fetch(`${run.server.controlApi}/api/v1/auth/refresh`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refreshToken: carried }) });
  assert.equal(reuse.status, 401);
  assertNoConsoleErrors(page);
});

it("offers single sign-on only where it is configured", async () => {
  const methods = await fetch(`${run.server.controlApi}/api/v1/auth/methods`).then((answer) => answer.json());
  assert.deepEqual(methods, { password: true, oidc: true });
});
