"""Fixtures the browser tests share: one headless Chromium per module, a fresh page per
test (any uncaught JavaScript error fails the test; a screenshot is kept), and a real
web + daemon on a fresh database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.ui_helpers import Jobsys, launch_chromium, running_jobsys, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch_chromium(p)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (own cookies); fails the test on any uncaught JS error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        assert not errors, f"JavaScript errors: {errors}"
    finally:
        if not page.is_closed():
            screenshot(page, re.sub(r"[^\w.-]+", "_", request.node.name))
        context.close()


@pytest.fixture
def system(sqlite_url: str, tmp_path: Path) -> Iterator[Jobsys]:
    with running_jobsys(sqlite_url, tmp_path) as running:
        yield running


@pytest.fixture
def system_any_db(db_url: str, tmp_path: Path) -> Iterator[Jobsys]:
    """The same on each backend (SQLite, and MariaDB when JOBSYS_TEST_MYSQL_URL is set)."""
    with running_jobsys(db_url, tmp_path) as running:
        yield running
