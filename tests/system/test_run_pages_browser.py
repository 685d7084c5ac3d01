"""The runs page, a job's page and a schedule's page (issue 11 items 2 and 3) in a real
headless Chromium against real ``jobsys web`` and ``jobsys daemon`` processes, at 1280
and 375 px, as an admin and as a viewer. Screenshots of each page at both widths land
in ``test-output/screenshots/`` (and in ``$JOBSYS_SHOTS`` when set)."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.ui_helpers import CHROMIUM, VIEWER, Jobsys, api_fetch, login, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

if CHROMIUM.exists():
    from playwright.sync_api import Page, expect

    expect.set_options(timeout=10_000)

WIDTHS = (1280, 375)


def shot(page: Page, name: str) -> None:
    path = screenshot(page, name)
    target = os.environ.get("JOBSYS_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def no_sideways_scroll(page: Page, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} at {width}px scrolls sideways ({scroll}px)"


def ready(page: Page) -> None:
    page.wait_for_selector("main[data-ready]")


def queue(page: Page, job: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    created = api_fetch(page, "POST", f"/jobs/{job}/run", {"params": params or {}})
    assert created["status"] == 202, created
    return created["body"]  # type: ignore[no-any-return]


def wait_finished(page: Page, count: int) -> None:
    """Until ``count`` runs have finished (the daemon runs them for real)."""
    page.wait_for_function(
        """async (count) => {
            const r = await fetch('/api/admin/job-runs?status=SUCCESS,FAILED&limit=200');
            return (await r.json()).runs.length >= count;
        }""",
        arg=count,
        polling=200,
        timeout=30_000,
    )


# -- the runs page ----------------------------------------------------------------------
def test_runs_page_filters_and_page_are_kept_in_the_url(system: Jobsys, page: Page) -> None:
    login(page, system)
    for _ in range(2):
        queue(page, "purge")  # fails: "session store is read-only"
    for i in range(27):
        queue(page, "compact", {"n": i})
    wait_finished(page, 29)

    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.locator("h1")).to_have_text("Runs")
    rows = page.locator(".runs-table tbody tr")
    expect(rows).to_have_count(25)
    # Older: page 2 (in the URL), reload keeps it, Back returns to the newest.
    page.get_by_role("button", name="Older →").click()
    expect(rows).to_have_count(4)
    assert "cursor=" in page.url
    page.reload()
    ready(page)
    expect(rows).to_have_count(4)
    expect(page.locator(".pager-where")).to_have_text("page 2")
    page.go_back()
    ready(page)
    expect(rows).to_have_count(25)

    page.get_by_label("Status").select_option("FAILED")
    expect(rows).to_have_count(2)
    assert "status=FAILED" in page.url
    page.get_by_label("Error contains").fill("READ-ONLY")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("session store is read-only")
    page.get_by_label("Error contains").fill("no such error")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".runs-page .empty, .table-wrap .empty")).to_be_visible()
    assert "error=no+such+error" in page.url or "error=no%20such%20error" in page.url
    page.reload()
    ready(page)
    expect(page.get_by_label("Error contains")).to_have_value("no such error")
    expect(page.get_by_label("Status")).to_have_value("FAILED")
    expect(rows).to_have_count(0)
    page.go_back()
    ready(page)
    expect(page.get_by_label("Error contains")).to_have_value("READ-ONLY")
    expect(rows).to_have_count(2)
    page.go_back()
    ready(page)
    expect(page.get_by_label("Error contains")).to_have_value("")
    expect(page.get_by_label("Status")).to_have_value("FAILED")
    page.go_back()
    ready(page)
    expect(page.get_by_label("Status")).to_have_value("")
    expect(rows).to_have_count(25)

    # A time window: everything was queued in the last hour, nothing before.
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.goto(system.admin_url(f"/runs?to={hour_ago}"))
    ready(page)
    expect(rows).to_have_count(0)
    page.goto(system.admin_url(f"/runs?from={hour_ago}&job=purge"))
    ready(page)
    expect(rows).to_have_count(2)
    expect(page.get_by_label("Job")).to_have_value("purge")
    # A bad filter in a hand-made URL says what is wrong.
    page.goto(system.admin_url("/runs?from=yesterday"))
    ready(page)
    expect(page.get_by_role("alert")).to_contain_text("'from' is not an ISO-8601 instant")

    # A job name links to its page.
    page.goto(system.admin_url("/runs?job=purge"))
    ready(page)
    rows.first.get_by_role("link", name="purge").click()
    expect(page.locator("h1")).to_have_text("purge")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(system.admin_url("/runs"))
        ready(page)
        expect(rows).to_have_count(25)
        no_sideways_scroll(page, width)
        shot(page, f"runs_page_{width}")


def add_finished_runs(
    system: Jobsys, job: str, statuses: list[str], *, error: str | None = None
) -> None:
    """Finished runs of ``job`` in one batch queued about two hours ago, one a second
    apart, lasting 1 to 5 s (one bulk insert, as if they had run then); the failed ones
    with ``error``."""
    from sqlalchemy import insert

    from jobsys.store.models import JobBatch, JobRun

    at = datetime.now(UTC) - timedelta(hours=2)
    with system.engine.begin() as conn:
        created = conn.execute(
            insert(JobBatch).values(
                trigger="MANUAL",
                status="FAILED" if "FAILED" in statuses else "SUCCESS",
                mode="ALL_JOBS",
                total_runs=len(statuses),
                created_at=at,
                finished_at=at,
                updated_at=at,
            )
        ).inserted_primary_key
        assert created is not None
        rows = []
        for i, status in enumerate(statuses):
            queued = at + timedelta(seconds=i)
            took = 1000 + (i * 37) % 4000
            rows.append(
                {
                    "batch_id": created[0],
                    "job_name": job,
                    "status": status,
                    "trigger": "MANUAL",
                    "position": i,
                    "depends_on": [],
                    "queued_at": queued,
                    "started_at": queued,
                    "finished_at": queued + timedelta(milliseconds=took),
                    "duration_ms": took,
                    "error": error if status == "FAILED" else None,
                    "cancel_requested": False,
                    "updated_at": queued,
                }
            )
        conn.execute(insert(JobRun), rows)


def test_runs_page_error_search_says_how_far_each_page_searched(system: Jobsys, page: Page) -> None:
    # One page of an error search reads at most 20,000 runs (GET /job-runs `searched`):
    # the matches here are older than that.
    add_finished_runs(
        system, "compact", ["FAILED"] * 3 + ["SUCCESS"] * 20_010, error="disk quota exceeded"
    )
    login(page, system)
    rows = page.locator(".runs-table tbody tr")
    note = page.locator(".search-note")
    older = page.get_by_role("button", name="Older →")
    three_hours_ago = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for width, extra in ((1280, ""), (375, f"&from={three_hours_ago}")):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(system.admin_url(f"/runs?error=quota{extra}"))
        ready(page)
        expect(rows).to_have_count(0)
        expect(note).to_be_visible()
        expect(note).to_contain_text("The error search reads 20,000 runs a page")
        expect(note).to_contain_text("No match yet")
        expect(older).to_be_enabled()
        no_sideways_scroll(page, width)
        shot(page, f"runs_error_search_{width}")
        older.click()
        expect(rows).to_have_count(3)
        expect(rows.first).to_contain_text("disk quota exceeded")
        expect(note).to_be_hidden()  # this page reached the oldest run
        expect(older).to_be_disabled()
        page.reload()  # the page (its cursor) is in the URL
        ready(page)
        expect(rows).to_have_count(3)


# -- a job's page -----------------------------------------------------------------------
def test_job_page_shows_history_chart_rates_and_runs_the_job(system: Jobsys, page: Page) -> None:
    login(page, system)
    for day in ("2030-01-01", "2030-01-02", "2030-01-03"):
        queue(page, "report", {"day": day})
    queue(page, "purge")
    wait_finished(page, 4)
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_role("link", name="report", exact=True).click()
    expect(page.locator("h1")).to_have_text("report")
    expect(page.locator(".job-description")).to_have_text("Build the report for one day")
    expect(page.locator(".param-list li")).to_have_count(4)
    expect(page.locator(".param-list")).to_contain_text("day")
    expect(page.locator(".meta")).to_contain_text("Timeout")
    cells = page.locator(".run-strip .strip-cell")
    expect(cells).to_have_count(3)
    expect(cells.first).to_have_attribute("data-status", "SUCCESS")
    expect(page.locator(".rate-tile[data-window='24h'] .rate-value")).to_have_text("100%")
    expect(page.locator(".rate-tile[data-window='7d']")).to_contain_text("3 succeeded, 0 failed")
    expect(page.locator(".chart .uplot canvas")).to_have_count(1)
    expect(page.locator(".chart-note")).to_contain_text(
        re.compile(r"p50 .+ · p95 .+ over the last 3")
    )
    expect(page.locator(".chart")).to_have_attribute("aria-label", re.compile("p50"))

    # Run (the params form), then the strip grows live.
    page.get_by_role("button", name="Run report").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("day").fill("2030-01-04")
    dialog.get_by_role("button", name="Run", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(cells).to_have_count(4)
    expect(cells.last).to_have_attribute("data-status", "SUCCESS", timeout=20_000)

    # Upstream and downstream jobs link to their pages; a failing job's rate is 0%.
    page.goto(system.admin_url("/jobs/load"))
    ready(page)
    expect(page.locator(".meta")).to_contain_text("extract")
    page.get_by_role("link", name="extract", exact=True).click()
    expect(page.locator("h1")).to_have_text("extract")
    expect(page.locator(".meta")).to_contain_text("load")
    page.goto(system.admin_url("/jobs/purge"))
    ready(page)
    expect(page.locator(".rate-tile[data-window='24h'] .rate-value")).to_have_text("0%")
    expect(page.locator(".run-strip .strip-cell.status-failed")).to_have_count(1)
    page.goto(system.admin_url("/jobs/nope"))
    ready(page)
    expect(page.locator("h1")).to_have_text("Job not found")

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(system.admin_url("/jobs/report"))
        ready(page)
        expect(page.locator(".chart .uplot canvas")).to_have_count(1)
        no_sideways_scroll(page, width)
        shot(page, f"job_page_{width}")
        page.goto(system.admin_url("/jobs"))
        ready(page)
        no_sideways_scroll(page, width)
        shot(page, f"jobs_list_{width}")


def chart_pixels(page: Page, color: str) -> int:
    """Pixels of ``color`` (#rrggbb) in the chart's canvas (its points; the legend is HTML)."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    count: int = page.evaluate(
        """([r, g, b]) => {
            const canvas = document.querySelector('.chart .uplot canvas');
            const ctx = canvas.getContext('2d');
            const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (Math.abs(data[i] - r) < 12 && Math.abs(data[i + 1] - g) < 12
                    && Math.abs(data[i + 2] - b) < 12) n += 1;
            }
            return n;
        }""",
        rgb,
    )
    return count


