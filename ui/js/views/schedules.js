// Schedules: the daemon banner, every schedule with its switch, Run Now and history.
import * as api from "../api.js";
import { h, fill, toast, announce, debounce } from "../dom.js";
import { duration, parseTime, plural, zonedText } from "../format.js";
import {
  actionButton, backLink, batchLink, confirmDialog, daemonBanner, errorBox, link, openDialog, pager, pill,
  setSwitch, statusBadge, table, toggleSwitch, when,
} from "../components.js";
import { ledgerSection, nextSlotsSection } from "./slots.js";

const ACTIVE = new Set(["QUEUED", "RUNNING"]);
const FINISHED = new Set(["SUCCESS", "FAILED", "CANCELLED"]);
const rank = (status) => (status === "QUEUED" ? 0 : status === "RUNNING" ? 1 : 2);

function scopeText(s) {
  if (s.execution_mode === "JOB") return `job ${s.job_name} with its schedule's params`;
  return s.execution_mode === "GROUP" ? `the jobs of group ${s.job_group}` : "all jobs, in dependency order";
}

function scopeLine(s) {
  if (s.execution_mode === "JOB") {
    const params = s.job_params && Object.keys(s.job_params).length ? JSON.stringify(s.job_params) : null;
    return [pill("JOB", "info", "Runs one job with the schedule's params"), " ", h("strong", s.job_name),
      params ? [" ", h("code.job-params", params)] : null];
  }
  return s.execution_mode === "GROUP"
    ? [pill("GROUP", "info", "Runs one group's jobs, in dependency order"), " ", h("strong", s.job_group)]
    : [pill("ALL_JOBS", "info", "Runs every job, in dependency order"), " ", h("span", "every job")];
}

/** Who disabled the schedule, when and why (nothing while it is enabled). */
function pausedInfo(s) {
  if (s.enabled || !s.paused_at) return null;
  return h("div.sched-paused", { "data-paused": "" },
    h("span.paused-who", `Disabled by ${s.paused_by || "unknown"}`), " ", when(s.paused_at),
    s.paused_note ? [": ", h("q.paused-note", s.paused_note)] : null);
}

/** Ask for the optional reason of a disable; resolves null when cancelled. */
function askPauseNote(s) {
  const input = h("textarea", { id: "pause-note", name: "note", rows: "3", maxlength: "1000",
    placeholder: "e.g. upstream API down until Monday" });
  return openDialog({
    title: `Disable ${s.name}?`,
    body: [h("p", "It will not fire until enabled again; a running batch goes on."),
      h("label", { for: "pause-note" }, "Note (optional): why"), input],
    actions: [
      (close) => h("button.btn.btn-secondary", { type: "button", onclick: () => close(null) }, "Cancel"),
      (close) => h("button.btn.btn-danger", { type: "button", dataset: { confirm: "" },
        onclick: () => close({ note: input.value.trim() }) }, "Disable"),
    ],
    onOpen: () => input.focus(),
  }).then((v) => v || null);
}

/** "02:00" for crons with a fixed minute and hour, else null. */
function fixedTime(cron) {
  const m = /^(\d{1,2})\s+(\d{1,2})\s/.exec(cron.trim());
  return m ? `${m[2].padStart(2, "0")}:${m[1].padStart(2, "0")}` : null;
}

function catchUpText(seconds) {
  if (!seconds) return "the catch-up window";
  if (seconds % 3600 === 0) return plural(seconds / 3600, "hour");
  if (seconds % 60 === 0) return plural(seconds / 60, "minute");
  return plural(seconds, "second");
}

/** What a slot does while the previous batch still runs (the overlap policy). */
const OVERLAP_TEXT = {
  SKIP: "A slot that comes while the previous batch still runs is skipped (and recorded).",
  BUFFER_ONE: "A slot that comes while the previous batch still runs fires once right after it ends; "
    + "further slots meanwhile are skipped (and recorded).",
  ALLOW: "Overlap is allowed: a slot fires even while the previous batch still runs "
    + "(a job still never runs twice at once).",
  CANCEL_OTHER: "A slot that comes while the previous batch still runs cancels that batch, then starts.",
};

