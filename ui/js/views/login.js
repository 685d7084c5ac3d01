// The login form: POST /api/admin/login, then the app starts its session.
import * as api from "../api.js";
import { h, fill } from "../dom.js";

export function renderLogin(main, onSuccess) {
  const error = h("div.notice.notice-error", { id: "login-error", role: "alert", hidden: true });
  const email = h("input", {
    id: "login-email", name: "email", type: "email", autocomplete: "username",
    required: true, autocapitalize: "off", spellcheck: "false",
  });
  const password = h("input", {
    id: "login-password", name: "password", type: "password",
    autocomplete: "current-password", required: true,
  });
  const submit = h("button.btn.btn-primary.btn-block", { type: "submit" }, "Log in");
  const form = h("form.login-form", { novalidate: true, "aria-describedby": "login-error" },
    h("div.field", h("label", { for: "login-email" }, "Email"), email),
    h("div.field", h("label", { for: "login-password" }, "Password"), password),
    error,
    submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (!email.value.trim() || !password.value) {
      error.textContent = "Enter your email and password.";
      error.hidden = false;
      (email.value.trim() ? password : email).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Logging in…";
    try {
      const me = await api.login(email.value.trim(), password.value);
      await onSuccess(me);
    } catch (err) {
      let text = err.message;
      if (err.status === 401) text = "Wrong email or password.";
      else if (err.status === 429) {
        text = `Too many failed logins. Try again in ${err.retryAfter || "a few"} seconds.`;
      }
      error.textContent = text;
      error.hidden = false;
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = "Log in";
    }
  });
  fill(main, h("section.login-card", { "aria-labelledby": "login-title" },
    h("div.login-brand", { "aria-hidden": "true" }, "jobsys"),
    h("h1", { id: "login-title" }, "Log in to jobsys admin"),
    h("p.muted", "Schedules, jobs and their runs."),
    form));
  email.focus();
}
