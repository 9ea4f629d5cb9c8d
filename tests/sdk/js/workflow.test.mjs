// Dapr Workflow through the official Dapr JavaScript SDK (@dapr/dapr 3.18.0, which ships its own copy of the
// durabletask client and worker) against the all-in-one Outrigger:
//
// - over gRPC, the app's `WorkflowRuntime` (a worker on `/TaskHubSidecarService/GetWorkItems`) and
//   `DaprWorkflowClient`, both given the endpoint's host and port and the App ID's token (`daprApiToken`,
//   sent as `dapr-api-token` on every call by an interceptor): a sequence of three chained activities runs to
//   completion and its output is checked;
// - over HTTP, `DaprClient.workflow` (`communicationProtocol: HTTP`), which speaks
//   `/v1.0-beta1/workflows/dapr/...`: `get` of the instance above, and `start`, `raise`, `pause`, `resume`,
//   `terminate` and `purge` checked against the state the gRPC client and `get` report.
//
// Each test makes a fresh project (App ID `orders`) and its own uniquely named workflows and activities, so
// no worker of another test is handed its work.

import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe } from "node:test";

import { DaprWorkflowClient, WorkflowRuntime, WorkflowRuntimeStatus } from "@dapr/dapr";

import { clientFor, httpFailure, rejection, waitUntil } from "./helpers/dapr.mjs";
import { randomName, startServer, testReportingOutput } from "./helpers/outrigger.mjs";

// How long a workflow may take to reach the state a test waits for (each needs well under a second of work).
const WAIT_SECONDS = 15;

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  const { code, signal } = await server.stop();
  assert.equal(code, 0, `outrigger exited with ${code ?? signal} after SIGTERM (expected 0)`);
});

/** The options the SDK's workflow classes take: the gRPC endpoint's host and port, and the App ID's token. */
function workflowOptions(app) {
  const url = new URL(app.grpcEndpoint);
  return { daprHost: url.hostname, daprPort: url.port, daprApiToken: app.token };
}

/** A named function: the SDK registers and calls workflows and activities by their function names. */
function named(name, fn) {
  Object.defineProperty(fn, "name", { value: name });
  return fn;
}

/** Fails unless `state` is COMPLETED with `output` (the serialized output parsed as JSON). */
function assertCompleted(state, output) {
  assert.ok(state, "no such instance");
  assert.equal(
    WorkflowRuntimeStatus[state.runtimeStatus],
    "COMPLETED",
    `status ${WorkflowRuntimeStatus[state.runtimeStatus]}: ${JSON.stringify(state.workflowFailureDetails)}`,
  );
  assert.deepEqual(JSON.parse(state.serializedOutput), output);
}