/** The missed-run policy, explained in plain words. */
export function policyExplanation(s) {
  const next = parseTime(s.next_run_at);
  const at = next ? zonedText(next, s.timezone).slice(11, 16) : fixedTime(s.cron);
  const example = at ? ` at ${at}${s.timezone !== "UTC" ? ` (${s.timezone})` : ""}` : " when a slot is due";
  const overlap = OVERLAP_TEXT[s.overlap_policy] || OVERLAP_TEXT.SKIP;
  if (s.missed_policy === "RUN_ONCE") {
    return {
      title: "Missed runs are caught up once",
      text: `If the daemon is down${example}, the jobs run once as soon as a daemon is back `
        + `(for slots missed within the last ${catchUpText(s.max_catch_up_s)}), `
        + "then the schedule continues on its normal slots. Several missed slots give one run, not one each.",
      overlap,
      detail: s.missed_policy_description,
    };
  }
  return {
    title: "Missed runs are skipped",
    text: `If the daemon is down${example}, this schedule waits for the next slot: a slot not `
      + `fired within ${s.grace_s} s of its time never runs late. Skipped slots are listed in the history.`,
    overlap,
    detail: s.missed_policy_description,
  };
}

/**
 * Backfill: from/to (UTC instants, "to" excluded), a dry-run preview listing every slot
 * (and those that already have a batch), then confirm to queue one batch per new slot.
 */
export function openBackfillDialog(s) {
  const path = `/schedules/${encodeURIComponent(s.id)}/backfill`;
  const from = h("input", { id: "backfill-from", type: "text", placeholder: "2027-11-06T00:00:00Z", autocomplete: "off" });
  const to = h("input", { id: "backfill-to", type: "text", placeholder: "2027-11-08T00:00:00Z", autocomplete: "off" });
  const error = h("p.backfill-error.field-error", { role: "alert", hidden: true });
  const list = h("ol.backfill-slots", { "aria-label": "Slots to backfill" });
  const summary = h("p.backfill-summary", { "aria-live": "polite" });
  let previewed = null; // the range the preview showed: confirm runs exactly that
  const preview = h("button.btn.btn-secondary.btn-backfill-preview", { type: "button" }, "Preview slots");
  const confirm = h("button.btn.btn-primary.btn-backfill-confirm", { type: "button", disabled: true }, "Backfill");
  const range = () => ({ from: from.value.trim(), to: to.value.trim() });
  const fail = (err) => {
    error.textContent = err.message;
    error.hidden = false;
  };
  const reset = () => { previewed = null; confirm.disabled = true; };
  from.addEventListener("input", reset);
  to.addEventListener("input", reset);
  preview.addEventListener("click", async () => {
    error.hidden = true;
    reset();
    fill(list);
    summary.textContent = "";
    try {
      const got = await api.post(path, { ...range(), dry_run: true });
      fill(list, got.slots.map((e) => h("li.backfill-slot", { dataset: { existing: String(e.existing) } },
        h("code", e.slot),
        e.existing ? h("span.muted", ` already has batch #${e.batch_id} (${e.trigger}, ${e.status}): left alone`) : null)));
      const fresh = got.slots.length - got.existing;
      summary.textContent = `${plural(got.slots.length, "slot")} in the range; ${plural(fresh, "new batch", "new batches")} `
        + `would be queued, ${got.existing} already had one. They run in slot order, one at a time.`;
      previewed = range();
      confirm.disabled = fresh === 0;
      confirm.textContent = `Backfill ${plural(fresh, "slot")}`;
    } catch (err) {
      if (err.status !== 401) fail(err);
    }
  });
  return openDialog({
    title: `Backfill ${s.name}`,
    wide: true,
    body: [
      h("p", `One batch of ${scopeText(s)} per past slot of ${s.cron} (${s.timezone}) in the range; `
        + "slots that already have a batch are left alone."),
      h("div.field", h("label", { for: "backfill-from" }, "From (ISO-8601, included)"), from),
      h("div.field", h("label", { for: "backfill-to" }, "To (ISO-8601, excluded)"), to),
      error, summary, list,
    ],
    actions: [
      (close) => h("button.btn.btn-secondary", { type: "button", onclick: () => close(false) }, "Cancel"),
      preview,
      (close) => {
        confirm.addEventListener("click", async () => {
          if (!previewed) return;
          confirm.disabled = true;
          try {
            const got = await api.post(path, { ...previewed, dry_run: false });
            toast(`${s.name}: queued ${plural(got.created, "backfill batch", "backfill batches")}`
              + (got.existing ? `; ${got.existing} slot(s) already had one.` : "."), "success");
            close(true);
          } catch (err) {
            if (err.status !== 401) fail(err);
            confirm.disabled = false;
          }
        });
        return confirm;
      },
    ],
    onOpen: () => from.focus(),
  });
}

