// Audit: who did what, when, to which target, with before and after.
import * as api from "../api.js";
import { h, fill, newId, toast } from "../dom.js";
import { compactJson } from "../format.js";
import { link, pager, table, when } from "../components.js";

const ACTIONS = [
  ["schedule.", "any schedule action"],
  ["schedule.enable", "schedule.enable"],
  ["schedule.disable", "schedule.disable"],
  ["schedule.trigger", "schedule.trigger (Run Now)"],
  ["job.", "any job action"],
  ["job.run", "job.run"],
  ["run.cancel", "run.cancel"],
  ["login.", "logins"],
  ["admin.", "accounts"],
  ["token.", "API tokens"],
];

function targetEl(e) {
  if (!e.target_id) return h("span.muted", e.target_type || "—");
  const id = e.target_id;
  if (e.target_type === "schedule") return link(`/admin/schedules/${encodeURIComponent(id)}`, `schedule ${id}`);
  if (e.target_type === "run" && /^\d+$/.test(id)) return link(`/admin/runs/${id}`, `run #${id}`);
  if (e.target_type === "batch" && /^\d+$/.test(id)) return link(`/admin/batches/${id}`, `batch #${id}`);
  if (e.target_type === "job") return link(`/admin/jobs?job=${encodeURIComponent(id)}`, `job ${id}`);
  return h("span", `${e.target_type ? `${e.target_type} ` : ""}${id}`);
}

function changeEl(e) {
  if (!e.before && !e.after) return h("span.muted", "—");
  const batchId = e.after && Number.isInteger(e.after.batch_id) ? e.after.batch_id : null;
  return h("div.change",
    batchId ? h("div", link(`/admin/batches/${batchId}`, `batch #${batchId}`)) : null,
    e.before ? h("div", h("span.muted.small", "before "), h("code.json-inline", compactJson(e.before))) : null,
    e.after ? h("div", h("span.muted.small", "after "), h("code.json-inline", compactJson(e.after))) : null);
}

export async function renderAudit(ctx) {
  const filters = {
    actor: ctx.query.get("actor") || "",
    action: ctx.query.get("action") || "",
    target: ctx.query.get("target") || "",
  };
  const input = (name, label, hint, attrs = {}) => {
    const id = newId(`audit-${name}`);
    return h("div.field.field-inline", h("label", { for: id }, label),
      h("input", { id, name, type: "search", value: filters[name], placeholder: hint, autocomplete: "off", ...attrs }));
  };
  const listId = newId("actions");
  const form = h("form.filters", { "aria-label": "Filter the audit log" },
    input("actor", "Actor", "email or cli"),
    input("action", "Action", "e.g. schedule.", { list: listId }),
    h("datalist", { id: listId }, ACTIONS.map(([v, t]) => h("option", { value: v }, t))),
    input("target", "Target", "schedule id, run id, job"),
    h("button.btn.btn-small.btn-primary", { type: "submit" }, "Filter"),
    h("button.btn.btn-small.btn-secondary", { type: "reset" }, "Clear"));
  const t = table({
    caption: "Audit log",
    className: "audit-table",
    columns: [{ label: "When" }, { label: "Actor" }, { label: "Action" }, { label: "Target" },
      { label: "Change" }, { label: "From" }],
    empty: "No audit entries match.",
  });
  const paging = pager(async (cursor) => {
    const page = await api.get(`/audit${api.query({ ...filters, limit: 50, cursor })}`);
    if (!ctx.current) return page;
    t.setRows(page.entries.map((e) => t.row([
      when(e.at, { absolute: true }),
      e.actor || h("span.muted", "—"),
      h("span", h("code.action", e.action), e.detail ? h("div.muted.small", e.detail) : null),
      targetEl(e),
      changeEl(e),
      e.ip || h("span.muted", "—"),
    ], { dataset: { auditId: String(e.id), action: e.action } })));
    return page;
  }, "Audit pages");
  const apply = () => {
    for (const el of form.querySelectorAll("input[name]")) filters[el.name] = el.value.trim();
    ctx.replaceQuery(filters);
    paging.reset().catch((err) => err.status !== 401 && toast(err.message, "error"));
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
  form.addEventListener("reset", () => window.setTimeout(apply, 0));
  fill(ctx.el,
    h("div.page-head", h("h1", "Audit"),
      h("p.lede", "Every admin action: toggles, manual runs, cancels, logins that failed.")),
    form, t.el, paging.el);
  // New actions (a toggle, a run) change schedules and runs: refresh the first page.
  let timer = null;
  const refresh = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => { if (paging.onFirstPage) paging.reload().catch(() => {}); }, 800);
  };
  ctx.onLeave(() => window.clearTimeout(timer));
  ctx.on("schedule", refresh);
  ctx.on("batch", (b) => { if (b.trigger === "MANUAL") refresh(); });
  await paging.reset();
}
