// Shared pieces of the views: badges, the switch, dialogs, progress bars, tables, pagers.
import { h, fill, newId } from "./dom.js";
import { isAdmin } from "./api.js";
import { timeEl, absText, duration } from "./format.js";
import * as live from "./live.js";

export const STATUS_TEXT = {
  QUEUED: "Queued",
  RUNNING: "Running",
  SUCCESS: "Success",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
  SKIPPED: "Skipped",
  MISSED: "Missed",
};

const STATUS_ICON = {
  QUEUED: "○",
  RUNNING: "◐",
  SUCCESS: "✓",
  FAILED: "✕",
  CANCELLED: "⊘",
  SKIPPED: "↷",
};

/** A status badge; its text is the status itself (QUEUED, RUNNING, ...). */
export function statusBadge(status, extra = {}) {
  if (!status) return h("span.muted", "—");
  const s = String(status).toUpperCase();
  return h(`span.badge.status-${s.toLowerCase()}`, { dataset: { status: s }, ...extra },
    h("span.badge-icon", { "aria-hidden": "true" }, STATUS_ICON[s] || "•"),
    h("span.badge-text.status-text", s));
}

export function pill(text, kind = "neutral", title = null) {
  return h(`span.pill.pill-${kind}`, { title }, text);
}

/**
 * The enabled switch: <button role="switch" aria-checked>. `onToggle(next)` returns a
 * promise; the switch is busy meanwhile and shows the answer.
 */
export function toggleSwitch({ checked, label, disabled = false, reason = "", onToggle }) {
  const text = h("span.switch-text", checked ? "On" : "Off");
  const btn = h("button.switch", {
    type: "button",
    role: "switch",
    "aria-checked": String(Boolean(checked)),
    "aria-label": label,
    title: reason || null,
    disabled: disabled || null,
  }, h("span.switch-track", { "aria-hidden": "true" }, h("span.switch-thumb")), text);
  btn.addEventListener("click", async () => {
    if (btn.disabled || btn.getAttribute("aria-busy") === "true") return;
    const next = btn.getAttribute("aria-checked") !== "true";
    btn.setAttribute("aria-busy", "true");
    try {
      await onToggle(next);
    } finally {
      btn.removeAttribute("aria-busy");
    }
  });
  return btn;
}

export function setSwitch(btn, checked, { disabled = false, reason = "" } = {}) {
  btn.setAttribute("aria-checked", String(Boolean(checked)));
  btn.querySelector(".switch-text").textContent = checked ? "On" : "Off";
  btn.disabled = Boolean(disabled);
  if (reason) btn.title = reason;
  else btn.removeAttribute("title");
}

/** "about 2 min left" from the progress so far and when the run started (null: unknown). */
export function timeLeft(done, total, startedIso, now = Date.now()) {
  const started = startedIso ? Date.parse(startedIso) : NaN;
  if (!Number.isInteger(done) || !Number.isInteger(total) || done <= 0 || total <= 0 || Number.isNaN(started)) return null;
  if (done >= total) return null;
  const elapsed = Math.max(0, now - started);
  const left = (elapsed * (total - done)) / done;
  return `about ${duration(left)} left`;
}

/**
 * A progress bar from done/total (indeterminate while the total is unknown), captioned
 * with the percentage and, given when the run started, an estimate of the time left.
 */
export function progressBar(done, total, label = "Progress", { startedAt = null } = {}) {
  const known = Number.isInteger(total) && total > 0 && Number.isInteger(done);
  const pct = known ? Math.max(0, Math.min(100, (100 * done) / total)) : null;
  const bar = h("div.progress", {
    role: "progressbar",
    "aria-label": label,
    "aria-valuemin": "0",
    "aria-valuemax": known ? String(total) : null,
    "aria-valuenow": known ? String(Math.min(done, total)) : null,
    "aria-valuetext": known ? `${done} of ${total} (${Math.round(pct)}%)` : "in progress",
    class: known ? null : "progress-indeterminate",
  }, h("div.progress-fill", { style: known ? `width: ${pct.toFixed(1)}%` : null }));
  const caption = known ? `${Math.round(pct)} % (${done} / ${total})` : "";
  const eta = known ? timeLeft(done, total, startedAt) : null;
  return h("div.progress-wrap", bar, caption ? h("span.progress-caption", caption) : null,
    eta ? h("span.progress-eta", eta) : null);
}

// -- dialogs ---------------------------------------------------------------------------
let dialogSeq = 0;

function dialogEl() {
  return document.getElementById("dialog");
}

