// The schedule page's slot sections: the next 10 slots (in the schedule's zone and the
// viewer's, daylight-saving changes marked) and the slot ledger (every slot the cron
// expected in a window, and its fate). The ledger's window lives in the URL.
import * as api from "../api.js";
import { h, fill, newId } from "../dom.js";
import { LOCAL_TZ, duration, parseTime, plural, utcText, zonedText } from "../format.js";
import { batchLink, table } from "../components.js";

const FATE_TEXT = {
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
  running: "Running",
  buffered: "Buffered",
  skipped: "Skipped",
  due: "Due now",
  not_yet_due: "Not yet due",
};
const CAUSE_TEXT = {
  daemon_down: "daemon down",
  overlap: "overlap",
  superseded: "superseded",
  disabled: "disabled at the time",
  not_in_environment: "not in this environment",
  not_in_code: "not in code",
  not_created: "before the schedule existed",
  pruned: "history pruned",
  unknown: "no record",
  all_skipped: "all runs skipped",
};
const PRESETS = [["6h", 6], ["24h", 24], ["3d", 72], ["7d", 168]];
const HOUR = 3600 * 1000;
/** Alike quiet slots in a row shown as one expandable row from this many on. */
const GROUP_MIN = 3;

const offsetFormats = new Map();
/** "GMT+2" for `date` in `timeZone` (the browser's own by default). */
function zoneOffset(date, timeZone = undefined) {
  const key = timeZone || "";
  if (!offsetFormats.has(key)) {
    offsetFormats.set(key, new Intl.DateTimeFormat("en-US", { timeZone, timeZoneName: "shortOffset" }));
  }
  const part = offsetFormats.get(key).formatToParts(date).find((p) => p.type === "timeZoneName");
  return part ? part.value : "";
}

function fatePill(entry) {
  return h(`span.fate.fate-${entry.fate.replace(/_/g, "-")}`, { dataset: { fate: entry.fate } },
    FATE_TEXT[entry.fate] || entry.fate,
    entry.cause && entry.fate === "skipped" ? `: ${CAUSE_TEXT[entry.cause] || entry.cause}` : null);
}

function timing(entry) {
  if (entry.late_ms === null || entry.late_ms === undefined) return null;
  if (entry.on_time) return h("span.on-time", `fired on time (+${duration(entry.late_ms)})`);
  return h("span.late", `fired late by ${duration(entry.late_ms)}`);
}

/** The next 10 slots: UTC, the schedule's zone, the viewer's zone; DST changes marked. */
export function nextSlotsSection(id) {
  const t = table({
    caption: "Next slots",
    className: "slots-table",
    columns: [{ label: "#", className: "col-index" }, { label: "UTC" }, { label: "Schedule's zone" }, { label: `Your time (${LOCAL_TZ})` },
      { label: "Daylight saving" }],
    empty: "No upcoming slots.",
  });
  const zoneNote = h("p.muted");
  const el = h("section.section.next-slots", { "aria-labelledby": "next-slots-title" },
    h("div.section-head", h("h2", { id: "next-slots-title" }, "Next 10 slots"), zoneNote), t.el);
  const load = async () => {
    const data = await api.get(`/schedules/${encodeURIComponent(id)}/slots${api.query({ count: 10 })}`);
    zoneNote.textContent = `Read in ${data.timezone}; the slots do not depend on whether the schedule is enabled.`;
    let previousLocal = zoneOffset(new Date());
    t.setRows(data.slots.map((slot, i) => {
      const date = parseTime(slot.at);
      const mine = zoneOffset(date);
      const notes = [];
      if (slot.note) notes.push(h("span.dst-note", `${data.timezone}: ${slot.note}`));
      if (mine !== previousLocal && LOCAL_TZ !== data.timezone) {
        notes.push(h("span.dst-note", `Your clocks change before this slot (${previousLocal} to ${mine})`));
      }
      previousLocal = mine;
      const marked = Boolean(slot.dst_change) || notes.length > 0;
      return t.row([
        String(i + 1),
        h("code", `${utcText(date)}`),
        h("span", `${slot.local.slice(0, 10)} ${slot.local.slice(11, 16)} `, h("span.muted", `UTC${slot.utc_offset}`)),
        h("span", `${zonedText(date).slice(0, 16)} `, h("span.muted", mine)),
        notes.length ? h("div.dst-notes", notes) : h("span.muted", "—"),
      ], { dataset: { dst: String(marked) }, class: marked ? "dst-marked" : null });
    }));
  };
  return { el, load };
}