/** The newest daemon status seen (for the reason a schedule is overdue). */
let daemonState = null;

function overdueReason(s) {
  if (daemonState && !daemonState.daemon_running) return "no daemon is running";
  if (s.locked_by) return `daemon ${s.locked_by} is firing it`;
  if (daemonState && (daemonState.overdue_schedules || []).includes(s.id)) {
    return `not fired within its ${s.grace_s} s grace; the daemon may be busy or behind`;
  }
  return `waiting for the daemon to fire it (grace ${s.grace_s} s)`;
}

function jobsCount(batch) {
  if (!batch) return null;
  const counts = batch.counts || {};
  const total = batch.total_runs ?? Object.values(counts).reduce((a, b) => a + b, 0);
  return plural(total, "job");
}

/**
 * One schedule: a <tbody> with its main row, its policy row and a strip showing the runs
 * of its current batch. `update(s)` patches it in place (the switch keeps focus).
 */
class ScheduleRow {
  constructor(s, { onTrigger, detail = false }) {
    this.s = s;
    this.detail = detail;
    this.lastFinished = null; // newest batch with an outcome
    this.skipped = new Map(); // skipped slots newer than it, by id
    this.historyRead = false;
    this.strip = { batchId: null, runs: new Map() };
    this.onTrigger = onTrigger;
    this.cells = {
      name: h("td.cell-name", { "data-label": "Schedule" }),
      when: h("td.cell-when", { "data-label": "When" }),
      enabled: h("td.cell-enabled", { "data-label": "Enabled" }),
      last: h("td.cell-last", { "data-label": "Last run" }),
      next: h("td.cell-next", { "data-label": "Next run" }),
      actions: h("td.cell-actions", { "data-label": "Actions" }),
    };
    this.switch = toggleSwitch({
      checked: s.enabled,
      label: `Enabled: ${s.name}`,
      onToggle: (next) => this.toggle(next),
    });
    this.enabledNote = h("span.switch-note");
    fill(this.cells.enabled, h("div.switch-wrap", this.switch, this.enabledNote));
    this.runNow = actionButton("Run Now", { class: "btn-primary btn-run-now", "aria-label": `Run Now: ${s.name}` },
      () => this.trigger());
    const history = detail ? null : link(`/admin/schedules/${encodeURIComponent(s.id)}`, "History",
      { class: "btn btn-secondary", "aria-label": `History of ${s.name}` });
    // Viewers do not see Backfill at all (it creates many batches at once).
    const backfill = api.isAdmin()
      ? h("button.btn.btn-secondary.btn-backfill", {
        type: "button", "aria-label": `Backfill: ${s.name}`, onclick: () => openBackfillDialog(this.s),
      }, "Backfill")
      : null;
    fill(this.cells.actions, h("div.actions", this.runNow, backfill, history));
    this.policyCell = h("td.cell-policy", { colspan: "6" });
    this.stripList = h("ul.strip-runs");
    this.stripTitle = h("span.strip-title");
    this.stripCell = h("td.cell-strip", { colspan: "6" },
      h("div.batch-strip", { "aria-live": "polite" }, this.stripTitle, this.stripList));
    this.stripRow = h("tr.row-strip", { hidden: true }, this.stripCell);
    // The policy is explained in full once: on the schedule's page (the list has a legend).
    this.el = h("tbody.schedule", { id: `schedule-${s.id}`, dataset: { scheduleId: s.id } },
      h("tr.row-main", Object.values(this.cells)),
      detail ? h("tr.row-policy", this.policyCell) : null,
      this.stripRow);
    this.update(s);
  }

