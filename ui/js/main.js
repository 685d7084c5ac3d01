// The admin single-page app: session, routing under /admin, the live stream, the ticker.
import * as api from "./api.js";
import * as live from "./live.js";
import { h, fill, toast, announce } from "./dom.js";
import { tick, timeMode, setTimeMode } from "./format.js";
import { errorBox } from "./components.js";
import { renderLogin } from "./views/login.js";
import { renderSchedules, renderSchedule } from "./views/schedules.js";
import { renderJobs } from "./views/jobs.js";
import { renderRun } from "./views/run.js";
import { renderBatch } from "./views/batch.js";
import { renderWorkers } from "./views/workers.js";
import { renderAudit } from "./views/audit.js";
import { renderUsers } from "./views/users.js";
import { renderRuns } from "./views/runs.js";
import { renderJob } from "./views/job.js";
import { renderOverview } from "./views/overview.js";

const BASE = "/admin";

const ROUTES = [
  { re: /^\/?$/, view: renderOverview, section: "overview", title: "Overview" },
  { re: /^\/schedules\/?$/, view: renderSchedules, section: "schedules", title: "Schedules" },
  { re: /^\/schedules\/([^/]+)\/?$/, view: renderSchedule, section: "schedules", title: "Schedule" },
  { re: /^\/jobs\/?$/, view: renderJobs, section: "jobs", title: "Jobs" },
  { re: /^\/jobs\/([^/]+)\/?$/, view: renderJob, section: "jobs", title: "Job" },
  { re: /^\/runs\/?$/, view: renderRuns, section: "runs", title: "Runs" },
  { re: /^\/runs\/(\d+)\/?$/, view: renderRun, section: "runs", title: "Run" },
  { re: /^\/batches\/(\d+)\/?$/, view: renderBatch, section: "jobs", title: "Batch" },
  { re: /^\/workers\/?$/, view: renderWorkers, section: "workers", title: "Workers" },
  { re: /^\/audit\/?$/, view: renderAudit, section: "audit", title: "Audit" },
  { re: /^\/users\/?$/, view: renderUsers, section: "users", title: "Users" },
];

const main = () => document.getElementById("main");
let cleanups = [];
let renderSeq = 0;
let authenticated = false;
let lastShown = null; // {path, title} of the page on screen, for back links

function cleanup() {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch (err) {
      console.error(err);
    }
  }
}

/** What a view gets: its element, the route, and hooks that are undone on navigation. */
function viewContext(el, match, url) {
  const seq = renderSeq;
  return {
    el,
    params: match ? match.slice(1).map(decodeURIComponent) : [],
    query: url.searchParams,
    /** Subscribe to a live event for as long as the view is shown. */
    on(kind, fn) {
      cleanups.push(live.on(kind, fn));
    },
    every(ms, fn) {
      const id = window.setInterval(fn, ms);
      cleanups.push(() => window.clearInterval(id));
    },
    onLeave(fn) {
      cleanups.push(fn);
    },
    /** False once the user navigated away (drop late answers). */
    get current() {
      return seq === renderSeq;
    },
    title(text) {
      document.title = `${text} · jobsys admin`;
    },
    navigate,
    replaceQuery(params) {
      const next = new URL(window.location.href);
      next.search = api.query(params);
      window.history.replaceState(null, "", next.pathname + next.search);
      if (seq === renderSeq && lastShown) lastShown.path = next.pathname + next.search;
    },
  };
}

function subPath(pathname) {
  if (!pathname.startsWith(BASE)) return null;
  return pathname.slice(BASE.length) || "/";
}

export function navigate(href, { replace = false } = {}) {
  const url = new URL(href, window.location.href);
  if (replace) window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  else window.history.pushState(null, "", url.pathname + url.search + url.hash);
  route({ focus: true });
}

