// The official Dapr JavaScript SDK (@dapr/dapr 3.18.0) reading secrets from a `secretstores.local.file` store
// of the all-in-one Outrigger, over HTTP and over gRPC, with the caller's secret scopes applied. The store
// names its file relative to the project's own directory, where each test's project gets it first.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe } from "node:test";

import { GRPC, clientFor, failureOf, httpFailure } from "./helpers/dapr.mjs";
import { startServer, testReportingOutput } from "./helpers/outrigger.mjs";

let server;

// The secrets file, by its name relative to the project's directory, and what it holds.
const SECRETS_FILE = "secrets.json";
const SECRETS = { "db-password": "s3cret", api: { key: "k1" } };

before(async () => {
  server = await startServer();
});

after(async () => {
  const { code, signal } = await server.stop();
  assert.equal(code, 0, `outrigger exited with ${code ?? signal} after SIGTERM (expected 0)`);
});

const STORE_YAML = `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: vault
spec:
  type: secretstores.local.file
  version: v1
  metadata:
    - name: secretsFile
      value: "${SECRETS_FILE}"
`;

const LIMITED_YAML = `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: limited
spec:
  secrets:
    scopes:
      - storeName: vault
        defaultAccess: deny
        allowedSecrets: ["api:key"]
`;

for (const protocol of ["HTTP", "GRPC"]) {
  describe(`over ${protocol}`, () => {
    let project;
    let client;
    let scopedClient;

    beforeEach(async () => {
      project = await server.newProject();
      writeFileSync(join(await server.projectDir(project, { create: true }), SECRETS_FILE), JSON.stringify(SECRETS));
      await server.putComponent(project.name, "vault", STORE_YAML);
      await server.expect(201, "PUT", `/projects/${project.name}/configurations/limited`, LIMITED_YAML, "application/yaml");
      const scoped = await server.addApp(project, "scoped", { config: "limited" });
      client = clientFor(project.apps.orders, protocol);
      scopedClient = clientFor(scoped, protocol);
    });

    afterEach(async () => {
      await client.stop();
      await scopedClient.stop();
    });

    const it = testReportingOutput(() => server);

    it("gets one secret and all of them", async () => {
      assert.deepEqual(await client.secret.get("vault", "db-password"), { "db-password": "s3cret" });
      const bulk = await client.secret.getBulk("vault");
      assert.deepEqual(bulk, { "db-password": { "db-password": "s3cret" }, "api:key": { "api:key": "k1" } });
    });

    it("applies the caller's secret scopes", async () => {
      assert.deepEqual(await scopedClient.secret.get("vault", "api:key"), { "api:key": "k1" });
      const error = await failureOf(() => scopedClient.secret.get("vault", "db-password"));
      if (protocol === "HTTP") {
        const { status, body } = httpFailure(error);
        assert.equal(status, 403);
        assert.equal(body.errorCode, "ERR_PERMISSION_DENIED");
      } else {
        assert.equal(error.code, GRPC.PERMISSION_DENIED, `${error.code}: ${error.message}`);
      }
      assert.deepEqual(Object.keys(await scopedClient.secret.getBulk("vault")), ["api:key"]);
    });
  });
}
