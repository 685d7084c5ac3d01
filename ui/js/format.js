// Pure display helpers: relative and absolute times, durations, JSON.
import { h } from "./dom.js";

export const LOCAL_TZ = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";

export function parseTime(iso) {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : new Date(t);
}

const pad = (n) => String(n).padStart(2, "0");

/** "2026-11-25 02:00:00" in UTC. */
export function utcText(date) {
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} `
    + `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
}

const zoneFormats = new Map();
/** "2026-11-25 03:00:00" in `timeZone` (the browser's by default). */
export function zonedText(date, timeZone = undefined) {
  const key = timeZone || "";
  if (!zoneFormats.has(key)) {
    try {
      zoneFormats.set(key, new Intl.DateTimeFormat("en-CA", {
        timeZone, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      }));
    } catch {
      zoneFormats.set(key, null);
    }
  }
  const fmt = zoneFormats.get(key);
  if (!fmt) return utcText(date);
  const parts = Object.fromEntries(fmt.formatToParts(date).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
}

// -- UTC or local: how absolute times are written, remembered per browser ---------------
const TIME_MODE_KEY = "jobsys.timeMode";

/** "utc" (the default: what the API, CLI and logs speak) or "local" (the browser's zone). */
export function timeMode() {
  try {
    return window.localStorage.getItem(TIME_MODE_KEY) === "local" ? "local" : "utc";
  } catch {
    return "utc";
  }
}

export function setTimeMode(mode) {
  try {
    window.localStorage.setItem(TIME_MODE_KEY, mode === "local" ? "local" : "utc");
  } catch {
    // storage refused (private mode): the choice lasts until the page reloads
  }
}

/** "2026-11-25 02:00:00 UTC" or "2026-11-25 03:00:00 Europe/Paris", per the switch. */
export function absText(date) {
  return timeMode() === "local" ? `${zonedText(date)} ${LOCAL_TZ}` : `${utcText(date)} UTC`;
}

/** The tooltip of a time: UTC, the browser's zone and optionally the schedule's zone. */
export function absoluteTitle(date, extraZone = null) {
  const lines = [`${utcText(date)} UTC`, `${zonedText(date)} local (${LOCAL_TZ})`];
  if (extraZone && extraZone !== "UTC" && extraZone !== LOCAL_TZ) {
    lines.push(`${zonedText(date, extraZone)} ${extraZone}`);
  }
  return lines.join("\n");
}

/** "in 4 min", "2 h ago", "just now". */
export function relative(date, now = Date.now()) {
  const diff = (date.getTime() - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 5) return "just now";
  let text;
  if (abs < 60) text = `${Math.floor(abs)} s`;
  else if (abs < 3600) text = `${Math.floor(abs / 60)} min`;
  else if (abs < 86400) {
    const hours = Math.floor(abs / 3600);
    const mins = Math.floor((abs % 3600) / 60);
    text = hours < 10 && mins ? `${hours} h ${mins} min` : `${hours} h`;
  } else if (abs < 86400 * 60) text = `${Math.floor(abs / 86400)} d`;
  else return `on ${utcText(date).slice(0, 10)}`;
  return diff > 0 ? `in ${text}` : `${text} ago`;
}

/** A <time> element showing a relative time that the page ticker keeps fresh. */
export function timeEl(iso, { zone = null, empty = "—", absolute = false } = {}) {
  const date = parseTime(iso);
  if (!date) return h("span.muted", empty);
  const el = h("time", {
    datetime: date.toISOString(),
    title: absoluteTitle(date, zone),
    dataset: { rel: String(date.getTime()) },
  }, relative(date));
  if (!absolute) return el;
  return h("span.time-abs", el, h("span.abs", ` (${absText(date)})`));
}

/** "850 ms", "1.5 s", "2 min 5 s", "1 h 2 min". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const total = Math.round(s);
  if (total < 3600) {
    const rest = total % 60;
    return rest ? `${Math.floor(total / 60)} min ${rest} s` : `${Math.floor(total / 60)} min`;
  }
  const mins = Math.floor((total % 3600) / 60);
  return mins ? `${Math.floor(total / 3600)} h ${mins} min` : `${Math.floor(total / 3600)} h`;
}

/** An element whose text is the time elapsed since `iso`, kept ticking by the ticker. */
export function elapsedEl(iso, untilIso = null) {
  const start = parseTime(iso);
  if (!start) return h("span.muted", "—");
  const end = parseTime(untilIso);
  if (end) return h("span.elapsed", duration(end - start));
  return h("span.elapsed", {
    dataset: { elapsed: String(start.getTime()) },
    title: `since ${utcText(start)} UTC`,
  }, duration(Date.now() - start.getTime()));
}

/** Refresh every relative time and elapsed counter on the page. */
export function tick(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll("[data-rel]")) {
    const text = relative(new Date(Number(el.dataset.rel)), now);
    if (el.textContent !== text) el.textContent = text;
  }
  for (const el of root.querySelectorAll("[data-elapsed]")) {
    const text = duration(now - Number(el.dataset.elapsed));
    if (el.textContent !== text) el.textContent = text;
  }
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** Compact one-line JSON for tables. */
export function compactJson(value) {
  if (value === null || value === undefined) return "—";
  const text = JSON.stringify(value);
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}
