"""Overlap policies per schedule (issue 10 item 2), on a fake clock with real children:
each policy over consecutive slots while the first slot's batch still runs.

The first batch runs ``hold``, which waits until the test creates its gate file, so
"still running" does not depend on how fast the machine is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from jobsys.clock import FakeClock
from jobsys.daemon import Daemon
from jobsys.definitions import App
from jobsys.errors import DefinitionError
from jobsys.planning import schedule_plans
from jobsys.store.firing import fire_due
from jobsys.store.models import JobBatch, RunStatus
from jobsys.store.schedules import set_enabled
from tests.daemon_helpers import (
    batches,
    close_daemons,
    make_app,
    make_daemon,
    runs_of,
    schedule_row,
    settle,
)


@pytest.fixture(autouse=True)
def _close_daemons() -> Iterator[None]:
    yield
    close_daemons()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def hold_app(gate: Path, overlap: str, *, side: bool = False) -> App:
    """``hold`` waits for ``gate`` (or a cancel); ``side`` is a quick job of the same group."""

    def build(app: App) -> None:
        @app.job(group="hold")
        def hold(ctx: Any) -> None:
            deadline = time.monotonic() + 30
            while not gate.exists() and not ctx.cancelled and time.monotonic() < deadline:
                time.sleep(0.02)

        if side:

            @app.job(group="hold")
            def side_job(ctx: Any) -> None:
                ctx.log.info("side ran")

        app.schedule("s", cron="* * * * *", mode="GROUP", group="hold", overlap=overlap)

    return make_app(build)


def start(engine: Engine, app: App) -> tuple[Daemon, FakeClock]:
    """A daemon with ``s`` enabled whose 10:01 slot has fired and whose ``hold`` runs."""
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    daemon = make_daemon(engine, app, clock)
    set_enabled(engine, app, "development", "s", True, now=clock.now(), actor="test")
    clock.set(utc("2027-01-01T10:01:00"))
    daemon.tick()
    wait_for(daemon, lambda: run_status(engine, 0, "hold") == RunStatus.RUNNING)
    return daemon, clock


def wait_for(daemon: Daemon, done: Any, limit_s: float = 20.0) -> None:
    """Tick (real time passes, the fake clock stays) until ``done()``."""
    deadline = time.monotonic() + limit_s
    while not done():
        assert time.monotonic() < deadline, "condition not reached"
        daemon.wake()
        daemon.tick()
        time.sleep(0.01)


def by_slot(engine: Engine) -> list[JobBatch]:
    return sorted(batches(engine, "s"), key=lambda b: b.scheduled_for or utc("1970-01-01"))


def run_status(engine: Engine, index: int, job: str) -> str | None:
    got = [b for b in by_slot(engine) if b.status != RunStatus.SKIPPED]
    if len(got) <= index:
        return None
    run = runs_of(engine, got[index].id or 0).get(job)
    return None if run is None else run.status


def test_skip_records_the_slot(engine: Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    daemon, clock = start(engine, hold_app(gate, "SKIP"))
    clock.set(utc("2027-01-01T10:02:00"))
    daemon.tick()
    gate.touch()
    settle(daemon)
    got = by_slot(engine)
    assert [(b.scheduled_for, b.status) for b in got] == [
        (utc("2027-01-01T10:01:00"), RunStatus.SUCCESS),
        (utc("2027-01-01T10:02:00"), RunStatus.SKIPPED),
    ]
    assert (got[1].reason or "").startswith(f"overlap: batch #{got[0].id}")


def test_buffer_one_runs_once_right_after_and_skips_a_third_slot(
    engine: Engine, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    daemon, clock = start(engine, hold_app(gate, "BUFFER_ONE"))
    clock.set(utc("2027-01-01T10:02:00"))
    daemon.tick()  # buffered: no batch yet
    assert schedule_row(engine, "s").buffered_slot == utc("2027-01-01T10:02:00")
    assert len(batches(engine, "s")) == 1
    clock.set(utc("2027-01-01T10:03:00"))
    daemon.tick()  # one slot is buffered already: this one is skipped and recorded
    clock.set(utc("2027-01-01T10:03:20"))
    gate.touch()
    settle(daemon)  # the first batch ends; the buffered slot fires at once
    got = by_slot(engine)
    assert [(b.scheduled_for, b.status, b.trigger) for b in got] == [
        (utc("2027-01-01T10:01:00"), RunStatus.SUCCESS, "CRON"),
        (utc("2027-01-01T10:02:00"), RunStatus.SUCCESS, "CRON"),
        (utc("2027-01-01T10:03:00"), RunStatus.SKIPPED, "CRON"),
    ]
    assert "buffered (BUFFER_ONE)" in (got[1].reason or "")
    assert "already buffered" in (got[2].reason or "")
    first, second = runs_of(engine, got[0].id or 0), runs_of(engine, got[1].id or 0)
    assert first["hold"].finished_at is not None and second["hold"].started_at is not None
    assert second["hold"].started_at >= first["hold"].finished_at
    assert schedule_row(engine, "s").buffered_slot is None
    assert schedule_row(engine, "s").last_batch_id == got[1].id


def test_allow_runs_batches_concurrently_but_never_a_job_twice(
    engine: Engine, tmp_path: Path
) -> None:
    """Nothing lets a job run twice at once (``job_definition.running_run_id`` is one
    mutex per job): the second batch's other job runs at once, its ``hold`` waits."""
    gate = tmp_path / "gate"
    daemon, clock = start(engine, hold_app(gate, "ALLOW", side=True))
    clock.set(utc("2027-01-01T10:02:00"))
    daemon.tick()
    wait_for(daemon, lambda: run_status(engine, 1, "side_job") == RunStatus.SUCCESS)
    assert run_status(engine, 0, "hold") == RunStatus.RUNNING
    assert run_status(engine, 1, "hold") == RunStatus.QUEUED
    gate.touch()
    settle(daemon)
    got = by_slot(engine)
    assert [(b.scheduled_for, b.status) for b in got] == [
        (utc("2027-01-01T10:01:00"), RunStatus.SUCCESS),
        (utc("2027-01-01T10:02:00"), RunStatus.SUCCESS),
    ]
    first, second = runs_of(engine, got[0].id or 0), runs_of(engine, got[1].id or 0)
    assert first["hold"].finished_at is not None and second["hold"].started_at is not None
    assert second["hold"].started_at >= first["hold"].finished_at


