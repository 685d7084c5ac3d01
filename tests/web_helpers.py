"""Helpers for the web tests: a small app, the real Starlette app on a real database with a
fake clock, accounts and tokens, and a real uvicorn server in a thread (for streams)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

from jobsys.clock import FakeClock
from jobsys.config import Settings
from jobsys.definitions import App
from jobsys.store import users
from jobsys.store.models import AuditLog
from jobsys.store.schedules import sync_definitions
from jobsys.web.app import create_app
from jobsys.web.context import EventTiming
from jobsys.web.serve import WebServer

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns when it falls back to
    # httpx; both work the same for these tests.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient as TestClient

T0 = datetime(2030, 1, 7, 12, 0, 0, tzinfo=UTC)
API = "/api/admin"
ADMIN = "admin@example.com"
VIEWER = "viewer@example.com"
PASSWORD = "correct horse battery"
SECRET = "test-secret-key-0123456789"


def make_app() -> App:
    """Jobs in three groups with dependencies and declared params; schedules of every
    kind (ALL_JOBS, GROUP in a zone, one active only in production)."""
    app = App("webtest")

    @app.job(group="etl", description="Extract rows")
    def extract(ctx: Any) -> None:
        ctx.log.info("extract")

    @app.job(group="etl", depends_on=["extract"], timeout="5m")
    def transform(ctx: Any) -> None:
        ctx.log.info("transform")

    @app.job(group="etl", depends_on=["transform"])
    def load(ctx: Any) -> None:
        ctx.log.info("load")

    @app.job(
        group="reports",
        description="Build a report",
        params={
            "day": {"type": "string", "required": True},
            "limit": {"type": "integer", "default": 10},
        },
    )
    def report(ctx: Any) -> None:
        ctx.log.info("report")

    @app.job(group="maintenance")
    def cleanup(ctx: Any) -> None:
        ctx.log.info("cleanup")

    app.schedule("nightly", cron="0 2 * * *", name="Nightly", description="Everything at 2am")
    app.schedule(
        "etl-hourly", cron="15 * * * *", timezone="Europe/Paris", mode="GROUP", group="etl"
    )
    app.schedule("prod-only", cron="*/5 * * * *", environments=["production"])
    return app.validate()


def settings_for(engine: Engine, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "secret_key": SECRET,
    }
    values.update(overrides)
    return Settings(**values)


def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with tiny costs: the same code paths, without 250 ms per hash."""
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    dummy = hasher.hash("not a password")
    monkeypatch.setattr(users, "_hasher", lambda: hasher)
    monkeypatch.setattr(users, "_dummy_hash", lambda: dummy)


@dataclass
class Web:
    """The app under test, a client on it, and two accounts with API tokens."""

    web: Starlette
    client: TestClient
    engine: Engine
    clock: FakeClock
    app: App
    admin_token: str
    viewer_token: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def viewer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.viewer_token}"}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", self.admin)
        response: httpx.Response = self.client.get(API + path, **kw)
        return response

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", self.admin)
        response: httpx.Response = self.client.post(API + path, json=body, **kw)
        return response

    def put(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", self.admin)
        response: httpx.Response = self.client.put(API + path, json=body, **kw)
        return response

    def new_client(self, ip: str = "198.51.100.1") -> TestClient:
        """Another browser (own cookie jar) from another address."""
        client = TestClient(self.web, client=(ip, 50000))
        self.extra.setdefault("clients", []).append(client)
        return client


def login(client: TestClient, email: str = ADMIN, password: str = PASSWORD) -> str:
    """Log in with the session cookie; returns the CSRF token."""
    response = client.post(f"{API}/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


def audit_rows(engine: Engine, action: str | None = None) -> list[AuditLog]:
    from sqlalchemy import select
    from sqlmodel import col

    query = select(AuditLog).order_by(col(AuditLog.id))
    if action is not None:
        query = query.where(col(AuditLog.action) == action)
    with engine.connect() as conn:
        return list(conn.execute(query).all())  # type: ignore[arg-type]


@contextlib.contextmanager
def web_harness(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    *,
    app: App | None = None,
    env: str = "development",
    events: EventTiming | None = None,
) -> Iterator[Web]:
    cheap_hashing(monkeypatch)
    app = app or make_app()
    clock = FakeClock(T0)
    settings = settings_for(engine, env=env)
    sync_definitions(engine, app, env, clock.now(), mark_removed=False)
    users.create_user(engine, ADMIN, PASSWORD, "admin", now=clock.now())
    users.create_user(engine, VIEWER, PASSWORD, "viewer", now=clock.now())
    admin_token = users.create_token(engine, ADMIN, now=clock.now())
    viewer_token = users.create_token(engine, VIEWER, now=clock.now())
    web = create_app(settings=settings, app=app, engine=engine, clock=clock, events=events)
    with TestClient(web, client=("203.0.113.7", 50000)) as client:
        harness = Web(web, client, engine, clock, app, admin_token, viewer_token)
        try:
            yield harness
        finally:
            for other in harness.extra.get("clients", []):
                other.close()


# -- a real server in a thread ----------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ThreadServer:
    server: WebServer
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 15) -> float:
        """Stop the server; returns how long it took."""
        started = time.monotonic()
        self.server.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "uvicorn did not stop"
        return time.monotonic() - started


@contextlib.contextmanager
def thread_server(
    web: Starlette, stopping: threading.Event, *, graceful_s: int = 30
) -> Iterator[ThreadServer]:
    """Serve ``web`` with uvicorn on 127.0.0.1 in a thread (no signal handlers there)."""
    port = free_port()
    config = uvicorn.Config(
        web,
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=graceful_s,
    )
    server = WebServer(config, stopping)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    running = ThreadServer(server, thread, f"http://127.0.0.1:{port}")
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop()


class EventReader:
    """Reads Server-Sent Events from one streaming response (one line iterator)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()

    def line(self) -> str:
        return next(self.lines)

    def rest(self) -> list[str]:
        return list(self.lines)

    def read(
        self, want: int = 1, *, timeout: float = 10, match: Any = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Read until ``want`` events satisfying ``match(kind, data)`` (any event if None)
        were seen; returns every event read."""
        seen: list[tuple[str, dict[str, Any]]] = []
        hits = 0
        deadline = time.monotonic() + timeout
        kind: str | None = None
        for line in self.lines:
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: ") and kind is not None:
                data = json.loads(line[len("data: ") :])
                seen.append((kind, data))
                if match is None or match(kind, data):
                    hits += 1
                    if hits >= want:
                        return seen
                kind = None
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"only {hits} of {want} matching events within {timeout}s: {seen}")


def later(clock: FakeClock, **delta: float) -> datetime:
    return clock.advance(timedelta(**delta))
