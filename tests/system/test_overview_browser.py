"""The overview landing page and the operator fixes of issue 11 in a real headless
Chromium against real ``jobsys web`` and ``jobsys daemon`` processes, at 1280 and 375 px,
as admin and as viewer. Screenshots go to ``test-output/screenshots/overview_*.png``."""

from __future__ import annotations

import re
import signal
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from jobsys.clock import SystemClock
from jobsys.store.models import JobSchedule
from tests.ui_helpers import ADMIN, CHROMIUM, PASSWORD, VIEWER, Jobsys, api_fetch, login, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

if CHROMIUM.exists():
    from playwright.sync_api import Page, expect

    expect.set_options(timeout=15_000)

WIDTHS = (1280, 375)


def stop_daemon(system: Jobsys) -> None:
    """SIGTERM: the daemon stops cleanly and marks itself STOPPED (none is alive then)."""
    system.daemon.signal(signal.SIGTERM)
    assert system.daemon.wait(30) == 0, system.daemon.log()


def make_overdue(system: Jobsys) -> None:
    """Enable nightly-etl (02:00 UTC) with its newest past slot as next run, at least
    90 s ago: overdue beyond its 60 s grace, as if no daemon had fired it."""
    now = SystemClock().now()
    past = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if now - past < timedelta(seconds=90):
        past -= timedelta(days=1)
    with system.engine.begin() as conn:
        conn.execute(
            update(JobSchedule)
            .where(col(JobSchedule.id) == "nightly-etl")
            .values(enabled=True, next_run_at=past)
        )


def wait_failed(page: Page, run_id: int) -> None:
    page.wait_for_function(
        """async (id) => {
            const r = await fetch('/api/admin/job-runs/' + id);
            return (await r.json()).status === 'FAILED';
        }""",
        arg=run_id,
        timeout=30_000,
        polling=300,
    )


def charts_fit(page: Page) -> None:
    """Wait until both charts were redrawn to their box's width (after a resize)."""
    page.wait_for_function(
        """() => [...document.querySelectorAll('.chart')].every((box) => {
            const plot = box.querySelector('.uplot');
            return plot && Math.abs(plot.offsetWidth - Math.max(260, box.clientWidth)) <= 1;
        })"""
    )


def open_overview(page: Page, system: Jobsys) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("#main")).to_have_attribute("data-ready", "1")