/**
 * Open the modal dialog with `title` and `body`; `actions` are buttons. Returns a promise
 * that resolves with the value passed to `close(value)` (undefined on Escape).
 */
export function openDialog({ title, body, actions = [], wide = false, onOpen = null }) {
  const dialog = dialogEl();
  if (dialog.open) dialog.close();
  dialogSeq += 1;
  const seq = dialogSeq;
  return new Promise((resolve) => {
    const close = (value) => {
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const titleEl = h("h2.dialog-title", { id: "dialog-title" }, title);
    const x = h("button.dialog-x", { type: "button", "aria-label": "Close" }, "×");
    x.addEventListener("click", () => close(undefined));
    fill(dialog, h("div.dialog-head", titleEl, x),
      h("div.dialog-body", typeof body === "function" ? body(close) : body),
      actions.length ? h("div.dialog-actions", actions.map((a) => (typeof a === "function" ? a(close) : a))) : null);
    dialog.classList.toggle("dialog-wide", wide);
    // A close event of an earlier dialog may arrive after this one opened: ignore it.
    dialog.onclose = () => { if (seq === dialogSeq && !dialog.open) resolve(undefined); };
    dialog.oncancel = null;
    dialog.showModal();
    if (onOpen) onOpen(dialog, close);
  });
}

/** A yes/no confirmation; resolves true when confirmed. */
export function confirmDialog({ title, message, confirmText = "Confirm", cancelText = "Cancel", danger = false }) {
  return openDialog({
    title,
    body: h("div.confirm-message", message),
    actions: [
      (close) => h("button.btn.btn-secondary", { type: "button", onclick: () => close(false), dataset: { dismiss: "" } }, cancelText),
      (close) => h(`button.btn.${danger ? "btn-danger" : "btn-primary"}`,
        { type: "button", onclick: () => close(true), dataset: { confirm: "" }, autofocus: true },
        confirmText),
    ],
  }).then((v) => v === true);
}

// -- actions that need the admin role --------------------------------------------------
/** A button that viewers see disabled, with the reason in its title. */
export function actionButton(text, attrs = {}, onclick = null) {
  const admin = isAdmin();
  const btn = h("button.btn", {
    type: "button",
    ...attrs,
    disabled: attrs.disabled || !admin || null,
    title: !admin ? "Needs the admin role (you are a viewer)" : attrs.title,
  }, text);
  if (onclick) btn.addEventListener("click", onclick);
  return btn;
}

// -- tables ----------------------------------------------------------------------------
/**
 * A responsive table: columns [{key, label, className}] and a row builder returning
 * cells in that order (each a node or text). Narrow screens show each row as a card
 * (CSS uses the data-label of each cell).
 */
function isNothing(cell) {
  return cell instanceof Element && cell.classList.contains("muted") && cell.textContent.trim() === "—";
}

export function table({ columns, caption = null, className = "", empty = "Nothing yet." }) {
  const tbody = h("tbody");
  const tbl = h(`table.rtable${className ? `.${className}` : ""}`,
    caption ? h("caption.sr-only", caption) : null,
    h("thead", h("tr", columns.map((c) => h("th", { scope: "col", class: c.className }, c.label)))),
    tbody);
  const emptyEl = h("p.empty", { hidden: true }, empty);
  const wrap = h("div.table-wrap", tbl, emptyEl);
  const api = {
    el: wrap,
    tbody,
    row(cells, attrs = {}) {
      return h("tr", attrs, cells.map((cell, i) => h("td", {
        "data-label": columns[i].label,
        // a cell that only says "nothing" ("—"): phones leave it out of the row's card
        class: [columns[i].className, isNothing(cell) ? "cell-empty" : null].filter(Boolean).join(" "),
      }, cell)));
    },
    setRows(rows) {
      fill(tbody, rows);
      api.refreshEmpty();
    },
    refreshEmpty() {
      emptyEl.hidden = tbody.children.length > 0;
      tbl.hidden = tbody.children.length === 0;
    },
  };
  api.refreshEmpty();
  return api;
}

/**
 * Cursor paging: "Newest" / "Older" buttons around a loader `load(cursor)` that returns
 * {next_cursor}. Keeps the stack of cursors to go back.
 */
export function pager(load, label = "Pages") {
  const stack = [];
  let current = null;
  let next = null;
  const newer = h("button.btn.btn-small.btn-secondary", { type: "button" }, "← Newer");
  const older = h("button.btn.btn-small.btn-secondary", { type: "button" }, "Older →");
  const where = h("span.pager-where", "");
  const nav = h("nav.pager", { "aria-label": label }, newer, where, older);
  const refresh = () => {
    newer.disabled = stack.length === 0;
    older.disabled = !next;
    where.textContent = stack.length ? `page ${stack.length + 1}` : "newest";
  };
  const go = async (cursor) => {
    const page = await load(cursor);
    current = cursor;
    next = page ? page.next_cursor : null;
    refresh();
  };
  newer.addEventListener("click", () => go(stack.pop() ?? null));
  older.addEventListener("click", () => {
    stack.push(current);
    go(next);
  });
  refresh();
  return {
    el: nav,
    reset: () => { stack.length = 0; return go(null); },
    reload: () => go(current),
    get onFirstPage() { return current === null; },
  };
}

export function field(label, control, { hint = null, id = null } = {}) {
  const cid = id || control.id || newId("f");
  control.id = cid;
  const hintEl = hint ? h("span.hint", { id: `${cid}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div.field", h("label", { for: cid }, label), control, hintEl);
}

export function select(name, options, value = "") {
  return h("select", { name },
    options.map(([v, text]) => h("option", { value: v, selected: v === value || null }, text)));
}

export function errorBox(err) {
  return h("div.notice.notice-error", { role: "alert" }, err && err.message ? err.message : String(err));
}

export function dl(pairs) {
  return h("dl.meta", pairs.filter(Boolean).map(([k, v]) => h("div.meta-item", h("dt", k), h("dd", v))));
}

export function link(href, text, attrs = {}) {
  return h("a", { href, dataset: { nav: "" }, ...attrs }, text);
}

/**
 * "← where you came from": the page the user was on before this one (inside the app),
 * else `fallbackHref` / `fallbackText`. main.js records the previous page.
 */
export function backLink(fallbackHref, fallbackText) {
  const prev = window.__jobsysPrevious;
  const here = window.location.pathname + window.location.search;
  if (prev && prev.path && prev.path !== here) {
    return link(prev.path, `← ${prev.title}`, { class: "back-link" });
  }
  return link(fallbackHref, `← ${fallbackText}`, { class: "back-link" });
}

export function runLink(id, text = null) {
  return link(`/admin/runs/${id}`, text || `#${id}`);
}

export function batchLink(id, text = null) {
  return id ? link(`/admin/batches/${id}`, text || `batch #${id}`) : h("span.muted", "—");
}

export function scheduleLink(id) {
  return id ? link(`/admin/schedules/${encodeURIComponent(id)}`, id) : h("span.muted", "—");
}

export function when(iso, opts) {
  return timeEl(iso, opts);
}

// -- daemon status ---------------------------------------------------------------------
const HEALTH_TITLE = {
  healthy: "Daemon healthy",
  warning: "Daemon warning",
  critical: "Daemon critical",
  unknown: "Daemon status unknown",
};

/**
 * The banner element; `update(status)` fills it from GET /daemon/status or the stream.
 * While the live stream is down the banner says the page is stale instead of showing
 * the last (possibly outdated) verdict; it shows the verdict again once the stream is back.
 */
export function daemonBanner() {
  const title = h("strong.banner-title", "Daemon status…");
  const message = h("span.banner-message", "");
  const problems = h("ul.banner-problems");
  const el = h("section.banner.health-unknown", { role: "status", "aria-live": "polite", "aria-label": "Daemon status" },
    h("span.banner-icon", { "aria-hidden": "true" }, "●"),
    h("div.banner-text", title, " ", message, problems),
    link("/admin/workers", "Workers", { class: "banner-link" }));
  let last = null;
  let readAt = null;
  const stale = () => ["reconnecting", "stopped"].includes(live.liveState());
  const show = () => {
    if (stale()) {
      el.className = "banner health-stale";
      el.dataset.health = "stale";
      title.textContent = "Live updates disconnected:";
      message.textContent = `this page may be stale${readAt ? ` (the daemon status shown was read at ${absText(readAt)})` : ""}; reconnecting…`;
      fill(problems);
      return;
    }
    if (!last) return;
    const health = last.health || "unknown";
    el.className = `banner health-${health}`;
    el.dataset.health = health;
    title.textContent = `${HEALTH_TITLE[health] || health}:`;
    message.textContent = last.health_message || "";
    const extra = (last.problems || []).filter((p) => p !== last.health_message);
    fill(problems, extra.map((p) => h("li", p)));
  };
  let seen = false;
  const off = live.on("state", () => {
    if (el.isConnected) seen = true;
    else if (seen) { off(); return; }
    show();
  });
  return {
    el,
    update(status) {
      if (!status) return;
      last = status;
      readAt = new Date();
      show();
    },
  };
}
