// Jobs: live active runs, the registry by group (run one / group / all), run history.
import * as api from "../api.js";
import { h, fill, toast, swap, debounce, newId } from "../dom.js";
import { duration, elapsedEl, plural } from "../format.js";
import {
  actionButton, batchLink, confirmDialog, pager, progressBar, runLink, scheduleLink,
  select, statusBadge, table, when,
} from "../components.js";
import { openRunDialog } from "../paramform.js";

const ACTIVE = new Set(["QUEUED", "RUNNING"]);
const STATUSES = ["QUEUED", "RUNNING", "SUCCESS", "FAILED", "CANCELLED", "SKIPPED"];
const TRIGGERS = ["CRON", "MANUAL", "EVENT", "BACKFILL"];

export async function cancelRun(run) {
  const ok = await confirmDialog({
    title: `Cancel run #${run.id}?`,
    message: h("p", run.status === "RUNNING"
      ? `${run.job_name} is running: it is asked to stop, then terminated, then killed after a grace period.`
      : `${run.job_name} is queued: it will not start.`),
    confirmText: "Cancel the run",
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
    run.status === "RUNNING" ? progressBar(run.progress_done, run.progress_total, `Progress of ${run.job_name}`)
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
      h("div", h("strong.job-name", job.name),
        job.description ? h("div.job-desc", job.description) : null,
        job.depends_on.length ? h("div.muted.small", `after ${job.depends_on.join(", ")}`) : null,
        job.params ? h("div.muted.small", `params: ${Object.keys(job.params).join(", ")}`) : null,
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

function historySection(ctx, jobsList, schedules) {
  const filters = {
    job: ctx.query.get("job") || "",
    status: ctx.query.get("status") || "",
    trigger: ctx.query.get("trigger") || "",
    schedule_id: ctx.query.get("schedule_id") || "",
  };
  const mk = (name, label, options) => {
    const id = newId(`filter-${name}`);
    const sel = select(name, [["", "any"], ...options], filters[name]);
    sel.id = id;
    return h("div.field.field-inline", h("label", { for: id }, label), sel);
  };
  const form = h("form.filters", { "aria-label": "Filter runs" },
    mk("job", "Job", jobsList.map((j) => [j, j])),
    mk("status", "Status", STATUSES.map((s) => [s, s])),
    mk("trigger", "Trigger", TRIGGERS.map((s) => [s, s])),
    mk("schedule_id", "Schedule", schedules.map((s) => [s.id, s.name])),
    h("button.btn.btn-small.btn-secondary", { type: "reset" }, "Clear"));
  const t = table({
    caption: "Run history",
    className: "history-table",
    columns: [{ label: "Run" }, { label: "Job" }, { label: "Status" }, { label: "Trigger" },
      { label: "Schedule" }, { label: "Batch" }, { label: "Queued" }, { label: "Duration" }],
    empty: "No runs match these filters.",
  });
  const rows = new Map();
  const row = (run) => t.row([
    runLink(run.id),
    h("strong", run.job_name),
    statusBadge(run.status),
    h("span", run.trigger, run.triggered_by ? h("span.muted.small", ` ${run.triggered_by}`) : null),
    scheduleLink(run.schedule_id),
    batchLink(run.batch_id),
    when(run.queued_at),
    run.status === "RUNNING" ? elapsedEl(run.started_at) : duration(run.duration_ms),
  ], { dataset: { runId: String(run.id), status: run.status } });
  const paging = pager(async (cursor) => {
    const page = await api.get(`/job-runs${api.query({ ...filters, limit: 25, cursor })}`);
    if (!ctx.current) return page;
    rows.clear();
    t.setRows(page.runs.map((run) => {
      const el = row(run);
      rows.set(run.id, el);
      return el;
    }));
    return page;
  }, "Run history pages");
  const apply = () => {
    for (const el of form.querySelectorAll("select")) filters[el.name] = el.value;
    const next = {};
    for (const [k, v] of new URLSearchParams(window.location.search)) next[k] = v;
    ctx.replaceQuery({ ...next, ...filters });
    paging.reset().catch((err) => err.status !== 401 && toast(err.message, "error"));
  };
  form.addEventListener("change", apply);
  form.addEventListener("reset", () => window.setTimeout(apply, 0));
  form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
  const matches = (run) => (!filters.job || run.job_name === filters.job)
    && (!filters.status || filters.status.split(",").includes(run.status))
    && (!filters.trigger || filters.trigger.split(",").includes(run.trigger))
    && (!filters.schedule_id || run.schedule_id === filters.schedule_id);
  const onRun = (run) => {
    const known = rows.get(run.id);
    if (known) {
      if (matches(run)) rows.set(run.id, swap(known, row(run)));
      return;
    }
    if (!paging.onFirstPage || !matches(run)) return;
    const newest = Math.max(0, ...rows.keys());
    if (run.id < newest) return;
    const el = row(run);
    t.tbody.prepend(el);
    rows.set(run.id, el);
    while (t.tbody.children.length > 25) {
      const last = t.tbody.lastElementChild;
      rows.delete(Number(last.dataset.runId));
      last.remove();
    }
    t.refreshEmpty();
  };
  const el = h("section.section", { "aria-labelledby": "runs-title" },
    h("div.section-head", h("h2", { id: "runs-title" }, "Run history"),
      h("p.muted", "Every run, newest first.")),
    form, t.el, paging.el);
  return { el, load: () => paging.reset(), onRun };
}

export async function renderJobs(ctx) {
  const [jobsData, schedulesData] = await Promise.all([api.get("/jobs"), api.get("/schedules")]);
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
  const history = historySection(ctx, jobsData.jobs.map((j) => j.name), schedulesData.schedules);
  fill(ctx.el,
    h("div.page-head", h("h1", "Jobs"),
      h("p.lede", "What runs now, every job of the application, and what ran before.")),
    active.el, registry.el, history.el);
  registry.render(jobsData);
  ctx.on("run", (run) => {
    active.upsert(run);
    registry.onRun(run, active.rows);
    history.onRun(run);
  });
  ctx.on("open", ({ reconnected }) => {
    if (!reconnected) return;
    active.load().catch(() => {});
    history.load().catch(() => {});
    refreshJobs();
  });
  await Promise.all([active.load(), history.load()]);
}
