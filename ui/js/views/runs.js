// Runs: every run, filtered (job, status, trigger, schedule, queued from/to, error text),
// newest first. Filters and the page live in the URL, so reload and Back show the same.
import * as api from "../api.js";
import { h, fill, toast, swap, newId } from "../dom.js";
import { duration, elapsedEl, parseTime, LOCAL_TZ } from "../format.js";
import { batchLink, link, runLink, scheduleLink, select, statusBadge, table, when } from "../components.js";

export const STATUSES = ["QUEUED", "RUNNING", "SUCCESS", "FAILED", "CANCELLED", "SKIPPED"];
export const TRIGGERS = ["CRON", "MANUAL", "EVENT", "BACKFILL"];
const FILTERS = ["job", "status", "trigger", "schedule_id", "from", "to", "error"];
const PAGE_SIZE = 25;

export function jobLink(name) {
  return link(`/admin/jobs/${encodeURIComponent(name)}`, name, { class: "job-link" });
}

/** "2030-01-07T12:00" (the browser's zone) for a datetime-local input, from an ISO instant. */
function toLocalInput(iso) {
  const date = parseTime(iso);
  if (!date) return "";
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

/** The ISO instant (UTC, "Z") of a datetime-local value read in the browser's zone. */
function fromLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString().replace(".000Z", "Z");
}

/** The state in the URL: filters, the cursor of this page and the cursors before it. */
function readState(query) {
  const state = { filters: {}, cursor: query.get("cursor") || "", trail: [] };
  for (const name of FILTERS) state.filters[name] = query.get(name) || "";
  const trail = query.get("trail");
  if (trail) state.trail = trail.split(".").map((c) => (c === "0" ? "" : c));
  return state;
}

function stateQuery(state) {
  return api.query({
    ...state.filters,
    cursor: state.cursor,
    trail: state.trail.length ? state.trail.map((c) => c || "0").join(".") : "",
  });
}

