"""Real ``jobsys web`` + ``jobsys daemon`` processes and a headless Debian Chromium, for the
browser tests (``tests/system/test_ui_browser.py``) and the Run-Now bench (``bench/ui_run_now.py``).

Chromium is never downloaded (no ``playwright install``): Playwright drives the browser
the system installed at ``/usr/bin/chromium``.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobsys.store.db import make_engine
from tests.process_helpers import ROOT, DaemonProcess, daemon_process, jobsys_env, wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright
    from sqlalchemy.engine import Engine

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
UI_APP = ROOT / "tests" / "apps" / "ui_app.py"
SECRET_KEY = "ui-test-secret-key-0123456789abcdef"
ADMIN = "admin@example.com"
VIEWER = "viewer@example.com"
PASSWORD = "correct horse battery"
SCREENSHOTS = ROOT / "test-output" / "screenshots"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def launch_chromium(p: Playwright) -> Browser:
    """Debian's Chromium, headless (the only way the tests and the bench start a browser)."""
    return p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def _env(db_url: str, **extra: str) -> dict[str, str]:
    return jobsys_env(db_url, JOBSYS_APP=str(UI_APP), SECRET_KEY=SECRET_KEY, **extra)


def create_account(db_url: str, email: str, role: str, password: str = PASSWORD) -> None:
    """The account ``jobsys admin create EMAIL --role ROLE`` makes, made in this process
    by the store function that command calls (a CLI process costs a second of CPU per
    account; tests/system/test_users_cli.py and test_web_process.py test the command)."""
    from jobsys.clock import SystemClock
    from jobsys.store.users import create_user

    engine = make_engine(db_url, pool_size=1)
    try:
        create_user(engine, email, password, role, now=SystemClock().now())
    finally:
        engine.dispose()


def create_accounts(db_url: str) -> None:
    """The admin (``ADMIN``) and the viewer (``VIEWER``), both with ``PASSWORD``."""
    for email, role in ((ADMIN, "admin"), (VIEWER, "viewer")):
        create_account(db_url, email, role)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class WebProcess:
    proc: subprocess.Popen[str]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def web_process(db_url: str, tmp_path: Path, **extra: str) -> Iterator[WebProcess]:
    """``jobsys web --host 127.0.0.1 --port <free>``; yields once ``/healthz`` answers."""
    port = free_port()
    log_path = tmp_path / "web.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobsys", "web", "--host", "127.0.0.1", "--port", str(port)],
            env=_env(db_url, **extra),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
        web = WebProcess(proc, f"http://127.0.0.1:{port}", log_path)
        try:
            deadline = time.monotonic() + 30
            while not _healthy(web.url):
                if proc.poll() is not None:
                    raise AssertionError(f"jobsys web exited {proc.returncode}:\n{web.log()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"jobsys web did not start:\n{web.log()}")
                time.sleep(0.05)
            yield web
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


@dataclass
class Jobsys:
    """A running jobsys (web + daemon on one database) with an admin and a viewer."""

    url: str
    db_url: str
    engine: Engine
    web: WebProcess
    daemon: DaemonProcess
    extra: dict[str, Any] = field(default_factory=dict)

    def admin_url(self, path: str = "") -> str:
        return f"{self.url}/admin{path}"

    def logs(self) -> str:
        return f"--- web ---\n{self.web.log()}\n--- daemon ---\n{self.daemon.log()}"


@contextlib.contextmanager
def running_jobsys(db_url: str, tmp_path: Path, **extra: str) -> Iterator[Jobsys]:
    """Start web and daemon (in parallel) with the two accounts (``create_accounts``)."""
    engine = make_engine(db_url, pool_size=2)
    env = {"UI_APP_SLEEP": "1.5", **extra}
    try:
        with contextlib.ExitStack() as stack:
            # The accounts are created (argon2) while web and daemon start.
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
            creating = pool.submit(create_accounts, db_url)
            web = stack.enter_context(web_process(db_url, tmp_path, **env))
            daemon = stack.enter_context(
                daemon_process(
                    db_url,
                    tmp_path,
                    engine,
                    JOBSYS_APP=str(UI_APP),
                    SECRET_KEY=SECRET_KEY,
                    **env,
                )
            )
            creating.result(timeout=60)
            yield Jobsys(web.url, db_url, engine, web, daemon)
    finally:
        engine.dispose()


def login(page: Page, system: Jobsys, email: str = ADMIN, password: str = PASSWORD) -> None:
    """Log in through the login form and wait for the schedules page (asked for first:
    the landing page is the overview)."""
    page.goto(system.admin_url("/schedules"))
    page.fill("#login-email", email)
    page.fill("#login-password", password)
    page.click("form.login-form button[type=submit]")
    page.wait_for_selector("h1:text-is('Schedules')")
    # The event stream is open once the indicator says Live.
    page.wait_for_selector("#live-state[data-state='live']")


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under ``test-output/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def runs_of_batch(engine: Engine, batch_id: int) -> list[Any]:
    from sqlalchemy import select
    from sqlmodel import col

    from jobsys.store.models import JobRun

    with engine.connect() as conn:
        return list(
            conn.execute(
                select(JobRun).where(col(JobRun.batch_id) == batch_id).order_by(col(JobRun.id))
            ).all()
        )


__all__ = [
    "ADMIN",
    "CHROMIUM",
    "PASSWORD",
    "VIEWER",
    "Jobsys",
    "create_account",
    "create_accounts",
    "free_port",
    "launch_chromium",
    "login",
    "running_jobsys",
    "screenshot",
    "wait_for",
    "web_process",
]


def api_fetch(page: Page, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A request from inside the page (its cookie; the CSRF token from /me)."""
    result: dict[str, Any] = page.evaluate(
        """async ([method, path, body]) => {
            const me = await (await fetch('/api/admin/me')).json();
            const r = await fetch('/api/admin' + path, {
                method,
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token},
                body: body === null ? undefined : JSON.stringify(body),
            });
            return {status: r.status, body: await r.json().catch(() => null)};
        }""",
        [method, path, body],
    )
    return result
