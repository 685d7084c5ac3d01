"""Accessibility (issue 11, item 7): axe-core in a real headless Chromium on every admin
page, at 1280 and 375 px: no serious and no critical violation. Plus the main actions
done from the keyboard alone (Tab, Enter, Space).

axe-core is vendored for the tests only (``tests/vendor/axe-core``, MPL-2.0) and injected
by Playwright; the page's CSP is bypassed for that injection alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.ui_helpers import (
    ADMIN,
    CHROMIUM,
    PASSWORD,
    VIEWER,
    Jobsys,
    api_fetch,
    running_jobsys,
    screenshot,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

if CHROMIUM.exists():
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")

#: Every page of the admin: (id, path, its h1). ``{run}``, ``{batch}``, ``{failed}`` and
#: ``{skipped}`` are filled from the data the module's fixture creates. A new page is one
#: line here.
PAGES = [
    ("overview", "", "Overview"),
    ("schedules", "/schedules", "Schedules"),
    ("schedule", "/schedules/nightly-etl", "Nightly ETL"),
    ("jobs", "/jobs", "Jobs"),
    ("workers", "/workers", "Workers"),
    ("audit", "/audit", "Audit"),
    ("users", "/users", "Users"),
    ("run", "/runs/{failed}", r"Run #\d+ · purge"),
    ("run-queued", "/runs/{queued}", r"Run #\d+ · extract"),
    ("batch", "/batches/{batch}", r"Batch #\d+"),
    ("batch-skipped", "/batches/{skipped}", r"Batch #\d+"),
    # pages of the other issue 11 helper (runs list, job page, schedule page)
    ("runs", "/runs", "Runs"),
    ("job", "/jobs/extract", "extract"),
]


@dataclass
class Site:
    system: Jobsys
    ids: dict[str, int]
    states: dict[str, Any]  # role -> Playwright storage state (logged-in cookies)


def _log_in(context: BrowserContext, system: Jobsys, email: str) -> Page:
    page = context.new_page()
    page.goto(system.admin_url("/schedules"))
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.click("form.login-form button[type=submit]")
    page.wait_for_selector("h1:text-is('Schedules')")
    return page


def _skipped_batch(system: Jobsys) -> int:
    """A batch of a slot skipped because the previous batch still ran (no runs)."""
    from jobsys.clock import SystemClock
    from jobsys.store.db import session
    from jobsys.store.models import JobBatch

    now = SystemClock().now()
    with session(system.engine) as s:
        batch = JobBatch(
            schedule_id="nightly-etl",
            trigger="CRON",
            scheduled_for=now.replace(hour=2, minute=0, second=0, microsecond=0),
            status="SKIPPED",
            reason="overlap: the previous batch was still running",
            mode="GROUP",
            job_group="etl",
            total_runs=0,
            created_at=now,
            finished_at=now,
            updated_at=now,
        )
        s.add(batch)
        s.commit()
        assert batch.id is not None
        return batch.id


@pytest.fixture(scope="module")
def site(
    browser: Browser, _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One web + daemon for the module, with a failed run, a queued run, a batch, a
    skipped batch and the logged-in states of an admin and a viewer."""
    from tests.conftest import _copy_sqlite

    tmp = tmp_path_factory.mktemp("a11y")
    url = _copy_sqlite(_sqlite_template, tmp)
    # extract sleeps an hour: the second extract stays queued behind it all along
    with running_jobsys(url, tmp, UI_APP_SLEEP="3600") as system:
        states: dict[str, Any] = {}
        for role, email in (("admin", ADMIN), ("viewer", VIEWER)):
            context = browser.new_context()
            page = _log_in(context, system, email)
            if role == "admin":
                failed = api_fetch(page, "POST", "/jobs/purge/run", {})["body"]["job_run_ids"][0]
                batch = api_fetch(page, "POST", "/jobs/run-group/etl", {})["body"]
                # a second extract waits behind the first (one run of a job at a time)
                queued = api_fetch(page, "POST", "/jobs/extract/run", {})["body"]["job_run_ids"][0]
                page.wait_for_function(
                    """async (id) => (await (await fetch('/api/admin/job-runs/' + id))
                        .json()).status === 'FAILED'""",
                    arg=failed,
                    timeout=30_000,
                    polling=300,
                )
            states[role] = context.storage_state()
            context.close()
        ids = {
            "failed": failed,
            "batch": batch["batch_id"],
            "queued": queued,
            "skipped": _skipped_batch(system),
        }
        yield Site(system, ids, states)