  update(s) {
    this.s = s;
    const inactive = !s.runnable;
    this.el.classList.toggle("inactive", inactive);
    this.el.dataset.enabled = String(s.enabled);
    fill(this.cells.name,
      h("div.sched-name", this.detail ? h("span", s.name)
        : link(`/admin/schedules/${encodeURIComponent(s.id)}`, s.name)),
      s.description ? h("div.sched-desc", s.description) : null,
      h("div.sched-id", h("code", s.id)),
      s.note ? h("div.sched-note", pill(s.note, "warn")) : null,
      pausedInfo(s),
      s.environments ? h("div.sched-env.muted", `environments: ${s.environments.join(", ")}`) : null);
    const policy = policyExplanation(s);
    fill(this.cells.when,
      h("div.cron-desc", s.cron_description),
      h("div.cron-line", h("code.cron", s.cron), " ", h("span.tz", s.timezone)),
      h("div.scope", scopeLine(s)),
      this.detail ? null : h("div.policy-line", h("span.policy-badge", { title: `${policy.title}. ${policy.text}` },
        `Missed runs: ${s.missed_policy}`)));
    const canEnable = s.runnable || s.enabled;
    let reason = "";
    if (!api.isAdmin()) reason = "Needs the admin role (you are a viewer)";
    else if (!canEnable) reason = `Cannot be enabled: ${s.note}`;
    setSwitch(this.switch, s.enabled, { disabled: !api.isAdmin() || !canEnable, reason });
    this.enabledNote.textContent = reason && api.isAdmin() ? s.note : "";
    this.renderLast();
    this.renderNext();
    this.runNow.disabled = !api.isAdmin() || !s.runnable;
    if (api.isAdmin() && !s.runnable) this.runNow.title = `Cannot run: ${s.note}`;
    const backfill = this.cells.actions.querySelector(".btn-backfill");
    if (backfill) {
      backfill.disabled = !s.runnable;
      backfill.title = s.runnable ? "" : `Cannot backfill: ${s.note}`;
    }
    fill(this.policyCell, h(`div.policy.policy-${s.missed_policy.toLowerCase()}`,
      h("span.policy-badge", { title: policy.detail }, `Missed runs: ${s.missed_policy}`),
      h("div.policy-text", h("strong", `${policy.title}. `), policy.text,
        h("span.policy-overlap", ` ${policy.overlap}`))));
  }

  /** Next run; past due, it is marked overdue with the reason as far as it is known. */
  renderNext() {
    const s = this.s;
    if (!(s.enabled && s.next_run_at)) {
      fill(this.cells.next, h("span.muted.next-none", s.enabled ? "not scheduled" : "— (disabled)"));
      this.el.dataset.overdue = "false";
      return;
    }
    const late = Date.now() - Date.parse(s.next_run_at);
    const overdue = late > 5000;
    this.el.dataset.overdue = String(overdue);
    fill(this.cells.next,
      h("div.next-run", when(s.next_run_at, { zone: s.timezone })),
      overdue ? h("div.sched-overdue", pill("overdue", "warn"), " ", h("span.overdue-reason", overdueReason(s))) : null);
  }

