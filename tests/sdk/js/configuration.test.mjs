// The official Dapr JavaScript SDK (@dapr/dapr 3.18.0) reading and following the managed configuration store
// `configstore` of the all-in-one Outrigger over gRPC (the SDK serves the configuration API over gRPC only),
// with its items set through the control API, and projects kept apart; and a `configuration.postgres` table
// followed through its trigger, as Dapr's docs set it up.

import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe } from "node:test";

import { clientFor, waitUntil } from "./helpers/dapr.mjs";
import { startServer, testReportingOutput } from "./helpers/outrigger.mjs";

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  const { code, signal } = await server.stop();
  assert.equal(code, 0, `outrigger exited with ${code ?? signal} after SIGTERM (expected 0)`);
});

// Long enough for an update to arrive on a loaded machine; a subscription that never delivers fails by then.
const ARRIVES_WITHIN_MS = 20_000;

describe("over GRPC", () => {
  let project;
  let client;
  let stranger;

  beforeEach(async () => {
    project = await server.newProject();
    const other = await server.newProject();
    client = clientFor(project.apps.orders, "GRPC");
    stranger = clientFor(other.apps.orders, "GRPC");
  });

  afterEach(async () => {
    await client.stop();
    await stranger.stop();
  });

  const it = testReportingOutput(() => server);

  it("reads items the operator set", async () => {
    await server.expect(201, "PUT", `/projects/${project.name}/configuration-items/orderId1`, { value: "101" });
    const config = await client.configuration.get("configstore", ["orderId1", "orderId2"]);
    assert.deepEqual(Object.keys(config.items), ["orderId1"]);
    assert.equal(config.items.orderId1.value, "101");
    assert.equal(config.items.orderId1.version, "1");
    const other = await stranger.configuration.get("configstore", ["orderId1"]);
    assert.deepEqual(other.items, {}, "another project's store has none of these items");
  });

  it("delivers each change to a subscriber until it stops", async () => {
    const received = [];
    const subscription = await client.configuration.subscribeWithKeys("configstore", ["orderId1"], (update) => {
      received.push(update.items);
    });
    // The subscription is open once its stream answered; a change made before then would be no change to it.
    await waitUntil(async () => {
      await server.control("PUT", `/projects/${project.name}/configuration-items/orderId1`, { value: `v${Date.now()}` });
      return received.length > 0;
    }, ARRIVES_WITHIN_MS, "a first update", 500);
    await server.control("PUT", `/projects/${project.name}/configuration-items/orderId1`, { value: "final" });
    await waitUntil(() => received.some((items) => items.orderId1?.value === "final"), ARRIVES_WITHIN_MS, "the final value");
    assert.ok(received.every((items) => Object.keys(items).every((key) => key === "orderId1")), JSON.stringify(received));
    await subscription.stop();
  });

  it("follows a configuration.postgres table through its trigger, the channel named by the subscription", async () => {
    const table = `cfg_${Date.now()}_${Math.floor(Math.random() * 1e9)}`;
    const connectionString = "host=127.0.0.1 user=postgres port=5432 database=postgres";
    await server.putComponent(project.name, "sqldb", component("sqldb", "bindings.postgres", { connectionString }));
    await server.putComponent(project.name, "appconfig", component("appconfig", "configuration.postgres", { connectionString, table }));
    const exec = (sql) => client.binding.send("sqldb", "exec", "", { sql });
    await waitUntil(() => exec("SELECT 1").then(() => true, () => false), ARRIVES_WITHIN_MS, "the binding loading", 100);
    // The table and trigger of Dapr's configuration.postgresql docs.
    await exec(`CREATE TABLE ${table} (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL, VERSION VARCHAR NOT NULL, METADATA JSON)`);
    await exec(`CREATE FUNCTION notify_${table}() RETURNS TRIGGER AS $$ DECLARE row RECORD; BEGIN
      IF (TG_OP = 'DELETE') THEN row = OLD; ELSE row = NEW; END IF;
      PERFORM pg_notify('${table}', json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', row_to_json(row))::text);
      RETURN NULL; END; $$ LANGUAGE plpgsql`);
    await exec(`CREATE TRIGGER ${table}_changed AFTER INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE PROCEDURE notify_${table}()`);
    try {
      await exec(`INSERT INTO ${table} VALUES ('color', 'blue', '1', NULL)`);
      const config = await waitUntil(
        () => client.configuration.get("appconfig", ["color"]).then((answer) => answer, () => null),
        ARRIVES_WITHIN_MS,
        "the store loading",
        100,
      );
      assert.equal(config.items.color.value, "blue");
      const received = [];
      const subscription = await client.configuration.subscribeWithMetadata("appconfig", ["color"], { pgNotifyChannel: table }, (update) => {
        received.push(update.items);
      });
      let version = 1;
      await waitUntil(async () => {
        version += 1;
        await exec(`UPDATE ${table} SET VALUE = 'v${version}', VERSION = '${version}' WHERE KEY = 'color'`);
        return received.length > 0;
      }, ARRIVES_WITHIN_MS, "a first update", 500);
      await exec(`UPDATE ${table} SET VALUE = 'final', VERSION = '100' WHERE KEY = 'color'`);
      await waitUntil(() => received.some((items) => items.color?.value === "final"), ARRIVES_WITHIN_MS, "the final value");
      await subscription.stop();
    } finally {
      await exec(`DROP TABLE ${table}`);
      await exec(`DROP FUNCTION notify_${table}`);
    }
  });
});

function component(name, type, fields) {
  const metadata = Object.entries(fields).map(([key, value]) => `    - name: ${key}\n      value: "${value}"\n`).join("");
  return `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: ${name}\nspec:\n  type: ${type}\n  version: v1\n  metadata:\n${metadata}`;
}
