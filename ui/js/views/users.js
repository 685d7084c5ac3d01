// Users (admins only): every account with its role, state, last login, live sessions and
// API tokens; create one, change its role, disable or enable it, reset its password,
// revoke its access or one token. The server refuses (409) to disable or demote the last
// active admin; its message is shown as it is.
import * as api from "../api.js";
import { h, fill, toast, announce, newId } from "../dom.js";
import { confirmDialog, field, openDialog, pill, table, when } from "../components.js";
import { plural } from "../format.js";

const MIN_PASSWORD = 8;

function failed(err) {
  if (err && err.status === 401) return; // the app shows the login
  toast(err.message || String(err), "error");
  announce(`Failed: ${err.message || err}`);
}

/** Run `work` with `btn` busy (not disabled: it keeps the focus a dialog gives back). */
async function busy(btn, work) {
  if (btn.getAttribute("aria-busy") === "true") return undefined;
  btn.setAttribute("aria-busy", "true");
  try {
    return await work();
  } catch (err) {
    failed(err);
    return undefined;
  } finally {
    btn.removeAttribute("aria-busy");
  }
}

/** Password + repeat fields with inline checks; `value()` is null (and says why) if wrong. */
function passwordFields(prefix) {
  const pw = h("input", { type: "password", name: "password", autocomplete: "new-password",
    required: true, minlength: String(MIN_PASSWORD), maxlength: "1024" });
  const again = h("input", { type: "password", name: "password2", autocomplete: "new-password", required: true });
  const error = h("p.field-error", { id: newId(`${prefix}-error`), role: "alert", hidden: true });
  const show = (text, input) => {
    error.textContent = text;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-errormessage", error.id);
    input.focus();
  };
  // A stale message would contradict what is typed now: it goes with the next keystroke.
  const clear = () => {
    error.hidden = true;
    for (const el of [pw, again]) el.removeAttribute("aria-invalid");
  };
  pw.addEventListener("input", clear);
  again.addEventListener("input", clear);
  return {
    els: [
      field("Password", pw, { hint: `At least ${MIN_PASSWORD} characters.`, id: newId(`${prefix}-pw`) }),
      field("Repeat the password", again, { id: newId(`${prefix}-pw2`) }),
    ],
    error,
    first: pw,
    show,
    clear,
    value() {
      if (pw.value.length < MIN_PASSWORD) {
        show(`The password must have at least ${MIN_PASSWORD} characters.`, pw);
        return null;
      }
      if (again.value !== pw.value) {
        show("The two passwords differ.", again);
        return null;
      }
      return pw.value;
    },
  };
}

