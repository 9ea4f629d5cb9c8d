// The official Dapr JavaScript SDK (@dapr/dapr 3.18.0) against the all-in-one Outrigger, over HTTP and over
// gRPC: connecting, metadata, the state API and token checks. Every test gets a fresh project.

import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe } from "node:test";

import { StateConcurrencyEnum } from "@dapr/dapr";

import {
  GRPC,
  assertSucceeded,
  clientFor,
  clientFromEnvironment,
  failureOf,
  grpcErrorInfo,
  httpFailure,
  rejection,
  waitUntil,
} from "./helpers/dapr.mjs";
import { randomToken, startServer, testReportingOutput } from "./helpers/outrigger.mjs";

const STORE = "kvstore";

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  const { code, signal } = await server.stop();
  assert.equal(code, 0, `outrigger exited with ${code ?? signal} after SIGTERM (expected 0)`);
});

/** The etag of `key`: the SDK's get() returns only the value, getBulk() returns etags too. */
async function etagOf(client, key) {
  const [item] = await client.state.getBulk(STORE, [key]);
  assert.equal(item.key, key);
  return item.etag;
}

/** The query results' values as objects (the gRPC client returns raw bytes, the HTTP client parsed JSON). */
function queryValue(item) {
  if (item.data instanceof Uint8Array) return JSON.parse(new TextDecoder().decode(item.data));
  return item.data;
}

/** Checks that `error` is the refusal of a stale etag, in the protocol's shape. */
function assertEtagMismatch(protocol, error) {
  if (protocol === "HTTP") {
    const { status } = httpFailure(error);
    assert.equal(status, 409, `expected 409 Conflict, got ${error.message}`);
  } else {
    assert.equal(error.code, GRPC.ABORTED, `expected ABORTED, got ${error.code}: ${error.message}`);
  }
}

const PEOPLE = {
  k1: { person: { org: "Dev Ops", id: 1036 }, city: "Seattle", state: "WA" },
  k2: { person: { org: "Hardware", id: 1028 }, city: "Portland", state: "OR" },
  k3: { person: { org: "Finance", id: 1071 }, city: "Sacramento", state: "CA" },
  k4: { person: { org: "Dev Ops", id: 1042 }, city: "Spokane", state: "WA" },
  k5: { person: { org: "Hardware", id: 1007 }, city: "San Francisco", state: "CA" },
  k6: { person: { org: "Finance", id: 1094 }, city: "Eugene", state: "OR" },
  k7: { person: { org: "Dev Ops", id: 1015 }, city: "San Diego", state: "CA" },
  k8: { person: { org: "Developers", id: 1052 }, city: "Redmond", state: "WA" },
};

