"""The admin UI in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright) against real ``jobsys web`` and ``jobsys daemon`` processes.

Every test starts its own web + daemon on a fresh database (``tests/apps/ui_app.py``:
jobs that sleep 1.5 s, one with declared params, one that fails) and saves a full-page
screenshot as ``test-output/screenshots/<test>.png``.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.ui_helpers import (
    CHROMIUM,
    VIEWER,
    Jobsys,
    api_fetch,
    login,
    screenshot,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

if CHROMIUM.exists():
    from playwright.sync_api import Page, expect

    expect.set_options(timeout=10_000)

SCHEDULE = "#schedule-nightly-etl"


def schedule_enabled(system: Jobsys, schedule_id: str) -> bool:
    from sqlalchemy import select
    from sqlmodel import col

    from jobsys.store.models import JobSchedule

    with system.engine.connect() as conn:
        return bool(
            conn.execute(
                select(col(JobSchedule.enabled)).where(col(JobSchedule.id) == schedule_id)
            ).scalar_one()
        )


# 1 -------------------------------------------------------------------------------------
def test_login(system: Jobsys, page: Page) -> None:
    page.goto(system.admin_url("/jobs"))
    expect(page.locator("h1")).to_have_text("Log in to jobsys admin")
    page.fill("#login-email", "admin@example.com")
    page.fill("#login-password", "not the password")
    page.click("form.login-form button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("Wrong email or password.")
    expect(page.locator("#login-password")).to_have_value("")
    screenshot(page, "test_login_wrong_password")

    page.fill("#login-password", "correct horse battery")
    page.click("form.login-form button[type=submit]")
    # Back where the user wanted to go, then to the schedules.
    expect(page.locator("h1")).to_have_text("Jobs")
    page.get_by_role("link", name="Schedules", exact=True).click()
    expect(page.locator("h1")).to_have_text("Schedules")
    expect(page.locator("tbody.schedule")).to_have_count(3)
    expect(page.locator(SCHEDULE)).to_contain_text("Nightly ETL")
    expect(page.locator(SCHEDULE)).to_contain_text("At 02:00 every day")
    # The policy is explained once, in the legend; each row names its policy.
    expect(page.locator(SCHEDULE)).to_contain_text("Missed runs: SKIP")
    expect(page.locator(".policy-legend")).to_have_count(1)
    expect(page.locator(".policy-legend")).to_contain_text("missed runs are skipped")
    expect(page.locator(".policy-text")).to_have_count(0)
    expect(page.locator("#schedule-prod-maintenance")).to_contain_text(
        "not active in this environment"
    )
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    expect(page.locator(".banner")).to_have_attribute("data-health", "healthy")
    expect(page.locator("#who")).to_contain_text("admin@example.com")

    page.get_by_role("button", name="Log out").click()
    expect(page.locator("h1")).to_have_text("Log in to jobsys admin")


# 2 -------------------------------------------------------------------------------------
def test_toggle_schedule_shows_next_run(system: Jobsys, page: Page) -> None:
    login(page, system)
    row = page.locator(SCHEDULE)
    switch = row.get_by_role("switch", name="Enabled: Nightly ETL")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(row.locator(".cell-next")).to_contain_text("disabled")

    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    next_run = row.locator(".cell-next time")
    expect(next_run).to_have_text(re.compile(r"^in \d+ (h|min)"))
    assert "UTC" in (next_run.get_attribute("title") or "")
    assert schedule_enabled(system, "nightly-etl")

    switch.click()
    page.locator("#dialog [data-confirm]").click()  # disabling asks for an optional note
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(row.locator(".cell-next time")).to_have_count(0)
    expect(row.locator(".cell-next")).to_contain_text("disabled")
    assert not schedule_enabled(system, "nightly-etl")


# 3 -------------------------------------------------------------------------------------
def test_run_now_runs_move_live(system_any_db: Jobsys, page: Page) -> None:
    system = system_any_db
    login(page, system)
    # Record every status the strip shows, and prove the page never reloads.
    page.evaluate(
        """() => {
            window.__noReload = true;
            window.__seen = {};
            const note = () => {
                for (const li of document.querySelectorAll('#schedule-nightly-etl .strip-run')) {
                    const seen = (window.__seen[li.dataset.job] ||= []);
                    const status = li.querySelector('.status-text').textContent;
                    if (seen[seen.length - 1] !== status) seen.push(status);
                }
            };
            new MutationObserver(note).observe(document.body, {subtree: true, childList: true,
                characterData: true});
        }"""
    )
    row = page.locator(SCHEDULE)
    row.get_by_role("button", name="Run Now: Nightly ETL").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Run Nightly ETL now?")
    expect(dialog).to_contain_text("The next scheduled run does not move.")
    dialog.get_by_role("button", name="Run Now").click()
    expect(dialog).to_be_hidden()

    extract = row.locator(".strip-run[data-job='extract'] .status-text")
    load = row.locator(".strip-run[data-job='load'] .status-text")
    expect(load).to_have_text("QUEUED")  # waits for extract (1.5 s)
    expect(extract).to_have_text("RUNNING")
    screenshot(page, "test_run_now_runs_move_live_running")
    expect(extract).to_have_text("SUCCESS")
    expect(load).to_have_text("RUNNING")
    expect(load).to_have_text("SUCCESS")
    expect(row.locator(".cell-last")).to_contain_text("SUCCESS")
    expect(row.locator(".cell-last")).to_contain_text("2 jobs")
    seen = page.evaluate("window.__seen")
    assert seen["load"] == ["QUEUED", "RUNNING", "SUCCESS"], seen
    assert seen["extract"][-2:] == ["RUNNING", "SUCCESS"], seen
    assert page.evaluate("window.__noReload") is True
    # Run Now never moves the next run of a disabled schedule.
    expect(row.locator(".cell-next")).to_contain_text("disabled")

    # The batch page: both runs on the timeline, in dependency order.
    row.locator(".cell-last a", has_text="batch").click()
    expect(page.locator("h1")).to_have_text(re.compile(r"Batch #\d+"))
    bars = page.locator(".tl-row")
    expect(bars).to_have_count(2)
    expect(bars.nth(0)).to_have_attribute("data-job", "extract")
    expect(bars.nth(1)).to_have_attribute("data-job", "load")
    expect(page.locator("#batch-status .status-text")).to_have_text("SUCCESS")
    expect(page.locator(".tl-row .tl-bar.status-success")).to_have_count(2)

    # History of the schedule lists the manual batch.
    page.goto(system.admin_url("/schedules/nightly-etl"))
    expect(page.locator(".history-table tbody tr")).to_have_count(1)
    expect(page.locator(".history-table tbody tr")).to_contain_text("MANUAL")
    expect(page.locator(".history-table tbody tr")).to_contain_text("2 success")


# 4 -------------------------------------------------------------------------------------
def test_run_job_with_params_form(system: Jobsys, page: Page) -> None:
    login(page, system)
    page.get_by_role("link", name="Jobs", exact=True).click()
    # Each job says how its runs are isolated (the app's default, or its own).
    expect(page.locator("tr[data-job='report'] .job-isolation")).to_have_text(
        "isolation: warm worker pool"
    )
    expect(page.locator("tr[data-job='compact'] .job-isolation")).to_have_text(
        "isolation: fresh process per run"
    )
    page.get_by_role("button", name="Run report").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Run report")
    day = dialog.get_by_label("day")
    limit = dialog.get_by_label("limit")
    expect(limit).to_have_value("10")  # the declared default
    expect(limit).to_have_attribute("type", "number")
    expect(dialog.get_by_label("dry_run")).to_have_attribute("type", "checkbox")

    # Bad values are refused before anything is sent.
    limit.fill("12.5")
    dialog.get_by_role("button", name="Run", exact=True).click()
    expect(day).to_have_attribute("aria-invalid", "true")
    expect(dialog).to_contain_text("This parameter is required.")
    expect(limit).to_have_attribute("aria-invalid", "true")
    expect(dialog).to_contain_text("Enter a whole number")
    expect(dialog).to_be_visible()
    screenshot(page, "test_run_job_with_params_form_invalid")
    runs = page.evaluate("fetch('/api/admin/job-runs?job=report').then(r => r.json())")
    assert runs["runs"] == []

    day.fill("2030-01-07")
    limit.fill("25")
    dialog.get_by_label("dry_run").check()
    dialog.get_by_role("button", name="Run", exact=True).click()
    expect(dialog).to_be_hidden()
    toast = page.locator(".toast", has_text="report: queued run")
    toast.get_by_role("link", name=re.compile(r"^#\d+$")).click()

    expect(page.locator("h1")).to_have_text(re.compile(r"Run #\d+ · report"))
    expect(page.locator("#run-status .status-text")).to_have_text("SUCCESS")
    params = json.loads(page.locator("pre.params").inner_text())
    assert params == {"day": "2030-01-07", "limit": 25, "ratio": 0.5, "dry_run": True}
    expect(page.locator(".log")).to_contain_text("report for 2030-01-07 (limit 25)")

    # A job without declared params gets a JSON editor with live validation.
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_role("button", name="Run compact").click()
    editor = dialog.get_by_label("Params (JSON object)")
    run_button = dialog.get_by_role("button", name="Run", exact=True)
    editor.fill("[1, 2]")
    expect(dialog.locator(".json-status")).to_contain_text("must be a JSON object")
    expect(run_button).to_be_disabled()
    editor.fill('{"table": "sessions"')
    expect(dialog.locator(".json-status")).to_contain_text("Not valid JSON")
    editor.fill('{"table": "sessions"}')
    expect(dialog.locator(".json-status")).to_contain_text("valid JSON object")
    run_button.click()
    expect(dialog).to_be_hidden()
    # Run history moved from the Jobs page to the Runs page (issue 11).
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.locator(".history-table tr[data-status]", has_text="compact")).to_have_count(1)


# 5 -------------------------------------------------------------------------------------
def test_failed_run_shows_error_in_logs(system: Jobsys, page: Page) -> None:
    login(page, system)
    created = api_fetch(page, "POST", "/jobs/purge/run", {})
    assert created["status"] == 202, created
    run_id = created["body"]["job_run_ids"][0]
    page.get_by_role("link", name="Runs", exact=True).click()  # (was on the Jobs page)
    history_row = page.locator(f".history-table tr[data-run-id='{run_id}']")
    expect(history_row.locator(".status-text")).to_have_text("FAILED")
    history_row.get_by_role("link", name=f"#{run_id}", exact=True).click()

    expect(page.locator("h1")).to_have_text(f"Run #{run_id} · purge")
    expect(page.locator("#run-status .status-text")).to_have_text("FAILED")
    expect(page.locator(".run-error")).to_contain_text(
        "RuntimeError: session store is read-only: cannot purge"
    )
    error_line = page.locator(".log-line[data-level='ERROR']")
    expect(error_line).to_contain_text("RuntimeError: session store is read-only")
    expect(page.locator(".log-line[data-level='WARNING']")).to_contain_text("read-only")
    # Level colours: an ERROR line is styled unlike an INFO line.
    info_colour = page.locator(".log-line[data-level='INFO'] .log-level").evaluate(
        "el => getComputedStyle(el).color"
    )
    error_colour = error_line.locator(".log-level").evaluate("el => getComputedStyle(el).color")
    assert info_colour != error_colour
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)


# 6 -------------------------------------------------------------------------------------
def test_viewer_cannot_toggle(system: Jobsys, page: Page) -> None:
    login(page, system, email=VIEWER)
    expect(page.locator("#readonly-note")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("viewer")
    row = page.locator(SCHEDULE)
    switch = row.get_by_role("switch", name="Enabled: Nightly ETL")
    expect(switch).to_be_disabled()
    expect(row.get_by_role("button", name="Run Now: Nightly ETL")).to_be_disabled()
    switch.click(force=True)
    expect(switch).to_have_attribute("aria-checked", "false")

    forced = api_fetch(page, "PUT", "/schedules/nightly-etl", {"enabled": True})
    assert forced["status"] == 403, forced
    assert forced["body"]["error"]["code"] == "forbidden"
    assert not schedule_enabled(system, "nightly-etl")

    page.get_by_role("link", name="Jobs", exact=True).click()
    expect(page.get_by_role("button", name="Run all jobs")).to_be_disabled()
    expect(page.get_by_role("button", name="Run report")).to_be_disabled()


# 7 -------------------------------------------------------------------------------------
def test_layout_and_keyboard(system: Jobsys, page: Page) -> None:
    login(page, system)
    created = api_fetch(page, "POST", "/jobs/purge/run", {})
    run_id = created["body"]["job_run_ids"][0]
    pages = ["", "/jobs", "/runs", "/jobs/purge", f"/runs/{run_id}"]
    pages += [f"/batches/{created['body']['batch_id']}"]
    pages += ["/workers", "/audit", "/schedules/nightly-etl"]
    for width in (375, 1440):
        page.set_viewport_size({"width": width, "height": 800})
        for path in pages:
            page.goto(system.admin_url(path))
            page.wait_for_selector("main[data-ready]")
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{path or '/'} at {width}px scrolls sideways ({scroll}px)"
        page.goto(system.admin_url("/schedules"))
        expect(page.locator("tbody.schedule")).to_have_count(3)
        screenshot(page, f"test_layout_schedules_{width}")

    # Keyboard only: Tab reaches the switch, Space and Enter toggle it.
    page.set_viewport_size({"width": 1280, "height": 900})
    switch = page.get_by_role("switch", name="Enabled: Hourly compaction")
    expect(switch).to_have_attribute("aria-checked", "false")
    page.locator("body").focus()
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == (
            "Enabled: Hourly compaction"
        ):
            break
    else:
        pytest.fail("Tab never reached the switch of Hourly compaction")
    outline = switch.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none", "the focused switch has no visible focus ring"
    page.keyboard.press("Space")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(page.locator("#schedule-hourly-compact .cell-next time")).to_have_count(1)
    page.keyboard.press("Enter")
    # Disabling asks for an optional note: the note field has focus; Tab, Tab, Enter disables.
    expect(page.locator("#pause-note")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).to_be_focused()