def test_job_page_chart_draws_every_point_of_a_long_history(system: Jobsys, page: Page) -> None:
    # 200 finished runs (the chart's most): uPlot hid points closer than their size,
    # and the series have no line, so the chart showed only the p50/p95 lines.
    add_finished_runs(system, "compact", (["SUCCESS"] * 9 + ["FAILED"]) * 20, error="boom")
    login(page, system)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(system.admin_url("/jobs/compact"))
        ready(page)
        expect(page.locator(".chart-note")).to_contain_text("over the last 200 finished runs")
        page.wait_for_timeout(300)  # the chart draws in the next animation frame
        assert chart_pixels(page, "#2e9e54") > 500  # --ok-bar: the succeeded runs
        assert chart_pixels(page, "#d93a32") > 50  # --fail-bar: the failed ones
        no_sideways_scroll(page, width)
        shot(page, f"job_page_long_history_{width}")


# -- a schedule's page ------------------------------------------------------------------
def add_slot_records(system: Jobsys, schedule_id: str) -> tuple[datetime, datetime]:
    """A fired (late) batch for the last past slot, an overlap skip for the one before
    and, before that, six slots fired on time that succeeded: as the daemon would have
    recorded them."""
    from sqlmodel import Session

    from jobsys.cron import CronSchedule
    from jobsys.store.models import JobBatch

    now = datetime.now(UTC)
    cron = CronSchedule("15 * * * *", "Europe/Paris")
    last = cron.next_after(now - timedelta(hours=1, minutes=1))
    if last > now:
        last -= timedelta(hours=1)
    before = last - timedelta(hours=1)
    with Session(system.engine) as s:
        s.add(
            JobBatch(
                schedule_id=schedule_id,
                trigger="CRON",
                scheduled_for=before,
                status="SKIPPED",
                reason="overlap: batch #1 of this schedule is still running",
                mode="SLOT",
                total_runs=0,
                created_at=before,
                finished_at=before,
                duration_ms=0,
                updated_at=before,
                lateness_ms=0,
            )
        )
        for hours in range(1, 7):
            slot = before - timedelta(hours=hours)
            s.add(
                JobBatch(
                    schedule_id=schedule_id,
                    trigger="CRON",
                    scheduled_for=slot,
                    status="SUCCESS",
                    mode="GROUP",
                    job_group="housekeeping",
                    total_runs=0,
                    created_at=slot + timedelta(seconds=1),
                    finished_at=slot + timedelta(seconds=2),
                    duration_ms=1000,
                    updated_at=slot,
                    lateness_ms=1000,
                )
            )
        s.add(
            JobBatch(
                schedule_id=schedule_id,
                trigger="CRON",
                scheduled_for=last,
                status="SUCCESS",
                mode="GROUP",
                job_group="housekeeping",
                total_runs=0,
                created_at=last + timedelta(seconds=95),
                finished_at=last + timedelta(seconds=96),
                duration_ms=1000,
                updated_at=last,
                lateness_ms=95_000,
            )
        )
        s.commit()
    return last, before


