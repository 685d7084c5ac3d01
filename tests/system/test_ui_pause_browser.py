"""Disabling a schedule with a note in the real browser (issue 10 item 4): the switch
asks for an optional note; the note, who and when show on the schedule's row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from jobsys.store.models import JobSchedule
from tests.ui_helpers import (
    ADMIN,
    CHROMIUM,
    VIEWER,
    Jobsys,
    login,
    running_jobsys,
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


@pytest.fixture
def system(db_url: str, tmp_path: Path) -> Iterator[Jobsys]:
    with running_jobsys(db_url, tmp_path) as running:
        yield running


def paused(system: Jobsys, schedule_id: str) -> tuple[bool, str | None, str | None]:
    with system.engine.connect() as conn:
        row = conn.execute(
            select(
                col(JobSchedule.enabled), col(JobSchedule.paused_note), col(JobSchedule.paused_by)
            ).where(col(JobSchedule.id) == schedule_id)
        ).one()
    return bool(row[0]), row[1], row[2]


def test_disable_asks_for_a_note_and_the_row_shows_it(system: Jobsys, page: Page) -> None:
    login(page, system)
    row = page.locator(SCHEDULE)
    switch = row.get_by_role("switch", name="Enabled: Nightly ETL")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(row.locator(".sched-paused")).to_have_count(0)

    # Cancel: nothing changes
    switch.click()
    dialog = page.locator("#dialog")
    expect(dialog.get_by_label("Note (optional): why")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(switch).to_have_attribute("aria-checked", "true")
    assert paused(system, "nightly-etl")[0] is True

    # Disable with a note
    switch.click()
    dialog.get_by_label("Note (optional): why").fill("warehouse migration until Monday")
    dialog.get_by_role("button", name="Disable").click()
    expect(switch).to_have_attribute("aria-checked", "false")
    info = row.locator(".sched-paused")
    expect(info).to_contain_text(f"Disabled by {ADMIN}")
    expect(info.locator(".paused-note")).to_have_text("warehouse migration until Monday")
    expect(info.locator("time")).to_have_count(1)
    assert paused(system, "nightly-etl") == (False, "warehouse migration until Monday", ADMIN)
    screenshot(page, "test_pause_note_row")

    # Shown after a reload too (from the API), and gone once enabled again
    page.reload()
    expect(page.locator(SCHEDULE).locator(".paused-note")).to_have_text(
        "warehouse migration until Monday"
    )
    page.locator(SCHEDULE).get_by_role("switch", name="Enabled: Nightly ETL").click()
    expect(page.locator(SCHEDULE).locator(".sched-paused")).to_have_count(0)
    assert paused(system, "nightly-etl") == (True, None, None)

    # Disabling without a note: who and when still show
    page.locator(SCHEDULE).get_by_role("switch", name="Enabled: Nightly ETL").click()
    page.locator("#dialog").get_by_role("button", name="Disable").click()
    expect(page.locator(SCHEDULE).locator(".sched-paused")).to_contain_text(f"Disabled by {ADMIN}")
    expect(page.locator(SCHEDULE).locator(".paused-note")).to_have_count(0)


def test_a_viewer_sees_the_note_but_cannot_disable(system: Jobsys, page: Page) -> None:
    login(page, system)
    switch = page.locator(SCHEDULE).get_by_role("switch", name="Enabled: Nightly ETL")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.click()
    page.locator("#dialog").get_by_label("Note (optional): why").fill("paused for the audit")
    page.locator("#dialog").get_by_role("button", name="Disable").click()
    expect(switch).to_have_attribute("aria-checked", "false")
    page.context.clear_cookies()

    login(page, system, email=VIEWER)
    row = page.locator(SCHEDULE)
    expect(row.locator(".paused-note")).to_have_text("paused for the audit")
    expect(row.get_by_role("switch", name="Enabled: Nightly ETL")).to_be_disabled()
    status = page.evaluate(
        """async () => {
            const me = await (await fetch('/api/admin/me')).json();
            const r = await fetch('/api/admin/schedules/nightly-etl/disable', {
                method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token},
                body: JSON.stringify({note: 'viewer note'}),
            });
            return r.status;
        }"""
    )
    assert status == 403
    assert paused(system, "nightly-etl")[1] == "paused for the audit"
