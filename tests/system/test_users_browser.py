"""Issue 11 item 1: the Users page (``/admin/users``) in a real headless Chromium (Debian's
``/usr/bin/chromium``, driven by Playwright) against a real ``jobsys web`` process, as an
admin and as a viewer, at 1280 and 375 px.

Each test starts its own web process on a fresh SQLite database with an admin and a
viewer made as ``jobsys admin create`` makes them; screenshots go to ``test-output/screenshots/``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from jobsys.clock import SystemClock
from jobsys.store import users
from jobsys.store.db import make_engine
from tests.ui_helpers import (
    ADMIN,
    CHROMIUM,
    PASSWORD,
    VIEWER,
    WebProcess,
    create_accounts,
    screenshot,
    web_process,
)
from tests.web_helpers import audit_rows

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

if CHROMIUM.exists():
    from playwright.sync_api import Browser, Page, expect

    expect.set_options(timeout=10_000)

WIDTHS = [1280, 375]


@dataclass
class Site:
    url: str
    engine: Engine
    web: WebProcess

    def page_url(self, path: str = "") -> str:
        return f"{self.url}/admin{path}"


@pytest.fixture
def site(sqlite_url: str, tmp_path: Path) -> Iterator[Site]:
    """``jobsys web`` (no daemon: the page needs none) with an admin and a viewer."""
    create_accounts(sqlite_url)
    engine = make_engine(sqlite_url, pool_size=2)
    try:
        with web_process(sqlite_url, tmp_path) as web:
            yield Site(web.url, engine, web)
    finally:
        engine.dispose()


@contextlib.contextmanager
def open_page(browser: Browser, width: int) -> Iterator[Page]:
    """A fresh context (own cookies) that fails on any uncaught JS error."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        assert not errors, f"JavaScript errors: {errors}"
    finally:
        context.close()


def log_in(page: Page, site: Site, email: str, password: str = PASSWORD) -> None:
    page.goto(site.page_url("/schedules"))
    page.fill("#login-email", email)
    page.fill("#login-password", password)
    page.click("form.login-form button[type=submit]")
    page.wait_for_selector("h1:text-is('Schedules')")


def open_users(page: Page) -> None:
    nav = page.get_by_role("navigation", name="Main").get_by_role("link", name="Users")
    nav.click()
    expect(page.locator("h1")).to_have_text("Users")
    expect(page.locator("#main")).to_have_attribute("data-ready", "1")


def row(page: Page, email: str) -> Any:
    return page.locator(f"tr[data-email='{email}']")


def no_overflow(page: Page) -> None:
    """Nothing wider than the viewport (no sideways scrolling at 375 px)."""
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, Math.max("
        "...[...document.querySelectorAll('#main *')].map(e => e.getBoundingClientRect().right))]"
    )
    scroll, inner, right = widths
    assert scroll <= inner, f"page scrolls sideways: {scroll} > {inner}"
    assert right <= inner + 0.5, f"an element ends at {right} px, past {inner}"


def confirm(page: Page, button: str) -> None:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=button, exact=True).click()
    expect(dialog).to_be_hidden()


def actions(engine: Engine) -> list[tuple[str, str | None, str | None]]:
    return [
        (r.action, r.actor, r.target_id)
        for r in audit_rows(engine)
        if r.action.startswith(("admin.", "token.")) and r.actor != "cli"
    ]


