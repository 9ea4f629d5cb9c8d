// The official Dapr JavaScript SDK (@dapr/dapr 3.18.0) and pub/sub on the all-in-one Outrigger: DaprClient
// publishes over HTTP and over gRPC (single and bulk) to the project's managed `pubsub`; a DaprServer (the SDK's
// own app server, which answers GET /dapr/subscribe and serves the routes itself), registered as an App ID's
// appEndpoint, receives the events. Every test gets a fresh project.
//
// Not covered: streaming subscriptions. @dapr/dapr 3.18.0 has no client API for SubscribeTopicEventsAlpha1 (the
// RPC is only among its generated protobuf stubs); the Python suite covers streaming.
//
// A programmatic subscription starts a moment after the platform has read /dapr/subscribe and never sees what
// was published before, so tests publish probes ({ probe: n }) until one arrives before publishing what they
// assert on; probes that arrive later are ignored.

import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe } from "node:test";

import { CommunicationProtocolEnum, DaprPubSubStatusEnum, DaprServer, LogLevel } from "@dapr/dapr";

import { GRPC, clientFor, freePort, grpcErrorInfo, httpFailure } from "./helpers/dapr.mjs";
import { startServer, testReportingOutput } from "./helpers/outrigger.mjs";

const PUBSUB = "pubsub";
const DELIVERY_TIMEOUT_MS = 20_000;
const LIVE_TIMEOUT_MS = 30_000;
const QUIET = { level: LogLevel.Error };

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  const { code, signal } = await server.stop();
  assert.equal(code, 0, `outrigger exited with ${code ?? signal} after SIGTERM (expected 0)`);
});

const sleep = (ms) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

const isProbe = (item) => item.data !== null && typeof item.data === "object" && "probe" in item.data;

/** What a subscriber's callbacks got, in arrival order: { route, data, headers }. `take` hands each out once. */
class Inbox {
  constructor() {
    this.all = [];
    this.pending = [];
  }

  put(item) {
    this.all.push(item);
    this.pending.push(item);
  }

  /** Items other than probes. */
  received() {
    return this.all.filter((item) => !isProbe(item));
  }

  /** The first item not taken yet that satisfies `predicate`, within `timeoutMs`. */
  async take(predicate, what, timeoutMs = DELIVERY_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.pending.findIndex(predicate);
      if (index >= 0) return this.pending.splice(index, 1)[0];
      if (Date.now() >= deadline) {
        const seen = this.all.map((item) => `${item.route}: ${JSON.stringify(item.data)}`).join("; ") || "nothing";
        throw new Error(`${what} did not arrive within ${timeoutMs} ms; received: ${seen}`);
      }
      await sleep(25);
    }
  }

  takeData(data, what = `the event ${JSON.stringify(data)}`) {
    return this.take((item) => isDeepEqual(item.data, data), what);
  }
}

function isDeepEqual(actual, expected) {
  try {
    assert.deepStrictEqual(actual, expected);
    return true;
  } catch {
    return false;
  }
}

/**
 * A subscriber app: App ID `name` in `project`, served by a DaprServer on a free port. `register(daprServer,
 * inbox)` adds its subscriptions before it starts; once it serves them, its address becomes the App ID's
 * appEndpoint (the platform then reads its /dapr/subscribe).
 */
async function startSubscriber(project, name, register) {
  const app = await server.addApp(project, name);
  const port = await freePort();
  const sidecar = new URL(app.httpEndpoint);
  const daprServer = new DaprServer({
    serverHost: "127.0.0.1",
    serverPort: String(port),
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    clientOptions: { daprHost: sidecar.hostname, daprPort: sidecar.port, daprApiToken: app.token, logger: QUIET },
    logger: QUIET,
  });
  const inbox = new Inbox();
  await register(daprServer, inbox);
  await daprServer.start();
  await server.updateApp(project.name, name, { appEndpoint: `http://127.0.0.1:${port}` });
  return {
    app,
    inbox,
    async stop() {
      await daprServer.stop();
      await daprServer.client.stop();
    },
  };
}

