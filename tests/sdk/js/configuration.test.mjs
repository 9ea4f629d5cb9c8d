// The official Dapr JavaScript SDK (@dapr/dapr 3.18.0) reading and following the managed configuration store
// `configstore` of the all-in-one Outrigger over gRPC (the SDK serves the configuration API over gRPC only),
// with its items set through the control API, and projects kept apart.

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
});