  /**
   * "Last run" is the newest batch that ran to an outcome (SUCCESS, FAILED, CANCELLED);
   * skipped and missed slots are counted apart, and what runs now is in the strip below.
   */
  setLastBatch(batch) {
    if (!batch) return;
    if (batch.status === "SKIPPED") {
      if (!this.lastFinished || batch.id > this.lastFinished.id) {
        this.skipped.set(batch.id, batch);
        this.renderLast();
      }
      return;
    }
    if (!FINISHED.has(batch.status)) return;
    if (this.lastFinished && batch.id < this.lastFinished.id) return;
    if (this.lastFinished && batch.id === this.lastFinished.id && !batch.counts) {
      batch = { ...batch, counts: this.lastFinished.counts };
    }
    this.lastFinished = batch;
    for (const id of [...this.skipped.keys()]) if (id < batch.id) this.skipped.delete(id);
    this.renderLast();
  }

  renderLast() {
    const s = this.s;
    const b = this.lastFinished;
    const skipped = [...this.skipped.values()].sort((x, y) => y.id - x.id);
    const skippedLine = skipped.length ? h("div.last-skipped.muted.small", { dataset: { skipped: String(skipped.length) } },
      statusBadge("SKIPPED"), ` ${plural(skipped.length, "slot")} skipped since`,
      skipped[0].reason ? `: ${skipped[0].reason}` : "") : null;
    if (!b) {
      const text = !s.last_run_at && !skipped.length ? "never run"
        : this.historyRead ? "no finished run yet" : "…";
      fill(this.cells.last, h("span.muted", text), skippedLine);
      return;
    }
    const count = jobsCount(b);
    fill(this.cells.last,
      h("div.last-line", statusBadge(b.status), " ", when(b.finished_at || b.created_at)),
      h("div.last-meta", count ? h("span", count) : null, count ? " · " : null,
        batchLink(b.id),
        s.failure_count ? h("span.muted", ` · ${plural(s.failure_count, "failure")} in ${s.run_count}`) : null),
      skippedLine);
  }

  async toggle(next) {
    const s = this.s;
    const body = { enabled: next };
    if (!next) {
      const answer = await askPauseNote(s);
      if (!answer) return;  // cancelled: the switch stays on
      if (answer.note) body.note = answer.note;
    }
    try {
      const updated = await api.put(`/schedules/${encodeURIComponent(s.id)}`, body);
      this.update(updated);
      this.settle();
      announce(`${s.name} ${updated.enabled ? "enabled" : "disabled"}`);
      toast(`${s.name} ${updated.enabled ? "enabled" : "disabled"}.`, "success", 3000);
    } catch (err) {
      if (err.status === 401) return;
      setSwitch(this.switch, s.enabled, { disabled: false });
      toast(`Could not ${next ? "enable" : "disable"} ${s.name}: ${err.message}`, "error");
    }
  }

  /**
   * Re-read the schedule a moment after a toggle: a live event read just before our
   * change may arrive just after it (events carry no version to order them by).
   */
  settle() {
    window.clearTimeout(this.settleTimer);
    this.settleTimer = window.setTimeout(async () => {
      if (!document.body.contains(this.el)) return;
      try {
        this.update(await api.get(`/schedules/${encodeURIComponent(this.s.id)}`));
      } catch {
        // the next live event or reload corrects it
      }
    }, 1500);
  }

  async trigger() {
    const s = this.s;
    const ok = await confirmDialog({
      title: `Run ${s.name} now?`,
      message: [
        h("p", `This queues the jobs of ${s.name} (${scopeText(s)}) right away, as a manual run.`),
        h("p.muted", "The next scheduled run does not move."),
      ],
      confirmText: "Run Now",
    });
    if (!ok) return;
    this.runNow.disabled = true;
    try {
      const created = await api.post(`/schedules/${encodeURIComponent(s.id)}/trigger`, {});
      this.showBatch(created.batch_id).then(() => this.followBatch(created.batch_id));
      toast([`${s.name}: queued ${plural(created.job_run_ids.length, "job")} (`,
        batchLink(created.batch_id), ")."], "success");
      if (this.onTrigger) this.onTrigger(created);
    } catch (err) {
      if (err.status !== 401) toast(`Run Now failed for ${s.name}: ${err.message}`, "error");
    } finally {
      this.runNow.disabled = !api.isAdmin() || !this.s.runnable;
    }
  }

