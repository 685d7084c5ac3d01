"""Retries on a fake clock (both backends): the back-off and its bounds, dependents and
batches waiting for the final attempt, "daemon lost" retried, cancel stopping the chain,
schedule counters counting final failures only. Jobs run in real forked children."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.clock import FakeClock
from jobsys.definitions import App
from jobsys.errors import DefinitionError
from jobsys.manual import create_manual_batch
from jobsys.retries import RetryPolicy, backoff_delay, jitter_fraction
from jobsys.store import runs as store_runs
from jobsys.store.db import session
from jobsys.store.models import JobBatch, JobRun, RunStatus
from jobsys.store.schedules import set_enabled
from tests.daemon_helpers import close_daemons, make_app, make_daemon, schedule_row, settle


@pytest.fixture(autouse=True)
def _close_daemons() -> Iterator[None]:
    yield
    close_daemons()


T0 = datetime(2027, 1, 1, 10, 0, tzinfo=UTC)


# -- the pure back-off ------------------------------------------------------------------
def test_backoff_grows_caps_and_stops_at_the_count() -> None:
    policy = RetryPolicy(retries=4, delay_s=10, backoff=2.0, max_delay_s=45)
    assert [backoff_delay(policy, n) for n in range(1, 6)] == [10, 20, 40, 45, None]
    assert backoff_delay(policy, 0) is None
    flat = RetryPolicy(retries=2, delay_s=5, backoff=1.0, max_delay_s=5)
    assert [backoff_delay(flat, n) for n in (1, 2, 3)] == [5, 5, None]


def test_jitter_is_within_zero_and_the_delay_and_deterministic() -> None:
    policy = RetryPolicy(retries=3, delay_s=10, backoff=3.0, max_delay_s=60, jitter=True)
    seen = set()
    for first in range(1, 200):
        for attempt, cap in ((1, 10), (2, 30), (3, 60)):
            delay = backoff_delay(policy, attempt, first_run_id=first)
            assert delay is not None and 0 <= delay < cap
            assert delay == backoff_delay(policy, attempt, first_run_id=first)
            seen.add(round(delay))
    assert len(seen) > 20  # spread out, not one value
    assert 0 <= jitter_fraction(7, 1) < 1
    assert backoff_delay(policy, 4, first_run_id=1) is None


def test_policy_round_trips_through_its_stored_form() -> None:
    policy = RetryPolicy(3, 1.5, 2.0, 60.0, True)
    assert RetryPolicy.from_dict(policy.to_dict()) == policy
    assert RetryPolicy.from_dict(None) is None
    assert RetryPolicy.from_dict({"retries": 0}) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "job 'j': retries must be an int 0..100, got -1"),
        ({"retries": 101}, "job 'j': retries must be an int 0..100, got 101"),
        ({"retries": "3"}, "job 'j': retries must be an int 0..100, got '3'"),
        ({"retries": True}, "job 'j': retries must be an int 0..100, got True"),
        ({"retries": 1, "retry_delay": "soon"}, "job 'j': retry_delay: duration 'soon'"),
        ({"retries": 1, "retry_max_delay": "-1s"}, "job 'j': retry_max_delay: duration"),
        ({"retries": 1, "retry_backoff": 0.5}, "job 'j': retry_backoff must be a number 1..100"),
        ({"retries": 1, "retry_backoff": "2"}, "job 'j': retry_backoff must be a number"),
        ({"retries": 1, "retry_jitter": "yes"}, "job 'j': retry_jitter must be true or false"),
        (
            {"retries": 1, "retry_delay": "2h", "retry_max_delay": "1h"},
            "job 'j': retry_max_delay '1h' is shorter than retry_delay '2h'",
        ),
    ],
)
def test_bad_retry_options_name_the_job(options: dict[str, Any], message: str) -> None:
    app = App()
    with pytest.raises(DefinitionError) as info:
        app.job("j", group="g", **options)(lambda ctx: None)
    assert str(info.value).startswith(message)


def test_retry_options_are_parsed_and_shown() -> None:
    app = App()
    app.job(
        "j",
        group="g",
        retries=3,
        retry_delay="30s",
        retry_backoff=2.0,
        retry_max_delay="1h",
        retry_jitter=True,
    )(lambda ctx: None)
    app.job("plain", group="g")(lambda ctx: None)
    assert app.jobs["j"].retry == RetryPolicy(3, 30.0, 2.0, 3600.0, True)
    assert app.jobs["j"].to_dict()["retry"]["retries"] == 3
    assert app.jobs["plain"].retry is None and "retry" not in app.jobs["plain"].to_dict()


# -- on the database, with a daemon on a fake clock ------------------------------------
def retry_app(tmp: Path) -> App:
    """``always`` fails; ``flaky`` fails its first attempt only (a marker file counts
    attempts across the forked children); ``after_flaky`` waits for it; ``hang`` hangs
    on its first attempt (so its daemon can be lost) and succeeds on the next."""

    def build(app: App) -> None:
        @app.job(group="r", retries=3, retry_delay="10s", retry_backoff=2.0, retry_max_delay="25s")
        def always(ctx: Any) -> None:
            raise RuntimeError("always fails")

        @app.job(group="fl", retries=2, retry_delay="1m")
        def flaky(ctx: Any) -> None:
            marker = tmp / "flaky"
            if not marker.exists():
                marker.write_text("1")
                raise RuntimeError("first attempt fails")

        @app.job(group="fl", depends_on=["flaky"])
        def after_flaky(ctx: Any) -> None:
            ctx.log.info("after flaky")

        @app.job(group="once", retries=1, retry_delay="5s")
        def once(ctx: Any) -> None:
            raise RuntimeError("fails twice")

        @app.job(group="jit", retries=2, retry_delay="100s", retry_jitter=True)
        def jittery(ctx: Any) -> None:
            raise RuntimeError("jitter")

        @app.job(group="h", retries=1, retry_delay="5s")
        def hang(ctx: Any) -> None:
            marker = tmp / "hang"
            if not marker.exists():
                marker.write_text("1")
                while not ctx.cancelled:
                    time.sleep(0.02)

        app.schedule("fl", cron="0 * * * *", mode="GROUP", group="fl")
        app.schedule("once", cron="0 * * * *", mode="GROUP", group="once")

    return make_app(build)


def chain(engine: Engine, batch_id: int) -> list[JobRun]:
    with session(engine) as s:
        return list(
            s.execute(
                select(JobRun).where(col(JobRun.batch_id) == batch_id).order_by(col(JobRun.id))
            ).scalars()
        )


def batch_status(engine: Engine, batch_id: int) -> str:
    with session(engine) as s:
        batch = s.get(JobBatch, batch_id)
        assert batch is not None
        return batch.status


def run_until_idle(daemon: Any) -> None:
    """Tick (real time for the children, the fake clock still) until nothing runs and
    nothing claimable is queued now."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        daemon.wake()
        daemon.tick()
        if not daemon.running:
            daemon.wake()
            daemon.tick()
            if not daemon.running:
                return
        time.sleep(0.01)
    raise AssertionError("daemon still busy")


