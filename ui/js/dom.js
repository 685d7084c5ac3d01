// Small DOM helpers. Data is always inserted as text (never innerHTML), so nothing a job
// logs or an admin types can inject markup.

/**
 * h("a.btn", {href: "/x", onclick: fn}, "text", child, [more, children])
 * Attributes: `class`, `dataset` (object), `on<event>` (listener), boolean attributes
 * (true → present, false/null/undefined → absent), anything else via setAttribute.
 */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = [el.className, value].filter(Boolean).join(" ");
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value" && "value" in el) el.value = value;
    else if (key === "checked" && "checked" in el) el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Swap `oldEl` for `newEl`, unless focus is inside `oldEl` (then patch its children). */
export function swap(oldEl, newEl) {
  if (!oldEl.contains(document.activeElement) || oldEl.children.length !== newEl.children.length) {
    oldEl.replaceWith(newEl);
    return newEl;
  }
  for (const name of newEl.getAttributeNames()) oldEl.setAttribute(name, newEl.getAttribute(name));
  [...newEl.children].forEach((child, i) => {
    const old = oldEl.children[i];
    if (!old.contains(document.activeElement)) old.replaceWith(child);
  });
  return oldEl;
}

let uid = 0;
export function newId(prefix = "id") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** Announce a message to screen readers (polite). */
export function announce(text) {
  const el = document.getElementById("announcer");
  if (!el) return;
  el.textContent = "";
  window.setTimeout(() => { el.textContent = text; }, 30);
}

/** A toast in the polite live region; `kind` is info, success or error. */
export function toast(content, kind = "info", ms = 6000) {
  const box = document.getElementById("toasts");
  const close = h("button.toast-close", { type: "button", "aria-label": "Dismiss" }, "×");
  const el = h(`div.toast.toast-${kind}`, { role: kind === "error" ? "alert" : null },
    h("div.toast-body", content), close);
  close.addEventListener("click", () => el.remove());
  box.append(el);
  if (ms) window.setTimeout(() => el.remove(), kind === "error" ? ms * 2 : ms);
  return el;
}

/** Debounce: call `fn` once, `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => window.clearTimeout(timer);
  return wrapped;
}
