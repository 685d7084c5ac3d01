// One run: status, times, error, params, progress and its logs (tailed while it runs).
// The page opens on the end of the log (where the error is); "Load earlier lines" pages back.
import * as api from "../api.js";
import { h, fill, newId, announce, toast } from "../dom.js";
import { absText, duration, elapsedEl, json, utcText, parseTime, zonedText, LOCAL_TZ } from "../format.js";
import {
  actionButton, backLink, batchLink, dl, errorBox, link, progressBar, runLink, scheduleLink, statusBadge, when,
} from "../components.js";
import { cancelRun } from "./jobs.js";

const ACTIVE = new Set(["QUEUED", "RUNNING"]);
const RETRYABLE = new Set(["FAILED", "CANCELLED"]);
const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

function logLine(line) {
  const level = String(line.level || "INFO").toUpperCase();
  const date = parseTime(line.ts);
  return h(`li.log-line.log-${level.toLowerCase()}`, { dataset: { level, logId: String(line.id) } },
    h("time.log-ts", date ? { datetime: date.toISOString(), title: `${utcText(date)} UTC\n${zonedText(date)} ${LOCAL_TZ}` } : {},
      date ? absText(date) : ""),
    h("span.log-level", level),
    h("span.log-msg", line.message));
}

export async function renderRun(ctx) {
  const runId = Number(ctx.params[0]);
  const heading = h("h1", `Run #${runId}`);
  const statusEl = h("div.run-status", { "aria-live": "polite", "aria-atomic": "true" });
  const actions = h("div.actions");
  const metaEl = h("div");
  const errorEl = h("div");
  const attemptsEl = h("div");
  const progressEl = h("div.run-progress");
  const paramsEl = h("pre.code-block.params");
  const logList = h("ol.log", { "aria-label": "Log lines" });
  const logEmpty = h("p.muted.log-empty", "No log lines yet.");
  const followId = newId("follow");
  const follow = h("input", { type: "checkbox", id: followId, checked: true });
  const levelId = newId("level");
  const levelSel = h("select", { id: levelId },
    h("option", { value: "" }, "all levels"),
    LEVELS.slice(1).map((l) => h("option", { value: l }, `${l} and above`)));
  const logBox = h("div.log-box", { tabindex: "0", role: "region", "aria-label": "Logs" }, logEmpty, logList);
  const liveNote = h("span.muted.small.log-live");
  const countNote = h("span.log-count", { id: "log-count", "aria-live": "polite" });
  const earlierBtn = h("button.btn.btn-secondary.btn-small", { type: "button", id: "log-earlier", hidden: true },
    "Load earlier lines");
  const countBar = h("p.muted.small.log-count-bar", countNote, " ", earlierBtn);
  fill(ctx.el,
    h("p.crumbs", backLink("/admin/runs", "Runs")),
    h("div.page-head.run-head", heading, statusEl, actions),
    metaEl, errorEl, progressEl, attemptsEl,
    h("section.section", { "aria-labelledby": "params-title" },
      h("h2", { id: "params-title" }, "Parameters"), paramsEl),
    h("section.section", { "aria-labelledby": "logs-title" },
      h("div.section-head.log-head", h("h2", { id: "logs-title" }, "Logs ", liveNote),
        h("div.log-tools",
          h("div.field.field-inline", h("label", { for: levelId }, "Show"), levelSel),
          h("div.check-line", follow, h("label", { for: followId }, "Follow new lines")))),
      countBar, logBox));

  let run = null;
  let lastLogId = 0;
  let firstLogId = 0;
  let earlier = 0; // lines stored before the first one shown
  let fetching = null;
  let again = false;

  const applyLevel = () => {
    const min = LEVELS.indexOf(levelSel.value);
    for (const li of logList.children) {
      li.hidden = min > 0 && LEVELS.indexOf(li.dataset.level) < min;
    }
  };
  levelSel.addEventListener("change", applyLevel);

  const showCount = () => {
    const shown = logList.children.length;
    const total = shown + earlier;
    countNote.textContent = earlier > 0
      ? `Showing the last ${shown.toLocaleString("en")} of ${total.toLocaleString("en")} lines.`
      : shown ? `${total.toLocaleString("en")} line${total === 1 ? "" : "s"}.` : "";
    earlierBtn.hidden = earlier <= 0;
  };

  const appendLogs = (lines) => {
    if (!lines.length) return;
    const fresh = lines.filter((l) => l.id === undefined || l.id > lastLogId);
    const nearBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 40;
    for (const line of fresh) logList.append(logLine(line));
    for (const line of fresh) if (line.id) lastLogId = Math.max(lastLogId, line.id);
    if (!firstLogId && fresh.length && fresh[0].id) firstLogId = fresh[0].id;
    logEmpty.hidden = logList.children.length > 0;
    showCount();
    applyLevel();
    if (follow.checked && (nearBottom || ACTIVE.has(run && run.status))) logBox.scrollTop = logBox.scrollHeight;
  };

  const prependLogs = (lines) => {
    const older = lines.filter((l) => l.id < firstLogId);
    if (!older.length) return;
    const before = logBox.scrollHeight;
    logList.prepend(...older.map(logLine));
    firstLogId = older[0].id;
    applyLevel();
    logBox.scrollTop += logBox.scrollHeight - before; // keep the lines in view where they were
  };

  earlierBtn.addEventListener("click", async () => {
    earlierBtn.disabled = true;
    try {
      const data = await api.get(`/job-runs/${runId}${api.query({ logs_before: firstLogId })}`);
      if (!ctx.current) return;
      prependLogs(data.logs || []);
      earlier = data.logs_earlier;
      showCount();
    } finally {
      earlierBtn.disabled = false;
    }
  });

  const renderRunData = (data) => {
    const previous = run ? run.status : null;
    run = { ...(run || {}), ...data };
    if (previous && previous !== run.status && run.status === "QUEUED" && !("waiting_reason" in data)) {
      fetchRun().catch(() => {});
    }
    heading.textContent = `Run #${run.id} · ${run.job_name}`;
    ctx.title(`Run #${run.id} ${run.job_name}`);
    fill(statusEl, statusBadge(run.status, { id: "run-status" }),
      run.cancel_requested && ACTIVE.has(run.status) ? h("span.muted", " cancel requested") : null,
      run.status === "QUEUED" && run.waiting_reason
        ? h("div.waiting-reason", { id: "waiting-reason" }, h("strong", "Waiting: "), run.waiting_reason) : null);
    if (previous && previous !== run.status) announce(`Run ${run.id} is now ${run.status}`);
    fill(actions, ACTIVE.has(run.status) && !run.cancel_requested
      ? actionButton("Cancel run", { class: "btn-danger" }, async () => {
        const updated = await cancelRun(run);
        if (updated && ctx.current) renderRunData(updated);
      })
      // Retry: the next attempt of a failed or cancelled run, as a new batch.
      : RETRYABLE.has(run.status) && !run.next_attempt_id
        ? actionButton("Retry", { id: "retry-run" }, async () => {
          try {
            const created = await api.post(`/job-runs/${run.id}/retry`, {});
            const newId = created.job_run_ids[0];
            toast(`Run #${run.id} retried as run #${newId}.`, "success");
            if (ctx.current) ctx.navigate(`/admin/runs/${newId}`);
          } catch (err) {
            if (err.status !== 401) toast(`Could not retry run #${run.id}: ${err.message}`, "error");
          }
        }) : null);
    fill(attemptsEl, run.attempts && run.attempts.length > 1
      ? h("section.section", { id: "attempts", "aria-labelledby": "attempts-title" },
        h("h2", { id: "attempts-title" }, "Attempts"),
        h("ol.attempts", run.attempts.map((a) => h("li", { dataset: { runId: String(a.id) } },
          a.id === run.id ? h("strong", `Attempt ${a.attempt} (this run)`) : runLink(a.id, `Attempt ${a.attempt}`),
          " ", statusBadge(a.status),
          a.status === "QUEUED" && a.not_before ? h("span.muted", " not before ", when(a.not_before, { absolute: true })) : null,
          a.error ? h("span.muted", ` — ${a.error}`) : null))))
      : null);
    liveNote.textContent = ACTIVE.has(run.status) ? "· updating live" : "";
    const took = run.status === "RUNNING" ? elapsedEl(run.started_at)
      : run.duration_ms !== null && run.duration_ms !== undefined ? duration(run.duration_ms) : "—";
    fill(metaEl, dl([
      ["Job", h("strong", run.job_name)],
      ["Status", statusBadge(run.status)],
      run.attempt > 1 || run.next_attempt_id ? ["Attempt", h("span", { id: "run-attempt" }, String(run.attempt))] : null,
      run.next_attempt_id ? ["Retried as", runLink(run.next_attempt_id)] : null,
      run.status === "QUEUED" && run.not_before ? ["Not before", when(run.not_before, { absolute: true })] : null,
      ["Trigger", `${run.trigger}${run.triggered_by ? ` by ${run.triggered_by}` : ""}`],
      ["Schedule", scheduleLink(run.schedule_id)],
      ["Batch", batchLink(run.batch_id)],
      run.depends_on && run.depends_on.length ? ["After", run.depends_on.join(", ")] : null,
      run.scheduled_for ? ["Slot", when(run.scheduled_for, { absolute: true })] : null,
      ["Queued", when(run.queued_at, { absolute: true })],
      ["Started", when(run.started_at, { absolute: true, empty: "not yet" })],
      ["Finished", when(run.finished_at, { absolute: true, empty: "not yet" })],
      ["Duration", took],
      ["Worker", run.worker_id || "—"],
      run.exit_code !== null && run.exit_code !== undefined ? ["Exit code", String(run.exit_code)] : null,
      run.timeout_s ? ["Timeout", duration(run.timeout_s * 1000)] : null,
    ]));
    fill(errorEl, run.error ? h("div.notice.notice-error.run-error", { role: "alert" },
      h("strong", "Error: "), h("span.error-text", run.error)) : null);
    const hasProgress = run.progress_total !== null && run.progress_total !== undefined;
    fill(progressEl, run.status === "RUNNING" || hasProgress
      ? h("div.field", h("span.label", "Progress"),
        progressBar(run.progress_done, run.progress_total, `Progress of run ${run.id}`,
          { startedAt: run.status === "RUNNING" ? run.started_at : null }))
      : null);
    paramsEl.textContent = run.params && Object.keys(run.params).length ? json(run.params) : "{} (no parameters)";
  };

  const fetchRun = async () => {
    if (fetching) {
      again = true;
      return fetching;
    }
    fetching = (async () => {
      try {
        do {
          again = false;
          // The first answer is the end of the log; later ones are the lines after it.
          const data = await api.get(`/job-runs/${runId}${api.query({ logs_after: lastLogId || null })}`);
          if (!ctx.current) return;
          const { logs, log_count: _count, logs_earlier: before, logs_later: after, ...rest } = data;
          if (!lastLogId) earlier = before || 0;
          renderRunData(rest);
          appendLogs(logs || []);
          if (after > 0) again = true; // more new lines than one page: fetch the rest
        } while (again && ctx.current);
      } finally {
        fetching = null;
      }
    })();
    return fetching;
  };

  ctx.on("run", (data) => { if (data.id === runId) renderRunData(data); });
  ctx.on("logs", (data) => { if (data.run_id === runId && data.last_log_id > lastLogId) fetchRun().catch(() => {}); });
  ctx.on("open", ({ reconnected }) => { if (reconnected) fetchRun().catch(() => {}); });
  // Safety net while the run is active (a missed event must not freeze the page).
  ctx.every(10000, () => { if (run && ACTIVE.has(run.status)) fetchRun().catch(() => {}); });
  try {
    await fetchRun();
  } catch (err) {
    if (err.status === 404) {
      fill(ctx.el, h("p.crumbs", backLink("/admin/runs", "Runs")), h("h1", "Run not found"), errorBox(err));
      return;
    }
    throw err;
  }
}