# -- as an admin ------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_admin_manages_accounts(browser: Browser, site: Site, width: int) -> None:
    users.create_token(site.engine, VIEWER, now=SystemClock().now(), name="ci-deploy")
    with open_page(browser, width) as page, open_page(browser, 1280) as viewer_page:
        log_in(viewer_page, site, VIEWER)  # an open session of the viewer
        log_in(page, site, ADMIN)
        open_users(page)
        viewer = row(page, VIEWER)
        expect(viewer).to_contain_text("viewer")
        expect(viewer).to_contain_text("Active")
        expect(viewer).to_contain_text("1 live session")
        expect(viewer.locator(".token")).to_contain_text("ci-deploy")
        expect(row(page, ADMIN).locator(".pill", has_text="you")).to_be_visible()
        expect(page.locator(".users-count")).to_have_text("2 accounts, 1 active admin")
        no_overflow(page)
        screenshot(page, f"users-{width}")

        # Create an account through the dialog.
        page.get_by_role("button", name="New account").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_label("Email")).to_be_focused()
        dialog.get_by_label("Email").fill("ops@example.com")
        dialog.get_by_label("Role").select_option("viewer")
        dialog.get_by_label("Password", exact=True).fill("short")
        dialog.get_by_label("Repeat the password").fill("short")
        dialog.get_by_role("button", name="Create account").click()
        expect(dialog).to_contain_text("at least 8 characters")
        expect(dialog.get_by_label("Password", exact=True)).to_have_attribute(
            "aria-invalid", "true"
        )
        dialog.get_by_label("Password", exact=True).fill("long enough")
        dialog.get_by_label("Repeat the password").fill("long enough")
        if width == 375:
            screenshot(page, "users-375-create-dialog")
        dialog.get_by_role("button", name="Create account").click()
        expect(dialog).to_be_hidden()
        ops = row(page, "ops@example.com")
        expect(ops).to_contain_text("viewer")

        # Change its role, both ways.
        ops.get_by_role("button", name="Make admin: ops@example.com").click()
        confirm(page, "Make admin")
        expect(ops).to_have_attribute("data-role", "admin")
        expect(ops.get_by_role("button", name="Make viewer: ops@example.com")).to_be_focused()
        expect(page.locator(".users-count")).to_have_text("3 accounts, 2 active admins")
        ops.get_by_role("button", name="Make viewer: ops@example.com").click()
        confirm(page, "Make viewer")
        expect(ops).to_have_attribute("data-role", "viewer")

        # Disable the viewer: its open session is refused at its next request.
        viewer.get_by_role("button", name=f"Disable: {VIEWER}").click()
        confirm(page, "Disable")
        expect(viewer).to_have_attribute("data-disabled", "true")
        expect(viewer).to_contain_text("Disabled")
        viewer_page.get_by_role("link", name="Jobs", exact=True).click()
        expect(viewer_page.locator("h1")).to_have_text("Log in to jobsys admin")
        viewer.get_by_role("button", name=f"Enable: {VIEWER}").click()
        expect(viewer).to_have_attribute("data-disabled", "false")

        # Reset its password.
        viewer.get_by_role("button", name=f"Reset password: {VIEWER}").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Password", exact=True).fill("a brand new one")
        dialog.get_by_label("Repeat the password").fill("a brand new two")
        dialog.get_by_role("button", name="Set password").click()
        expect(dialog).to_contain_text("The two passwords differ.")
        dialog.get_by_label("Repeat the password").fill("a brand new one")
        dialog.get_by_role("button", name="Set password").click()
        expect(dialog).to_be_hidden()
        expect(page.locator(".toast", has_text="New password set")).to_be_visible()
        log_in(viewer_page, site, VIEWER, "a brand new one")

        # Revoke one token, then all access.
        users.create_token(site.engine, VIEWER, now=SystemClock().now(), name="spare")
        page.reload()
        expect(viewer.locator(".token")).to_have_count(2)
        viewer.get_by_role("button", name=f"Revoke API token ci-deploy of {VIEWER}").click()
        confirm(page, "Revoke token")
        expect(viewer.locator(".token")).to_have_count(1)
        expect(viewer.locator(".token")).to_contain_text("spare")
        viewer.get_by_role("button", name=f"Revoke all access: {VIEWER}").click()
        confirm(page, "Revoke access")
        expect(
            page.locator(".toast", has_text="1 session ended, 1 API token revoked")
        ).to_be_visible()
        expect(viewer.locator(".token")).to_have_count(0)
        expect(viewer).to_contain_text("0 live sessions")

        # The last active admin: the server refuses and the page says why.
        me = row(page, ADMIN)
        me.get_by_role("button", name=f"Disable: {ADMIN}").click()
        confirm(page, "Disable")
        expect(page.locator(".toast-error")).to_contain_text(
            f"{ADMIN} is the last active admin and cannot be disabled"
        )
        me.get_by_role("button", name=f"Make viewer: {ADMIN}").click()
        confirm(page, "Make viewer")
        expect(page.locator(".toast-error", has_text="cannot be demoted")).to_be_visible()
        expect(me).to_have_attribute("data-role", "admin")
        no_overflow(page)
        screenshot(page, f"users-{width}-after-actions")

    token_ids: list[int | None] = [
        t.id for u in users.list_users(site.engine, now=SystemClock().now()) for t in u.tokens
    ]
    [token_id] = token_ids or [None]
    assert token_id is None  # every token of the viewer was revoked
    assert actions(site.engine) == [
        ("admin.create", ADMIN, "ops@example.com"),
        ("admin.role", ADMIN, "ops@example.com"),
        ("admin.role", ADMIN, "ops@example.com"),
        ("admin.disable", ADMIN, VIEWER),
        ("admin.enable", ADMIN, VIEWER),
        ("admin.set_password", ADMIN, VIEWER),
        ("token.revoke", ADMIN, VIEWER),
        ("admin.revoke", ADMIN, VIEWER),
    ]


