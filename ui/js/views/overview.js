// Overview, the landing page: what runs now, how the last day and week went (charts),
// the latest failures with Retry, overdue schedules and the daemons. One API call:
// GET /api/admin/overview; live events trigger a (throttled) reload.
import uPlot from "/admin/static/vendor/uplot/uPlot.esm.js";
import * as api from "../api.js";
import { h, fill, toast, debounce } from "../dom.js";
import { parseTime, plural } from "../format.js";
import { daemonBanner, link, runLink, scheduleLink, table, when } from "../components.js";

const UPLOT_CSS = "/admin/static/vendor/uplot/uPlot.min.css";

/** uPlot's stylesheet, added to the page once (index.html stays as it is). */
function loadChartCss() {
  if (document.querySelector(`link[href="${UPLOT_CSS}"]`)) return;
  document.head.append(h("link", { rel: "stylesheet", href: UPLOT_CSS }));
}

const pct = (rate) => (rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)} %`);

function statCard(label, value, { id, hint = null, href = null, kind = "" } = {}) {
  const body = [h("span.stat-value", { id }, value), h("span.stat-label", label),
    hint ? h("span.stat-hint.muted.small", hint) : null];
  return h(`div.stat${kind ? `.stat-${kind}` : ""}`, href ? link(href, body, { class: "stat-link" }) : body);
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/** The series of one range: hour instants (s), finished runs, failed runs, success %. */
function series(hourly) {
  const xs = [];
  const total = [];
  const failed = [];
  const rate = [];
  for (const bucket of hourly) {
    xs.push(parseTime(bucket.hour).getTime() / 1000);
    const all = bucket.success + bucket.failed + bucket.cancelled + bucket.skipped;
    // null, not 0: an hour without runs draws no bar (zero-height bars look like a line)
    total.push(all || null);
    failed.push(bucket.failed || null);
    const decided = bucket.success + bucket.failed;
    rate.push(decided ? (100 * bucket.success) / decided : null);
  }
  return { xs, total, failed, rate };
}

/** A chart in `box`, sized to it; returns {update(data), destroy()}. */
function makeChart(box, kind) {
  const bars = uPlot.paths.bars({ size: [0.8, 24] });
  const width = () => Math.max(260, Math.floor(box.clientWidth || 600));
  const common = {
    width: width(),
    height: 200,
    legend: { show: true, live: false },
    cursor: { drag: { x: false, y: false } },
    axes: [{ stroke: cssVar("--muted") }, { stroke: cssVar("--muted"), size: 44 }],
  };
  const opts = kind === "runs"
    ? {
      ...common,
      series: [{}, { label: "finished runs", stroke: cssVar("--ok-bar"), fill: cssVar("--ok-bar"), paths: bars, points: { show: false } },
        { label: "failed", stroke: cssVar("--fail-bar"), fill: cssVar("--fail-bar"), paths: bars, points: { show: false } }],
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    }
    : {
      ...common,
      // points shown: an hour alone between empty hours is a dot, not nothing
      series: [{}, { label: "success rate %", stroke: cssVar("--primary"), width: 2, spanGaps: false,
        points: { show: true, size: 6, fill: cssVar("--primary") } }],
      scales: { y: { range: [0, 100] } },
    };
  let plot = null;
  // Follow the box's width (window resize, phone rotation, the grid going to one column).
  const resize = debounce(() => {
    if (plot && plot.width !== width()) plot.setSize({ width: width(), height: 200 });
  }, 100);
  const observer = new ResizeObserver(() => resize());
  observer.observe(box);
  return {
    update(data) {
      const rows = kind === "runs" ? [data.xs, data.total, data.failed] : [data.xs, data.rate];
      if (!plot) plot = new uPlot(opts, rows, box);
      else plot.setData(rows);
    },
    destroy() {
      observer.disconnect();
      resize.cancel();
      if (plot) plot.destroy();
      plot = null;
    },
  };
}

/** Range switch: two buttons with aria-pressed, remembered for the session of the page. */
function rangeSwitch(onChange) {
  const buttons = ["24h", "7d"].map((key) => h("button.btn.btn-small.btn-secondary.range-btn", {
    type: "button", dataset: { range: key }, "aria-pressed": String(key === "24h"),
  }, key === "24h" ? "Last 24 hours" : "Last 7 days"));
  for (const btn of buttons) {
    btn.addEventListener("click", () => {
      for (const b of buttons) b.setAttribute("aria-pressed", String(b === btn));
      onChange(btn.dataset.range);
    });
  }
  return h("div.range-switch", { role: "group", "aria-label": "Chart range" }, buttons);
}

export async function renderOverview(ctx) {
  loadChartCss();
  const banner = daemonBanner();
  const stats = h("div.stats", { "aria-live": "polite" });
  let range = "24h";
  let data = null;
  const runsBox = h("div.chart", { id: "chart-runs" });
  const rateBox = h("div.chart", { id: "chart-rate" });
  const runsSummary = h("p.chart-summary.muted.small", { id: "chart-runs-summary" });
  const rateSummary = h("p.chart-summary.muted.small", { id: "chart-rate-summary" });
  const failures = table({
    caption: "Latest failures",
    className: "failures-table",
    columns: [{ label: "Run" }, { label: "Finished" }, { label: "Error" }, { label: "Action" }],
    empty: "No failed run. ",
  });
  const overdue = table({
    caption: "Overdue schedules",
    className: "overdue-table",
    columns: [{ label: "Schedule" }, { label: "Was due" }, { label: "Why" }],
    empty: "No schedule is overdue.",
  });
  const workersLine = h("p.workers-line");
  fill(ctx.el,
    h("div.page-head", h("h1", "Overview"),
      h("p.lede", "What runs now, how the last day and week went, and what needs you.")),
    banner.el,
    h("section.section", { "aria-labelledby": "now-title" },
      h("h2", { id: "now-title" }, "Runs"), stats),
    h("section.section.charts", { "aria-labelledby": "charts-title" },
      h("div.section-head", h("h2", { id: "charts-title" }, "History"),
        rangeSwitch((next) => { range = next; draw(); })),
      h("div.chart-grid",
        h("figure.chart-fig", { "aria-labelledby": "chart-runs-title", "aria-describedby": runsSummary.id },
          h("figcaption", { id: "chart-runs-title" }, "Finished runs per hour"), runsBox, runsSummary),
        h("figure.chart-fig", { "aria-labelledby": "chart-rate-title", "aria-describedby": rateSummary.id },
          h("figcaption", { id: "chart-rate-title" }, "Success rate per hour"), rateBox, rateSummary))),
    h("section.section", { "aria-labelledby": "failures-title" },
      h("div.section-head", h("h2", { id: "failures-title" }, "Latest failures"),
        link("/admin/jobs?status=FAILED", "All failed runs")),
      failures.el),
    h("section.section", { "aria-labelledby": "overdue-title" },
      h("div.section-head", h("h2", { id: "overdue-title" }, "Overdue schedules"),
        link("/admin/schedules", "All schedules")),
      overdue.el),
    h("section.section", { "aria-labelledby": "daemons-title" },
      h("div.section-head", h("h2", { id: "daemons-title" }, "Daemons"), link("/admin/workers", "Workers")),
      workersLine));

  const runsChart = makeChart(runsBox, "runs");
  const rateChart = makeChart(rateBox, "rate");
  ctx.onLeave(() => { runsChart.destroy(); rateChart.destroy(); });

  function draw() {
    if (!data) return;
    const hours = range === "24h" ? data.hourly.slice(-24) : data.hourly;
    const s = series(hours);
    runsChart.update(s);
    rateChart.update(s);
    const w = data.windows[range];
    const span = range === "24h" ? "the last 24 hours" : "the last 7 days";
    runsSummary.textContent = `${plural(w.total, "finished run")} in ${span}: ${w.success} succeeded, `
      + `${w.failed} failed, ${w.cancelled} cancelled, ${w.skipped} skipped.`;
    rateSummary.textContent = `Success rate over ${span}: ${pct(w.success_rate)} (successes among successes and failures).`;
  }

  async function retry(f, btn) {
    btn.disabled = true;
    try {
      const created = await api.post(`/job-runs/${f.id}/retry`, {});
      const newId = created.job_run_ids[0];
      toast(["Run #", String(f.id), " retried as ", runLink(newId), "."], "success");
      reload();
    } catch (err) {
      btn.disabled = false;
      if (err.status !== 401) toast(`Could not retry run #${f.id}: ${err.message}`, "error");
    }
  }

  function render(d) {
    data = d;
    banner.update(d.daemon);
    const day = d.windows["24h"];
    const week = d.windows["7d"];
    fill(stats,
      statCard("queued now", String(d.runs_now.queued), { id: "stat-queued", href: "/admin/jobs?status=QUEUED", kind: "queued" }),
      statCard("running now", String(d.runs_now.running), { id: "stat-running", href: "/admin/jobs?status=RUNNING", kind: "running" }),
      statCard("success rate, 24 h", pct(day.success_rate), { id: "stat-rate-24h", hint: `${day.success} of ${day.success + day.failed} decided` }),
      statCard("success rate, 7 days", pct(week.success_rate), { id: "stat-rate-7d", hint: `${week.success} of ${week.success + week.failed} decided` }),
      statCard("failed, 24 h", String(day.failed), { id: "stat-failed-24h", kind: day.failed ? "failed" : "" }));
    draw();
    failures.setRows(d.failures.map((f) => {
      let action = null;
      if (f.retried_as) action = h("span.muted", "retried as ", runLink(f.retried_as));
      else if (api.isAdmin()) {
        const btn = h("button.btn.btn-small.btn-secondary.btn-retry", {
          type: "button", "aria-label": `Retry run #${f.id} (${f.job_name})`,
        }, "Retry");
        btn.addEventListener("click", () => retry(f, btn));
        action = btn;
      } else action = h("span.muted", "—");
      return failures.row([
        h("span", runLink(f.id, `#${f.id} ${f.job_name}`),
          f.schedule_id ? h("span.muted.small", " · ", scheduleLink(f.schedule_id)) : null),
        when(f.finished_at, { absolute: true }),
        f.error ? h("span.error-text.failure-error", f.error.length > 200 ? `${f.error.slice(0, 197)}…` : f.error) : h("span.muted", "—"),
        action,
      ], { dataset: { runId: String(f.id) } });
    }));
    overdue.setRows(d.overdue.map((o) => overdue.row([
      link(`/admin/schedules/${encodeURIComponent(o.id)}`, o.name),
      h("span.overdue-when", h("span.pill.pill-warn", "overdue"), " ", when(o.next_run_at, { absolute: true })),
      h("span.overdue-reason", o.reason),
    ], { dataset: { scheduleId: o.id } })));
    const alive = d.daemon.workers.filter((w) => w.alive);
    fill(workersLine, alive.length
      ? [`${plural(alive.length, "daemon")} alive; newest heartbeat `, when(d.daemon.newest_heartbeat_at), "."]
      : h("strong", "No daemon is alive: nothing fires and nothing runs. Start one with ", h("code", "jobsys daemon"), "."));
  }

  const load = async () => {
    const d = await api.get("/overview");
    if (ctx.current) render(d);
  };
  // At most one reload per 2 s however busy the stream is (a debounce would starve while
  // runs keep finishing).
  let timer = null;
  let lastLoad = 0;
  const reload = () => {
    if (timer) return;
    const wait = Math.max(0, lastLoad + 2000 - Date.now());
    timer = window.setTimeout(() => {
      timer = null;
      lastLoad = Date.now();
      load().catch((err) => err.status !== 401 && console.error(err));
    }, wait);
  };
  ctx.onLeave(() => window.clearTimeout(timer));
  for (const kind of ["run", "batch", "schedule"]) ctx.on(kind, () => reload());
  ctx.on("daemon", (status) => banner.update(status));
  ctx.on("open", ({ reconnected }) => { if (reconnected) reload(); });
  ctx.every(60000, () => reload());
  await load();
}
