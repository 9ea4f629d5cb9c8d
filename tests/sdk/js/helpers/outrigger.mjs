// Runs the all-in-one Outrigger server for black-box tests with the official Dapr JavaScript SDK, and acts
// as its operator through the control API.
//
// The server gets a clean environment (no inherited OUTRIGGER_* or DAPR_* variable), a fresh data
// directory and port 0 for every listener; it is awaited through the one JSON "outrigger ready" line it
// logs on stdout. Its stdout and stderr are read for its whole life (so it never blocks on a full pipe)
// and kept, so that a failing test can print what the server said.
//
// A tenant's file-backed components (`state.sqlite`, `secretstores.local.file`) name files relative to the
// project's own directory, `<OUTRIGGER_DATA_DIR>/projects/<project id>/`; `Server.projectDir` answers it.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { it as nodeTest } from "node:test";
import { fileURLToPath } from "node:url";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

export function randomToken(length = 40) {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const bytes = randomBytes(length);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

/** A DNS label: lower-case letters and digits after a letter prefix. */
export function randomName(prefix) {
  return prefix + randomToken(10).toLowerCase();
}

export function outriggerBinary() {
  return process.env.OUTRIGGER_BIN || join(REPO_ROOT, "target", "debug", "outrigger");
}

function cleanEnvironment(extra) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("OUTRIGGER_") && !name.startsWith("DAPR_")) env[name] = value;
  }
  return { ...env, ...extra };
}

/** Starts the all-in-one server (with `extraEnv` added to its settings) and resolves when it is ready. */
export async function startServer(extraEnv = {}) {
  const workDir = mkdtempSync(join(tmpdir(), "outrigger-sdk-js-"));
  const adminToken = randomToken();
  const child = spawn(outriggerBinary(), [], {
    cwd: workDir,
    env: cleanEnvironment({
      OUTRIGGER_DATA_DIR: workDir,
      OUTRIGGER_CONTROL_API_ADDR: "127.0.0.1:0",
      OUTRIGGER_HTTP_ADDR: "127.0.0.1:0",
      OUTRIGGER_GRPC_ADDR: "127.0.0.1:0",
      OUTRIGGER_LOG_FORMAT: "json",
      OUTRIGGER_ADMIN_TOKEN: adminToken,
      ...extraEnv,
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = [];
  // Project name -> id, from the control API's "project created" log lines (its answers carry no id).
  const exited = new Promise((resolveExit) => {
    child.on("exit", (code, signal) => resolveExit({ code, signal }));
  });
  const spawnFailed = new Promise((_, reject) => child.on("error", reject));

  let onReady;
  const ready = new Promise((resolveReady) => (onReady = resolveReady));
  createInterface({ input: child.stdout }).on("line", (line) => {
    output.push(`[stdout] ${line}`);
    let record;
    try {
      record = JSON.parse(line);
    } catch {
      return;
    }
    if (record?.fields?.message === "outrigger ready") onReady(record.fields);
  });
  createInterface({ input: child.stderr }).on("line", (line) => output.push(`[stderr] ${line}`));

  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`outrigger logged no ready line within ${READY_TIMEOUT_MS} ms:\n${output.join("\n")}`)),
      READY_TIMEOUT_MS,
    );
  });
  const exitedEarly = exited.then(({ code, signal }) => {
    throw new Error(`outrigger exited (${code ?? signal}) before it was ready:\n${output.join("\n")}`);
  });
  let fields;
  try {
    fields = await Promise.race([ready, timeout, exitedEarly, spawnFailed]);
  } catch (error) {
    child.kill("SIGKILL");
    rmSync(workDir, { recursive: true, force: true });
    throw error;
  } finally {
    clearTimeout(timer);
  }
  exitedEarly.catch(() => {}); // after readiness an exit is reported by stop()

  return new Server({ child, exited, output, workDir, adminToken, fields });
}

function address(fields, name) {
  const value = fields[name];
  if (typeof value !== "string" || !value.startsWith("127.0.0.1:")) {
    throw new Error(`the ready line has ${name}=${JSON.stringify(value)}: ${JSON.stringify(fields)}`);
  }
  return `http://${value}`;
}

export class Server {
  constructor({ child, exited, output, workDir, adminToken, fields }) {
    this.child = child;
    this.exited = exited;
    this.output = output;
    this.workDir = workDir; // also the server's OUTRIGGER_DATA_DIR
    this.adminToken = adminToken;
    this.controlApi = address(fields, "control_api");
    this.daprHttp = address(fields, "dapr_http");
    this.daprGrpc = address(fields, "dapr_grpc");
  }

