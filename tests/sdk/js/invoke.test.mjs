// Service invocation with the official Dapr JavaScript SDK (@dapr/dapr 3.18.0) against the all-in-one Outrigger:
// `client.invoker.invoke` over HTTP and over gRPC (InvokeService) to a node:http app registered as an App ID's
// endpoint.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, it as test } from "node:test";

import { HttpMethod } from "@dapr/dapr";

import { clientFor, rejection } from "./helpers/dapr.mjs";
import { startServer } from "./helpers/outrigger.mjs";

let server;
let callee;

/** An app that answers every request with what it received, as JSON; `/missing` answers 404. */
async function startCallee() {
  const seen = [];
  const app = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      seen.push({ method: request.method, url: request.url, headers: request.headers, body });
      if (request.url.startsWith("/missing")) {
        response.writeHead(404, { "content-type": "text/plain" }).end("not here");
        return;
      }
      const answer = { method: request.method, url: request.url, body: body ? JSON.parse(body) : null };
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
    });
  });
  await new Promise((resolve) => app.listen(0, "127.0.0.1", resolve));
  return { seen, endpoint: `http://127.0.0.1:${app.address().port}`, close: () => app.close() };
}

before(async () => {
  server = await startServer();
  callee = await startCallee();
});

after(async () => {
  callee.close();
  const { code, signal } = await server.stop();
  assert.equal(code, 0, `outrigger exited with ${code ?? signal} after SIGTERM (expected 0)`);
});

for (const protocol of ["HTTP", "GRPC"]) {
  describe(`invoker over ${protocol}`, () => {
    test("invoke reaches the callee with the verb, path and body, and returns its answer", async () => {
      const project = await server.newProject(["web"]);
      await server.addApp(project, "orders", { appEndpoint: callee.endpoint, appToken: "orders-token" });
      const client = clientFor(project.apps.web, protocol);
      const answer = await client.invoker.invoke("orders", "neworder", HttpMethod.POST, { orderId: 12 });
      assert.deepEqual(answer, { method: "POST", url: "/neworder", body: { orderId: 12 } });
      const seen = callee.seen.at(-1);
      assert.equal(seen.headers["dapr-caller-app-id"], "web");
      assert.equal(seen.headers["dapr-callee-app-id"], "orders");
      assert.equal(seen.headers["dapr-api-token"], "orders-token");

      const got = await client.invoker.invoke("orders", "orders/12", HttpMethod.GET);
      // Over gRPC the SDK fills a GET's data with `{}`, which the app gets as daprd's HTTP channel passes it on;
      // over HTTP the SDK sends no body.
      const body = protocol === "GRPC" ? {} : null;
      assert.deepEqual(got, { method: "GET", url: "/orders/12", body });
    });

    test("an App ID of another project cannot be invoked", async () => {
      const owner = await server.newProject(["owner"]);
      await server.addApp(owner, "private-api", { appEndpoint: callee.endpoint });
      const stranger = await server.newProject(["stranger"]);
      const before = callee.seen.length;
      const client = clientFor(stranger.apps.stranger, protocol);
      const error = await rejection(() => client.invoker.invoke("private-api", "neworder", HttpMethod.POST, {}));
      assert.match(String(error.message ?? error), /ERR_DIRECT_INVOKE|couldn't find service/);
      assert.equal(callee.seen.length, before);
    });
  });
}