def test_retry_delays_follow_the_backoff_and_stop_at_the_count(
    engine: Engine, tmp_path: Path
) -> None:
    app = retry_app(tmp_path)
    clock = FakeClock(T0)
    daemon = make_daemon(engine, app, clock)
    batch = create_manual_batch(engine, app, mode="JOB", job="always", now=T0, actor="t")
    run_until_idle(daemon)
    expected_due = [T0 + timedelta(seconds=10)]
    for attempt, wait in ((2, 20), (3, 25), (4, None)):
        runs = chain(engine, batch.batch_id)
        assert [r.attempt for r in runs] == list(range(1, attempt + 1))
        assert [r.status for r in runs[:-1]] == [RunStatus.FAILED] * (attempt - 1)
        latest = runs[-1]
        assert latest.status == RunStatus.QUEUED and latest.not_before == expected_due[-1]
        assert latest.retry_of == runs[0].id and runs[-2].next_attempt_id == latest.id
        assert batch_status(engine, batch.batch_id) == RunStatus.RUNNING  # not final yet
        # The daemon sleeps until the back-off is over (not a poll period) ...
        assert daemon.tick() == pytest.approx((expected_due[-1] - clock.now()).total_seconds())
        # ... and does not start the attempt a moment early.
        clock.set(expected_due[-1] - timedelta(milliseconds=100))
        run_until_idle(daemon)
        assert chain(engine, batch.batch_id)[-1].status == RunStatus.QUEUED
        clock.set(expected_due[-1])
        run_until_idle(daemon)
        if wait is not None:
            expected_due.append(expected_due[-1] + timedelta(seconds=wait))
    runs = chain(engine, batch.batch_id)
    assert [r.status for r in runs] == [RunStatus.FAILED] * 4  # 3 retries, then it stops
    assert runs[-1].next_attempt_id is None
    assert batch_status(engine, batch.batch_id) == RunStatus.FAILED
    clock.advance(timedelta(hours=2))
    run_until_idle(daemon)
    assert len(chain(engine, batch.batch_id)) == 4