  /**
   * `<data dir>/projects/<project id>/`, where the server confines project `name`'s component files: a
   * component names a file there by its path relative to this directory. The server creates it when it opens
   * such a component; `create` makes it now, for a file a test puts there first (a secrets JSON).
   */
  async projectDir(name, { create = false } = {}) {
    const projectName = typeof name === "string" ? name : name.name;
    const directory = join(this.workDir, (await this.expect(200, "GET", `/projects/${projectName}`)).filesDir);
    if (create) mkdirSync(directory, { recursive: true });
    return directory;
  }

  /** Lines the server wrote since `mark` (a length of `output`). */
  outputSince(mark) {
    return this.output.slice(mark).join("\n");
  }

  /** SIGTERM; resolves to the exit code (SIGKILL after STOP_TIMEOUT_MS, then the code is null). */
  async stop() {
    this.child.kill("SIGTERM");
    let timer;
    const killed = new Promise((resolveKill) => {
      timer = setTimeout(() => {
        this.child.kill("SIGKILL");
        resolveKill();
      }, STOP_TIMEOUT_MS);
    });
    const result = await Promise.race([this.exited, killed.then(() => this.exited)]);
    clearTimeout(timer);
    rmSync(this.workDir, { recursive: true, force: true });
    return result;
  }

  /** One control-API call: { status, body } (body parsed as JSON when it is JSON). */
  async control(method, path, body, contentType = "application/json") {
    const headers = { Authorization: `Bearer ${this.adminToken}` };
    let payload;
    if (body !== undefined) {
      payload = typeof body === "string" ? body : JSON.stringify(body);
      headers["Content-Type"] = contentType;
    }
    const response = await fetch(`${this.controlApi}/api/v1${path}`, { method, headers, body: payload });
    const text = await response.text();
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, body: parsed };
  }

  async expect(status, method, path, body, contentType) {
    const answer = await this.control(method, path, body, contentType);
    if (answer.status !== status) {
      throw new Error(`${method} ${path} -> ${answer.status} (expected ${status}): ${JSON.stringify(answer.body)}`);
    }
    return answer.body;
  }

  /** A fresh project with App IDs `apps`: { name, answer, apps: { [name]: App } }. */
  async newProject(apps = ["orders"]) {
    const name = randomName("p");
    const answer = await this.expect(201, "POST", "/projects", { name });
    const project = { name, answer, apps: {} };
    for (const app of apps) await this.addApp(project, app);
    return project;
  }

  /** Creates App ID `name` in `project` (`fields`: more of its fields, e.g. appEndpoint); the App. */
  async addApp(project, name, fields = {}) {
    const created = await this.expect(201, "POST", `/projects/${project.name}/appids`, { name, ...fields });
    if (typeof created.apiToken !== "string" || !created.apiToken) {
      throw new Error(`no apiToken in ${JSON.stringify(created)}`);
    }
    const app = {
      project: project.name,
      name,
      token: created.apiToken,
      httpEndpoint: project.answer.httpEndpoint,
      grpcEndpoint: project.answer.grpcEndpoint,
    };
    project.apps[name] = app;
    return app;
  }

  /** Changes fields of an App ID (PATCH: absent fields stay, null clears). */
  async updateApp(project, name, changes) {
    return this.expect(200, "PATCH", `/projects/${project}/appids/${name}`, changes);
  }

  async putComponent(project, name, yaml) {
    const answer = await this.control("PUT", `/projects/${project}/components/${name}`, yaml, "application/yaml");
    if (answer.status !== 200 && answer.status !== 201) {
      throw new Error(`PUT component ${name} -> ${answer.status}: ${JSON.stringify(answer.body)}`);
    }
    return answer.body;
  }
}

/**
 * `it` for tests of the server `serverOf()` returns (called when the test runs, after `before` started it):
 * a failing test's report carries what the server logged while it ran.
 */
export function testReportingOutput(serverOf) {
  return (name, body) =>
    nodeTest(name, async () => {
      const server = serverOf();
      const mark = server.output.length;
      try {
        await body();
      } catch (error) {
        error.message += `\n--- outrigger output during the test ---\n${server.outputSince(mark)}`;
        throw error;
      }
    });
}