def test_keyboard_only(browser: Browser, site: Site) -> None:
    """Tab reaches the buttons in order, Enter opens and submits, Escape closes."""
    with open_page(browser, 1280) as page:
        log_in(page, site, ADMIN)
        open_users(page)  # the app moves the focus to the page's heading
        expect(page.locator("h1")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name="New account")).to_be_focused()
        page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_label("Email")).to_be_focused()
        page.keyboard.type("kb@example.com")
        page.keyboard.press("Tab")
        expect(dialog.get_by_label("Role")).to_be_focused()
        page.keyboard.press("Tab")
        page.keyboard.type("long enough")
        page.keyboard.press("Tab")
        page.keyboard.type("long enough")
        page.keyboard.press("Enter")  # submits the form
        expect(dialog).to_be_hidden()
        kb = row(page, "kb@example.com")
        expect(kb).to_be_visible()
        expect(page.get_by_role("button", name="New account")).to_be_focused()

        # Every control of a row is reached by Tab, each with a name that says what it does.
        names: list[str] = []
        kb.get_by_role("button").first.focus()
        for _ in range(4):
            names.append(page.evaluate("document.activeElement.getAttribute('aria-label')"))
            page.keyboard.press("Tab")
        assert names == [
            "Make admin: kb@example.com",
            "Disable: kb@example.com",
            "Reset password: kb@example.com",
            "Revoke all access: kb@example.com",
        ]
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_role("button", name="Revoke access")).to_be_focused()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        # The focus comes back to the button that opened the dialog.
        expect(kb.get_by_role("button", name="Revoke all access: kb@example.com")).to_be_focused()
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline == "solid"  # a visible focus ring


# -- as a viewer ------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_viewers_are_not_offered_the_page_and_get_403(
    browser: Browser, site: Site, width: int
) -> None:
    admin_id = next(
        u.id for u in users.list_users(site.engine, now=SystemClock().now()) if u.email == ADMIN
    )
    with open_page(browser, width) as page:
        log_in(page, site, VIEWER)
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Jobs", exact=True)).to_be_visible()
        expect(nav.get_by_role("link", name="Users")).to_have_count(0)
        page.goto(site.page_url("/users"))
        expect(page.locator("h1")).to_have_text("Users")
        expect(page.locator("#main .notice")).to_contain_text("Only admins")
        expect(page.locator("table")).to_have_count(0)
        expect(page.get_by_role("button", name="New account")).to_have_count(0)
        no_overflow(page)
        screenshot(page, f"users-viewer-{width}")
        statuses = page.evaluate(
            """async (id) => {
                const me = await (await fetch('/api/admin/me')).json();
                const calls = [
                    ['GET', '/users', null],
                    ['POST', '/users', {email: 'x@example.com', password: 'long enough'}],
                    ['PATCH', `/users/${id}`, {disabled: true}],
                    ['POST', `/users/${id}/password`, {password: 'long enough'}],
                    ['POST', `/users/${id}/revoke`, {}],
                    ['DELETE', `/users/${id}/tokens/1`, null],
                ];
                const out = [];
                for (const [method, path, body] of calls) {
                    const r = await fetch('/api/admin' + path, {
                        method,
                        headers: {
                            'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token,
                        },
                        body: body === null ? undefined : JSON.stringify(body),
                    });
                    out.push(r.status);
                }
                return out;
            }""",
            admin_id,
        )
        assert statuses == [403] * 6
    assert actions(site.engine) == []
    assert re.search(r"Traceback", site.web.log()) is None