def test_overview_is_the_landing_page_with_charts_failures_and_retry(
    system: Jobsys, page: Page
) -> None:
    # Logging in at /admin lands on the overview; the schedules keep their nav entry.
    page.goto(system.admin_url())
    page.fill("#login-email", ADMIN)
    page.fill("#login-password", PASSWORD)
    page.click("form.login-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="Schedules")).to_be_visible()

    failed = api_fetch(page, "POST", "/jobs/purge/run", {})["body"]["job_run_ids"][0]
    wait_failed(page, failed)
    page.reload()
    expect(page.locator("#main")).to_have_attribute("data-ready", "1")

    # Two uPlot charts drawn on canvases, with text summaries of what they show.
    expect(page.locator("#chart-runs canvas")).to_have_count(1)
    expect(page.locator("#chart-rate canvas")).to_have_count(1)
    expect(page.locator("#chart-runs-summary")).to_contain_text(
        "1 finished run in the last 24 hours"
    )
    expect(page.locator("#stat-rate-24h")).to_have_text("0.0 %")
    page.get_by_role("button", name="Last 7 days").click()
    expect(page.get_by_role("button", name="Last 7 days")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#chart-runs-summary")).to_contain_text("the last 7 days")

    expect(page.locator(".overdue-table tbody tr")).to_have_count(0)
    expect(page.locator(".workers-line")).to_contain_text("1 daemon alive")

    # The failure, retried from the list: the row then names the new attempt.
    failure = page.locator(f".failures-table tr[data-run-id='{failed}']")
    expect(failure).to_contain_text("session store is read-only")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        expect(page.locator("#chart-runs canvas")).to_be_visible()
        charts_fit(page)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"the overview at {width}px scrolls sideways ({scroll}px)"
        screenshot(page, f"overview_admin_{width}")
    page.set_viewport_size({"width": 1280, "height": 900})
    failure.get_by_role("button", name=re.compile(r"^Retry run")).click()
    expect(page.locator(".toast")).to_contain_text("retried as")
    expect(failure).to_contain_text("retried as #", timeout=20_000)

    # Live: a new failure shows up without a reload (the stream's run events).
    page.evaluate("window.__sameDocument = true")
    again = api_fetch(page, "POST", "/jobs/purge/run", {})["body"]["job_run_ids"][0]
    expect(page.locator(f".failures-table tr[data-run-id='{again}']")).to_be_visible()
    assert page.evaluate("window.__sameDocument === true")


def test_viewer_overview_offers_no_retry_and_posts_are_refused(system: Jobsys, page: Page) -> None:
    login(page, system)
    failed = api_fetch(page, "POST", "/jobs/purge/run", {})["body"]["job_run_ids"][0]
    wait_failed(page, failed)
    batch = api_fetch(page, "POST", "/jobs/run-group/etl", {})["body"]["batch_id"]
    page.context.clear_cookies()
    login(page, system, VIEWER)
    open_overview(page, system)
    failure = page.locator(f".failures-table tr[data-run-id='{failed}']")
    expect(failure).to_contain_text("purge")
    expect(page.locator(".btn-retry")).to_have_count(0)
    assert api_fetch(page, "POST", f"/job-runs/{failed}/retry", {})["status"] == 403
    assert api_fetch(page, "POST", f"/batches/{batch}/cancel", {})["status"] == 403
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        charts_fit(page)
        screenshot(page, f"overview_viewer_{width}")
    # the batch page offers no "Cancel batch" to a viewer either
    page.goto(system.admin_url(f"/batches/{batch}"))
    expect(page.locator("#main")).to_have_attribute("data-ready", "1")
    expect(page.locator("#cancel-batch")).to_have_count(0)


def test_stale_banner_when_the_live_stream_is_down(system: Jobsys, page: Page) -> None:
    login(page, system)
    open_overview(page, system)
    banner = page.locator(".banner")
    expect(banner).to_have_attribute("data-health", "healthy")
    # Cut the stream: the page is reloaded while every event-stream request fails.
    page.route("**/api/admin/events", lambda route: route.abort())
    page.reload()
    expect(page.locator("#main")).to_have_attribute("data-ready", "1")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "reconnecting")
    expect(banner).to_have_attribute("data-health", "stale")
    expect(banner).to_contain_text("this page may be stale")
    expect(banner).not_to_contain_text("Daemon healthy")
    screenshot(page, "overview_stale_1280")
    page.unroute("**/api/admin/events")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live", timeout=30_000)
    expect(banner).to_have_attribute("data-health", "healthy")


def test_overdue_schedule_is_marked_with_the_reason(system: Jobsys, page: Page) -> None:
    login(page, system)
    stop_daemon(system)
    make_overdue(system)
    open_overview(page, system)
    row = page.locator(".overdue-table tr[data-schedule-id='nightly-etl']")
    expect(row).to_contain_text("Nightly ETL")
    expect(row).to_contain_text("overdue")
    expect(row.locator(".overdue-reason")).to_have_text("no daemon is running")
    expect(page.locator(".workers-line")).to_contain_text("No daemon is alive")
    screenshot(page, "overview_no_daemon_1280")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedules").click()
    sched = page.locator("#schedule-nightly-etl")
    expect(sched).to_have_attribute("data-overdue", "true")
    expect(sched.locator(".sched-overdue")).to_contain_text("overdue")
    expect(sched.locator(".sched-overdue")).to_contain_text("no daemon is running")
    expect(page.locator("#schedule-hourly-compact")).to_have_attribute("data-overdue", "false")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        expect(sched.locator(".sched-overdue")).to_be_visible()
        screenshot(page, f"schedules_overdue_{width}")


def test_worker_with_an_old_heartbeat_is_a_warning(system: Jobsys, page: Page) -> None:
    from jobsys.store import workers

    now = SystemClock().now()
    for wid, age in (("old-150s", 150), ("dead-400s", 400)):
        workers.register(
            system.engine,
            worker_id=wid,
            hostname="host-b",
            pid=4000 + age,
            wake_host=None,
            wake_port=None,
            version="test",
            concurrency=1,
            now=now - timedelta(seconds=age),
        )
    login(page, system)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Workers").click()
    warn = page.locator("tr[data-worker-id='old-150s']")
    expect(warn).to_have_attribute("data-health", "warning")
    expect(warn).to_contain_text("WARNING")
    expect(warn).to_contain_text(re.compile(r"heartbeat 1[5-9]\d s old"))
    expect(warn).not_to_contain_text("RUNNING")
    dead = page.locator("tr[data-worker-id='dead-400s']")
    expect(dead).to_have_attribute("data-health", "critical")
    expect(dead).to_contain_text("CRITICAL")
    live = page.locator("tr[data-alive='true'][data-health='healthy']")
    expect(live).to_have_count(1)
    expect(live).to_contain_text("RUNNING")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"workers_{width}")