function readWindow(query) {
  return { from: query.get("from") || "", to: query.get("to") || "", problems: query.get("problems") === "1" };
}

/** "2030-01-07T12:00" for a datetime-local input (browser zone) from an ISO instant. */
function toLocalInput(iso) {
  const date = parseTime(iso);
  if (!date) return "";
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function fromLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString().replace(".000Z", "Z");
}

function isoZ(ms) {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

/** The slot ledger with its window chooser; the window is kept in the URL (pushState). */
export function ledgerSection(ctx, id) {
  let win = readWindow(ctx.query);
  const presetId = newId("ledger-preset");
  const preset = h("select", { id: presetId, name: "window" },
    h("option", { value: "" }, "custom"),
    PRESETS.map(([key, hours]) => h("option", { value: key }, `last ${hours < 48 ? `${hours} hours` : `${hours / 24} days`} (and the next hour)`)));
  const fromId = newId("ledger-from");
  const toId = newId("ledger-to");
  const from = h("input", { id: fromId, type: "datetime-local", step: "60" });
  const to = h("input", { id: toId, type: "datetime-local", step: "60" });
  const problemsId = newId("ledger-problems");
  const problems = h("input", { id: problemsId, type: "checkbox" });
  const form = h("form.filters.ledger-window", { "aria-label": "Ledger window" },
    h("div.field.field-inline", h("label", { for: presetId }, "Window"), preset),
    h("div.field.field-inline", h("label", { for: fromId }, `From (${LOCAL_TZ})`), from),
    h("div.field.field-inline", h("label", { for: toId }, `Before (${LOCAL_TZ})`), to),
    h("div.filter-buttons", h("button.btn.btn-small.btn-primary", { type: "submit" }, "Show")),
    h("div.check-line", problems, h("label", { for: problemsId }, "Only slots that did not succeed")));
  const problem = h("div.notice.notice-error", { role: "alert", hidden: true });
  const summary = h("div.ledger-summary", { "aria-live": "polite" });
  const t = table({
    caption: "Slot ledger",
    className: "ledger-table",
    columns: [{ label: "Slot (UTC)" }, { label: "Schedule's zone" }, { label: "Fate" }, { label: "Detail" }, { label: "Batch" }],
    empty: "No slot in this window.",
  });
  let data = null;

  const slotRow = (e) => t.row([
    h("code", utcText(parseTime(e.slot))),
    `${e.local.slice(0, 10)} ${e.local.slice(11, 16)}`,
    fatePill(e),
    h("div.ledger-detail", timing(e), e.reason ? h("span.ledger-reason", e.reason) : null),
    e.batch_id ? batchLink(e.batch_id, `#${e.batch_id}`) : h("span.muted", "—"),
  ], { dataset: { slot: e.slot, fate: e.fate, cause: e.cause || "" } });

  /** One row for a run of alike quiet slots (newest first in `run`); a button shows them. */
  const groupRows = (run) => {
    const members = run.map((e) => {
      const tr = slotRow(e);
      tr.hidden = true;
      tr.classList.add("ledger-member");
      return tr;
    });
    const [newest, oldest] = [run[0], run[run.length - 1]];
    const label = `${run.length} slots`;
    const toggle = h("button.btn.btn-small.btn-secondary.ledger-expand", {
      type: "button", "aria-expanded": "false",
      "aria-label": `Show the ${label} from ${utcText(parseTime(oldest.slot))} to ${utcText(parseTime(newest.slot))} UTC`,
    }, `▸ ${label}`);
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      toggle.textContent = `${open ? "▾" : "▸"} ${label}`;
      for (const tr of members) tr.hidden = !open;
    });
    const span = (iso) => `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
    const head = t.row([
      h("div.ledger-range", toggle, h("code", `${utcText(parseTime(oldest.slot)).slice(0, 16)} – ${utcText(parseTime(newest.slot)).slice(0, 16)}`)),
      `${span(oldest.local)} – ${span(newest.local)}`,
      fatePill(newest),
      h("div.ledger-detail", newest.fate === "succeeded"
        ? h("span.on-time", `each fired on time and succeeded`)
        : h("span.ledger-reason", newest.reason || CAUSE_TEXT[newest.cause] || "")),
      h("span.muted", "—"),
    ], { class: "ledger-group", dataset: { fate: newest.fate, cause: newest.cause || "", slots: String(run.length) } });
    return [head, ...members];
  };

  const show = () => {
    if (!data) return;
    const list = data.slots.slice().reverse().filter((e) => !win.problems
      || !["succeeded", "running", "not_yet_due", "due", "buffered"].includes(e.fate));
    // Runs of alike quiet slots (on time and succeeded; skipped for one cause) become one
    // row: a day of an every-5-minutes schedule is 288 rows, too long on a phone.
    const quiet = (e) => (e.fate === "succeeded" && e.on_time) || e.fate === "skipped";
    const kind = (e) => `${e.fate}|${e.cause || ""}`;
    const rows = [];
    for (let i = 0; i < list.length;) {
      let j = i + 1;
      if (quiet(list[i])) while (j < list.length && quiet(list[j]) && kind(list[j]) === kind(list[i])) j += 1;
      if (j - i >= GROUP_MIN) rows.push(...groupRows(list.slice(i, j)));
      else for (const e of list.slice(i, j)) rows.push(slotRow(e));
      i = j;
    }
    t.setRows(rows);
  };

  const sync = () => {
    from.value = toLocalInput(data ? data.from : win.from);
    to.value = toLocalInput(data ? data.to : win.to);
    problems.checked = win.problems;
    const match = PRESETS.find(([key]) => key === ctx.query.get("window"));
    preset.value = match && !win.from ? match[0] : (!win.from && !win.to ? "24h" : "");
  };

  const load = async () => {
    problem.hidden = true;
    const presetKey = new URL(window.location.href).searchParams.get("window");
    const p = PRESETS.find(([key]) => key === presetKey);
    const range = p && !win.from && !win.to
      ? { from: isoZ(Date.now() - p[1] * HOUR), to: isoZ(Date.now() + HOUR) }
      : { from: win.from, to: win.to };
    try {
      data = await api.get(`/schedules/${encodeURIComponent(id)}/ledger${api.query(range)}`);
    } catch (err) {
      if (err.status === 401 || !ctx.current) return;
      data = null;
      problem.textContent = err.message;
      problem.hidden = false;
      fill(summary);
      t.setRows([]);
      return;
    }
    if (!ctx.current) return;
    const counts = data.counts;
    const order = ["succeeded", "failed", "cancelled", "running", "buffered", "skipped", "due", "not_yet_due"];
    const causes = Object.entries(data.causes).map(([c, n]) => `${n} ${CAUSE_TEXT[c] || c}`).join(", ");
    fill(summary,
      h("p.ledger-total", h("strong", `Every one of the ${plural(data.expected, "expected slot")} is accounted for`),
        ` between ${utcText(parseTime(data.from))} and ${utcText(parseTime(data.to))} UTC (grace ${data.grace_s} s).`),
      h("ul.ledger-counts", order.filter((k) => counts[k]).map((k) => h(`li.fate.fate-${k.replace(/_/g, "-")}`,
        { dataset: { fate: k } }, `${counts[k]} ${FATE_TEXT[k].toLowerCase()}`,
        k === "skipped" && causes ? ` (${causes})` : null))),
      data.unmatched.length ? h("p.muted", `${plural(data.unmatched.length, "batch", "batches")} in this window `
        + "fired for instants the current cron does not have (the cron changed).") : null);
    sync();
    show();
  };

  const push = (next) => {
    win = { ...win, ...next };
    const url = new URL(window.location.href);
    for (const key of ["from", "to", "window", "problems"]) url.searchParams.delete(key);
    if (next.window) url.searchParams.set("window", next.window);
    if (win.from) url.searchParams.set("from", win.from);
    if (win.to) url.searchParams.set("to", win.to);
    if (win.problems) url.searchParams.set("problems", "1");
    window.history.pushState(null, "", url.pathname + url.search);
  };
  preset.addEventListener("change", () => {
    if (!preset.value) return;
    push({ from: "", to: "", window: preset.value });
    load();
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    push({ from: fromLocalInput(from.value), to: fromLocalInput(to.value) });
    load();
  });
  problems.addEventListener("change", () => {
    const keep = new URL(window.location.href).searchParams.get("window");
    push({ problems: problems.checked, window: keep || "" });
    show();
  });
  sync();
  const el = h("section.section.ledger", { "aria-labelledby": "ledger-title" },
    h("div.section-head", h("h2", { id: "ledger-title" }, "Slot ledger"),
      h("p.muted", "Every slot the cron expected in the window, newest first, and what became of it: fired on time "
        + "or late, succeeded or failed, or skipped and why.")),
    form, problem, summary, t.el);
  return { el, load };
}