  /**
   * Right after Run Now: poll the batch's runs a few times a second until one of them
   * started (the event stream polls the database less often), then rely on the stream.
   */
  async followBatch(batchId, limitMs = 5000) {
    const until = Date.now() + limitMs;
    while (Date.now() < until && document.body.contains(this.el) && this.strip.batchId === batchId) {
      const started = [...this.strip.runs.values()].some((r) => r.status !== "QUEUED");
      if (started) return;
      await new Promise((resolve) => { window.setTimeout(resolve, 150); });
      await this.showBatch(batchId);
    }
  }

  /** Show the runs of batch `batchId` under the row, live. */
  async showBatch(batchId) {
    if (this.strip.batchId && batchId < this.strip.batchId) return;
    if (this.strip.batchId !== batchId) {
      this.strip = { batchId, runs: new Map() };
      fill(this.stripList);
    }
    this.stripRow.hidden = false;
    fill(this.stripTitle, "Current batch ", batchLink(batchId, `#${batchId}`), ": ");
    try {
      const page = await api.get(`/job-runs${api.query({ batch_id: batchId, limit: 200 })}`);
      if (this.strip.batchId !== batchId) return;
      for (const run of page.runs.slice().reverse()) this.updateRun(run, { fromList: true });
    } catch (err) {
      if (err.status !== 401) console.error(err);
    }
  }

  /** A run event: show it if it belongs to the current batch (or starts a newer one). */
  updateRun(run, { fromList = false } = {}) {
    if (run.schedule_id !== this.s.id) return;
    if (!this.strip.batchId || run.batch_id > this.strip.batchId) {
      if (!ACTIVE.has(run.status)) return;
      this.showBatch(run.batch_id);
      return;
    }
    if (run.batch_id !== this.strip.batchId) return;
    const known = this.strip.runs.get(run.id);
    // A list fetched before a live event must not move a run back (QUEUED < RUNNING < done).
    if (known && fromList && rank(known.status) > rank(run.status)) return;
    const item = h("li.strip-run", { dataset: { runId: String(run.id), job: run.job_name, status: run.status } },
      link(`/admin/runs/${run.id}`, run.job_name, { class: "strip-job" }), " ", statusBadge(run.status));
    if (known) known.el.replaceWith(item);
    else {
      // keep dependency order (position)
      const after = [...this.strip.runs.values()].filter((r) => r.position > run.position)
        .sort((a, b) => a.position - b.position)[0];
      if (after) after.el.before(item);
      else this.stripList.append(item);
    }
    this.strip.runs.set(run.id, { el: item, position: run.position, status: run.status });
  }
}

/** The missed-run and overlap policies, explained once above the list. */
function policyLegend() {
  return h("section.notice.policy-legend", { "aria-labelledby": "policy-legend-title" },
    h("h2.small", { id: "policy-legend-title" }, "Missed runs"),
    h("p", h("strong", "SKIP: "), "missed runs are skipped. If no daemon fires a slot within its grace "
      + "(60 s unless set), that slot never runs late; it is recorded in the schedule's history and the "
      + "schedule waits for its next slot."),
    h("p", h("strong", "RUN_ONCE: "), "missed runs are caught up once: if slots were missed within the "
      + "catch-up window, the jobs run once as soon as a daemon is back, then the schedule continues."),
    h("p.muted.small", "Each schedule's page explains its own policy, its overlap rule and its times."));
}

function scheduleTable(caption) {
  const thead = h("thead", h("tr",
    ["Schedule", "When", "Enabled", "Last run", "Next run", "Actions"].map((c) => h("th", { scope: "col" }, c))));
  const tbl = h("table.rtable.schedules-table", h("caption.sr-only", caption), thead);
  return tbl;
}

