"""The run page opens on the end of a long log and pages back (issue 12, item 10), in a
real headless Chromium against real ``jobsys web`` and ``jobsys daemon`` processes."""

from __future__ import annotations

from datetime import UTC, datetime

from jobsys.store.queries import get_run
from jobsys.store.runs import append_logs
from tests.process_helpers import wait_for
from tests.system.test_ui_browser import pytestmark  # noqa: F401
from tests.ui_helpers import CHROMIUM, Jobsys, api_fetch, login

if CHROMIUM.exists():
    from playwright.sync_api import Page, expect


def test_run_page_shows_the_end_of_a_long_log_and_loads_earlier_lines(
    system: Jobsys,
    page: Page,
) -> None:
    login(page, system)
    created = api_fetch(page, "POST", "/jobs/purge/run", {})
    assert created["status"] == 202, created
    run_id = created["body"]["job_run_ids"][0]
    wait_for(lambda: get_run(system.engine, run_id, with_logs=False)["status"] == "FAILED", 30)
    stored = get_run(system.engine, run_id)["log_count"]  # what purge itself logged
    at = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
    append_logs(system.engine, run_id, [(at, "INFO", f"line {n}") for n in range(1, 2500)])
    append_logs(system.engine, run_id, [(at, "ERROR", "the last line of a long log")])
    total = stored + 2500

    page.goto(system.admin_url(f"/runs/{run_id}"))
    expect(page.locator("#run-status .status-text")).to_have_text("FAILED")
    lines = page.locator(".log-line")
    expect(lines).to_have_count(1000)
    expect(lines.last).to_contain_text("the last line of a long log")
    expect(lines.first).to_contain_text("line 1501")
    count = page.locator("#log-count")
    expect(count).to_have_text(f"Showing the last 1,000 of {total:,} lines.")

    earlier = page.get_by_role("button", name="Load earlier lines")
    earlier.click()
    expect(lines).to_have_count(2000)
    expect(lines.first).to_contain_text("line 501")
    expect(count).to_have_text(f"Showing the last 2,000 of {total:,} lines.")
    earlier.click()
    expect(lines).to_have_count(total)
    expect(count).to_have_text(f"{total:,} lines.")
    expect(earlier).to_be_hidden()
    expect(lines.first).not_to_contain_text("line ")  # purge's own first line
