// Jobs: live active runs and a compact registry by group (run one / group / all); each
// job links to its page (/admin/jobs/NAME) and every run is on the Runs page.
import * as api from "../api.js";
import { h, fill, toast, swap, debounce, newId } from "../dom.js";
import { duration, elapsedEl, plural } from "../format.js";
import {
  actionButton, batchLink, confirmDialog, link, progressBar, runLink, statusBadge, table, when,
} from "../components.js";
import { openRunDialog } from "../paramform.js";
import { jobLink } from "./runs.js";

const ACTIVE = new Set(["QUEUED", "RUNNING"]);

export async function cancelRun(run) {
  const ok = await confirmDialog({
    title: `Cancel run #${run.id}?`,
    message: h("p", run.status === "RUNNING"
      ? `${run.job_name} is running: it is asked to stop, then terminated, then killed after a grace period.`
      : `${run.job_name} is queued: it will not start.`),
    confirmText: "Cancel run",
    cancelText: "Keep running",
    danger: true,
  });
  if (!ok) return null;
  try {
    const updated = await api.post(`/job-runs/${run.id}/cancel`, {});
    toast(`Cancel requested for run #${run.id} (${run.job_name}).`, "success");
    return updated;
  } catch (err) {
    if (err.status !== 401) toast(`Could not cancel run #${run.id}: ${err.message}`, "error");
    return null;
  }
}

function activeSection(ctx) {
  const t = table({
    caption: "Active runs",
    className: "active-table",
    columns: [
      { label: "Run" }, { label: "Job" }, { label: "Status" }, { label: "Elapsed" },
      { label: "Progress", className: "col-progress" }, { label: "Batch" }, { label: "" },
    ],
    empty: "Nothing is queued or running right now.",
  });
  const rows = new Map();
  const count = h("span.count-badge", "0");
  const row = (run) => t.row([
    runLink(run.id),
    h("strong", run.job_name),
    statusBadge(run.status),
    run.status === "RUNNING" ? elapsedEl(run.started_at)
      : h("span", h("span.muted", "waiting "), elapsedEl(run.queued_at)),
    run.status === "RUNNING" ? progressBar(run.progress_done, run.progress_total, `Progress of ${run.job_name}`, { startedAt: run.started_at })
      : h("span.muted", "—"),
    batchLink(run.batch_id),
    run.cancel_requested ? h("span.muted", "cancelling…")
      : actionButton("Cancel", { class: "btn-small btn-danger-outline", "aria-label": `Cancel run ${run.id} (${run.job_name})` },
        () => cancelRun(run)),
  ], { dataset: { runId: String(run.id), job: run.job_name, status: run.status } });
  const upsert = (run) => {
    const known = rows.get(run.id);
    if (!ACTIVE.has(run.status)) {
      if (known) {
        known.el.remove();
        rows.delete(run.id);
      }
    } else if (known) {
      rows.set(run.id, { run, el: swap(known.el, row(run)) });
    } else {
      const el = row(run);
      const later = [...rows.values()].filter((r) => r.run.id > run.id).sort((a, b) => a.run.id - b.run.id)[0];
      if (later) later.el.before(el);
      else t.tbody.append(el);
      rows.set(run.id, { run, el });
    }
    count.textContent = String(rows.size);
    t.refreshEmpty();
  };
  const load = async () => {
    const page = await api.get(`/job-runs${api.query({ status: "QUEUED,RUNNING", limit: 200 })}`);
    if (!ctx.current) return;
    rows.clear();
    t.setRows([]);
    for (const run of page.runs.slice().reverse()) upsert(run);
    count.textContent = String(rows.size);
  };
  const el = h("section.section", { "aria-labelledby": "active-title" },
    h("div.section-head", h("h2", { id: "active-title" }, "Active runs ", count),
      h("p.muted", "Queued and running jobs, updated live.")),
    t.el);
  return { el, load, upsert, rows };
}