def test_jittered_wait_is_within_zero_and_the_delay(engine: Engine, tmp_path: Path) -> None:
    app = retry_app(tmp_path)
    clock = FakeClock(T0)
    daemon = make_daemon(engine, app, clock)
    batch = create_manual_batch(engine, app, mode="JOB", job="jittery", now=T0, actor="t")
    run_until_idle(daemon)
    first, second = chain(engine, batch.batch_id)
    assert first.id is not None and second.not_before is not None
    waited = (second.not_before - T0).total_seconds()
    assert 0 <= waited < 100
    assert waited == pytest.approx(100 * jitter_fraction(first.id, 1), abs=1e-3)


def test_dependents_wait_for_the_final_attempt_and_counters_see_one_success(
    engine: Engine, tmp_path: Path
) -> None:
    app = retry_app(tmp_path)
    clock = FakeClock(T0 - timedelta(minutes=1))
    daemon = make_daemon(engine, app, clock)
    set_enabled(engine, app, "development", "fl", True, now=clock.now(), actor="t")
    clock.set(T0)
    run_until_idle(daemon)
    (batch_id,) = _batch_ids(engine, "fl")
    runs = {(r.job_name, r.attempt): r for r in chain(engine, batch_id)}
    assert runs["flaky", 1].status == RunStatus.FAILED
    assert runs["flaky", 2].status == RunStatus.QUEUED
    assert runs["after_flaky", 1].status == RunStatus.QUEUED  # waits, not SKIPPED
    assert batch_status(engine, batch_id) == RunStatus.RUNNING
    assert schedule_row(engine, "fl").failure_count == 0
    clock.advance(timedelta(minutes=1))
    run_until_idle(daemon)
    settle(daemon)
    runs = {(r.job_name, r.attempt): r for r in chain(engine, batch_id)}
    assert runs["flaky", 2].status == RunStatus.SUCCESS
    assert runs["after_flaky", 1].status == RunStatus.SUCCESS
    assert batch_status(engine, batch_id) == RunStatus.SUCCESS
    row = schedule_row(engine, "fl")
    assert (row.failure_count, row.consecutive_failures, row.last_run_status) == (0, 0, "SUCCESS")