/** Publishes probes with `publish` until `inbox` gets one (on `route`, if given): the subscription is live. */
async function waitUntilLive(publish, inbox, what, route) {
  const deadline = Date.now() + LIVE_TIMEOUT_MS;
  for (let sent = 1; ; sent += 1) {
    assertPublished(await publish({ probe: sent }));
    try {
      return await inbox.take(
        (item) => isProbe(item) && (route === undefined || item.route === route),
        "a probe",
        Math.max(0, Math.min(1000, deadline - Date.now())),
      );
    } catch (error) {
      if (Date.now() >= deadline) {
        const detail = `none of ${sent} probes was delivered within ${LIVE_TIMEOUT_MS} ms`;
        throw new Error(`${what}: ${detail} (${error.message})`);
      }
    }
  }
}

/** The HTTP client returns { error } from a failed publish; {} is a success. */
function assertPublished(result) {
  if (result && result.error) throw new Error(`publish failed: ${result.error.stack ?? JSON.stringify(result.error)}`);
}

/** The error of a publish expected to fail: the HTTP client returns { error }, the gRPC client throws { error }. */
async function publishFailure(call) {
  let result;
  try {
    result = await call();
  } catch (thrown) {
    return thrown?.error ?? thrown;
  }
  if (result && result.error) return result.error;
  throw new Error(`the publish succeeded (${JSON.stringify(result)}), but it was expected to fail`);
}

