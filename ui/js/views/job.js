// One job: what it is (description, neighbours, params, isolation, timeout), how it has
// been doing (its last 50 runs as a strip, run durations with p50/p95, success rates over
// 24 h and 7 days) and Run (admins only).
import * as api from "../api.js";
import { h, fill, debounce } from "../dom.js";
import { duration, plural, utcText, parseTime } from "../format.js";
import { dl, errorBox, link, pill, statusBadge, when } from "../components.js";
import { openRunDialog } from "../paramform.js";
import { durationChart } from "../charts.js";
import { jobLink } from "./runs.js";

function neighbours(names, none) {
  if (!names.length) return h("span.muted", none);
  return h("span.job-neighbours", names.map((n, i) => [i ? ", " : null, jobLink(n)]));
}

function paramsList(params) {
  if (!params || !Object.keys(params).length) return h("span.muted", "none declared (any JSON object)");
  return h("ul.param-list", Object.entries(params).map(([name, spec]) => h("li",
    h("code", name), " ", h("span.muted", spec.type || "any"),
    spec.required ? h("span.pill.pill-warn", " required") : null,
    spec.default !== undefined ? h("span.muted", ` default ${JSON.stringify(spec.default)}`) : null)));
}

function timeoutText(seconds) {
  if (seconds === null || seconds === undefined) return h("span.muted", "none");
  return duration(seconds * 1000);
}

function rateTile(label, s) {
  const pct = s.rate === null ? "—" : `${Math.round(s.rate * 1000) / 10}%`;
  const kind = s.rate === null ? "none" : s.rate >= 0.95 ? "ok" : s.rate >= 0.8 ? "warn" : "bad";
  return h(`div.rate-tile.rate-${kind}`, { dataset: { window: label } },
    h("div.rate-label", `Success, last ${label === "24h" ? "24 hours" : "7 days"}`),
    h("div.rate-value", pct),
    h("div.rate-detail.muted", s.finished
      ? `${s.succeeded} succeeded, ${s.failed} failed of ${plural(s.finished, "finished run")}`
      : "no finished runs"));
}

/** The last runs, oldest left: one linked cell per run, coloured by status. */
function statusStrip(runs) {
  const ordered = runs.slice().reverse();
  if (!ordered.length) return h("p.muted.strip-empty", "No runs yet.");
  return h("ol.run-strip", { "aria-label": `Last ${plural(ordered.length, "run")}, oldest first` },
    ordered.map((r) => {
      const at = parseTime(r.finished_at || r.started_at || r.queued_at);
      const text = `Run #${r.id}: ${r.status}${at ? `, ${utcText(at)} UTC` : ""}`
        + `${r.duration_ms !== null ? `, took ${duration(r.duration_ms)}` : ""}`;
      return h("li", link(`/admin/runs/${r.id}`, h("span.sr-only", text),
        { class: `strip-cell status-${r.status.toLowerCase()}`, title: text, dataset: { status: r.status, runId: String(r.id) } }));
    }));
}

export async function renderJob(ctx) {
  const [name] = ctx.params;
  const path = `/jobs/${encodeURIComponent(name)}`;
  let job;
  try {
    job = await api.get(path);
  } catch (err) {
    if (err.status === 404) {
      fill(ctx.el, h("p.crumbs", link("/admin/jobs", "← Jobs")), h("h1", "Job not found"), errorBox(err));
      return;
    }
    throw err;
  }
  if (!ctx.current) return;
  ctx.title(job.name);
  const runButton = api.isAdmin()
    ? h("button.btn.btn-primary.btn-run-job", { type: "button", "aria-label": `Run ${job.name}` }, "Run…")
    : null;
  const head = h("div.page-head.job-head",
    h("div.job-title", h("h1", job.name), pill(job.group, "info", "Group")),
    runButton);
  const facts = h("div.job-facts");
  const rates = h("div.rates");
  const strip = h("div.strip-wrap");
  const chartWrap = h("div.chart-wrap");
  const chartNote = h("p.muted.chart-note");
  let chart = null;
  ctx.onLeave(() => chart && chart.destroy());

  const render = (data) => {
    job = data;
    fill(facts,
      job.description ? h("p.job-description", job.description) : null,
      dl([
        ["Upstream (it runs after them)", neighbours(job.upstream, "none")],
        ["Downstream (they run after it)", neighbours(job.downstream, "none")],
        ["Timeout", timeoutText(job.timeout_s)],
        job.isolation ? ["Isolation", h("span.job-isolation", job.isolation)] : null,
        job.retry ? ["Retries", `${job.retry.retries ?? job.retry.max_retries ?? ""}`.trim() || "yes"] : null,
        ["Now", job.active && (job.active.RUNNING || job.active.QUEUED)
          ? h("span.active-note", [job.active.RUNNING ? `${job.active.RUNNING} running` : null,
            job.active.QUEUED ? `${job.active.QUEUED} queued` : null].filter(Boolean).join(", "))
          : h("span.muted", "idle")],
        ["Last run", job.last_run
          ? h("span", statusBadge(job.last_run.status), " ", when(job.last_run.finished_at || job.last_run.queued_at))
          : h("span.muted", "never run")],
      ]),
      h("div.job-params", h("h3", "Parameters"), paramsList(job.params)));
    fill(rates, rateTile("24h", job.success["24h"]), rateTile("7d", job.success["7d"]));
    fill(strip, statusStrip(job.recent_runs));
    if (chart) chart.destroy();
    chart = null;
    const n = job.durations.length;
    if (n) {
      const p50 = job.duration_p50_ms;
      const p95 = job.duration_p95_ms;
      chartNote.textContent = `p50 ${duration(p50)} · p95 ${duration(p95)} over the last ${plural(n, "finished run")}.`;
      chart = durationChart(job.durations, {
        p50, p95,
        label: `Durations of the last ${plural(n, "finished run")} of ${job.name}: p50 ${duration(p50)}, p95 ${duration(p95)}`,
      });
      fill(chartWrap, chart.el);
      chart.draw();
    } else {
      chartNote.textContent = "No finished runs yet: nothing to chart.";
      fill(chartWrap);
    }
  };
  if (runButton) {
    runButton.addEventListener("click", () => openRunDialog(job).then((created) => { if (created) refresh(); }));
  }
  const refresh = debounce(async () => {
    try {
      const data = await api.get(path);
      if (ctx.current) render(data);
    } catch (err) {
      if (err.status !== 401) console.error(err);
    }
  }, 500);
  ctx.onLeave(() => refresh.cancel());
  ctx.on("run", (run) => { if (run.job_name === name) refresh(); });
  ctx.on("open", ({ reconnected }) => { if (reconnected) refresh(); });

  fill(ctx.el,
    h("p.crumbs", link("/admin/jobs", "← Jobs")),
    head, facts,
    h("section.section", { "aria-labelledby": "job-health-title" },
      h("div.section-head", h("h2", { id: "job-health-title" }, "How it has been doing")),
      rates,
      h("h3", "Last 50 runs"), strip,
      h("p", link(`/admin/runs?job=${encodeURIComponent(name)}`, `All runs of ${name} →`, { class: "all-runs-link" }))),
    h("section.section", { "aria-labelledby": "job-durations-title" },
      h("div.section-head", h("h2", { id: "job-durations-title" }, "Run durations"), chartNote),
      chartWrap));
  render(job);
}
