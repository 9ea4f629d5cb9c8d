// The official Dapr JavaScript SDK (@dapr/dapr 3.18.0) and bindings on the all-in-one Outrigger: DaprClient
// calls output bindings over HTTP and gRPC (`bindings.redis` on the machine's Redis), and a DaprServer (the SDK's
// own app server, whose `binding.receive` answers daprd's OPTIONS probe and takes the POSTs) registered as an App
// ID's appEndpoint receives the events of `bindings.rabbitmq` that the client publishes through the same
// component.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe } from "node:test";

import { CommunicationProtocolEnum, DaprServer, LogLevel } from "@dapr/dapr";

import { clientFor, freePort, waitUntil } from "./helpers/dapr.mjs";
import { startServer, testReportingOutput } from "./helpers/outrigger.mjs";

// Long enough for a component to load and an event to cross a loaded machine.
const ARRIVES_WITHIN_MS = 20_000;
const QUIET = { level: LogLevel.Error };

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  const { code, signal } = await server.stop();
  assert.equal(code, 0, `outrigger exited with ${code ?? signal} after SIGTERM (expected 0)`);
});

function component(name, type, fields) {
  const metadata = Object.entries(fields)
    .map(([key, value]) => `    - name: ${key}\n      value: "${value}"\n`)
    .join("");
  return `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: ${name}\nspec:\n  type: ${type}\n  version: v1\n  metadata:\n${metadata}`;
}

describe("bindings", () => {
  const it = testReportingOutput(() => server);

  for (const protocol of ["HTTP", "GRPC"]) {
    it(`calls bindings.redis over ${protocol}`, async () => {
      const project = await server.newProject();
      await server.putComponent(project.name, "cache", component("cache", "bindings.redis", { redisHost: "127.0.0.1:6379" }));
      const client = clientFor(project.apps.orders, protocol);
      const key = `js-binding-${randomUUID()}`;
      try {
        // The component loads a moment after it is written.
        await waitUntil(
          () => client.binding.send("cache", "create", "hello", { key }).then(() => true, () => false),
          ARRIVES_WITHIN_MS,
          "the binding loading",
          100,
        );
        const stored = await client.binding.send("cache", "get", "", { key });
        // The HTTP client answers the body read as JSON (daprd stored the data as its JSON text, "hello" with its
        // quotes); the gRPC client answers the response's bytes, the data as sent.
        const value = protocol === "HTTP" ? stored : Buffer.from(stored.data).toString();
        assert.equal(value, "hello");
        await client.binding.send("cache", "delete", "", { key });
      } finally {
        await client.stop();
      }
    });
  }

  it("delivers bindings.rabbitmq events to a DaprServer's binding.receive", async () => {
    const project = await server.newProject();
    const queue = `js-${randomUUID()}`;
    const fields = { host: "amqp://guest:guest@127.0.0.1:5672", queueName: queue, deleteWhenUnused: "true" };
    await server.putComponent(project.name, "orders", component("orders", "bindings.rabbitmq", fields));
    const app = await server.addApp(project, "processor");
    const port = await freePort();
    const sidecar = new URL(app.httpEndpoint);
    const daprServer = new DaprServer({
      serverHost: "127.0.0.1",
      serverPort: String(port),
      communicationProtocol: CommunicationProtocolEnum.HTTP,
      clientOptions: { daprHost: sidecar.hostname, daprPort: sidecar.port, daprApiToken: app.token, logger: QUIET },
      logger: QUIET,
    });
    const received = [];
    await daprServer.binding.receive("orders", async (data) => {
      received.push(data);
    });
    await daprServer.start();
    const client = clientFor(project.apps.orders, "GRPC");
    try {
      await server.updateApp(project.name, "processor", { appEndpoint: `http://127.0.0.1:${port}` });
      // RabbitMQ keeps what is published before the reader starts: one publish, then its arrival.
      await waitUntil(
        () => client.binding.send("orders", "create", { orderId: 1 }).then(() => true, () => false),
        ARRIVES_WITHIN_MS,
        "the binding loading",
        100,
      );
      await waitUntil(() => received.length > 0, ARRIVES_WITHIN_MS, "the event reaching binding.receive");
      assert.deepEqual(received, [{ orderId: 1 }]);
    } finally {
      await client.stop();
      await daprServer.stop();
      await daprServer.client.stop();
    }
  });
});