describe("pub/sub with a DaprServer subscriber", () => {
  let project;
  let subscriber;
  const clients = [];

  beforeEach(async () => {
    project = await server.newProject(["orders"]);
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) await client.stop();
    if (subscriber) await subscriber.stop();
    subscriber = undefined;
  });

  /** A client of the `orders` App ID, stopped after the test. */
  function publisher(protocol) {
    const client = clientFor(project.apps.orders, protocol);
    clients.push(client);
    return client;
  }

  const it = testReportingOutput(() => server);

  /** A subscriber app `shipping` with a DaprServer subscription to `orders`, live. */
  async function ordersSubscriber() {
    subscriber = await startSubscriber(project, "shipping", async (daprServer, inbox) => {
      await daprServer.pubsub.subscribe(
        PUBSUB,
        "orders",
        async (data, headers) => {
          inbox.put({ route: "orders", data, headers });
        },
        "orders",
      );
    });
    const probing = publisher("HTTP");
    await waitUntilLive((value) => probing.pubsub.publish(PUBSUB, "orders", value), subscriber.inbox, "subscription");
    return subscriber.inbox;
  }

  it("delivers what the HTTP and gRPC clients publish to the DaprServer's subscription", async () => {
    const inbox = await ordersSubscriber();
    for (const protocol of ["HTTP", "GRPC"]) {
      const client = publisher(protocol);
      const order = { protocol, order: 1, items: ["tea", "cake"], note: "grüße ✓" };
      assertPublished(await client.pubsub.publish(PUBSUB, "orders", order));
      assertPublished(await client.pubsub.publish(PUBSUB, "orders", `plain words over ${protocol}`));

      const received = await inbox.takeData(order, `the object published over ${protocol}`);
      const headers = JSON.stringify(received.headers);
      assert.match(received.headers["content-type"] ?? "", /^application\/cloudevents\+json/, headers);
      await inbox.takeData(`plain words over ${protocol}`, `the text published over ${protocol}`);
    }
    assert.equal(inbox.received().length, 4, JSON.stringify(inbox.received().map((item) => item.data)));
  });

  for (const protocol of ["HTTP", "GRPC"]) {
    it(`delivers every event of a bulk publish over ${protocol}`, async () => {
      const inbox = await ordersSubscriber();
      const response = await publisher(protocol).pubsub.publishBulk(PUBSUB, "orders", [
        { bulk: 1, protocol },
        `bulk text over ${protocol}`,
        { entryID: `entry-${protocol}`, event: { bulk: 3, protocol }, contentType: "application/json" },
      ]);
      assert.deepEqual(response.failedMessages, [], `bulk over ${protocol}: ${JSON.stringify(response)}`);
      await inbox.takeData({ bulk: 1, protocol });
      await inbox.takeData(`bulk text over ${protocol}`);
      await inbox.takeData({ bulk: 3, protocol });
      assert.equal(inbox.received().length, 3, JSON.stringify(inbox.received().map((item) => item.data)));
    });
  }

  it("routes by rules over event data and redelivers an event answered RETRY", async () => {
    const attempts = new Map();
    subscriber = await startSubscriber(project, "alerting", async (daprServer, inbox) => {
      await daprServer.pubsub.subscribeWithOptions(PUBSUB, "alerts", {
        route: {
          rules: [{ match: 'has(event.data.level) && event.data.level == "critical"', path: "critical" }],
          default: "ordinary",
        },
      });
      for (const route of ["critical", "ordinary"]) {
        daprServer.pubsub.subscribeToRoute(PUBSUB, "alerts", route, async (data, headers) => {
          inbox.put({ route, data, headers });
          const key = JSON.stringify(data);
          attempts.set(key, (attempts.get(key) ?? 0) + 1);
          if (data?.retry && attempts.get(key) === 1) return DaprPubSubStatusEnum.RETRY;
          return DaprPubSubStatusEnum.SUCCESS;
        });
      }
    });
    const client = publisher("GRPC");
    const publishAlert = (value) => client.pubsub.publish(PUBSUB, "alerts", value);
    await waitUntilLive(publishAlert, subscriber.inbox, "subscription", "ordinary");

    assertPublished(await client.pubsub.publish(PUBSUB, "alerts", { level: "critical", what: "fire" }));
    assertPublished(await client.pubsub.publish(PUBSUB, "alerts", { level: "info", what: "drill" }));
    assertPublished(await client.pubsub.publish(PUBSUB, "alerts", { level: "info", what: "flaky", retry: true }));

    assert.equal((await subscriber.inbox.takeData({ level: "critical", what: "fire" })).route, "critical");
    assert.equal((await subscriber.inbox.takeData({ level: "info", what: "drill" })).route, "ordinary");
    const flaky = { level: "info", what: "flaky", retry: true };
    await subscriber.inbox.takeData(flaky, "the event answered RETRY");
    await subscriber.inbox.takeData(flaky, "the event answered RETRY, again");

    // Settled now: a later event arrives, and nothing came a third time before it.
    assertPublished(await client.pubsub.publish(PUBSUB, "alerts", { level: "info", what: "after" }));
    await subscriber.inbox.takeData({ level: "info", what: "after" });
    const counts = Object.fromEntries(
      [...attempts].filter(([key]) => !key.includes('"probe"')).map(([key, count]) => [JSON.parse(key).what, count]),
    );
    assert.deepEqual(counts, { fire: 1, drill: 1, flaky: 2, after: 1 });
  });

  for (const protocol of ["HTTP", "GRPC"]) {
    it(`refuses an unknown pub/sub over ${protocol}`, async () => {
      const client = publisher(protocol);
      const error = await publishFailure(() => client.pubsub.publish("no-such-pubsub", "orders", { x: 1 }));
      if (protocol === "HTTP") {
        const { status, body } = httpFailure(error);
        assert.equal(status, 404, error.message);
        assert.equal(body.errorCode, "ERR_PUBSUB_NOT_FOUND", error.message);
      } else {
        assert.equal(error.code, GRPC.INVALID_ARGUMENT, `${error.code}: ${error.message}`);
        assert.match(error.rawMessage, /no-such-pubsub/);
        const info = grpcErrorInfo(error);
        assert.equal(info?.metadata.errorCode, "ERR_PUBSUB_NOT_FOUND", JSON.stringify(info));
      }
    });
  }
});
