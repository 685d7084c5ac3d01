"""The Backfill dialog in a real headless Chromium against real ``jobsys web`` and
``jobsys daemon`` processes: from/to, a dry-run preview listing the slots, confirm;
a second backfill of the same range lists the slots as taken; viewers never see it."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import col

from jobsys.store.models import JobBatch
from tests.ui_helpers import (
    CHROMIUM,
    VIEWER,
    Jobsys,
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

ROW = "#schedule-nightly-etl"  # "0 2 * * *" in UTC
SLOTS = ["2025-01-01T02:00:00Z", "2025-01-02T02:00:00Z", "2025-01-03T02:00:00Z"]


def backfill_batches(system: Jobsys) -> list[tuple[str, str]]:
    with system.engine.connect() as conn:
        rows = conn.execute(
            select(col(JobBatch.scheduled_for), col(JobBatch.trigger))
            .where(col(JobBatch.schedule_id) == "nightly-etl")
            .order_by(col(JobBatch.scheduled_for))
        ).all()
    slots = []
    for scheduled_for, trigger in rows:
        assert scheduled_for is not None
        slots.append((scheduled_for.strftime("%Y-%m-%dT%H:%M:%SZ"), trigger))
    return slots


def open_and_preview(page: Page) -> None:
    page.locator(ROW).get_by_role("button", name="Backfill: Nightly ETL").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Backfill Nightly ETL")
    dialog.get_by_label("From (ISO-8601, included)").fill("2025-01-01T00:00:00Z")
    dialog.get_by_label("To (ISO-8601, excluded)").fill("2025-01-04T00:00:00Z")
    dialog.get_by_role("button", name="Preview slots").click()
    expect(dialog.locator(".backfill-slot")).to_have_count(3)


def test_backfill_dialog_previews_then_queues_one_batch_per_slot(
    system: Jobsys, page: Page
) -> None:
    login(page, system)
    open_and_preview(page)
    dialog = page.get_by_role("dialog")
    expect(dialog.locator(".backfill-slot code")).to_have_text(SLOTS)
    expect(dialog.locator(".backfill-summary")).to_contain_text("3 new batches would be queued")
    assert backfill_batches(system) == []  # the preview is a dry run
    screenshot(page, "test_backfill_dialog_preview")
    dialog.get_by_role("button", name="Backfill 3 slots").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".toast").last).to_contain_text("queued 3 backfill batches")
    assert backfill_batches(system) == [(s, "BACKFILL") for s in SLOTS]

    # The same range again: every slot has its batch; nothing to confirm.
    open_and_preview(page)
    expect(dialog.locator(".backfill-slot[data-existing='true']")).to_have_count(3)
    expect(dialog.locator(".backfill-slot").first).to_contain_text("already has batch #")
    expect(dialog.get_by_role("button", name="Backfill 0 slots")).to_be_disabled()

    # A bad range: the server's message, in the dialog.
    dialog.get_by_label("To (ISO-8601, excluded)").fill("2035-01-01T00:00:00Z")
    dialog.get_by_role("button", name="Preview slots").click()
    expect(dialog.get_by_role("alert")).to_contain_text("is in the future")
    assert len(backfill_batches(system)) == 3


def test_viewer_does_not_see_backfill(system: Jobsys, page: Page) -> None:
    login(page, system, email=VIEWER)
    row = page.locator(ROW)
    expect(row.get_by_role("button", name="Run Now: Nightly ETL")).to_be_disabled()
    expect(row.get_by_role("button", name="Backfill: Nightly ETL")).to_have_count(0)
    status = page.evaluate(
        """async () => {
            const me = await (await fetch('/api/admin/me')).json();
            const r = await fetch('/api/admin/schedules/nightly-etl/backfill', {
                method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token},
                body: JSON.stringify({from: '2025-01-01T00:00:00Z', to: '2025-01-04T00:00:00Z'}),
            });
            return r.status;
        }"""
    )
    assert status == 403
    assert backfill_batches(system) == []