/** Fill each row's "last run" with its last batch (counts for the jobs count). */
async function loadLastBatches(rows) {
  await Promise.all(rows.map(async (row) => {
    // Every schedule: skipped slots may exist without a last run.
    try {
      // Enough history to find the last outcome behind a run of skipped slots.
      const page = await api.get(`/schedules/${encodeURIComponent(row.s.id)}/history?limit=25`);
      for (const batch of page.batches.slice().reverse()) row.setLastBatch(batch);
      row.historyRead = true;
      row.renderLast();
      const newest = page.batches[0];
      if (newest && ACTIVE.has(newest.status)) row.showBatch(newest.id);
    } catch (err) {
      if (err.status !== 401) console.error(err);
    }
  }));
}

function wireLive(ctx, rowsById, banner, reload) {
  ctx.on("daemon", (status) => {
    daemonState = status;
    banner.update(status);
    for (const row of rowsById.values()) row.renderNext();
  });
  // A next run passes while the page is open: mark it overdue without a reload.
  ctx.every(5000, () => { for (const row of rowsById.values()) row.renderNext(); });
  ctx.on("schedule", (s) => {
    const row = rowsById.get(s.id);
    if (row) row.update(s);
    else reload();
  });
  ctx.on("batch", (b) => {
    const row = b.schedule_id && rowsById.get(b.schedule_id);
    if (row) row.setLastBatch(b);
  });
  ctx.on("run", (run) => {
    const row = run.schedule_id && rowsById.get(run.schedule_id);
    if (row) row.updateRun(run);
  });
  ctx.on("open", ({ reconnected }) => { if (reconnected) reload(); });
}

export async function renderSchedules(ctx) {
  const banner = daemonBanner();
  const tbl = scheduleTable("Schedules");
  const empty = h("p.empty", { hidden: true }, "No schedules are defined in the application.");
  const body = h("div.schedules-body", tbl, empty);
  fill(ctx.el,
    h("div.page-head", h("h1", "Schedules"),
      h("p.lede", "Schedules are defined in code; here you switch them on or off, run them now and read their history.")),
    banner.el, policyLegend(), body);
  const rowsById = new Map();
  const load = async () => {
    const [status, data] = await Promise.all([api.get("/daemon/status"), api.get("/schedules")]);
    if (!ctx.current) return;
    daemonState = status;
    banner.update(status);
    // Reconcile rather than rebuild: a reload (say after the live stream reconnects)
    // must not take keyboard focus away from a switch or button the user is on.
    const sorted = data.schedules.slice().sort((a, b) => Number(b.runnable) - Number(a.runnable));
    const seen = new Set(sorted.map((s) => s.id));
    for (const [sid, row] of rowsById) {
      if (!seen.has(sid)) { row.el.remove(); rowsById.delete(sid); }
    }
    let prev = null;
    for (const s of sorted) {
      let row = rowsById.get(s.id);
      if (row) row.update(s);
      else { row = new ScheduleRow(s, {}); rowsById.set(s.id, row); }
      const expected = prev ? prev.el.nextElementSibling : tbl.tHead.nextElementSibling;
      if (expected !== row.el) (prev ? prev.el : tbl.tHead).after(row.el);
      prev = row;
    }
    empty.hidden = sorted.length > 0;
    await loadLastBatches([...rowsById.values()]);
  };
  const reload = debounce(() => load().catch((err) => err.status !== 401 && toast(err.message, "error")), 300);
  ctx.onLeave(() => reload.cancel());
  wireLive(ctx, rowsById, banner, reload);
  await load();
}

const COUNT_ORDER = ["SUCCESS", "FAILED", "RUNNING", "QUEUED", "SKIPPED", "CANCELLED"];

function countsEl(counts) {
  const keys = COUNT_ORDER.filter((k) => counts && counts[k]);
  if (!keys.length) return h("span.muted", "no runs");
  return h("span.counts", keys.map((k) => h(`span.count.status-${k.toLowerCase()}`,
    { title: `${counts[k]} ${k}` }, `${counts[k]} ${k.toLowerCase()}`)));
}