/** A dialog with a form; `submit(values)` resolves to close it, or throws to say why. */
function formDialog({ title, intro, fields, submitText, onSubmit, firstField, error }) {
  const formId = newId("dialog-form");
  const submit = h("button.btn.btn-primary", { type: "submit", form: formId, dataset: { submit: "" } }, submitText);
  return openDialog({
    title,
    body: (close) => {
      const form = h("form.user-form", { id: formId, novalidate: true },
        intro ? h("p.muted", intro) : null, fields, error);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        error.hidden = true;
        submit.disabled = true;
        try {
          const result = await onSubmit();
          if (result !== undefined) close(result);
        } catch (err) {
          if (err.status !== 401) {
            error.textContent = err.message;
            error.hidden = false;
          }
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
    onOpen: () => firstField.focus(),
  });
}

function createDialog() {
  const email = h("input", { type: "email", name: "email", autocomplete: "off", required: true,
    autocapitalize: "off", spellcheck: "false", maxlength: "255" });
  const role = h("select", { name: "role" },
    h("option", { value: "viewer" }, "viewer: reads everything"),
    h("option", { value: "admin" }, "admin: also acts and manages accounts"));
  const pw = passwordFields("create");
  email.addEventListener("input", () => { pw.clear(); email.removeAttribute("aria-invalid"); });
  return formDialog({
    title: "New account",
    fields: [field("Email", email, { id: newId("create-email") }), field("Role", role, { id: newId("create-role") }), ...pw.els],
    error: pw.error,
    submitText: "Create account",
    firstField: email,
    onSubmit: async () => {
      pw.clear();
      email.removeAttribute("aria-invalid");
      if (!email.value.trim()) {
        pw.show("Enter the email of the account.", email);
        return undefined;
      }
      const password = pw.value();
      if (password === null) return undefined;
      return api.post("/users", { email: email.value.trim(), role: role.value, password });
    },
  });
}

function passwordDialog(user, isSelf) {
  const pw = passwordFields("reset");
  return formDialog({
    title: `New password for ${user.email}`,
    intro: isSelf
      ? "Your browser sessions end, this one too: you will log in again with the new password. API tokens keep working."
      : "Its browser sessions end at once; its API tokens keep working.",
    fields: pw.els,
    error: pw.error,
    submitText: "Set password",
    firstField: pw.first,
    onSubmit: async () => {
      pw.clear();
      const password = pw.value();
      if (password === null) return undefined;
      return api.post(`/users/${user.id}/password`, { password });
    },
  });
}

function tokenList(user, onRevoke) {
  if (!user.tokens.length) return h("span.muted", "None");
  return h("ul.token-list", user.tokens.map((t) => {
    const name = t.name || `token #${t.id}`;
    const revoke = h("button.btn.btn-small.btn-danger-outline", {
      type: "button", "aria-label": `Revoke API token ${name} of ${user.email}`, dataset: { revokeToken: String(t.id) },
    }, "Revoke");
    revoke.addEventListener("click", () => onRevoke(t, revoke));
    return h("li.token", { dataset: { tokenId: String(t.id) } },
      h("div.token-name", h("strong", name), t.expired ? [" ", pill("expired", "warn")] : null),
      h("div.token-meta.muted.small",
        "created ", when(t.created_at), " · last used ", t.last_used_at ? when(t.last_used_at) : "never",
        t.expires_at ? [t.expired ? " · expired " : " · expires ", when(t.expires_at)] : null),
      revoke);
  }));
}

export async function renderUsers(ctx) {
  const head = h("div.page-head", h("h1", "Users"),
    h("p.lede", "Accounts of this jobsys: their role, state, last login and API tokens. Every change is in the audit log."));
  if (!api.isAdmin()) {
    // Viewers are not offered the page (no nav entry); a typed URL says why it is empty.
    fill(ctx.el, head, h("div.notice.notice-warn", { role: "status" },
      "Only admins can see and manage accounts; your account has the viewer role."));
    return;
  }
  const me = api.currentUser();
  const t = table({
    caption: "Accounts",
    className: "users-table",
    columns: [{ label: "Account" }, { label: "Role" }, { label: "State" }, { label: "Last login" },
      { label: "API tokens" }, { label: "Actions" }],
    empty: "No accounts.",
  });
  const newButton = h("button.btn.btn-primary", { type: "button", id: "new-user" }, "New account");
  const count = h("p.muted.users-count", { "aria-live": "polite" });
  fill(ctx.el, head, h("div.toolbar", newButton, count), t.el);

  // Rows are rebuilt on each load: put the focus back on the same control of the row.
  const load = async (focusSelector = null) => {
    const data = await api.get("/users");
    if (!ctx.current) return;
    render(data.users);
    const target = focusSelector && ctx.el.querySelector(focusSelector);
    if (target) target.focus();
  };
  // After a change: show the answer, reload; a change to oneself restarts the app
  // (a demoted admin cannot load this page any more).
  const after = async (user, message, action) => {
    toast(message, "success");
    announce(message);
    if (user.email === me.email) {
      window.location.assign("/admin/users");
      return;
    }
    await load(`#user-${user.id} [data-action="${action}"]`);
  };

  const setRole = (user, role, btn) => busy(btn, async () => {
    const ok = await confirmDialog({
      title: role === "admin" ? `Make ${user.email} an admin?` : `Make ${user.email} a viewer?`,
      message: role === "admin"
        ? "Admins run jobs, enable and disable schedules, cancel runs and manage accounts."
        : "Viewers read everything but cannot act or manage accounts.",
      confirmText: role === "admin" ? "Make admin" : "Make viewer",
    });
    if (!ok) return;
    await api.patch(`/users/${user.id}`, { role });
    await after(user, `${user.email} now has the ${role} role.`, "role");
  });
  const setDisabled = (user, disabled, btn) => busy(btn, async () => {
    if (disabled) {
      const ok = await confirmDialog({
        title: `Disable ${user.email}?`,
        message: "It can no longer log in; its open sessions and API tokens stop working at once.",
        confirmText: "Disable",
        danger: true,
      });
      if (!ok) return;
    }
    await api.patch(`/users/${user.id}`, { disabled });
    await after(user, `${user.email} ${disabled ? "disabled" : "enabled"}.`, disabled ? "enable" : "disable");
  });
  const resetPassword = (user, btn) => busy(btn, async () => {
    const done = await passwordDialog(user, user.email === me.email);
    if (done) await after(user, `New password set for ${user.email}; its sessions ended.`, "password");
  });
  const revokeAll = (user, btn) => busy(btn, async () => {
    const ok = await confirmDialog({
      title: `Revoke all access of ${user.email}?`,
      message: "Every browser session of the account ends and every API token is revoked. The account can log in again.",
      confirmText: "Revoke access",
      danger: true,
    });
    if (!ok) return;
    const r = await api.post(`/users/${user.id}/revoke`, {});
    await after(user, `${user.email}: ${plural(r.sessions_revoked, "session")} ended, `
      + `${plural(r.tokens_revoked, "API token")} revoked.`, "revoke");
  });
  const revokeToken = (user, token, btn) => busy(btn, async () => {
    const name = token.name || `token #${token.id}`;
    const ok = await confirmDialog({
      title: `Revoke ${name}?`,
      message: `Programs using this API token of ${user.email} get 401 from now on. This cannot be undone.`,
      confirmText: "Revoke token",
      danger: true,
    });
    if (!ok) return;
    await api.del(`/users/${user.id}/tokens/${token.id}`);
    toast(`${name} of ${user.email} revoked.`, "success");
    announce(`${name} revoked`);
    await load(`#user-${user.id} [data-action="revoke"]`);
  });

  const render = (users) => {
    const admins = users.filter((u) => u.role === "admin" && !u.disabled).length;
    count.textContent = `${plural(users.length, "account")}, ${plural(admins, "active admin")}`;
    t.setRows(users.map((u) => {
      const self = u.email === me.email;
      const lastAdmin = u.role === "admin" && !u.disabled && admins === 1;
      const lastNote = lastAdmin ? "The last active admin cannot be demoted or disabled" : null;
      const roleBtn = h("button.btn.btn-small.btn-secondary", {
        type: "button", dataset: { action: "role" }, title: lastNote,
        "aria-label": `${u.role === "admin" ? "Make viewer" : "Make admin"}: ${u.email}`,
      }, u.role === "admin" ? "Make viewer" : "Make admin");
      roleBtn.addEventListener("click", () => setRole(u, u.role === "admin" ? "viewer" : "admin", roleBtn));
      const stateBtn = h(`button.btn.btn-small.${u.disabled ? "btn-secondary" : "btn-danger-outline"}`, {
        type: "button", dataset: { action: u.disabled ? "enable" : "disable" }, title: lastNote,
        "aria-label": `${u.disabled ? "Enable" : "Disable"}: ${u.email}`,
      }, u.disabled ? "Enable" : "Disable");
      stateBtn.addEventListener("click", () => setDisabled(u, !u.disabled, stateBtn));
      const pwBtn = h("button.btn.btn-small.btn-secondary", {
        type: "button", dataset: { action: "password" }, "aria-label": `Reset password: ${u.email}`,
      }, "Reset password");
      pwBtn.addEventListener("click", () => resetPassword(u, pwBtn));
      const revokeBtn = h("button.btn.btn-small.btn-danger-outline", {
        type: "button", dataset: { action: "revoke" }, "aria-label": `Revoke all access: ${u.email}`,
      }, "Revoke all access");
      revokeBtn.addEventListener("click", () => revokeAll(u, revokeBtn));
      return t.row([
        h("div.user-cell",
          h("div.user-email", h("strong", u.email), self ? [" ", pill("you", "info")] : null),
          h("div.muted.small", "created ", when(u.created_at), " · ",
            plural(u.active_sessions, "live session"))),
        pill(u.role, u.role === "admin" ? "info" : "neutral"),
        pill(u.disabled ? "Disabled" : "Active", u.disabled ? "warn" : "ok"),
        u.last_login_at ? when(u.last_login_at) : h("span.muted", "never"),
        tokenList(u, (tok, btn) => revokeToken(u, tok, btn)),
        h("div.actions.user-actions", roleBtn, stateBtn, pwBtn, revokeBtn),
      ], { id: `user-${u.id}`, dataset: { userId: String(u.id), email: u.email, role: u.role,
        disabled: String(u.disabled) } });
    }));
  };

  newButton.addEventListener("click", () => busy(newButton, async () => {
    const created = await createDialog();
    if (!created) return;
    const message = `Account ${created.email} created (${created.role}).`;
    toast(message, "success");
    announce(message);
    await load("#new-user");
  }));
  await load();
}
