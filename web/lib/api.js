// The one way the console talks to the control API: credentials, the organization worked in, refreshing a
// session's access token when it expires, and turning every refusal into an `ApiFailure` that says what
// went wrong (the API's own message) and what to do next.

import { session } from "./session.js";

export const BASE = "/api/v1";

/** A refusal or failure of the control API (or of the network on the way to it). */
export class ApiFailure extends Error {
  constructor(status, body, retryAfter) {
    const message = body?.message ?? (status ? `The server answered ${status}.` : "The server could not be reached.");
    super(message);
    this.status = status;
    this.code = body?.code;
    this.details = body?.details;
    this.hint = hintFor(status, retryAfter);
  }
}

function hintFor(status, retryAfter) {
  switch (status) {
    case 0:
      return "Check that the Outrigger server is running and reachable, then try again.";
    case 401:
      return "Your sign-in has ended: sign in again.";
    case 403:
      return "Ask an admin of this organization for the role named above.";
    case 404:
      return "It may have been deleted, or it belongs where you hold no role: reload the list.";
    case 409:
      return "Change what the message names first, then try again.";
    case 429:
      return `Wait${retryAfter ? ` ${retryAfter} s` : " a moment"} and try again.`;
    default:
      return status >= 500 ? "Try again in a moment; if it keeps failing, the operator will find why in the server's log." : null;
  }
}

/** Called when the session cannot be renewed (the shell goes back to sign-in). */
let onSignedOut = () => {};
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

let refreshing = null;

/** Swaps the session's refresh token for a new pair, once however many calls found the access token expired. */
async function refreshSession() {
  const current = session.load();
  if (!current?.refreshToken) return false;
  refreshing ??= (async () => {
    const response = await fetch(`${BASE}/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refreshToken: current.refreshToken }),
    });
    if (!response.ok) return false;
    session.signedIn(await response.json());
    return true;
  })().finally(() => (refreshing = null));
  return refreshing;
}

/**
 * `api("GET", "/projects", { query: { limit: 10 } })`: the parsed JSON answer (or text for YAML, `null` for
 * 204). Options: `body` (sent as JSON, or as is when a string with `contentType`), `query` (undefined and
 * empty values left out), `accept`, `organization` (defaults to the one the console works in).
 */
export async function api(method, path, options = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [name, value] of Object.entries(options.query ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const send = () => {
    const current = session.load();
    const headers = { Accept: options.accept ?? "application/json" };
    if (current?.credential) headers.Authorization = `Bearer ${current.credential}`;
    const organization = options.organization ?? current?.organization;
    if (organization) headers["Outrigger-Organization"] = organization;
    let body;
    if (options.body !== undefined) {
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
      headers["Content-Type"] = options.contentType ?? "application/json";
    }
    return fetch(url, { method, headers, body });
  };
  let response;
  try {
    response = await send();
    if (response.status === 401 && (await refreshSession())) response = await send();
  } catch {
    throw new ApiFailure(0, null);
  }
  if (response.status === 401) onSignedOut();
  const text = await response.text();
  const type = response.headers.get("Content-Type") ?? "";
  const parsed = text && type.includes("json") ? JSON.parse(text) : text || null;
  if (!response.ok) throw new ApiFailure(response.status, typeof parsed === "object" ? parsed : null, response.headers.get("Retry-After"));
  return parsed;
}

/** Every entry of a paged list (following `continuationToken`), up to `max`. */
export async function all(path, query = {}, max = 1000) {
  const items = [];
  let continuationToken;
  do {
    const page = await api("GET", path, { query: { ...query, limit: Math.min(100, max - items.length), continuationToken } });
    items.push(...page.items);
    continuationToken = page.continuationToken;
  } while (continuationToken && items.length < max);
  return items;
}

/**
 * The names of a project's App IDs (at most 1,000), for a page's App ID filter: `{ names, failure }`, where
 * `failure` is why they could not be read (the page shows it and works unfiltered).
 */
export async function appIdNames(project) {
  try {
    return { names: (await all(`/projects/${seg(project)}/appids`, {}, 1000)).map((app) => app.name), failure: null };
  } catch (error) {
    return { names: [], failure: error };
  }
}

/** A path segment, encoded. */
export const seg = (value) => encodeURIComponent(value);
