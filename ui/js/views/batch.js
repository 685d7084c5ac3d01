// One batch: its runs in dependency order as a timeline.
import * as api from "../api.js";
import { h, fill, debounce, toast } from "../dom.js";
import { duration, parseTime, plural } from "../format.js";
import {
  actionButton, backLink, batchLink, confirmDialog, dl, errorBox, runLink, scheduleLink, statusBadge, when,
} from "../components.js";

/** Cancel every queued and running run of the batch (after a confirmation). */
async function cancelBatch(batch) {
  const active = batch.runs.filter((r) => ACTIVE.has(r.status));
  const ok = await confirmDialog({
    title: `Cancel batch #${batch.id}?`,
    message: h("p", `${plural(active.length, "run")} of this batch will be cancelled: queued runs do not start, `
      + "running ones are asked to stop, then terminated."),
    confirmText: "Cancel batch",
    cancelText: "Keep running",
    danger: true,
  });
  if (!ok) return null;
  try {
    const updated = await api.post(`/batches/${batch.id}/cancel`, {});
    toast(`Cancel requested for batch #${batch.id}.`, "success");
    return updated;
  } catch (err) {
    if (err.status !== 401) toast(`Could not cancel batch #${batch.id}: ${err.message}`, "error");
    return null;
  }
}

const ACTIVE = new Set(["QUEUED", "RUNNING"]);
const RERUN = new Set(["FAILED", "CANCELLED", "SKIPPED"]);

function niceStep(totalMs) {
  const steps = [100, 250, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000,
    600000, 900000, 1800000, 3600000, 7200000, 21600000, 43200000, 86400000];
  return steps.find((s) => totalMs / s <= 6) || steps[steps.length - 1];
}

/** The timeline: one bar per run, positioned from the batch's creation. */
function timeline(batch, nowMs) {
  const origin = parseTime(batch.created_at);
  const elapsed = origin ? Math.max(0, nowMs - origin.getTime()) : 0;
  const bars = batch.timeline || [];
  const running = ACTIVE.has(batch.status);
  let span = 0;
  for (const b of bars) {
    const end = b.end_ms ?? (b.start_ms !== null ? elapsed : null);
    if (end !== null) span = Math.max(span, end);
  }
  if (running) span = Math.max(span, elapsed);
  span = Math.max(span, 1);
  const pct = (ms) => `${Math.max(0, Math.min(100, (100 * ms) / span)).toFixed(2)}%`;
  const step = niceStep(span);
  const ticks = [];
  for (let t = 0; t <= span; t += step) ticks.push(t);
  const axis = h("div.tl-axis", { "aria-hidden": "true" },
    ticks.map((t) => h("span.tl-tick", { style: `left: ${pct(t)}` }, t === 0 ? "0" : duration(t))));
  const rows = bars.map((b) => {
    const started = b.start_ms !== null && b.start_ms !== undefined;
    const end = b.end_ms ?? (started ? elapsed : null);
    const status = b.status;
    let track;
    let label;
    if (started) {
      const waitStart = b.wait_ms !== null && b.wait_ms !== undefined ? Math.max(0, b.start_ms - b.wait_ms) : null;
      const took = b.duration_ms ?? (end - b.start_ms);
      label = status === "RUNNING" ? `running for ${duration(took)}` : duration(took);
      track = h("div.tl-track",
        waitStart !== null && b.start_ms > waitStart ? h("div.tl-wait", {
          style: `left: ${pct(waitStart)}; width: ${pct(b.start_ms - waitStart)}`,
          title: `queued for ${duration(b.wait_ms)}`,
        }) : null,
        h(`div.tl-bar.status-${status.toLowerCase()}`, {
          style: `left: ${pct(b.start_ms)}; width: max(3px, ${pct(Math.max(0, end - b.start_ms))})`,
          title: `${b.job_name}: ${status}, started +${duration(b.start_ms)}, ${label}`,
        }));
    } else {
      label = status === "SKIPPED" ? "skipped — never ran" : status === "CANCELLED" ? "cancelled before starting"
        : status === "QUEUED" ? "waiting" : "did not start";
      track = h("div.tl-track.tl-none", h("span.tl-none-text", label));
    }
    return h(`li.tl-row.tl-${status.toLowerCase()}`, { dataset: { runId: String(b.run_id), job: b.job_name, status } },
      h("div.tl-label",
        h("div.tl-job", runLink(b.run_id, b.job_name), " ", statusBadge(status),
          b.attempt > 1 ? h("span.muted.small.tl-attempt", ` attempt ${b.attempt}`) : null),
        b.depends_on && b.depends_on.length ? h("div.muted.small", `after ${b.depends_on.join(", ")}`) : null),
      track,
      h("div.tl-dur", started ? label : h("span.muted", "—")));
  });
  return h("div.timeline", { role: "group", "aria-label": "Timeline of the batch's runs" },
    h("div.tl-head", h("div.tl-label", h("span.muted.small", "Job (dependency order)")), axis,
      h("div.tl-dur", h("span.muted.small", "Took"))),
    h("ol.tl-rows", rows));
}

const COUNT_ORDER = ["SUCCESS", "FAILED", "RUNNING", "QUEUED", "SKIPPED", "CANCELLED"];

