"""What an operator needs to see (issue 11, item 5), each checked in a real headless
Chromium at 1280 and 375 px against real web + daemon processes: progress with the time
left, a queued run's reason, cancelling a whole batch, a skipped batch's page, "Last run"
with skipped slots apart, back links, the UTC/local switch and dated log lines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.ui_helpers import CHROMIUM, VIEWER, Jobsys, api_fetch, login, running_jobsys, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

if CHROMIUM.exists():
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)

WIDTHS = (1280, 375)


@pytest.fixture(scope="module")
def slow(_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobsys]:
    """One web + daemon whose etl jobs take 20 s (progress every 4 s)."""
    from tests.conftest import _copy_sqlite

    tmp = tmp_path_factory.mktemp("operator")
    with running_jobsys(_copy_sqlite(_sqlite_template, tmp), tmp, UI_APP_SLEEP="20") as system:
        yield system


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        assert not errors, f"JavaScript errors: {errors}"
    finally:
        context.close()


def add_batch(system: Jobsys, status: str, reason: str | None, minutes_ago: int) -> int:
    """A batch of nightly-etl written directly (a slot from the past), without runs."""
    from datetime import timedelta

    from jobsys.clock import SystemClock
    from jobsys.store.db import session
    from jobsys.store.models import JobBatch

    now = SystemClock().now() - timedelta(minutes=minutes_ago)
    with session(system.engine) as s:
        batch = JobBatch(
            schedule_id="nightly-etl",
            trigger="CRON",
            scheduled_for=now.replace(second=0, microsecond=0),
            status=status,
            reason=reason,
            mode="GROUP",
            job_group="etl",
            total_runs=0,
            created_at=now,
            started_at=None if status == "SKIPPED" else now,
            finished_at=now,
            duration_ms=None if status == "SKIPPED" else 1000,
            updated_at=now,
        )
        s.add(batch)
        s.commit()
        assert batch.id is not None
        return batch.id


def test_progress_time_left_waiting_reason_and_batch_cancel(slow: Jobsys, page: Page) -> None:
    login(page, slow)
    created = api_fetch(page, "POST", "/jobs/run-group/etl", {})["body"]
    extract, load = created["job_run_ids"]
    # Progress in percent with the time left, once the job reported some.
    page.goto(slow.admin_url(f"/runs/{extract}"))
    expect(page.locator(".progress-caption")).to_have_text(re.compile(r"^\d+ % \(\d / 5\)$"))
    expect(page.locator(".progress-eta")).to_have_text(re.compile(r"^about .+ left$"))
    # The dependent run says why it waits.
    page.goto(slow.admin_url(f"/runs/{load}"))
    expect(page.locator("#waiting-reason")).to_have_text(
        re.compile(rf"waiting for dependency extract \(run #{extract}, (QUEUED|RUNNING)\)")
    )
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"run_waiting_{width}")
    page.set_viewport_size({"width": 1280, "height": 900})

    # The whole batch is cancelled at once (dialog: Keep running / Cancel batch).
    page.get_by_role("link", name=re.compile(r"^batch #\d+$")).first.click()
    expect(page.locator("#batch-status .status-text")).to_have_text("RUNNING")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        expect(page.locator("#cancel-batch")).to_be_visible()
        screenshot(page, f"batch_cancel_{width}")
    page.locator("#cancel-batch").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Keep running")).to_be_visible()
    dialog.get_by_role("button", name="Cancel batch").click()
    expect(page.locator("#batch-status .status-text")).to_have_text("CANCELLED", timeout=40_000)
    expect(page.locator(f".tl-row[data-run-id='{load}']")).to_have_attribute(
        "data-status", "CANCELLED"
    )
    audit = api_fetch(page, "GET", f"/audit?action=batch.cancel&target={created['batch_id']}")
    assert [e["action"] for e in audit["body"]["entries"]] == ["batch.cancel"]


def test_skipped_batch_and_last_run_with_skipped_slots_apart(slow: Jobsys, page: Page) -> None:
    add_batch(slow, "SUCCESS", None, minutes_ago=90)
    skipped = add_batch(slow, "SKIPPED", "missed: no daemon fired the slot in time", 30)
    login(page, slow)
    row = page.locator("#schedule-nightly-etl")
    expect(row.locator(".last-line")).to_contain_text("SUCCESS")
    expect(row.locator(".last-skipped")).to_contain_text("1 slot skipped since")
    expect(row.locator(".last-skipped")).to_contain_text("no daemon fired the slot")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"schedules_last_run_{width}")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(slow.admin_url(f"/batches/{skipped}"))
    expect(page.locator("#batch-skipped")).to_have_text(
        "skipped: missed: no daemon fired the slot in time"
    )
    meta = page.locator("dl.meta")
    expect(meta).not_to_contain_text("Started")
    expect(meta).not_to_contain_text("Duration")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"batch_skipped_{width}")


def test_back_links_return_where_you_came_from(slow: Jobsys, page: Page) -> None:
    login(page, slow)
    created = api_fetch(page, "POST", "/jobs/purge/run", {})["body"]
    run_id = created["job_run_ids"][0]
    # From the audit log to the run: back goes to the audit log, not to Runs.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page.locator("h1")).to_have_text("Audit")
    page.goto(slow.admin_url(f"/runs/{run_id}"))  # a fresh load: no previous page
    expect(page.locator(".back-link")).to_have_text("← Runs")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedules").click()
    expect(page.locator("h1")).to_have_text("Schedules")
    page.locator(".sched-name a[href='/admin/schedules/nightly-etl']").click()
    expect(page.locator("h1")).to_have_text("Nightly ETL")
    expect(page.locator(".back-link")).to_have_text("← Schedules")
    # From the runs page filtered by status, to a run, and back to that filter.
    page.wait_for_function(
        """async (id) => (await (await fetch('/api/admin/job-runs/' + id))
            .json()).status === 'FAILED'""",
        arg=run_id,
        timeout=30_000,
        polling=300,
    )
    page.goto(slow.admin_url("/runs?status=FAILED"))
    expect(page.locator("#main")).to_have_attribute("data-ready", "1")
    page.locator(f"a[href='/admin/runs/{run_id}']").first.click()
    expect(page.locator("#run-status .status-text")).to_have_text("FAILED")
    expect(page.locator(".back-link")).to_have_text("← Runs")
    page.locator(".back-link").click()
    expect(page).to_have_url(re.compile(r"/admin/runs\?status=FAILED$"))


def test_time_switch_is_remembered_and_log_lines_carry_a_date(slow: Jobsys, page: Page) -> None:
    login(page, slow)
    run_id = api_fetch(page, "POST", "/jobs/purge/run", {})["body"]["job_run_ids"][0]
    page.goto(slow.admin_url(f"/runs/{run_id}"))
    expect(page.locator("#run-status .status-text")).to_have_text("FAILED")
    ts = page.locator(".log-line .log-ts").first
    expect(ts).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    switch = page.locator("#time-mode")
    expect(switch).to_have_text("Times: UTC")
    switch.click()
    expect(switch).to_have_text("Times: local")
    expect(switch).to_have_attribute("aria-pressed", "true")
    zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    expect(ts).to_have_text(re.compile(rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d {re.escape(zone)}$"))
    page.reload()
    expect(page.locator("#time-mode")).to_have_text("Times: local")
    expect(page.locator(".time-abs .abs").first).to_contain_text(zone)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"run_log_local_{width}")
    page.locator("#time-mode").click()
    expect(page.locator(".log-line .log-ts").first).to_contain_text("UTC")


def test_viewer_is_offered_no_cancel(slow: Jobsys, page: Page) -> None:
    login(page, slow)
    created = api_fetch(page, "POST", "/jobs/run-group/etl", {})["body"]
    page.context.clear_cookies()
    login(page, slow, VIEWER)
    page.goto(slow.admin_url(f"/batches/{created['batch_id']}"))
    expect(page.locator("#main")).to_have_attribute("data-ready", "1")
    expect(page.locator("#cancel-batch")).to_have_count(0)
    assert api_fetch(page, "POST", f"/batches/{created['batch_id']}/cancel")["status"] == 403
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"batch_viewer_{width}")
