// The JSON API under /api/admin: session cookie + X-CSRF-Token on state changes.

export const API = "/api/admin";

/** An error answer: `status` (HTTP), `code` and `message` from {"error": {...}}. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const session = { csrf: null, me: null, onUnauthenticated: null };

export function setSession(me) {
  session.me = me;
  session.csrf = me ? me.csrf_token : null;
}

export function currentUser() {
  return session.me;
}

export function isAdmin() {
  return Boolean(session.me && session.me.role === "admin");
}

/** Called (once per 401) so the app can show the login view. */
export function onUnauthenticated(fn) {
  session.onUnauthenticated = fn;
}

async function request(method, path, body, { quiet401 = false } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (err) {
    throw new ApiError(0, "network", "cannot reach the jobsys web server; is it running?");
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const err = (data && data.error) || {};
    const error = new ApiError(
      response.status,
      err.code || `http_${response.status}`,
      err.message || `${response.status} ${response.statusText}`,
      response.headers.get("Retry-After"),
    );
    if (response.status === 401 && !quiet401 && session.onUnauthenticated) {
      session.onUnauthenticated(error);
    }
    throw error;
  }
  return data;
}

export const get = (path, opts) => request("GET", path, undefined, opts);
export const post = (path, body = {}, opts) => request("POST", path, body, opts);
export const put = (path, body = {}, opts) => request("PUT", path, body, opts);
export const patch = (path, body = {}, opts) => request("PATCH", path, body, opts);
export const del = (path, opts) => request("DELETE", path, undefined, opts);

/** "?a=1&b=2" from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function login(email, password) {
  const me = await post("/login", { email, password }, { quiet401: true });
  setSession(me);
  return me;
}

export async function loadMe() {
  const me = await get("/me", { quiet401: true });
  setSession(me);
  return me;
}

export async function logout() {
  try {
    await post("/logout", {}, { quiet401: true });
  } finally {
    setSession(null);
  }
}