export async function renderSchedule(ctx) {
  const [id] = ctx.params;
  const banner = daemonBanner();
  const tbl = scheduleTable("Schedule");
  const heading = h("h1", id);
  const history = table({
    caption: "History",
    className: "history-table",
    columns: [
      { label: "Batch" }, { label: "Trigger" }, { label: "Slot", className: "col-wide" }, { label: "Created" },
      { label: "Status" }, { label: "Runs", className: "col-wide" }, { label: "Duration" },
      { label: "Reason", className: "col-wide" },
    ],
    empty: "No batches yet: the schedule has not fired and was not run by hand.",
  });
  const historyRows = new Map();
  const historyRow = (b) => history.row([
    batchLink(b.id, `#${b.id}`),
    h("span", b.trigger, b.triggered_by ? h("span.muted", ` by ${b.triggered_by}`) : null),
    b.scheduled_for ? when(b.scheduled_for, { absolute: true }) : h("span.muted", "— (manual)"),
    when(b.created_at),
    statusBadge(b.status),
    countsEl(b.counts),
    b.duration_ms !== null && b.duration_ms !== undefined ? duration(b.duration_ms) : h("span.muted", "—"),
    b.reason ? h("span.reason", b.reason) : h("span.muted", "—"),
  ], { dataset: { batchId: String(b.id), status: b.status } });
  const paging = pager(async (cursor) => {
    const page = await api.get(`/schedules/${encodeURIComponent(id)}/history${api.query({ limit: 20, cursor })}`);
    if (!ctx.current) return page;
    historyRows.clear();
    history.setRows(page.batches.map((b) => {
      const row = historyRow(b);
      historyRows.set(b.id, { row, batch: b });
      return row;
    }));
    return page;
  }, "History pages");
  const nextSlots = nextSlotsSection(id);
  const ledger = ledgerSection(ctx, id);
  fill(ctx.el,
    h("p.crumbs", backLink("/admin/schedules", "Schedules")),
    h("div.page-head", heading),
    banner.el, tbl, nextSlots.el, ledger.el,
    h("section.section", { "aria-labelledby": "history-title" },
      h("div.section-head", h("h2", { id: "history-title" }, "History"),
        h("p.muted", "Batches newest first: fired slots, manual runs, and missed or skipped slots with the reason.")),
      history.el, paging.el));
  let row = null;
  const rowsById = new Map();
  const load = async () => {
    const [status, s] = await Promise.all([
      api.get("/daemon/status"), api.get(`/schedules/${encodeURIComponent(id)}`)]);
    if (!ctx.current) return;
    daemonState = status;
    banner.update(status);
    heading.textContent = s.name;
    ctx.title(s.name);
    if (!row) {
      row = new ScheduleRow(s, { detail: true });
      rowsById.set(s.id, row);
      tbl.append(row.el);
    } else row.update(s);
    await Promise.all([loadLastBatches([row]), paging.onFirstPage ? paging.reset() : null]);
  };
  const loadSlots = () => Promise.all([nextSlots.load(), ledger.load()]);
  const reloadHistory = debounce(() => { if (paging.onFirstPage) paging.reset().catch(() => {}); }, 400);
  const reload = debounce(() => load().catch((err) => err.status !== 401 && toast(err.message, "error")), 300);
  ctx.onLeave(() => { reload.cancel(); reloadHistory.cancel(); });
  wireLive(ctx, rowsById, banner, reload);
  ctx.on("batch", (b) => {
    if (b.schedule_id !== id) return;
    const known = historyRows.get(b.id);
    if (known) {
      const merged = { ...known.batch, ...b, counts: known.batch.counts };
      const fresh = historyRow(merged);
      known.row.replaceWith(fresh);
      historyRows.set(b.id, { row: fresh, batch: merged });
    }
    reloadHistory();
  });
  ctx.on("run", (run) => { if (run.schedule_id === id) reloadHistory(); });
  try {
    await load();
    await loadSlots();
  } catch (err) {
    if (err.status === 404) {
      fill(ctx.el, h("p.crumbs", backLink("/admin/schedules", "Schedules")),
        h("h1", "Schedule not found"), errorBox(err));
      return;
    }
    throw err;
  }
}
