"""Helpers for daemon tests: a small app, a daemon on a fake clock, and a driver loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.clock import FakeClock
from jobsys.config import Settings
from jobsys.daemon import Daemon
from jobsys.definitions import App
from jobsys.store.db import session
from jobsys.store.models import JobBatch, JobRun, JobSchedule


def make_app(build: Callable[[App], object] | None = None) -> App:
    app = App("test")

    @app.job(group="g", description="does nothing")
    def quick(ctx: Any) -> None:
        ctx.log.info("quick ran")

    @app.job(group="g", depends_on=["quick"])
    def after_quick(ctx: Any) -> None:
        ctx.log.info("after quick")

    @app.job(group="slow", params={"seconds": {"type": "number", "default": 2.0}})
    def slow(ctx: Any) -> None:
        deadline = time.monotonic() + float(ctx.params.get("seconds", 2.0))
        while time.monotonic() < deadline and not ctx.cancelled:
            time.sleep(0.02)

    @app.job(group="bad")
    def boom(ctx: Any) -> None:
        raise RuntimeError("boom")

    @app.job(group="bad", depends_on=["boom"])
    def after_boom(ctx: Any) -> None:
        ctx.log.info("never")

    if build is not None:
        build(app)
    return app.validate()


def settings_for(engine: Engine, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "poll_interval_ms": 60_000,
        "lock_timeout_ms": 300_000,
        "concurrency": 4,
        "shutdown_grace_ms": 2_000,
    }
    base.update(overrides)
    return Settings(**base)


_CREATED: list[Daemon] = []


def close_daemons() -> None:
    """Kill leftover children and close every daemon made by ``make_daemon``."""
    while _CREATED:
        daemon = _CREATED.pop()
        for entry in list(daemon.running.values()):
            entry.child.close()
        daemon.running.clear()
        daemon.close()


def make_daemon(engine: Engine, app: App, clock: FakeClock, **overrides: Any) -> Daemon:
    daemon = Daemon(
        engine=engine,
        app=app,
        settings=settings_for(engine, **overrides),
        clock=clock,
        listen_for_wakes=False,
    )
    _CREATED.append(daemon)
    daemon.start()
    return daemon


def settle(daemon: Daemon, *, limit_s: float = 20.0) -> None:
    """Tick until no run is active (children run in real time; the fake clock stays put)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        daemon.wake()
        daemon.tick()
        if not daemon.running and not active_runs(daemon.engine):
            return
        time.sleep(0.01)
    raise AssertionError(f"runs still active after {limit_s}s: {active_runs(daemon.engine)}")


def active_runs(engine: Engine) -> list[tuple[int, str, str]]:
    with session(engine) as s:
        rows = s.execute(
            select(col(JobRun.id), col(JobRun.job_name), col(JobRun.status)).where(
                col(JobRun.status).in_(("QUEUED", "RUNNING"))
            )
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def batches(engine: Engine, schedule_id: str) -> list[JobBatch]:
    with session(engine) as s:
        return list(
            s.execute(
                select(JobBatch)
                .where(col(JobBatch.schedule_id) == schedule_id)
                .order_by(col(JobBatch.id))
            ).scalars()
        )


def runs_of(engine: Engine, batch_id: int) -> dict[str, JobRun]:
    with session(engine) as s:
        rows = s.execute(select(JobRun).where(col(JobRun.batch_id) == batch_id)).scalars()
        return {r.job_name: r for r in rows}


def schedule_row(engine: Engine, schedule_id: str) -> JobSchedule:
    with session(engine) as s:
        row = s.get(JobSchedule, schedule_id)
        assert row is not None
        return row


def fired_slots(engine: Engine, schedule_id: str) -> list[datetime]:
    return [
        b.scheduled_for
        for b in batches(engine, schedule_id)
        if b.status != "SKIPPED" and b.scheduled_for
    ]
