"""Retry and Re-run failed in a real browser (Chromium) against a real web and daemon:
the Retry button on a failed run's page, its attempts on the run page and in the batch
timeline, Re-run failed on a batch page; a viewer's buttons are disabled."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.ui_helpers import (
    CHROMIUM,
    VIEWER,
    Jobsys,
    login,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

if CHROMIUM.exists():
    from playwright.sync_api import Page, expect

    expect.set_options(timeout=15_000)


def run_purge(page: Page) -> int:
    """Queue a run of ``purge`` (it always fails) from inside the page."""
    result: dict[str, Any] = page.evaluate(
        """async () => {
            const me = await (await fetch('/api/admin/me')).json();
            const r = await fetch('/api/admin/jobs/purge/run', {method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token},
                body: '{}'});
            return {status: r.status, body: await r.json()};
        }"""
    )
    assert result["status"] == 202, result
    run_id: int = result["body"]["job_run_ids"][0]
    return run_id


def test_retry_a_failed_run_then_rerun_its_batch(system: Jobsys, page: Page) -> None:
    login(page, system)
    first = run_purge(page)
    page.goto(system.admin_url(f"/runs/{first}"))
    expect(page.locator("#run-status .status-text")).to_have_text("FAILED")
    page.locator("#retry-run").click()

    # The new attempt's page: attempt 2, both attempts listed.
    expect(page.locator("h1")).not_to_have_text(f"Run #{first} · purge")
    expect(page.locator("#run-attempt")).to_have_text("2")
    attempts = page.locator("#attempts li")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("Attempt 1")
    expect(attempts.nth(1)).to_contain_text("Attempt 2 (this run)")
    expect(page.locator("#run-status .status-text")).to_have_text("FAILED")  # purge fails again
    second = int(page.url.rstrip("/").rsplit("/", 1)[1])
    expect(page.locator("#retry-run")).to_be_visible()  # and can be retried again

    # Its batch: the timeline shows the attempt; Re-run failed makes a linked batch.
    page.get_by_role("link", name=re.compile(r"^batch #\d+$")).first.click()
    expect(page.locator("#batch-status .status-text")).to_have_text("FAILED")
    bar = page.locator(f".tl-row[data-run-id='{second}']")
    expect(bar.locator(".tl-attempt")).to_have_text("attempt 2")
    old_batch = page.url.rstrip("/").rsplit("/", 1)[1]
    page.locator("#rerun-batch").click()
    expect(page).not_to_have_url(re.compile(rf"/batches/{old_batch}$"))
    expect(page.locator("dl")).to_contain_text(f"batch #{old_batch}")  # "Re-run of"
    expect(page.locator(".tl-attempt")).to_have_text("attempt 3")
    expect(page.locator("#batch-status .status-text")).to_have_text("FAILED")


def test_viewer_sees_retry_and_rerun_disabled(system: Jobsys, page: Page) -> None:
    login(page, system)
    run_id = run_purge(page)
    page.goto(system.admin_url(f"/runs/{run_id}"))
    expect(page.locator("#run-status .status-text")).to_have_text("FAILED")
    page.context.clear_cookies()
    login(page, system, VIEWER)
    page.goto(system.admin_url(f"/runs/{run_id}"))
    expect(page.locator("#retry-run")).to_be_disabled()
    page.get_by_role("link", name=re.compile(r"^batch #\d+$")).first.click()
    expect(page.locator("#rerun-batch")).to_be_disabled()
