// Dapr clients for an App ID, and readers for the errors the SDK hands back.

import { createServer } from "node:net";

import { CommunicationProtocolEnum, DaprClient, LogLevel } from "@dapr/dapr";
// The SDK polls an unready sidecar every 500 ms, 60 times, before it gives up with
// DAPR_SIDECAR_COULD_NOT_BE_STARTED. A client with a wrong token never sees a ready sidecar (its metadata
// probe is refused), so its first call would take 30 s to fail; a shorter delay keeps that test short
// and changes nothing for a client whose first probe succeeds.
import settingsModule from "@dapr/dapr/utils/Settings.util.js";

settingsModule.Settings.daprSidecarPollingDelayMs = 20;

export const PROTOCOLS = {
  HTTP: CommunicationProtocolEnum.HTTP,
  GRPC: CommunicationProtocolEnum.GRPC,
};

// gRPC status codes, as numbers (what ConnectError.code holds).
export const GRPC = {
  INVALID_ARGUMENT: 3,
  PERMISSION_DENIED: 7,
  ABORTED: 10,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
};

const QUIET = { level: LogLevel.Error };

function hostAndPort(endpoint) {
  const url = new URL(endpoint);
  return { daprHost: url.hostname, daprPort: url.port };
}

/**
 * A client for `app` over `protocol` ("HTTP" or "GRPC"), given the endpoint's host and port and the token
 * explicitly; `token` overrides the App ID's (null: no token).
 */
export function clientFor(app, protocol, token = app.token) {
  const endpoint = protocol === "HTTP" ? app.httpEndpoint : app.grpcEndpoint;
  return new DaprClient({
    ...hostAndPort(endpoint),
    communicationProtocol: PROTOCOLS[protocol],
    daprApiToken: token ?? undefined,
    logger: QUIET,
  });
}

/** A client configured only by DAPR_HTTP_ENDPOINT, DAPR_GRPC_ENDPOINT and DAPR_API_TOKEN. */
export function clientFromEnvironment(app, protocol) {
  const saved = {};
  const values = {
    DAPR_HTTP_ENDPOINT: app.httpEndpoint,
    DAPR_GRPC_ENDPOINT: app.grpcEndpoint,
    DAPR_API_TOKEN: app.token,
  };
  for (const [name, value] of Object.entries(values)) {
    saved[name] = process.env[name];
    process.env[name] = value;
  }
  try {
    return new DaprClient({ communicationProtocol: PROTOCOLS[protocol], logger: QUIET });
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/**
 * What the HTTP client's error says: the SDK throws (or, for save and delete, returns as `{ error }`)
 * an Error whose message is JSON `{ error, error_msg, status }`. Returns { status, body } with body
 * parsed when it is JSON.
 */
export function httpFailure(error) {
  assertIsError(error);
  let outer;
  try {
    outer = JSON.parse(error.message);
  } catch {
    throw new Error(`not an HTTP error of the Dapr SDK: ${error.stack ?? error}`);
  }
  let body = outer.error_msg;
  try {
    body = JSON.parse(outer.error_msg);
  } catch {
    // plain text
  }
  return { status: outer.status, body };
}

function assertIsError(error) {
  if (!(error instanceof Error)) throw new Error(`expected an Error, got ${JSON.stringify(error)}`);
}

/** Runs `call`, expecting it to throw; the error. */
export async function rejection(call) {
  try {
    await call();
  } catch (error) {
    return error;
  }
  throw new Error("the call succeeded, but it was expected to fail");
}

/**
 * Protocol-neutral view of a failed save/delete: the HTTP client returns `{ error }`, the gRPC client
 * throws. Resolves to the error; fails when the call succeeded.
 */
export async function failureOf(call) {
  let result;
  try {
    result = await call();
  } catch (error) {
    return error;
  }
  if (result && result.error) return result.error;
  throw new Error(`the call succeeded (${JSON.stringify(result)}), but it was expected to fail`);
}

/** Fails unless a save/delete result is a success ({} from both clients). */
export function assertSucceeded(result) {
  if (result && result.error) {
    throw new Error(`the call failed: ${result.error.stack ?? result.error}`);
  }
}

/** The google.rpc.ErrorInfo among a ConnectError's details: { reason, domain, metadata } or null. */
export function grpcErrorInfo(error) {
  for (const detail of error.details ?? []) {
    const type = detail.type ?? detail.desc?.typeName;
    if (type === "google.rpc.ErrorInfo" && detail.value instanceof Uint8Array) {
      return decodeErrorInfo(detail.value);
    }
  }
  return null;
}

// google.rpc.ErrorInfo: 1 reason (string), 2 domain (string), 3 metadata (map<string, string>: repeated
// entries with 1 key, 2 value). Only length-delimited fields occur.
function decodeErrorInfo(bytes) {
  const info = { reason: "", domain: "", metadata: {} };
  for (const [field, value] of lengthDelimitedFields(bytes)) {
    if (field === 1) info.reason = utf8(value);
    else if (field === 2) info.domain = utf8(value);
    else if (field === 3) {
      const entry = {};
      for (const [entryField, entryValue] of lengthDelimitedFields(value)) entry[entryField] = utf8(entryValue);
      info.metadata[entry[1] ?? ""] = entry[2] ?? "";
    }
  }
  return info;
}

function* lengthDelimitedFields(bytes) {
  let offset = 0;
  const varint = () => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = bytes[offset++];
      if (byte === undefined) throw new Error("truncated protobuf");
      result += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return result;
      shift += 7;
    }
  };
  while (offset < bytes.length) {
    const tag = varint();
    const wireType = tag % 8;
    const field = Math.floor(tag / 8);
    if (wireType === 2) {
      const length = varint();
      yield [field, bytes.subarray(offset, offset + length)];
      offset += length;
    } else if (wireType === 0) {
      varint();
    } else {
      throw new Error(`unexpected protobuf wire type ${wireType}`);
    }
  }
}

function utf8(bytes) {
  return new TextDecoder().decode(bytes);
}

/** Polls `predicate` (async) until it returns a truthy value; fails after `timeoutMs`. */
export async function waitUntil(predicate, timeoutMs, what, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolveSleep) => setTimeout(resolveSleep, intervalMs));
  }
}

/** A port free on 127.0.0.1 now: DaprServer listens on the port it is given, so one is picked for it. */
export async function freePort() {
  const probe = createServer();
  await new Promise((resolveListen, reject) => {
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", resolveListen);
  });
  const { port } = probe.address();
  await new Promise((resolveClose) => probe.close(resolveClose));
  return port;
}