describe("workflows", () => {
  let app;
  let runtime;
  let client;
  let http;
  // Function names unique to the test, so that no other worker is ever handed their work.
  let suffix;

  beforeEach(async () => {
    const project = await server.newProject();
    app = project.apps.orders;
    suffix = randomName("t");
    runtime = new WorkflowRuntime(workflowOptions(app));
    client = new DaprWorkflowClient(workflowOptions(app));
    http = clientFor(app, "HTTP");
  });

  afterEach(async () => {
    await runtime.stop().catch(() => {}); // not started when the test failed early
    await client.stop();
    await http.stop();
  });

  /** Registers the cities sequence: three chained `hello` activities; returns the workflow. */
  function registerSequence() {
    const hello = named(`hello_${suffix}`, async (ctx, city) => `Hello ${city}!`);
    const sequence = named(`sequence_${suffix}`, async function* (ctx, cities) {
      const greetings = [];
      for (const city of cities) {
        greetings.push(yield ctx.callActivity(hello, city));
      }
      return greetings;
    });
    runtime.registerWorkflow(sequence).registerActivity(hello);
    return sequence;
  }

  /** Registers a workflow that waits for the event `approval` and returns what it carried. */
  function registerApproval() {
    const approval = named(`approval_${suffix}`, async function* (ctx, order) {
      ctx.setCustomStatus("waiting");
      const decision = yield ctx.waitForExternalEvent("approval");
      return { order, decision };
    });
    runtime.registerWorkflow(approval);
    return approval;
  }

  const it = testReportingOutput(() => server);

  /** The HTTP client's view of an instance, once `predicate` holds for it. */
  async function httpStateWhen(instanceId, predicate, what) {
    let last;
    try {
      return await waitUntil(
        async () => {
          last = await http.workflow.get(instanceId);
          return predicate(last) ? last : null;
        },
        WAIT_SECONDS * 1000,
        what,
      );
    } catch (error) {
      error.message += `; last answer: ${JSON.stringify(last)}`;
      throw error;
    }
  }

  it("an instance started with the HTTP client is reported by workflow.get and by the gRPC client", async () => {
    // No runtime: nothing runs the instance, so it stays PENDING.
    const name = `unserved_${suffix}`;
    const instanceId = `pending-${suffix}`;
    assert.equal(await http.workflow.start(name, { order: 3, items: ["a", "b"] }, instanceId), instanceId);

    const got = await http.workflow.get(instanceId);
    assert.equal(got.instanceID, instanceId);
    assert.equal(got.workflowName, name);
    assert.equal(got.runtimeStatus, "PENDING");
    assert.ok(got.createdAt instanceof Date && !Number.isNaN(got.createdAt.getTime()), `createdAt ${got.createdAt}`);
    assert.ok(Math.abs(Date.now() - got.createdAt.getTime()) < 60_000, `createdAt ${got.createdAt.toISOString()}`);
    assert.deepEqual(JSON.parse(got.properties["dapr.workflow.input"]), { order: 3, items: ["a", "b"] });
    assert.equal(got.properties["dapr.workflow.output"], undefined, JSON.stringify(got.properties));

    const state = await client.getWorkflowState(instanceId, true);
    assert.ok(state, "the gRPC client does not see the instance started over HTTP");
    assert.equal(state.name, name);
    assert.equal(WorkflowRuntimeStatus[state.runtimeStatus], "PENDING");
    assert.deepEqual(JSON.parse(state.serializedInput), { order: 3, items: ["a", "b"] });

    // Without an instance ID the SDK makes one up (a UUID) and sends it.
    const generated = await http.workflow.start(name, { order: 4 });
    assert.match(generated, /^[0-9a-f-]{36}$/);
    assert.equal((await http.workflow.get(generated)).instanceID, generated);

    // An instance that does not exist: 404 ERR_INSTANCE_ID_NOT_FOUND.
    const { status, body } = httpFailure(await rejection(() => http.workflow.get(`missing-${suffix}`)));
    assert.equal(status, 404, JSON.stringify(body));
    assert.equal(body.errorCode, "ERR_INSTANCE_ID_NOT_FOUND", JSON.stringify(body));
  });

  it("a sequence of three chained activities runs to completion over gRPC", async () => {
    const sequence = registerSequence();
    await runtime.start();

    const cities = ["Tokyo", "Seattle", "London"];
    const instanceId = await client.scheduleNewWorkflow(sequence, cities);
    assert.ok(instanceId, "scheduleNewWorkflow returned no instance ID");
    const state = await client.waitForWorkflowCompletion(instanceId, true, WAIT_SECONDS);
    assertCompleted(state, ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]);
    assert.equal(state.instanceId, instanceId);
    assert.equal(state.name, sequence.name);
    assert.deepEqual(JSON.parse(state.serializedInput), cities);

    const read = await client.getWorkflowState(instanceId, true);
    assertCompleted(read, ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]);
  });

  it("the HTTP client's workflow.get reports an instance the gRPC client started and completed", async () => {
    const sequence = registerSequence();
    await runtime.start();
    const instanceId = await client.scheduleNewWorkflow(sequence, ["Paris", "Lima"], `seq-${suffix}`);
    assert.equal(instanceId, `seq-${suffix}`);
    assertCompleted(await client.waitForWorkflowCompletion(instanceId, true, WAIT_SECONDS), [
      "Hello Paris!",
      "Hello Lima!",
    ]);

    const got = await http.workflow.get(instanceId);
    assert.equal(got.instanceID, instanceId);
    assert.equal(got.workflowName, sequence.name);
    assert.equal(got.runtimeStatus, "COMPLETED");
    assert.ok(got.createdAt instanceof Date && !Number.isNaN(got.createdAt.getTime()), `createdAt ${got.createdAt}`);
    assert.ok(got.lastUpdatedAt >= got.createdAt, `lastUpdatedAt ${got.lastUpdatedAt} before ${got.createdAt}`);
    assert.deepEqual(JSON.parse(got.properties["dapr.workflow.input"]), ["Paris", "Lima"]);
    assert.deepEqual(JSON.parse(got.properties["dapr.workflow.output"]), ["Hello Paris!", "Hello Lima!"]);
  });

  it("the HTTP client starts a workflow and raises the event it waits for, then purges it", async () => {
    const approval = registerApproval();
    await runtime.start();

    const instanceId = `order-${suffix}`;
    const started = await http.workflow.start(approval.name, { order: 7 }, instanceId);
    assert.equal(started, instanceId);
    const waiting = await httpStateWhen(
      instanceId,
      (got) => Boolean(got.properties?.["dapr.workflow.custom_status"]),
      "the workflow started over HTTP reporting its custom status",
    );
    assert.equal(waiting.instanceID, instanceId);
    assert.equal(waiting.workflowName, approval.name);
    assert.equal(waiting.runtimeStatus, "RUNNING");
    assert.deepEqual(JSON.parse(waiting.properties["dapr.workflow.input"]), { order: 7 });
    // The SDK sends the custom status as given (not JSON-encoded), and daprd reports it as it is stored.
    assert.equal(waiting.properties["dapr.workflow.custom_status"], "waiting");

    await http.workflow.raise(instanceId, "approval", { approved: true, by: "ops" });
    const state = await client.waitForWorkflowCompletion(instanceId, true, WAIT_SECONDS);
    assertCompleted(state, { order: { order: 7 }, decision: { approved: true, by: "ops" } });
    const got = await http.workflow.get(instanceId);
    assert.equal(got.runtimeStatus, "COMPLETED");
    assert.deepEqual(JSON.parse(got.properties["dapr.workflow.output"]), {
      order: { order: 7 },
      decision: { approved: true, by: "ops" },
    });

    await http.workflow.purge(instanceId);
    assert.equal(await client.getWorkflowState(instanceId, false), undefined, "the purged instance is still there");
    const { status } = httpFailure(await rejection(() => http.workflow.get(instanceId)));
    assert.equal(status, 404);
  });

  it("the HTTP client pauses, resumes and terminates a workflow", async () => {
    const approval = registerApproval();
    await runtime.start();

    const instanceId = await http.workflow.start(approval.name, { order: 8 });
    assert.ok(instanceId, "start returned no instance ID");
    await httpStateWhen(instanceId, (got) => got.runtimeStatus === "RUNNING", "the workflow running");

    await http.workflow.pause(instanceId);
    await httpStateWhen(instanceId, (got) => got.runtimeStatus === "SUSPENDED", "the workflow suspended");
    await http.workflow.resume(instanceId);
    await httpStateWhen(instanceId, (got) => got.runtimeStatus === "RUNNING", "the workflow running again");

    await http.workflow.terminate(instanceId);
    const state = await client.waitForWorkflowCompletion(instanceId, true, WAIT_SECONDS);
    assert.equal(WorkflowRuntimeStatus[state.runtimeStatus], "TERMINATED");
    const got = await http.workflow.get(instanceId);
    assert.equal(got.runtimeStatus, "TERMINATED");
  });
});