def test_counters_and_alerts_count_a_final_failure_once(engine: Engine, tmp_path: Path) -> None:
    app = retry_app(tmp_path)
    clock = FakeClock(T0 - timedelta(minutes=1))
    daemon = make_daemon(engine, app, clock)
    set_enabled(engine, app, "development", "once", True, now=clock.now(), actor="t")
    clock.set(T0)
    run_until_idle(daemon)
    (batch_id,) = _batch_ids(engine, "once")
    row = schedule_row(engine, "once")
    assert (row.failure_count, row.consecutive_failures) == (0, 0)  # a retry is pending
    clock.advance(timedelta(seconds=5))
    run_until_idle(daemon)
    assert [r.status for r in chain(engine, batch_id)] == [RunStatus.FAILED] * 2
    assert batch_status(engine, batch_id) == RunStatus.FAILED
    row = schedule_row(engine, "once")
    # consecutive_failures is what the failure alert reads (jobsys.alerts)
    assert (row.failure_count, row.consecutive_failures, row.last_run_status) == (1, 1, "FAILED")


def test_a_run_whose_daemon_was_lost_is_retried(engine: Engine, tmp_path: Path) -> None:
    app = retry_app(tmp_path)
    clock = FakeClock(T0)
    dead = make_daemon(engine, app, clock)
    batch = create_manual_batch(engine, app, mode="JOB", job="hang", now=T0, actor="t")
    dead.tick()
    deadline = time.monotonic() + 10
    while not (tmp_path / "hang").exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # the first attempt is under way
    for entry in list(dead.running.values()):
        entry.child.close()  # the daemon "dies" with its job
    dead.running.clear()
    clock.advance(timedelta(hours=1))
    fresh = make_daemon(engine, app, clock)  # start() recovers the run
    first, second = chain(engine, batch.batch_id)
    assert first.status == RunStatus.FAILED and "daemon lost" in (first.error or "")
    assert second.status == RunStatus.QUEUED and second.attempt == 2
    assert second.not_before == clock.now() + timedelta(seconds=5)
    assert batch_status(engine, batch.batch_id) == RunStatus.RUNNING
    clock.advance(timedelta(seconds=5))
    run_until_idle(fresh)
    settle(fresh)
    assert chain(engine, batch.batch_id)[1].status == RunStatus.SUCCESS
    assert batch_status(engine, batch.batch_id) == RunStatus.SUCCESS


def test_cancel_stops_further_attempts(engine: Engine, tmp_path: Path) -> None:
    app = retry_app(tmp_path)
    clock = FakeClock(T0)
    daemon = make_daemon(engine, app, clock)
    batch = create_manual_batch(engine, app, mode="JOB", job="always", now=T0, actor="t")
    run_until_idle(daemon)
    _first, second = chain(engine, batch.batch_id)
    assert second.id is not None and second.status == RunStatus.QUEUED
    assert store_runs.request_cancel(engine, second.id, clock.now()) == RunStatus.CANCELLED
    assert batch_status(engine, batch.batch_id) == RunStatus.CANCELLED  # final now
    clock.advance(timedelta(minutes=10))
    run_until_idle(daemon)
    assert [r.status for r in chain(engine, batch.batch_id)] == [
        RunStatus.FAILED,
        RunStatus.CANCELLED,
    ]


def test_a_cancelled_running_attempt_is_not_retried(engine: Engine, tmp_path: Path) -> None:
    app = retry_app(tmp_path)
    clock = FakeClock(T0)
    daemon = make_daemon(engine, app, clock)
    batch = create_manual_batch(engine, app, mode="JOB", job="hang", now=T0, actor="t")
    daemon.tick()
    (run,) = chain(engine, batch.batch_id)
    assert run.id is not None and run.status == RunStatus.RUNNING
    assert store_runs.request_cancel(engine, run.id, clock.now()) == RunStatus.RUNNING
    settle(daemon)
    clock.advance(timedelta(minutes=1))
    run_until_idle(daemon)
    assert [r.status for r in chain(engine, batch.batch_id)] == [RunStatus.CANCELLED]


def _batch_ids(engine: Engine, schedule_id: str) -> list[int]:
    with session(engine) as s:
        return [
            b
            for b in s.execute(
                select(col(JobBatch.id)).where(col(JobBatch.schedule_id) == schedule_id)
            ).scalars()
            if b is not None
        ]