export async function renderBatch(ctx) {
  const batchId = Number(ctx.params[0]);
  const heading = h("h1", `Batch #${batchId}`);
  const statusEl = h("div.run-status", { "aria-live": "polite" });
  const metaEl = h("div");
  const countsEl = h("div.counts-line");
  const reasonEl = h("div");
  const timelineEl = h("div.timeline-wrap");
  const errorsEl = h("div");
  const actions = h("div.actions");
  fill(ctx.el,
    h("p.crumbs", backLink("/admin/runs", "Runs")),
    h("div.page-head.run-head", heading, statusEl, actions),
    reasonEl, metaEl, countsEl,
    h("section.section", { "aria-labelledby": "tl-title" },
      h("h2", { id: "tl-title" }, "Timeline"),
      h("p.muted", "Bars start when each job started, measured from when the batch was created; the light part is time spent queued."),
      timelineEl, errorsEl));
  let batch = null;
  const render = () => {
    heading.textContent = `Batch #${batch.id}`;
    ctx.title(`Batch #${batch.id}`);
    fill(statusEl, statusBadge(batch.status, { id: "batch-status" }));
    // Re-run failed: once the batch is final, its failed, cancelled and skipped runs.
    const rerunnable = !ACTIVE.has(batch.status)
      && batch.runs.some((r) => !r.next_attempt_id && RERUN.has(r.status));
    // Cancel batch: admins only (viewers are not offered it).
    const cancellable = ACTIVE.has(batch.status) && api.isAdmin()
      && batch.runs.some((r) => ACTIVE.has(r.status) && !r.cancel_requested);
    fill(actions, cancellable ? h("button.btn.btn-danger", { type: "button", id: "cancel-batch", onclick: async () => {
      const updated = await cancelBatch(batch);
      if (updated && ctx.current) { batch = updated; render(); }
    } }, "Cancel batch") : null, rerunnable ? actionButton("Re-run failed", { id: "rerun-batch" }, async () => {
      try {
        const created = await api.post(`/batches/${batch.id}/rerun`, {});
        toast(`Batch #${batch.id} re-run as batch #${created.batch_id}.`, "success");
        if (ctx.current) ctx.navigate(`/admin/batches/${created.batch_id}`);
      } catch (err) {
        if (err.status !== 401) toast(`Could not re-run batch #${batch.id}: ${err.message}`, "error");
      }
    }) : null);
    const what = batch.mode === "GROUP" ? `group ${batch.job_group}` : batch.mode === "JOB"
      ? `job ${(batch.runs[0] || {}).job_name || ""}` : "all jobs";
    // A skipped (or missed) slot never started: say so instead of three empty fields.
    const neverRan = !ACTIVE.has(batch.status) && !batch.started_at
      && batch.runs.every((r) => !r.started_at);
    fill(metaEl, dl([
      ["Schedule", batch.schedule_id ? scheduleLink(batch.schedule_id) : h("span.muted", "— (manual)")],
      ["Trigger", `${batch.trigger}${batch.triggered_by ? ` by ${batch.triggered_by}` : ""}`],
      batch.rerun_of ? ["Re-run of", batchLink(batch.rerun_of)] : null,
      ["Runs", `${what}${batch.skip_dependencies ? " (dependencies skipped)" : ""}`],
      batch.scheduled_for ? ["Slot", when(batch.scheduled_for, { absolute: true })] : null,
      batch.lateness_ms !== null && batch.lateness_ms !== undefined ? ["Fired late by", duration(batch.lateness_ms)] : null,
      ["Created", when(batch.created_at, { absolute: true })],
      ...(neverRan
        ? [["Outcome", h("span.skipped-reason", { id: "batch-skipped" },
          `${batch.status.toLowerCase()}: ${batch.reason || "no reason recorded"}`)]]
        : [["Started", when(batch.started_at, { empty: "not yet" })],
          ["Finished", when(batch.finished_at, { empty: "not yet" })],
          ["Duration", batch.duration_ms !== null && batch.duration_ms !== undefined ? duration(batch.duration_ms) : "—"]]),
    ]));
    const counts = batch.counts || {};
    fill(countsEl, h("span.muted", `${plural(batch.total_runs ?? batch.runs.length, "job")}: `),
      COUNT_ORDER.filter((k) => counts[k]).map((k) => h(`span.count.status-${k.toLowerCase()}`, `${counts[k]} ${k.toLowerCase()}`)));
    fill(reasonEl, batch.reason ? h("div.notice.notice-warn", h("strong", "Reason: "), batch.reason) : null);
    fill(timelineEl, batch.runs.length ? timeline(batch, Date.now()) : h("p.empty", "This batch has no runs (its slot was skipped or missed)."));
    const failed = batch.runs.filter((r) => r.error);
    fill(errorsEl, failed.length ? h("div.batch-errors", h("h3", "Errors"),
      h("ul", failed.map((r) => h("li", runLink(r.id, r.job_name), ": ", h("span.error-text", r.error))))) : null);
  };
  const load = async () => {
    const data = await api.get(`/batches/${batchId}`);
    if (!ctx.current) return;
    batch = data;
    render();
  };
  const reload = debounce(() => load().catch(() => {}), 250);
  ctx.onLeave(() => reload.cancel());
  ctx.on("run", (run) => { if (run.batch_id === batchId) reload(); });
  ctx.on("batch", (b) => { if (b.id === batchId) reload(); });
  ctx.on("open", ({ reconnected }) => { if (reconnected) reload(); });
  // Running bars grow with time.
  ctx.every(1000, () => {
    if (timelineEl.contains(document.activeElement)) return;
    if (batch && ACTIVE.has(batch.status)) fill(timelineEl, timeline(batch, Date.now()));
  });
  try {
    await load();
  } catch (err) {
    if (err.status === 404) {
      fill(ctx.el, h("p.crumbs", backLink("/admin/runs", "Runs")), h("h1", "Batch not found"), errorBox(err));
      return;
    }
    throw err;
  }
}