def _axe(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        """async () => await axe.run(document, {resultTypes: ['violations']})"""
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def _report(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        targets = [" ".join(map(str, n["target"])) for n in v["nodes"][:5]]
        lines.append(f"{v['impact']}: {v['id']} ({v['help']}) at {targets}")
    return "\n".join(lines)


def _open(browser: Browser, site: Site, role: str | None, width: int) -> Page:
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        bypass_csp=True,  # to inject axe; the pages themselves are unchanged
        storage_state=site.states[role] if role else None,
    )
    return context.new_page()


@pytest.mark.parametrize("width", [1280, 375])
def test_login_page_has_no_serious_violation(browser: Browser, site: Site, width: int) -> None:
    page = _open(browser, site, None, width)
    try:
        page.goto(site.system.admin_url("/login"))
        expect(page.locator("h1")).to_have_text("Log in to jobsys admin")
        blocking = [v for v in _axe(page) if v["impact"] in BLOCKING]
        assert not blocking, _report(blocking)
    finally:
        page.context.close()


@pytest.mark.parametrize("width", [1280, 375])
@pytest.mark.parametrize(("name", "path", "heading"), PAGES, ids=[p[0] for p in PAGES])
@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_page_has_no_serious_violation(
    browser: Browser, site: Site, role: str, name: str, path: str, heading: str, width: int
) -> None:
    page = _open(browser, site, role, width)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(site.system.admin_url(path.format(**site.ids)))
        expect(page.locator("#main")).to_have_attribute("data-ready", "1")
        expect(page.locator("h1").first).to_have_text(re.compile(heading))
        violations = _axe(page)
        blocking = [v for v in violations if v["impact"] in BLOCKING]
        if role == "admin":
            screenshot(page, f"a11y_{name}_{width}")
        assert not blocking, f"{name} at {width}px as {role}:\n{_report(blocking)}"
        assert not errors, errors
    finally:
        page.context.close()


def test_dialogs_have_no_serious_violation(browser: Browser, site: Site) -> None:
    """The cancel dialog (open, modal) is checked as well."""
    page = _open(browser, site, "admin", 1280)
    try:
        page.goto(site.system.admin_url(f"/runs/{site.ids['queued']}"))
        page.get_by_role("button", name="Cancel run").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_role("button", name="Keep running")).to_be_visible()
        blocking = [v for v in _axe(page) if v["impact"] in BLOCKING]
        assert not blocking, _report(blocking)
        dialog.get_by_role("button", name="Keep running").click()
        expect(dialog).to_be_hidden()
    finally:
        page.context.close()


# -- the keyboard alone ------------------------------------------------------------------
def _tab_to(page: Page, accessible_name: str | re.Pattern[str], limit: int = 120) -> None:
    """Press Tab until the focused element's accessible name (aria-label or text) matches."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        name = page.evaluate(
            "() => { const el = document.activeElement;"
            " return (el.getAttribute('aria-label') || el.textContent || '').trim(); }"
        )
        if (
            name == accessible_name
            if isinstance(accessible_name, str)
            else accessible_name.search(name)
        ):
            outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"{name!r} has no visible focus ring"
            return
    pytest.fail(f"Tab never reached {accessible_name!r}")


def test_main_actions_from_the_keyboard(browser: Browser, site: Site) -> None:
    page = _open(browser, site, "admin", 1280)
    try:
        system = site.system
        # The enable switch: Tab to it, Space turns it on, Enter off (with the note dialog).
        page.goto(system.admin_url("/schedules"))
        expect(page.locator("#main")).to_have_attribute("data-ready", "1")
        page.locator("body").focus()
        _tab_to(page, "Enabled: Hourly compaction")
        switch = page.get_by_role("switch", name="Enabled: Hourly compaction")
        page.keyboard.press("Space")
        expect(switch).to_have_attribute("aria-checked", "true")
        page.keyboard.press("Enter")
        expect(page.locator("#pause-note")).to_be_focused()
        page.keyboard.type("keyboard test")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        expect(switch).to_have_attribute("aria-checked", "false")

        # Run Now: Tab to it, Enter opens the confirmation, Enter confirms.
        _tab_to(page, "Run Now: Nightly ETL")
        page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog")
        expect(dialog.locator("[data-confirm]")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator(".toast", has_text="queued 2 jobs")).to_be_visible()
        expect(page.locator("#schedule-nightly-etl .strip-run")).to_have_count(2)

        # Cancel a queued run: Tab to "Cancel run"; Escape and "Keep running" keep it,
        # then Space on "Cancel run" in the dialog cancels it.
        page.goto(system.admin_url(f"/runs/{site.ids['queued']}"))
        expect(page.locator("#waiting-reason")).to_contain_text("behind run #")
        page.locator("body").focus()
        _tab_to(page, "Cancel run")
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        page.keyboard.press("Enter")  # focus went back to the button
        expect(dialog.get_by_role("button", name="Keep running")).to_be_visible()
        dialog.get_by_role("button", name="Keep running").focus()
        page.keyboard.press("Enter")
        expect(dialog).to_be_hidden()
        expect(page.locator("#run-status .status-text")).to_have_text("QUEUED")
        page.keyboard.press("Enter")
        expect(dialog.get_by_role("button", name="Cancel run")).to_be_focused()
        page.keyboard.press("Space")
        expect(page.locator("#run-status .status-text")).to_have_text("CANCELLED")

        # Retry from the overview: Tab to the failure's Retry, Enter.
        page.goto(system.admin_url(""))
        expect(page.locator("#main")).to_have_attribute("data-ready", "1")
        page.locator("body").focus()
        _tab_to(page, re.compile(rf"^Retry run #{site.ids['failed']} "))
        page.keyboard.press("Enter")
        expect(
            page.locator(f".failures-table tr[data-run-id='{site.ids['failed']}']")
        ).to_contain_text("retried as #", timeout=20_000)
    finally:
        page.context.close()