def test_schedule_page_next_slots_and_ledger(system: Jobsys, page: Page) -> None:
    last, before = add_slot_records(system, "hourly-compact")
    login(page, system)
    page.goto(system.admin_url("/schedules/hourly-compact"))
    ready(page)
    expect(page.locator("h1")).to_have_text("Hourly compaction")
    slots = page.locator(".slots-table tbody tr")
    expect(slots).to_have_count(10)
    expect(slots.first).to_contain_text("UTC+0")  # Paris is UTC+01:00 in winter
    assert page.locator(".slots-table tr[data-dst]").count() == 10

    ledger = page.locator(".ledger-table tbody tr")
    expect(page.locator(".ledger-total")).to_contain_text(
        re.compile(r"Every one of the 2[45] expected slots is accounted for")
    )
    fired = page.locator(f".ledger-table tr[data-slot='{last:%Y-%m-%dT%H:%M:%S}Z']")
    expect(fired).to_have_attribute("data-fate", "succeeded")
    expect(fired).to_contain_text("fired late by 1 min 35 s")
    skipped = page.locator(f".ledger-table tr[data-slot='{before:%Y-%m-%dT%H:%M:%S}Z']")
    expect(skipped).to_have_attribute("data-cause", "overlap")
    expect(skipped).to_contain_text("Skipped: overlap")
    expect(page.locator(".ledger-table tr[data-fate='not_yet_due']")).to_have_count(1)
    # the schedule is disabled and was created moments ago: the older slots say so
    expect(page.locator(".ledger-table tr[data-cause='not_created']").first).to_contain_text(
        "before the schedule existed"
    )
    # Alike quiet slots in a row are one row that opens: the six on time, the older ones
    # from before the schedule existed.
    quiet = page.locator(".ledger-table tr.ledger-group[data-fate='succeeded']")
    expect(quiet).to_have_attribute("data-slots", "6")
    expect(quiet).to_contain_text("each fired on time and succeeded")
    members = page.locator(".ledger-table tr.ledger-member[data-fate='succeeded']")
    expect(members).to_have_count(6)
    for i in range(6):
        expect(members.nth(i)).to_be_hidden()
    expand = quiet.get_by_role("button", name=re.compile("Show the 6 slots"))
    expand.click()
    expect(expand).to_have_attribute("aria-expanded", "true")
    for i in range(6):
        expect(members.nth(i)).to_be_visible()
        expect(members.nth(i).locator(".on-time")).to_contain_text("fired on time")
    expand.click()
    expect(members.first).to_be_hidden()
    older = page.locator(".ledger-table tr.ledger-group[data-cause='not_created']")
    expect(older).to_have_count(1)
    assert int(older.get_attribute("data-slots") or 0) >= 10
    total = ledger.count()

    # The window and the filter are kept in the URL.
    page.get_by_label("Window", exact=True).select_option("6h")
    expect(page.locator(".ledger-total")).to_contain_text(re.compile(r"of the [67] expected"))
    assert "window=6h" in page.url
    page.get_by_label("Only slots that did not succeed").check()
    expect(page.locator(".ledger-table tr[data-fate='succeeded']")).to_have_count(0)
    assert "problems=1" in page.url
    page.reload()
    ready(page)
    expect(page.get_by_label("Window", exact=True)).to_have_value("6h")
    expect(page.get_by_label("Only slots that did not succeed")).to_be_checked()
    expect(page.locator(".ledger-table tr[data-fate='succeeded']")).to_have_count(0)
    page.go_back()
    ready(page)
    page.go_back()
    ready(page)
    expect(ledger).to_have_count(total)
    # A window the server refuses says why.
    page.goto(
        system.admin_url(
            "/schedules/hourly-compact?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"
        )
    )
    ready(page)
    expect(page.locator(".ledger").get_by_role("alert")).to_contain_text("at most 7 days")

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(system.admin_url("/schedules/hourly-compact?window=24h"))
        ready(page)
        expect(fired).to_have_attribute("data-fate", "succeeded")
        no_sideways_scroll(page, width)
        shot(page, f"schedule_page_{width}")
        height = page.evaluate("document.documentElement.scrollHeight")
        print(f"schedule page at {width}px: {height}px tall")