async function route({ focus = false } = {}) {
  const url = new URL(window.location.href);
  const path = subPath(url.pathname);
  if (path === null) {
    window.location.assign(BASE);
    return;
  }
  cleanup();
  renderSeq += 1;
  const el = main();
  // "Back" links return to the page shown before this one (components.backLink).
  const here = url.pathname + url.search;
  if (lastShown && lastShown.path !== here) window.__jobsysPrevious = lastShown;
  lastShown = null; // set once the route is known (below)
  delete el.dataset.ready;
  if (path.replace(/\/$/, "") === "/login") {
    if (authenticated) {
      navigate(url.searchParams.get("next") || BASE, { replace: true });
      return;
    }
    showLogin(url.searchParams.get("next"));
    return;
  }
  if (!authenticated) {
    showLogin(url.pathname + url.search);
    return;
  }
  let match = null;
  const found = ROUTES.find((r) => (match = path.match(r.re)));
  // The route's title at once (a click before the page is ready still comes back here);
  // the page's own title (e.g. "Run #3 purge") once it is ready.
  lastShown = { path: here, title: found ? found.title : "Not found" };
  for (const a of document.querySelectorAll(".mainnav a")) {
    const on = found && a.dataset.section === found.section;
    if (on) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  fill(el);
  if (!found) {
    document.title = "Not found · jobsys admin";
    fill(el, h("h1", "Not found"), h("p", "There is no page at this address. ",
      h("a", { href: BASE, dataset: { nav: "" } }, "Go to the overview.")));
    return;
  }
  document.title = `${found.title} · jobsys admin`;
  const ctx = viewContext(el, match, url);
  try {
    await found.view(ctx);
  } catch (err) {
    if (err && err.status === 401) return;
    console.error(err);
    if (ctx.current) el.append(errorBox(err));
  }
  if (ctx.current) {
    el.dataset.ready = "1";
    lastShown = { path: window.location.pathname + window.location.search,
      title: document.title.replace(/ · jobsys admin$/, "") };
  }
  if (focus && ctx.current) {
    const heading = el.querySelector("h1");
    (heading || el).setAttribute("tabindex", "-1");
    (heading || el).focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

function showShell(me) {
  document.getElementById("topbar").hidden = false;
  fill(document.getElementById("who"),
    h("span.who-email", me.email), " ",
    h(`span.pill.pill-${me.role === "admin" ? "info" : "neutral"}`, me.role));
  document.getElementById("readonly-note").hidden = me.role === "admin";
  // Account management is for admins only: viewers are not offered it.
  for (const el of document.querySelectorAll("[data-admin-only]")) el.hidden = me.role !== "admin";
  document.body.classList.toggle("role-viewer", me.role !== "admin");
}

function hideShell() {
  document.getElementById("topbar").hidden = true;
  document.getElementById("readonly-note").hidden = true;
}

function showLogin(next) {
  cleanup();
  renderSeq += 1;
  hideShell();
  const path = `${BASE}/login${next && next !== `${BASE}/login` ? `?next=${encodeURIComponent(next)}` : ""}`;
  if (window.location.pathname + window.location.search !== path) {
    window.history.replaceState(null, "", path);
  }
  document.title = "Log in · jobsys admin";
  renderLogin(main(), async (me) => {
    await startSession(me);
    const target = next && next.startsWith(BASE) && !next.startsWith(`${BASE}/login`) ? next : BASE;
    navigate(target, { replace: true });
  });
}

async function startSession(me) {
  authenticated = true;
  showShell(me);
  live.start();
}

function endSession() {
  authenticated = false;
  api.setSession(null);
  live.stop();
  document.getElementById("dialog").open && document.getElementById("dialog").close();
}

function initLiveIndicator() {
  const el = document.getElementById("live-state");
  const text = el.querySelector(".live-text");
  const labels = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    stopped: "Offline",
  };
  let previous = null;
  live.on("state", (state) => {
    el.dataset.state = state;
    text.textContent = labels[state] || state;
    el.title = state === "live" ? "Live updates are on" : "Live updates are paused; retrying";
    if (previous === "live" && state === "reconnecting") announce("Live updates lost; reconnecting");
    if (previous === "reconnecting" && state === "live") announce("Live updates back");
    previous = state;
  });
}

function interceptLinks() {
  document.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const a = event.target.closest("a[href]");
    if (!a || a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, window.location.href);
    if (url.origin !== window.location.origin || subPath(url.pathname) === null) return;
    if (url.pathname.startsWith(`${BASE}/static/`)) return;
    event.preventDefault();
    if (url.pathname === window.location.pathname && url.search === window.location.search && url.hash) {
      window.location.hash = url.hash;
      return;
    }
    navigate(url.href);
  });
  window.addEventListener("popstate", () => route());
}

/** The UTC/local switch in the top bar: remembered per browser, redraws the page. */
function initTimeMode() {
  const btn = document.getElementById("time-mode");
  if (!btn) return;
  const show = () => {
    const local = timeMode() === "local";
    btn.textContent = local ? "Times: local" : "Times: UTC";
    btn.setAttribute("aria-pressed", String(local));
    btn.title = local ? "Absolute times in your browser's zone; press for UTC" : "Absolute times in UTC; press for your browser's zone";
  };
  btn.addEventListener("click", () => {
    setTimeMode(timeMode() === "local" ? "utc" : "local");
    show();
    announce(`Times shown in ${timeMode() === "local" ? "local time" : "UTC"}`);
    if (authenticated) route();
  });
  show();
}

async function boot() {
  initLiveIndicator();
  initTimeMode();
  interceptLinks();
  api.onUnauthenticated(() => {
    if (!authenticated) return;
    endSession();
    toast("Your session ended; please log in again.", "info");
    showLogin(window.location.pathname + window.location.search);
  });
  document.getElementById("logout").addEventListener("click", async () => {
    try {
      await api.logout();
    } catch {
      // the cookie is cleared or the server is gone: either way show the login
    }
    endSession();
    showLogin(null);
    announce("Logged out");
  });
  window.setInterval(() => tick(), 1000);
  try {
    const me = await api.loadMe();
    await startSession(me);
  } catch (err) {
    if (err.status !== 401) {
      fill(main(), h("h1", "jobsys admin"), errorBox(err),
        h("p", h("button.btn", { type: "button", onclick: () => window.location.reload() }, "Retry")));
      return;
    }
  }
  route();
}

boot();
