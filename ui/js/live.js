// One EventSource on /api/admin/events, fanned out to the views.
//
// Events: run, batch, schedule, logs, daemon (see jobsys/web/events.py), plus the
// pseudo-events "open" (connected; after a reconnect views reload what they show, since
// the stream does not replay what happened while it was down) and "state".
import { API, get } from "./api.js";

const listeners = new Map(); // kind -> Set(fn)
const KINDS = ["run", "batch", "schedule", "logs", "daemon"];
let source = null;
let retryTimer = null;
let retryDelay = 1000;
let everOpened = false;
let stopped = true;
let lastDaemon = null;
let state = "connecting";

export function on(kind, fn) {
  if (!listeners.has(kind)) listeners.set(kind, new Set());
  listeners.get(kind).add(fn);
  return () => listeners.get(kind).delete(fn);
}

function emit(kind, data) {
  for (const fn of [...(listeners.get(kind) || [])]) {
    try {
      fn(data);
    } catch (err) {
      console.error(`live ${kind} listener failed`, err);
    }
  }
}

function setState(next) {
  state = next;
  emit("state", next);
}

export function liveState() {
  return state;
}

/** The newest daemon status seen on the stream (or null). */
export function latestDaemon() {
  return lastDaemon;
}

export function start() {
  stopped = false;
  connect();
}

export function stop() {
  stopped = true;
  window.clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
  everOpened = false;
  setState("stopped");
}

function connect() {
  window.clearTimeout(retryTimer);
  if (source) source.close();
  setState(everOpened ? "reconnecting" : "connecting");
  const es = new EventSource(`${API}/events`);
  source = es;
  es.addEventListener("open", () => {
    retryDelay = 1000;
    const reconnected = everOpened;
    everOpened = true;
    setState("live");
    emit("open", { reconnected });
  });
  for (const kind of KINDS) {
    es.addEventListener(kind, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (kind === "daemon") lastDaemon = data;
      emit(kind, data);
    });
  }
  es.addEventListener("error", () => {
    if (stopped || source !== es) return;
    if (es.readyState === EventSource.CONNECTING) {
      setState("reconnecting"); // the browser retries by itself (retry: 2000)
      return;
    }
    // Closed for good (e.g. 401 or the server is gone): check the session, then retry.
    es.close();
    setState("reconnecting");
    retryTimer = window.setTimeout(async () => {
      if (stopped) return;
      try {
        await get("/me"); // a 401 here shows the login view (and stops the stream)
      } catch (err) {
        if (err.status === 401) return;
      }
      if (!stopped) connect();
    }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  });
}