# -- a viewer: the same pages, read-only ------------------------------------------------
def test_viewer_reads_every_page_but_cannot_run(system: Jobsys, page: Page) -> None:
    login(page, system)
    queue(page, "report", {"day": "2030-01-01"})
    wait_finished(page, 1)
    page.get_by_role("button", name="Log out").click()
    login(page, system, email=VIEWER)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(system.admin_url("/jobs/report"))
        ready(page)
        expect(page.locator("h1")).to_have_text("report")
        expect(page.locator(".run-strip .strip-cell")).to_have_count(1)
        expect(page.get_by_role("button", name="Run report")).to_have_count(0)  # not offered
        no_sideways_scroll(page, width)
        shot(page, f"job_page_viewer_{width}")
        page.goto(system.admin_url("/runs?job=report"))
        ready(page)
        expect(page.locator(".runs-table tbody tr")).to_have_count(1)
        no_sideways_scroll(page, width)
        shot(page, f"runs_page_viewer_{width}")
        page.goto(system.admin_url("/schedules/nightly-etl"))
        ready(page)
        expect(page.locator(".slots-table tbody tr")).to_have_count(10)
        expect(page.locator(".ledger-total")).to_contain_text("accounted for")
        no_sideways_scroll(page, width)
        shot(page, f"schedule_page_viewer_{width}")
    forced = api_fetch(page, "POST", "/jobs/report/run", {"params": {"day": "2030-01-02"}})
    assert forced["status"] == 403, forced
    assert api_fetch(page, "GET", "/jobs/report")["status"] == 200
    assert api_fetch(page, "GET", "/schedules/nightly-etl/ledger")["status"] == 200