def test_cancel_other_cancels_the_running_batch_then_starts(engine: Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    daemon, clock = start(engine, hold_app(gate, "CANCEL_OTHER", side=True))
    # side_job of the first batch may still be queued or done; hold is running
    clock.set(utc("2027-01-01T10:02:00"))
    daemon.tick()  # cancels batch 1 (its hold is stopped), fires 10:02
    wait_for(daemon, lambda: run_status(engine, 0, "hold") == RunStatus.CANCELLED)
    gate.touch()
    settle(daemon)
    got = by_slot(engine)
    assert [(b.scheduled_for, b.status) for b in got] == [
        (utc("2027-01-01T10:01:00"), RunStatus.CANCELLED),
        (utc("2027-01-01T10:02:00"), RunStatus.SUCCESS),
    ]
    first, second = runs_of(engine, got[0].id or 0), runs_of(engine, got[1].id or 0)
    assert first["hold"].finished_at is not None and second["hold"].started_at is not None
    assert second["hold"].started_at >= first["hold"].finished_at


def test_cancel_other_ends_a_batch_that_has_not_started(engine: Engine, tmp_path: Path) -> None:
    """A previous batch whose runs are all still queued ends CANCELLED at once."""
    gate = tmp_path / "gate"
    app = hold_app(gate, "CANCEL_OTHER")
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    daemon = make_daemon(engine, app, clock, concurrency=1)
    set_enabled(engine, app, "development", "s", True, now=clock.now(), actor="test")
    plans = schedule_plans(app)
    fire_due(engine, plans, worker_id="w", now=utc("2027-01-01T10:01:00"))
    fire_due(engine, plans, worker_id="w", now=utc("2027-01-01T10:02:00"))
    got = by_slot(engine)
    assert [(b.scheduled_for, b.status) for b in got] == [
        (utc("2027-01-01T10:01:00"), RunStatus.CANCELLED),
        (utc("2027-01-01T10:02:00"), RunStatus.QUEUED),
    ]
    assert "CANCEL_OTHER" in (runs_of(engine, got[0].id or 0)["hold"].error or "")
    gate.touch()
    settle(daemon)
    assert [b.status for b in by_slot(engine)] == [RunStatus.CANCELLED, RunStatus.SUCCESS]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"overlap": "FOO"},
            "schedule 'x': overlap 'FOO' is not one of SKIP, BUFFER_ONE, ALLOW, CANCEL_OTHER",
        ),
        (
            {"overlap": "ALLOW", "allow_overlap": True},
            "schedule 'x': give overlap or allow_overlap (deprecated), not both",
        ),
        ({"allow_overlap": "yes"}, "schedule 'x': allow_overlap 'yes' is not true or false"),
    ],
)
def test_bad_overlap_names_the_schedule(kwargs: dict[str, Any], message: str) -> None:
    app = App("t")
    with pytest.raises(DefinitionError) as err:
        app.schedule("x", cron="* * * * *", **kwargs)
    assert str(err.value) == message


def test_overlap_defaults_and_the_deprecated_alias() -> None:
    app = App("t")
    assert app.schedule("a", cron="* * * * *").overlap == "SKIP"
    assert app.schedule("b", cron="* * * * *", allow_overlap=True).overlap == "ALLOW"
    assert app.schedule("c", cron="* * * * *", allow_overlap=False).overlap == "SKIP"
    assert app.schedule("d", cron="* * * * *", overlap="BUFFER_ONE").allow_overlap is False
