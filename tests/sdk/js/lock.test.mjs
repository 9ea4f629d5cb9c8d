// The official Dapr JavaScript SDK (@dapr/dapr 3.18.0) taking and releasing distributed locks on the
// all-in-one Outrigger, over HTTP and over gRPC: the managed `kvstore` as a lock store, daprd's unlock
// statuses, daprd's errors, and locks kept apart between projects.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, afterEach, before, beforeEach, describe } from "node:test";

import { GRPC, clientFor, failureOf, httpFailure } from "./helpers/dapr.mjs";
import { startServer, testReportingOutput } from "./helpers/outrigger.mjs";

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  const { code, signal } = await server.stop();
  assert.equal(code, 0, `outrigger exited with ${code ?? signal} after SIGTERM (expected 0)`);
});

// The SDK's LockStatus values, as numbers (daprd's UnlockResponse.Status).
const SUCCESS = 0;
const LOCK_DOES_NOT_EXIST = 1;
const LOCK_BELONGS_TO_OTHERS = 2;

for (const protocol of ["HTTP", "GRPC"]) {
  describe(`over ${protocol}`, () => {
    let client;
    let stranger;

    beforeEach(async () => {
      const project = await server.newProject();
      const other = await server.newProject();
      client = clientFor(project.apps.orders, protocol);
      stranger = clientFor(other.apps.orders, protocol);
    });

    afterEach(async () => {
      await client.stop();
      await stranger.stop();
    });

    const it = testReportingOutput(() => server);

    it("gives a lock to one owner until it releases it", async () => {
      const resource = `order-${randomUUID()}`;
      assert.deepEqual(await client.lock.lock("kvstore", resource, "alice", 60), { success: true });
      assert.deepEqual(await client.lock.lock("kvstore", resource, "bob", 60), { success: false });
      assert.equal((await client.lock.unlock("kvstore", resource, "bob")).status, LOCK_BELONGS_TO_OTHERS);
      assert.equal((await client.lock.unlock("kvstore", resource, "alice")).status, SUCCESS);
      assert.equal((await client.lock.unlock("kvstore", resource, "alice")).status, LOCK_DOES_NOT_EXIST);
    });

    it("keeps one project's locks from another", async () => {
      const resource = `order-${randomUUID()}`;
      assert.equal((await client.lock.lock("kvstore", resource, "alice", 60)).success, true);
      assert.equal((await stranger.lock.unlock("kvstore", resource, "alice")).status, LOCK_DOES_NOT_EXIST);
      assert.equal((await stranger.lock.lock("kvstore", resource, "mallory", 60)).success, true);
      assert.equal((await client.lock.unlock("kvstore", resource, "alice")).status, SUCCESS);
    });

    it("answers an unknown lock store with daprd's error", async () => {
      const error = await failureOf(() => client.lock.lock("nostore", "order-1", "alice", 10));
      if (protocol === "HTTP") {
        const { status, body } = httpFailure(error);
        assert.equal(status, 400);
        assert.equal(body.errorCode, "ERR_LOCK_STORE_NOT_FOUND");
        assert.equal(body.message, "lock store nostore not found");
      } else {
        assert.equal(error.code, GRPC.INVALID_ARGUMENT, `${error.code}: ${error.message}`);
      }
    });
  });
}