export async function renderRuns(ctx) {
  let state = readState(ctx.query);
  const pagePath = () => `/job-runs${api.query({ ...state.filters, limit: PAGE_SIZE, cursor: state.cursor })}`;
  // The first page is asked for with the filters' choices, not after them.
  let firstPage = api.get(pagePath());
  firstPage.catch(() => {}); // its error is shown by load()
  const [jobsData, schedulesData] = await Promise.all([api.get("/jobs"), api.get("/schedules")]);
  if (!ctx.current) return;
  const f = state.filters;
  const controls = {};
  const field = (name, label, control) => {
    control.id = newId(`runs-${name}`);
    control.name = name;
    controls[name] = control;
    return h("div.field.field-inline", h("label", { for: control.id }, label), control);
  };
  const choice = (name, label, options) => field(name, label, select(name, [["", "any"], ...options], f[name]));
  const timeInput = (name) => h("input", { type: "datetime-local", value: toLocalInput(f[name]), step: "60" });
  const errorInput = h("input", { type: "search", value: f.error, placeholder: "e.g. timeout", maxlength: "200" });
  const form = h("form.filters.runs-filters", { "aria-label": "Filter runs" },
    choice("job", "Job", jobsData.jobs.map((j) => [j.name, j.name])),
    choice("status", "Status", STATUSES.map((s) => [s, s])),
    choice("trigger", "Trigger", TRIGGERS.map((s) => [s, s])),
    choice("schedule_id", "Schedule", schedulesData.schedules.map((s) => [s.id, s.name])),
    field("from", `Queued from (${LOCAL_TZ})`, timeInput("from")),
    field("to", `Queued before (${LOCAL_TZ})`, timeInput("to")),
    field("error", "Error contains", errorInput),
    h("div.filter-buttons",
      h("button.btn.btn-small.btn-primary", { type: "submit" }, "Apply"),
      h("button.btn.btn-small.btn-secondary", { type: "button", onclick: () => go({}) }, "Clear")));
  const problem = h("div.notice.notice-error", { role: "alert", hidden: true });
  const summary = h("p.muted.runs-summary", { "aria-live": "polite" });
  // An error search reads a bounded number of runs per page (GET /job-runs `searched`).
  const searchNote = h("p.notice.search-note", { hidden: true });
  const t = table({
    caption: "Runs",
    className: "history-table runs-table",
    columns: [{ label: "Run" }, { label: "Job" }, { label: "Status" }, { label: "Trigger" },
      { label: "Schedule" }, { label: "Batch" }, { label: "Queued" }, { label: "Duration" },
      { label: "Error", className: "col-error" }],
    empty: "No runs match these filters.",
  });
  const rows = new Map();
  const row = (run) => t.row([
    runLink(run.id),
    jobLink(run.job_name),
    statusBadge(run.status),
    h("span", run.trigger, run.triggered_by ? h("span.muted.small", ` ${run.triggered_by}`) : null),
    scheduleLink(run.schedule_id),
    batchLink(run.batch_id),
    when(run.queued_at),
    run.status === "RUNNING" ? elapsedEl(run.started_at) : duration(run.duration_ms),
    run.error ? h("span.run-error-text", { title: run.error }, run.error.split("\n")[0].slice(0, 140))
      : h("span.muted", "—"),
  ], { dataset: { runId: String(run.id), status: run.status, job: run.job_name } });
  const newer = h("button.btn.btn-small.btn-secondary", { type: "button" }, "← Newer");
  const older = h("button.btn.btn-small.btn-secondary", { type: "button" }, "Older →");
  const where = h("span.pager-where");
  const pagerEl = h("nav.pager", { "aria-label": "Run pages" }, newer, where, older);
  let next = null;

  const load = async () => {
    problem.hidden = true;
    let page;
    try {
      const pending = firstPage || api.get(pagePath());
      firstPage = null;
      page = await pending;
    } catch (err) {
      if (err.status === 401 || !ctx.current) return;
      problem.textContent = err.message;
      problem.hidden = false;
      t.setRows([]);
      return;
    }
    if (!ctx.current) return;
    rows.clear();
    t.setRows(page.runs.map((run) => {
      const el = row(run);
      rows.set(run.id, el);
      return el;
    }));
    next = page.next_cursor;
    newer.disabled = !state.cursor;
    older.disabled = !next;
    where.textContent = state.cursor ? `page ${state.trail.length + 1}` : "newest";
    const active = FILTERS.filter((k) => state.filters[k]).length;
    summary.textContent = `${page.runs.length ? `${page.runs.length} runs shown` : "No runs"}`
      + (active ? `, ${active} filter${active > 1 ? "s" : ""} on` : ", no filter")
      + (state.filters.from || state.filters.to ? "; newest queued first" : "");
    const s = page.searched;
    searchNote.hidden = !s;
    if (s) {
      fill(searchNote,
        `The error search reads ${s.runs.toLocaleString("en")} runs a page; this page searched back to run #${s.last_id}`,
        s.last_queued_at ? [" (queued ", when(s.last_queued_at, { absolute: true }), ")"] : null,
        `. ${page.runs.length ? "Older matches may exist: " : "No match yet: "}`,
        h("strong", "Older →"), " searches further back.");
    }
  };

  /** A new URL (pushed: Back returns to the previous filters or page), then load. */
  const go = (filters, cursor = "", trail = []) => {
    state = { filters: Object.fromEntries(FILTERS.map((k) => [k, filters[k] || ""])), cursor, trail };
    window.history.pushState(null, "", window.location.pathname + stateQuery(state));
    for (const name of ["job", "status", "trigger", "schedule_id"]) controls[name].value = state.filters[name];
    controls.from.value = toLocalInput(state.filters.from);
    controls.to.value = toLocalInput(state.filters.to);
    controls.error.value = state.filters.error;
    load().catch((err) => err.status !== 401 && toast(err.message, "error"));
  };
  const fromForm = () => ({
    job: controls.job.value,
    status: controls.status.value,
    trigger: controls.trigger.value,
    schedule_id: controls.schedule_id.value,
    from: fromLocalInput(controls.from.value),
    to: fromLocalInput(controls.to.value),
    error: controls.error.value.trim(),
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); go(fromForm()); });
  for (const sel of form.querySelectorAll("select")) sel.addEventListener("change", () => go(fromForm()));
  older.addEventListener("click", () => go(state.filters, String(next), [...state.trail, state.cursor]));
  newer.addEventListener("click", () => {
    const trail = state.trail.slice(0, -1);
    go(state.filters, state.trail[state.trail.length - 1] || "", trail);
  });

  const matches = (run) => (!state.filters.job || run.job_name === state.filters.job)
    && (!state.filters.status || state.filters.status.split(",").includes(run.status))
    && (!state.filters.trigger || state.filters.trigger.split(",").includes(run.trigger))
    && (!state.filters.schedule_id || run.schedule_id === state.filters.schedule_id)
    && !state.filters.error && !state.filters.to
    && (!state.filters.from || run.queued_at >= state.filters.from);
  ctx.on("run", (run) => {
    const known = rows.get(run.id);
    if (known) {
      rows.set(run.id, swap(known, row(run)));
      return;
    }
    if (state.cursor || !matches(run)) return;
    if (run.id < Math.max(0, ...rows.keys())) return;
    const el = row(run);
    t.tbody.prepend(el);
    rows.set(run.id, el);
    while (t.tbody.children.length > PAGE_SIZE) {
      const last = t.tbody.lastElementChild;
      rows.delete(Number(last.dataset.runId));
      last.remove();
    }
    t.refreshEmpty();
  });
  ctx.on("open", ({ reconnected }) => { if (reconnected) load().catch(() => {}); });

  fill(ctx.el,
    h("div.page-head", h("h1", "Runs"),
      h("p.lede", "Every run of every job, newest first. The filters and the page are kept in the address: "
        + "reload, Back and shared links show the same runs.")),
    form, problem, summary, searchNote, t.el, pagerEl);
  await load();
}
