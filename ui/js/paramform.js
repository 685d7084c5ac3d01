// "Run job" dialog: a form generated from the job's declared params, or a JSON editor.
import * as api from "./api.js";
import { h, fill, newId, toast } from "./dom.js";
import { openDialog, runLink, batchLink } from "./components.js";

const INPUT_TYPE = { string: "text", integer: "number", number: "number", boolean: "checkbox" };

/** Parse one field's text by its declared type: {ok, value} or {ok: false, error}. */
export function parseParam(spec, raw, checked, badInput = false) {
  const type = spec.type || "string";
  if (type === "boolean") return { ok: true, value: Boolean(checked) };
  if (badInput) return { ok: false, error: type === "integer" ? "Enter a whole number (e.g. 10)." : "Enter a number (e.g. 0.5)." };
  const text = String(raw ?? "");
  if (text.trim() === "") {
    if (spec.required) return { ok: false, error: "This parameter is required." };
    return { ok: true, omit: true };
  }
  if (type === "integer") {
    if (!/^[-+]?\d+$/.test(text.trim())) return { ok: false, error: "Enter a whole number (e.g. 10)." };
    const value = Number(text.trim());
    if (!Number.isSafeInteger(value)) return { ok: false, error: "This number is too large." };
    return checkRange(spec, value);
  }
  if (type === "number") {
    const value = Number(text.trim());
    if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text.trim()) || !Number.isFinite(value)) {
      return { ok: false, error: "Enter a number (e.g. 0.5)." };
    }
    return checkRange(spec, value);
  }
  if (Array.isArray(spec.choices || spec.enum) && !(spec.choices || spec.enum).includes(text)) {
    return { ok: false, error: `Choose one of: ${(spec.choices || spec.enum).join(", ")}.` };
  }
  if (spec.pattern) {
    try {
      if (!new RegExp(`^(?:${spec.pattern})$`).test(text)) {
        return { ok: false, error: `Must match ${spec.pattern}.` };
      }
    } catch {
      // an invalid pattern is the server's business
    }
  }
  return { ok: true, value: text };
}

function checkRange(spec, value) {
  const min = spec.minimum ?? spec.min;
  const max = spec.maximum ?? spec.max;
  if (typeof min === "number" && value < min) return { ok: false, error: `Must be at least ${min}.` };
  if (typeof max === "number" && value > max) return { ok: false, error: `Must be at most ${max}.` };
  return { ok: true, value };
}

