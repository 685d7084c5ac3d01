// Workers: every daemon instance with its host, pid, status and last heartbeat.
import * as api from "../api.js";
import { h, fill } from "../dom.js";
import { daemonBanner, pill, table, when } from "../components.js";

/**
 * A worker's state judged like `jobsys health` judges the newest heartbeat (the server
 * sends `health`): a RUNNING daemon whose heartbeat is 150 s old is a warning, not green.
 */
function workerState(w) {
  const age = w.heartbeat_age_s !== undefined ? `${Math.round(w.heartbeat_age_s)} s` : "?";
  if (w.status !== "RUNNING") return h("span.worker-state", pill(w.status, "neutral"));
  if (w.health === "critical") {
    return h("span.worker-state", pill("CRITICAL", "danger", "No heartbeat within the critical threshold"),
      h("span.small", ` no heartbeat for ${age}: presumed dead`));
  }
  if (w.health === "warning") {
    return h("span.worker-state", pill("WARNING", "warn", "Heartbeat older than the warning threshold"),
      h("span.small", ` heartbeat ${age} old`));
  }
  return h("span.worker-state", pill("RUNNING", "ok"));
}

export async function renderWorkers(ctx) {
  const banner = daemonBanner();
  const t = table({
    caption: "Daemon instances",
    className: "workers-table",
    columns: [{ label: "Instance" }, { label: "Host" }, { label: "PID" }, { label: "Status" },
      { label: "Started" }, { label: "Last heartbeat" }],
    empty: "No daemon has registered yet. Start one with `jobsys daemon`.",
  });
  const heartbeatNote = h("p.muted");
  fill(ctx.el,
    h("div.page-head", h("h1", "Workers"),
      h("p.lede", "Each running daemon fires due schedules and executes jobs; it heartbeats while alive.")),
    banner.el, t.el, heartbeatNote);
  const render = (status) => {
    banner.update(status);
    const workers = (status.workers || []).slice()
      .sort((a, b) => Number(b.alive) - Number(a.alive) || String(b.last_heartbeat_at).localeCompare(String(a.last_heartbeat_at)));
    t.setRows(workers.map((w) => t.row([
      h("code", w.id),
      w.hostname,
      String(w.pid),
      workerState(w),
      when(w.started_at),
      when(w.last_heartbeat_at),
    ], { dataset: { workerId: w.id, alive: String(Boolean(w.alive)), health: w.health || "" } })));
    heartbeatNote.textContent = status.newest_heartbeat_at ? "" : "No heartbeat recorded yet.";
  };
  ctx.on("daemon", (status) => render(status));
  // The stream sends the daemon status on change; refresh now and then for stale ages.
  ctx.every(30000, () => api.get("/daemon/status").then((s) => ctx.current && render(s)).catch(() => {}));
  const status = await api.get("/daemon/status");
  if (ctx.current) render(status);
}