for (const protocol of ["HTTP", "GRPC"]) {
  describe(`over ${protocol}`, () => {
    let app;
    let client;

    beforeEach(async () => {
      const project = await server.newProject();
      app = project.apps.orders;
      client = clientFor(app, protocol);
    });

    afterEach(async () => {
      // HTTPClient.stop() destroys the SDK's shared keep-alive agents; the next client makes new
      // connections, so stopping each client is safe.
      await client.stop();
    });

    const it = testReportingOutput(() => server);

    it("constructs from DAPR_HTTP_ENDPOINT, DAPR_GRPC_ENDPOINT and DAPR_API_TOKEN", async () => {
      const fromEnvironment = clientFromEnvironment(app, protocol);
      try {
        const started = Date.now();
        const metadata = await fromEnvironment.metadata.get();
        const elapsed = Date.now() - started;
        assert.equal(metadata.id, "orders");
        assert.ok(elapsed < 2000, `the first call took ${elapsed} ms`);
      } finally {
        await fromEnvironment.stop();
      }
    });

    it("metadata names the App ID and lists kvstore", async () => {
      const metadata = await client.metadata.get();
      assert.equal(metadata.id, "orders");
      const kvstore = metadata.components.find((component) => component.name === "kvstore");
      assert.ok(kvstore, `kvstore missing from ${JSON.stringify(metadata.components)}`);
      assert.match(kvstore.type, /^state\./);
      for (const capability of ["ETAG", "TRANSACTIONAL", "TTL", "QUERY_API"]) {
        assert.ok(kvstore.capabilities.includes(capability), `kvstore capabilities ${kvstore.capabilities}`);
      }
    });

    it("keeps the extended metadata the app sets", async () => {
      const key = `build-${protocol}`;
      assert.equal(await client.metadata.set(key, "1.2.3"), true);
      const metadata = await client.metadata.get();
      assert.equal(metadata.extended[key], "1.2.3", JSON.stringify(metadata.extended));
    });

    it("saves, gets and deletes", async () => {
      const order = { id: 17, items: ["tea", "cake"], paid: true, note: "grüße ✓" };
      assertSucceeded(
        await client.state.save(STORE, [
          { key: "order", value: order },
          { key: "greeting", value: "hello world" },
        ]),
      );
      assert.deepEqual(await client.state.get(STORE, "order"), order);
      assert.equal(await client.state.get(STORE, "greeting"), "hello world");

      assertSucceeded(await client.state.save(STORE, [{ key: "greeting", value: "second" }]));
      assert.equal(await client.state.get(STORE, "greeting"), "second");

      assertSucceeded(await client.state.delete(STORE, "order"));
      assert.equal(await client.state.get(STORE, "order"), "");
      assert.equal(await client.state.get(STORE, "greeting"), "second");
      assert.equal(await client.state.get(STORE, "never-saved"), "");
      assertSucceeded(await client.state.delete(STORE, "never-saved"));
    });

    it("checks etags on save and delete", async () => {
      assertSucceeded(await client.state.save(STORE, [{ key: "k", value: "v1" }]));
      const first = await etagOf(client, "k");
      assert.ok(first, "no etag");

      assertSucceeded(await client.state.save(STORE, [{ key: "k", value: "v2", etag: first }]));
      const second = await etagOf(client, "k");
      assert.ok(second && second !== first, `etag did not change: ${first} -> ${second}`);

      assertEtagMismatch(protocol, await failureOf(() => client.state.save(STORE, [{ key: "k", value: "v3", etag: first }])));
      assert.equal(await client.state.get(STORE, "k"), "v2");

      assertEtagMismatch(protocol, await failureOf(() => client.state.delete(STORE, "k", { etag: first })));
      assert.equal(await client.state.get(STORE, "k"), "v2");

      assertSucceeded(await client.state.delete(STORE, "k", { etag: second }));
      assert.equal(await client.state.get(STORE, "k"), "");
    });

    it("first-write concurrency refuses a second save without etag", async () => {
      const options = { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE };
      assertSucceeded(await client.state.save(STORE, [{ key: "fw", value: "first", options }]));
      assertEtagMismatch(protocol, await failureOf(() => client.state.save(STORE, [{ key: "fw", value: "second", options }])));
      assert.equal(await client.state.get(STORE, "fw"), "first");
    });

    it("gets in bulk, with a missing key", async () => {
      assertSucceeded(
        await client.state.save(STORE, [
          { key: "a", value: { n: 1 } },
          { key: "b", value: "bee" },
        ]),
      );
      const items = await client.state.getBulk(STORE, ["a", "missing", "b"]);
      const byKey = Object.fromEntries(items.map((item) => [item.key, item]));
      assert.deepEqual(Object.keys(byKey).sort(), ["a", "b", "missing"]);
      assert.deepEqual(byKey.a.data, { n: 1 });
      assert.equal(byKey.b.data, "bee");
      assert.ok(byKey.a.etag && byKey.b.etag, JSON.stringify(items));
      // daprd omits data and etag of a missing key over HTTP; over gRPC they are empty.
      assert.ok(!byKey.missing.data, JSON.stringify(byKey.missing));
      assert.ok(!byKey.missing.etag, JSON.stringify(byKey.missing));
    });

    it("executes a transaction's upserts and deletes in order", async () => {
      assertSucceeded(await client.state.save(STORE, [{ key: "old", value: "to delete" }, { key: "kept", value: "stays" }]));
      await client.state.transaction(STORE, [
        { operation: "upsert", request: { key: "t1", value: "one" } },
        { operation: "upsert", request: { key: "t2", value: "two" } },
        { operation: "delete", request: { key: "t1" } },
        { operation: "upsert", request: { key: "t3", value: "three" } },
        { operation: "upsert", request: { key: "t2", value: "two again" } },
        { operation: "delete", request: { key: "old" } },
      ]);
      const values = {};
      for (const key of ["t1", "t2", "t3", "old", "kept"]) values[key] = await client.state.get(STORE, key);
      assert.deepEqual(values, { t1: "", t2: "two again", t3: "three", old: "", kept: "stays" });
    });

    it("expires a value saved with ttlInSeconds", async () => {
      const savedAt = Date.now();
      assertSucceeded(
        await client.state.save(STORE, [{ key: "short", value: "soon gone", metadata: { ttlInSeconds: "2" } }]),
      );
      assert.equal(await client.state.get(STORE, "short"), "soon gone");
      await waitUntil(async () => (await client.state.get(STORE, "short")) === "", 3000 - (Date.now() - savedAt), "expiry of a 2 s TTL", 100);
      assert.ok(Date.now() - savedAt >= 1000, `a 2 s TTL expired after ${Date.now() - savedAt} ms`);
    });

    it("queries with filters, sorting and paging", async () => {
      assertSucceeded(await client.state.save(STORE, Object.entries(PEOPLE).map(([key, value]) => ({ key, value }))));
      const keysOf = (response) => {
        for (const item of response.results) assert.deepEqual(queryValue(item), PEOPLE[item.key], item.key);
        return response.results.map((item) => item.key);
      };

      const eq = await client.state.query(STORE, { filter: { EQ: { state: "CA" } } });
      assert.deepEqual(keysOf(eq).sort(), ["k3", "k5", "k7"]);

      const inFilter = await client.state.query(STORE, { filter: { IN: { state: ["CA", "OR"] } } });
      assert.deepEqual(keysOf(inFilter).sort(), ["k2", "k3", "k5", "k6", "k7"]);

      const and = await client.state.query(STORE, {
        filter: { AND: [{ EQ: { "person.org": "Dev Ops" } }, { EQ: { state: "WA" } }] },
      });
      assert.deepEqual(keysOf(and).sort(), ["k1", "k4"]);

      const or = await client.state.query(STORE, {
        filter: { OR: [{ EQ: { "person.org": "Finance" } }, { EQ: { city: "Redmond" } }] },
      });
      assert.deepEqual(keysOf(or).sort(), ["k3", "k6", "k8"]);

      const sorted = await client.state.query(STORE, {
        filter: { EQ: { state: "WA" } },
        sort: [{ key: "person.id", order: "DESC" }],
      });
      assert.deepEqual(keysOf(sorted), ["k8", "k4", "k1"]);

      const sort = [{ key: "state" }, { key: "person.id", order: "DESC" }];
      const pages = [];
      let token;
      for (let i = 0; i < 5; i += 1) {
        const page = token === undefined ? { limit: 3 } : { limit: 3, token };
        const response = await client.state.query(STORE, { sort, page });
        const keys = keysOf(response);
        assert.ok(keys.length <= 3, JSON.stringify(keys));
        if (keys.length === 0) break;
        pages.push(keys);
        token = response.token;
        if (!token) break;
      }
      assert.deepEqual(pages.flat(), ["k3", "k7", "k5", "k6", "k2", "k8", "k4", "k1"], JSON.stringify(pages));
      assert.deepEqual(pages[0], ["k3", "k7", "k5"]);
    });

    it("answers an unknown store with daprd's not-found error", async () => {
      const error = await rejection(() => client.state.get("no-such-store", "k"));
      if (protocol === "HTTP") {
        const { status, body } = httpFailure(error);
        assert.equal(status, 400, error.message);
        assert.equal(body.errorCode, "ERR_STATE_STORE_NOT_FOUND", error.message);
        assert.match(body.message, /no-such-store/);
      } else {
        assert.equal(error.code, GRPC.INVALID_ARGUMENT, error.message);
        assert.match(error.rawMessage, /no-such-store/);
        const info = grpcErrorInfo(error);
        assert.equal(info?.reason, "DAPR_STATE_NOT_FOUND", JSON.stringify(info));
        assert.equal(info?.metadata.errorCode, "ERR_STATE_STORE_NOT_FOUND", JSON.stringify(info));
      }
    });

    it("fails with a wrong token", async () => {
      const wrong = clientFor(app, protocol, `ort_${randomToken(64)}`);
      try {
        // The SDK probes the sidecar with its token before the first call (HTTP GET /v1.0/metadata,
        // gRPC GetMetadata); refused every time, it gives up.
        const error = await rejection(() => wrong.state.get(STORE, "k"));
        assert.match(error.message, /DAPR_SIDECAR_COULD_NOT_BE_STARTED/);
      } finally {
        await wrong.stop();
      }
      // What the SDK's probe got: 401 over HTTP.
      const response = await fetch(`${app.httpEndpoint}/v1.0/metadata`, {
        headers: { "dapr-api-token": `ort_${randomToken(64)}` },
      });
      assert.equal(response.status, 401);
      assert.match(await response.text(), /invalid api token/);
      // The right token works on the same endpoint.
      assertSucceeded(await client.state.save(STORE, [{ key: "k", value: "v" }]));
      assert.equal(await client.state.get(STORE, "k"), "v");
    });
  });
}