/** Is `text` a JSON object? {ok, value} or {ok: false, error}. */
export function parseJsonObject(text) {
  if (!text.trim()) return { ok: true, value: {} };
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `Not valid JSON: ${err.message}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { ok: false, error: "Params must be a JSON object, like {\"key\": \"value\"}." };
  }
  return { ok: true, value };
}

function paramField(name, spec) {
  const type = spec.type || "string";
  const id = newId(`param-${name}`);
  const hintParts = [];
  if (spec.description) hintParts.push(spec.description);
  hintParts.push(`${type}${spec.required ? ", required" : ""}${"default" in spec ? `, default ${JSON.stringify(spec.default)}` : ""}`);
  const hint = h("span.hint", { id: `${id}-hint` }, hintParts.join(" · "));
  const error = h("span.field-error", { id: `${id}-error`, hidden: true });
  const attrs = {
    id,
    name,
    type: INPUT_TYPE[type] || "text",
    "aria-describedby": `${id}-hint ${id}-error`,
    required: spec.required || null,
    "aria-required": spec.required ? "true" : null,
    dataset: { param: name, type },
  };
  if (type === "integer") Object.assign(attrs, { step: "1", inputmode: "numeric" });
  if (type === "number") Object.assign(attrs, { step: "any", inputmode: "decimal" });
  let input;
  if (type === "boolean") {
    input = h("input", { ...attrs, checked: spec.default === true });
    return {
      name, spec, input, error,
      el: h("div.field.field-check", h("div.check-line", input, h("label", { for: id }, name)), hint, error),
    };
  }
  if (Array.isArray(spec.choices || spec.enum)) {
    input = h("select", attrs, (spec.required ? [] : [h("option", { value: "" }, "(default)")]).concat(
      (spec.choices || spec.enum).map((c) => h("option", { value: String(c), selected: c === spec.default || null }, String(c)))));
  } else {
    input = h("input", { ...attrs, value: "default" in spec ? String(spec.default) : "", autocomplete: "off" });
  }
  return {
    name, spec, input, error,
    el: h("div.field", h("label", { for: id }, name, spec.required ? h("span.req", { "aria-hidden": "true" }, " *") : null),
      input, hint, error),
  };
}

function showFieldError(f, message) {
  f.error.textContent = message || "";
  f.error.hidden = !message;
  if (message) f.input.setAttribute("aria-invalid", "true");
  else f.input.removeAttribute("aria-invalid");
}

/** Open the run dialog for `job`; resolves with the created {batch_id, job_run_ids}. */
export function openRunDialog(job) {
  const declared = job.params && Object.keys(job.params).length ? job.params : null;
  const formError = h("div.notice.notice-error", { role: "alert", hidden: true, id: "run-form-error" });
  const submit = h("button.btn.btn-primary", { type: "submit", form: "run-form" }, "Run");
  let collect;
  let body;
  if (declared) {
    const fields = Object.entries(declared).map(([name, spec]) => paramField(name, spec));
    const validate = (f) => {
      const result = parseParam(f.spec, f.input.value, f.input.checked,
        Boolean(f.input.validity && f.input.validity.badInput));
      showFieldError(f, result.ok ? "" : result.error);
      return result;
    };
    for (const f of fields) {
      f.input.addEventListener("input", () => { if (f.input.hasAttribute("aria-invalid")) validate(f); });
      f.input.addEventListener("change", () => validate(f));
      f.input.addEventListener("blur", () => validate(f));
    }
    collect = () => {
      const params = {};
      let firstBad = null;
      for (const f of fields) {
        const result = validate(f);
        if (!result.ok) firstBad = firstBad || f;
        else if (!result.omit) params[f.name] = result.value;
      }
      if (firstBad) {
        firstBad.input.focus();
        return null;
      }
      return params;
    };
    body = [h("p.muted", "Parameters declared by the job:"), fields.map((f) => f.el)];
  } else {
    const id = newId("params-json");
    const status = h("span.json-status", { id: `${id}-status`, "aria-live": "polite" });
    const area = h("textarea.json-editor", {
      id, name: "params", rows: "8", spellcheck: "false", autocomplete: "off",
      "aria-describedby": `${id}-hint ${id}-status`,
    });
    area.value = "{}";
    const check = () => {
      const result = parseJsonObject(area.value);
      status.textContent = result.ok ? "✓ valid JSON object" : result.error;
      status.className = `json-status ${result.ok ? "json-ok" : "json-bad"}`;
      if (result.ok) area.removeAttribute("aria-invalid");
      else area.setAttribute("aria-invalid", "true");
      submit.disabled = !result.ok;
      return result;
    };
    area.addEventListener("input", check);
    check();
    collect = () => {
      const result = check();
      if (!result.ok) {
        area.focus();
        return null;
      }
      return result.value;
    };
    body = [h("div.field",
      h("label", { for: id }, "Params (JSON object)"),
      h("span.hint", { id: `${id}-hint` }, "This job declares no parameters; it receives any JSON object."),
      area, status)];
  }
  const form = h("form.run-form", { id: "run-form", novalidate: true },
    job.description ? h("p", job.description) : null,
    body, formError);
  return openDialog({
    title: `Run ${job.name}`,
    body: (close) => {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        formError.hidden = true;
        const params = collect();
        if (params === null) return;
        submit.disabled = true;
        try {
          const created = await api.post(`/jobs/${encodeURIComponent(job.name)}/run`, { params });
          close(created);
          toast([`${job.name}: queued run `, runLink(created.job_run_ids[0]), " (",
            batchLink(created.batch_id), ")."], "success", 10000);
        } catch (err) {
          if (err.status === 401) return;
          fill(formError, `The server refused: ${err.message}`);
          formError.hidden = false;
        } finally {
          submit.disabled = false;
        }
      });
      return form;
    },
    actions: [
      (close) => h("button.btn.btn-secondary", { type: "button", onclick: () => close(undefined) }, "Cancel"),
      submit,
    ],
    onOpen: (dialog) => {
      const first = dialog.querySelector("input, textarea, select");
      if (first) first.focus();
    },
  });
}