function registrySection(ctx, onChanged) {
  const skipId = newId("skip-deps");
  const skip = h("input", { type: "checkbox", id: skipId, name: "skip_dependencies", disabled: !api.isAdmin() || null });
  const bulk = async (what, path, label) => {
    const skipping = skip.checked;
    const ok = await confirmDialog({
      title: `Run ${label}?`,
      message: [h("p", `This queues ${what} now, as a manual run.`),
        h("p", skipping ? "Skip dependencies is ON: ordering and failures between the jobs are ignored."
          : "Jobs run in dependency order; a failed job's dependents are skipped.")],
      confirmText: `Run ${label}`,
    });
    if (!ok) return;
    try {
      const created = await api.post(path, { skip_dependencies: skipping });
      toast([`Queued ${plural(created.job_run_ids.length, "run")} (`, batchLink(created.batch_id), ")."], "success");
      onChanged();
    } catch (err) {
      if (err.status !== 401) toast(`Could not run ${label}: ${err.message}`, "error");
    }
  };
  const runAll = actionButton("Run all jobs", { class: "btn-primary" },
    () => bulk("every job, in dependency order", "/jobs/run-all", "all jobs"));
  const groupsEl = h("div.groups");
  const jobRows = new Map();
  const jobs = new Map();
  const jobRow = (t, job) => {
    const last = job.last_run;
    const active = job.active || {};
    const activeText = [active.RUNNING ? `${active.RUNNING} running` : null,
      active.QUEUED ? `${active.QUEUED} queued` : null].filter(Boolean).join(", ");
    return t.row([
      h("div", h("strong.job-name", jobLink(job.name)),
        job.description ? h("div.job-desc.muted.small", { title: job.description }, job.description) : null,
        h("div.muted.small.job-isolation", job.isolation === "process" ? "isolation: fresh process per run" : "isolation: warm worker pool")),
      last ? h("div", statusBadge(last.status), " ", when(last.finished_at || last.started_at || last.queued_at),
        " ", runLink(last.id)) : h("span.muted", "never run"),
      last && last.duration_ms !== null ? duration(last.duration_ms) : h("span.muted", "—"),
      activeText ? h("span.active-note", activeText) : h("span.muted", "idle"),
      actionButton("Run…", { class: "btn-small btn-secondary", "aria-label": `Run ${job.name}`, dataset: { runJob: job.name } },
        () => openRunDialog(job).then((created) => { if (created) onChanged(); })),
    ], { dataset: { job: job.name } });
  };
  const render = (data) => {
    fill(groupsEl);
    jobRows.clear();
    jobs.clear();
    const byGroup = new Map(data.groups.map((g) => [g, []]));
    for (const job of data.jobs) {
      if (!byGroup.has(job.group)) byGroup.set(job.group, []);
      byGroup.get(job.group).push(job);
      jobs.set(job.name, job);
    }
    for (const [group, list] of byGroup) {
      const t = table({
        caption: `Jobs of group ${group}`,
        className: "jobs-table",
        columns: [{ label: "Job" }, { label: "Last run" }, { label: "Took" }, { label: "Now" }, { label: "" }],
      });
      for (const job of list) {
        const el = jobRow(t, job);
        jobRows.set(job.name, { t, el });
        t.tbody.append(el);
      }
      t.refreshEmpty();
      const headingId = newId("group");
      groupsEl.append(h("section.group", { "aria-labelledby": headingId, dataset: { group } },
        h("div.group-head", h("h3", { id: headingId }, group, h("span.muted.small", ` · ${plural(list.length, "job")}`)),
          actionButton(`Run group ${group}`, { class: "btn-small btn-secondary" },
            () => bulk(`the jobs of group ${group}, in dependency order`, `/jobs/run-group/${encodeURIComponent(group)}`, `group ${group}`))),
        t.el));
    }
  };
  /** A live run: update its job's last run and the active counts. */
  const onRun = (run, activeRuns) => {
    const job = jobs.get(run.job_name);
    if (!job) return;
    if (!job.last_run || run.id >= job.last_run.id) job.last_run = run;
    const counts = {};
    for (const { run: r } of activeRuns.values()) {
      if (r.job_name === job.name) counts[r.status] = (counts[r.status] || 0) + 1;
    }
    job.active = counts;
    const known = jobRows.get(job.name);
    if (known) known.el = swap(known.el, jobRow(known.t, job));
  };
  const el = h("section.section", { "aria-labelledby": "registry-title" },
    h("div.section-head", h("h2", { id: "registry-title" }, "Jobs by group"),
      h("p.muted", "Run one job (with parameters), one group, or everything.")),
    h("div.toolbar", runAll,
      h("div.check-line", skip, h("label", { for: skipId }, "Skip dependencies"),
        h("span.hint", " (for Run all and Run group: ignore ordering and failures between jobs)"))),
    groupsEl);
  return { el, render, onRun, jobs };
}

export async function renderJobs(ctx) {
  const jobsData = await api.get("/jobs");
  if (!ctx.current) return;
  const active = activeSection(ctx);
  const refreshJobs = debounce(async () => {
    try {
      const data = await api.get("/jobs");
      if (ctx.current) registry.render(data);
    } catch (err) {
      if (err.status !== 401) console.error(err);
    }
  }, 500);
  ctx.onLeave(() => refreshJobs.cancel());
  const registry = registrySection(ctx, () => {});
  fill(ctx.el,
    h("div.page-head", h("h1", "Jobs"),
      h("p.lede", "What runs now and every job of the application; open a job for its history, "
        + "or see ", link("/admin/runs", "every run"), ".")),
    active.el, registry.el);
  registry.render(jobsData);
  ctx.on("run", (run) => {
    active.upsert(run);
    registry.onRun(run, active.rows);
  });
  ctx.on("open", ({ reconnected }) => {
    if (!reconnected) return;
    active.load().catch(() => {});
    refreshJobs();
  });
  await active.load();
}
