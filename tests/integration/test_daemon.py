"""The daemon on a fake clock: firing on boundaries and across DST, missed runs, overlap,
dependency order, leases and recovery. Jobs run in real forked children."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from jobsys.clock import FakeClock
from jobsys.daemon import AHEAD_MAX_WAIT_S, AHEAD_RUN_MS
from jobsys.definitions import App
from jobsys.manual import create_manual_batch
from jobsys.store.db import session
from jobsys.store.models import JobDefinition, JobRun, RunStatus, WorkerInstance
from jobsys.store.queries import get_run
from jobsys.store.schedules import set_enabled
from tests.daemon_helpers import (
    active_runs,
    batches,
    close_daemons,
    fired_slots,
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


def enable(engine: Engine, app: App, schedule_id: str, now: datetime) -> None:
    set_enabled(engine, app, "development", schedule_id, True, now=now, actor="test")


def step_to(daemon: Any, clock: FakeClock, instant: datetime) -> None:
    """Move the fake clock to ``instant`` and let the daemon act (and its jobs finish)."""
    clock.set(instant)
    daemon.tick()
    settle(daemon)


@pytest.mark.parametrize(
    ("cron", "before", "slot"),
    [
        ("* * * * *", "2027-01-01T10:00:59.900", "2027-01-01T10:01:00"),  # minute
        ("0 * * * *", "2027-01-01T10:59:59", "2027-01-01T11:00:00"),  # hour
        ("0 0 * * *", "2027-01-01T23:59:59", "2027-01-02T00:00:00"),  # day
        ("0 0 1 * *", "2027-01-31T23:59:59", "2027-02-01T00:00:00"),  # month
        ("0 0 1 1 *", "2027-12-31T23:59:59", "2028-01-01T00:00:00"),  # year
    ],
)
def test_slot_fires_once_at_its_boundary(engine: Engine, cron: str, before: str, slot: str) -> None:
    app = make_app(lambda a: a.schedule("s", cron=cron, mode="GROUP", group="g"))
    clock = FakeClock(utc(before) - timedelta(seconds=1))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "s", clock.now())
    step_to(daemon, clock, utc(before))
    assert batches(engine, "s") == []
    assert daemon.tick() <= 1.0  # it sleeps until the slot, not a whole poll
    step_to(daemon, clock, utc(slot))
    step_to(daemon, clock, utc(slot) + timedelta(seconds=1))
    got = batches(engine, "s")
    assert [b.scheduled_for for b in got] == [utc(slot)]
    assert got[0].status == RunStatus.SUCCESS and got[0].trigger == "CRON"
    runs = runs_of(engine, got[0].id or 0)
    assert set(runs) == {"quick", "after_quick"}
    assert all(r.status == RunStatus.SUCCESS for r in runs.values())
    # dependency order: after_quick started after quick finished
    assert runs["after_quick"].started_at >= runs["quick"].finished_at  # type: ignore[operator]
    row = schedule_row(engine, "s")
    assert row.run_count == 1 and row.last_run_status == RunStatus.SUCCESS
    assert row.next_run_at is not None and row.next_run_at > utc(slot)


def _walk(daemon: Any, clock: FakeClock, start: datetime, end: datetime, step: timedelta) -> None:
    t = start
    while t <= end:
        clock.set(t)
        daemon.tick()
        settle(daemon)  # each slot's jobs finish before the clock moves on
        t += step


def test_fixed_time_schedule_fires_once_on_fall_back_day(engine: Engine) -> None:
    app = make_app(
        lambda a: a.schedule(
            "ny", cron="30 1 * * *", timezone="America/New_York", mode="GROUP", group="g"
        )
    )
    clock = FakeClock(utc("2027-11-06T12:00:00"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "ny", clock.now())
    _walk(daemon, clock, clock.now(), utc("2027-11-08T12:00:00"), timedelta(minutes=15))
    # 01:30 EDT on the 7th (05:30Z) fires; the repeated 01:30 EST (06:30Z) does not.
    assert fired_slots(engine, "ny") == [utc("2027-11-07T05:30:00"), utc("2027-11-08T06:30:00")]


def test_fixed_time_schedule_fires_once_on_spring_forward_day(engine: Engine) -> None:
    app = make_app(
        lambda a: a.schedule(
            "ny", cron="30 2 * * *", timezone="America/New_York", mode="GROUP", group="g"
        )
    )
    clock = FakeClock(utc("2027-03-13T12:00:00"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "ny", clock.now())
    _walk(daemon, clock, clock.now(), utc("2027-03-15T12:00:00"), timedelta(minutes=15))
    # 02:30 does not exist on the 14th: it fires once, at 03:00 EDT (07:00Z).
    assert fired_slots(engine, "ny") == [utc("2027-03-14T07:00:00"), utc("2027-03-15T06:30:00")]


def test_wildcard_schedule_fires_twice_through_the_repeated_hour(engine: Engine) -> None:
    app = make_app(
        lambda a: a.schedule(
            "half", cron="*/30 1 * * *", timezone="America/New_York", mode="GROUP", group="g"
        )
    )
    clock = FakeClock(utc("2027-11-07T04:00:00"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "half", clock.now())
    _walk(daemon, clock, clock.now(), utc("2027-11-07T07:00:00"), timedelta(minutes=5))
    assert fired_slots(engine, "half") == [
        utc("2027-11-07T05:00:00"),
        utc("2027-11-07T05:30:00"),  # 01:00, 01:30 EDT
        utc("2027-11-07T06:00:00"),
        utc("2027-11-07T06:30:00"),  # 01:00, 01:30 EST
    ]


def test_skip_after_downtime_records_missed_slots(engine: Engine) -> None:
    app = make_app(lambda a: a.schedule("h", cron="0 * * * *", mode="GROUP", group="g"))
    clock = FakeClock(utc("2027-01-01T09:30:00"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "h", clock.now())
    # The daemon is down from 09:30 to 12:30: 10:00, 11:00 and 12:00 are missed.
    step_to(daemon, clock, utc("2027-01-01T12:30:00"))
    got = batches(engine, "h")
    assert [(b.scheduled_for, b.status) for b in got] == [
        (utc("2027-01-01T10:00:00"), RunStatus.SKIPPED),
        (utc("2027-01-01T11:00:00"), RunStatus.SKIPPED),
        (utc("2027-01-01T12:00:00"), RunStatus.SKIPPED),
    ]
    assert all("missed" in (b.reason or "") for b in got)
    assert schedule_row(engine, "h").next_run_at == utc("2027-01-01T13:00:00")
    step_to(daemon, clock, utc("2027-01-01T13:00:00.010"))
    assert fired_slots(engine, "h") == [utc("2027-01-01T13:00:00")]


def test_run_once_catches_up_once_after_downtime(engine: Engine) -> None:
    app = make_app(
        lambda a: a.schedule(
            "h", cron="0 * * * *", mode="GROUP", group="g", missed="RUN_ONCE", max_catch_up="2h"
        )
    )
    clock = FakeClock(utc("2027-01-01T09:30:00"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "h", clock.now())
    step_to(daemon, clock, utc("2027-01-01T12:30:00"))
    got = batches(engine, "h")
    assert [(b.scheduled_for, b.status) for b in got] == [
        (utc("2027-01-01T10:00:00"), RunStatus.SKIPPED),
        (utc("2027-01-01T11:00:00"), RunStatus.SKIPPED),
        (utc("2027-01-01T12:00:00"), RunStatus.SUCCESS),
    ]
    assert "catch-up" in (got[-1].reason or "")


def test_overlap_is_skipped_and_recorded(engine: Engine) -> None:
    app = make_app(lambda a: a.schedule("s", cron="* * * * *", mode="GROUP", group="slow"))
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "s", clock.now())
    clock.set(utc("2027-01-01T10:01:00"))
    daemon.tick()  # fires; the slow job (2 s real time) starts
    assert [r[1] for r in active_runs(engine)] == ["slow"]
    clock.set(utc("2027-01-01T10:02:00"))
    daemon.tick()  # the previous batch still runs: this slot is skipped
    settle(daemon)
    got = batches(engine, "s")
    assert [(b.scheduled_for, b.status) for b in got] == [
        (utc("2027-01-01T10:01:00"), RunStatus.SUCCESS),
        (utc("2027-01-01T10:02:00"), RunStatus.SKIPPED),
    ]
    assert "overlap" in (got[1].reason or "")


def test_a_job_never_runs_twice_at_once(engine: Engine) -> None:
    app = make_app()
    clock = FakeClock(utc("2027-01-01T10:00:00"))
    daemon = make_daemon(engine, app, clock)
    first = create_manual_batch(
        engine, app, mode="JOB", job="slow", params={"seconds": 1.0}, now=clock.now(), actor="t"
    )
    second = create_manual_batch(
        engine, app, mode="JOB", job="slow", params={"seconds": 0.1}, now=clock.now(), actor="t"
    )
    daemon.tick()
    assert [r[0] for r in active_runs(engine) if r[2] == "RUNNING"] == first.run_ids
    settle(daemon)
    a, b = get_run(engine, first.run_ids[0]), get_run(engine, second.run_ids[0])
    assert a["status"] == b["status"] == "SUCCESS"
    assert b["started_at"] >= a["finished_at"]


def test_every_run_records_its_process_also_one_that_ended_at_once(engine: Engine) -> None:
    """A run's pid is written with its outcome when it ended before the pid was written
    on its own (a no-op job in a warm worker ends within a tick)."""
    app = make_app()
    clock = FakeClock(utc("2027-01-01T10:00:00"))  # monotonic time stands still
    daemon = make_daemon(engine, app, clock)
    created = create_manual_batch(engine, app, mode="GROUP", group="g", now=clock.now(), actor="t")
    settle(daemon)
    with session(engine) as s:
        rows = [s.get(JobRun, run_id) for run_id in created.run_ids]
    assert [r.status if r else None for r in rows] == ["SUCCESS"] * len(created.run_ids)
    assert all(r is not None and r.pid and r.pid > 0 for r in rows), [r and r.pid for r in rows]


def test_failure_skips_dependents_and_fails_the_batch(engine: Engine) -> None:
    app = make_app(lambda a: a.schedule("bad", cron="0 * * * *", mode="GROUP", group="bad"))
    clock = FakeClock(utc("2027-01-01T09:59:00"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "bad", clock.now())
    step_to(daemon, clock, utc("2027-01-01T10:00:00"))
    (batch,) = batches(engine, "bad")
    runs = runs_of(engine, batch.id or 0)
    assert runs["boom"].status == RunStatus.FAILED and "RuntimeError: boom" in (
        runs["boom"].error or ""
    )
    assert runs["after_boom"].status == RunStatus.SKIPPED and "boom" in (
        runs["after_boom"].error or ""
    )
    assert batch.status == RunStatus.FAILED
    row = schedule_row(engine, "bad")
    assert (
        row.failure_count == 1 and row.consecutive_failures == 1 and row.last_run_status == "FAILED"
    )


def test_manual_trigger_does_not_move_next_run(engine: Engine) -> None:
    app = make_app(lambda a: a.schedule("h", cron="0 * * * *", mode="GROUP", group="g"))
    clock = FakeClock(utc("2027-01-01T09:30:00"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "h", clock.now())
    created = create_manual_batch(
        engine, app, mode="ALL_JOBS", schedule_id="h", now=clock.now(), actor="alice"
    )
    settle(daemon)
    run = get_run(engine, created.run_ids[0])
    assert (
        run["trigger"] == "MANUAL" and run["triggered_by"] == "alice" and run["status"] == "SUCCESS"
    )
    assert schedule_row(engine, "h").next_run_at == utc("2027-01-01T10:00:00")


def test_lease_expires_only_when_its_holder_stops_heartbeating(engine: Engine) -> None:
    app = make_app()
    clock = FakeClock(utc("2027-01-01T10:00:00"))
    # lock timeout 5 min, heartbeat every minute
    holder = make_daemon(engine, app, clock, lock_timeout_ms=300_000, poll_interval_ms=60_000)
    other = make_daemon(
        engine, app, clock, lock_timeout_ms=300_000, poll_interval_ms=60_000, concurrency=1
    )
    created = create_manual_batch(
        engine, app, mode="JOB", job="slow", params={"seconds": 30.0}, now=clock.now(), actor="t"
    )
    holder.tick()
    run_id = created.run_ids[0]
    assert get_run(engine, run_id)["worker_id"] == holder.worker_id
    # 20 fake minutes pass; the holder keeps heartbeating: its lease stays.
    for _ in range(20):
        clock.advance(timedelta(minutes=1))
        holder.tick()
        other.tick()
    assert get_run(engine, run_id)["status"] == "RUNNING"
    # The holder stops (it hangs, say); after LOCK_TIMEOUT the other daemon recovers.
    clock.advance(timedelta(minutes=4))
    other.tick()
    assert get_run(engine, run_id)["status"] == "RUNNING"  # 4 min < 5 min: not stale yet
    clock.advance(timedelta(minutes=2))
    other.tick()
    run = get_run(engine, run_id)
    assert run["status"] == "FAILED" and "daemon lost" in run["error"]
    with session(engine) as s:
        dead = s.get(WorkerInstance, holder.worker_id)
        assert dead is not None and dead.status == "STOPPED"


def test_runs_left_running_by_a_dead_instance_are_recovered_at_start(engine: Engine) -> None:
    app = make_app()
    clock = FakeClock(utc("2027-01-01T10:00:00"))
    dead = make_daemon(engine, app, clock)
    created = create_manual_batch(
        engine, app, mode="JOB", job="slow", params={"seconds": 30.0}, now=clock.now(), actor="t"
    )
    dead.tick()
    assert get_run(engine, created.run_ids[0])["status"] == "RUNNING"
    for entry in list(dead.running.values()):
        entry.child.close()  # the daemon "dies" with its job (close kills and reaps it)
    dead.running.clear()
    clock.advance(timedelta(hours=2))
    fresh = make_daemon(engine, app, clock)  # start() recovers
    run = get_run(engine, created.run_ids[0])
    assert run["status"] == "FAILED" and "daemon lost" in run["error"]
    # the job's mutex is free again: a new run of it can start
    again = create_manual_batch(
        engine, app, mode="JOB", job="slow", params={"seconds": 0.1}, now=clock.now(), actor="t"
    )
    settle(fresh)
    assert get_run(engine, again.run_ids[0])["status"] == "SUCCESS"


def test_disabled_schedule_does_not_fire(engine: Engine) -> None:
    app = make_app(lambda a: a.schedule("h", cron="0 * * * *", mode="GROUP", group="g"))
    clock = FakeClock(utc("2027-01-01T09:59:00"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "h", clock.now())
    set_enabled(engine, app, "development", "h", False, now=clock.now(), actor="t")
    step_to(daemon, clock, utc("2027-01-01T10:00:00"))
    assert batches(engine, "h") == []


def test_runs_without_params_get_defaults_and_missing_required_params_fail(engine: Engine) -> None:
    def build(a: App) -> None:
        @a.job(group="p", params={"limit": {"type": "integer", "default": 7}})
        def with_default(ctx: Any) -> None:
            ctx.log.info(f"limit={ctx.params['limit']}")

        @a.job(group="p", params={"day": {"type": "string", "required": True}})
        def needs_day(ctx: Any) -> None:
            ctx.log.info(ctx.params["day"])

        @a.job(group="p", depends_on=["needs_day"])
        def after_day(ctx: Any) -> None: ...

        a.schedule("p", cron="0 * * * *", mode="GROUP", group="p")

    app = make_app(build)
    clock = FakeClock(utc("2027-01-01T09:59:00"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "p", clock.now())
    step_to(daemon, clock, utc("2027-01-01T10:00:00"))
    (batch,) = batches(engine, "p")
    runs = runs_of(engine, batch.id or 0)
    assert runs["with_default"].status == RunStatus.SUCCESS
    assert runs["with_default"].params == {"limit": 7}
    logs = get_run(engine, runs["with_default"].id or 0)["logs"]
    assert any(line["message"] == "limit=7" for line in logs)
    assert runs["needs_day"].status == RunStatus.FAILED
    assert "param 'day' is required" in (runs["needs_day"].error or "")
    assert runs["after_day"].status == RunStatus.SKIPPED


def _short_jobs(app: App) -> None:
    def noop(ctx: Any) -> None:
        ctx.log.info("done")

    for name in ("n1", "n2", "n3", "n4"):
        app.job(name, group="n")(noop)

    def long(ctx: Any) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ctx.cancelled:
            time.sleep(0.02)

    for name in ("long1", "long2"):
        app.job(name, group="long")(long)


def _run_rows(engine: Engine, run_ids: list[int]) -> list[JobRun]:
    with session(engine) as s:
        rows = [s.get(JobRun, run_id) for run_id in run_ids]
    assert all(r is not None for r in rows)
    return [r for r in rows if r is not None]


def test_short_runs_are_claimed_ahead_and_given_back_when_no_worker_frees_up(
    engine: Engine,
) -> None:
    """While the runs a daemon ends are short, a claim takes as many runs again as there
    are free workers (claimed ahead: RUNNING under its lease, not started), so a worker
    that ends a run gets the next at once. One that waits past ``AHEAD_MAX_WAIT_S``
    (the workers got long runs) goes back to the queue with its job's mutex, and no more
    are claimed ahead until a run ends; it then runs and records when it truly began."""
    app = make_app(_short_jobs)
    clock = FakeClock(utc("2027-01-01T10:00:00"))
    daemon = make_daemon(engine, app, clock, concurrency=2)
    warm = create_manual_batch(engine, app, mode="GROUP", group="n", now=clock.now(), actor="t")
    settle(daemon)  # four short runs: the daemon learns how long runs take
    assert {r.status for r in _run_rows(engine, warm.run_ids)} == {"SUCCESS"}
    assert daemon._duration_ms is not None
    # A worker's first runs may take longer on a loaded test machine: as after short ones.
    daemon._duration_ms = AHEAD_RUN_MS / 10

    # Two long runs take both workers; the next two runs are claimed ahead of them.
    long = create_manual_batch(engine, app, mode="GROUP", group="long", now=clock.now(), actor="t")
    short = create_manual_batch(engine, app, mode="GROUP", group="n", now=clock.now(), actor="t")
    daemon.wake()
    daemon.tick()
    assert sorted(daemon.running) == long.run_ids
    assert [run.run_id for run, _ in daemon.ahead] == short.run_ids[:2]
    ahead = _run_rows(engine, short.run_ids[:2])
    assert [(r.status, r.worker_id, r.pid) for r in ahead] == [
        ("RUNNING", daemon.worker_id, None)
    ] * 2

    # Past the wait, no worker is free: back to the queue, mutexes released.
    clock.advance(AHEAD_MAX_WAIT_S + 0.1)
    daemon.tick()
    assert daemon.ahead == []
    back = _run_rows(engine, short.run_ids[:2])
    assert [(r.status, r.worker_id, r.started_at) for r in back] == [("QUEUED", None, None)] * 2
    with session(engine) as s:
        held = {d.name: d.running_run_id for d in s.execute(select(JobDefinition)).scalars()}
    assert held["n1"] is None and held["n2"] is None
    assert held["long1"] in long.run_ids and held["long2"] in long.run_ids
    daemon.wake()
    daemon.tick()  # nothing claimed ahead until a run ends
    assert daemon.ahead == []
    assert {r.status for r in _run_rows(engine, short.run_ids)} == {"QUEUED"}

    # The long runs are cancelled; the short ones then run in their workers.
    for entry in daemon.running.values():
        entry.child.cancel("test")
    settle(daemon)
    done = _run_rows(engine, short.run_ids)
    assert [r.status for r in done] == ["SUCCESS"] * 4
    assert all(r.started_at is not None and r.finished_at is not None for r in done)
    assert all(r.started_at <= r.finished_at for r in done if r.started_at and r.finished_at)


def test_a_stopping_daemon_gives_back_the_runs_it_claimed_ahead(engine: Engine) -> None:
    """On shutdown, runs claimed ahead and never started go back to the queue (for
    another daemon) instead of failing as runs of a stopped daemon."""
    app = make_app(_short_jobs)
    clock = FakeClock(utc("2027-01-01T10:00:00"))
    daemon = make_daemon(engine, app, clock, concurrency=2, shutdown_grace_ms=0)
    warm = create_manual_batch(engine, app, mode="GROUP", group="n", now=clock.now(), actor="t")
    settle(daemon)
    daemon._duration_ms = AHEAD_RUN_MS / 10  # as after short runs (see the test above)
    long = create_manual_batch(engine, app, mode="GROUP", group="long", now=clock.now(), actor="t")
    short = create_manual_batch(engine, app, mode="GROUP", group="n", now=clock.now(), actor="t")
    daemon.wake()
    daemon.tick()
    assert [run.run_id for run, _ in daemon.ahead] == short.run_ids[:2]
    daemon.request_stop()
    daemon._shutdown()
    assert [r.status for r in _run_rows(engine, short.run_ids)] == ["QUEUED"] * 4
    assert [r.status for r in _run_rows(engine, long.run_ids)] == ["CANCELLED"] * 2
    assert {r.status for r in _run_rows(engine, warm.run_ids)} == {"SUCCESS"}
    with session(engine) as s:
        assert [
            d.name for d in s.execute(select(JobDefinition)).scalars() if d.running_run_id
        ] == []


def _one_worker_two_short_runs(engine: Engine) -> tuple[Any, FakeClock, Any, Any]:
    """A daemon with one worker that has seen short runs (so it claims ahead), and two
    queued one-run batches (n1, then n2)."""
    app = make_app(_short_jobs)
    clock = FakeClock(utc("2027-01-01T10:00:00"))
    daemon = make_daemon(engine, app, clock, concurrency=1)
    daemon._duration_ms = AHEAD_RUN_MS / 10  # as after short runs (see above)
    first = create_manual_batch(engine, app, mode="JOB", job="n1", now=clock.now(), actor="t")
    second = create_manual_batch(engine, app, mode="JOB", job="n2", now=clock.now(), actor="t")
    return daemon, clock, first, second


def test_a_run_claimed_ahead_records_when_it_really_started(engine: Engine) -> None:
    """A run claimed ahead is RUNNING from its claim, but its ``started_at`` ends up the
    instant a worker took it (written again with its outcome), not the claim's."""
    daemon, clock, first, second = _one_worker_two_short_runs(engine)
    daemon.wake()
    daemon.tick()  # n1 starts, n2 is claimed ahead at 10:00:00
    assert [run.run_id for run, _ in daemon.ahead] == second.run_ids
    claimed = _run_rows(engine, second.run_ids)[0]
    assert claimed.status == "RUNNING" and claimed.started_at == clock.now()
    clock.advance(0.2)  # the worker frees up 0.2 s after the claim
    deadline = time.monotonic() + 10
    while daemon.ahead and time.monotonic() < deadline:
        time.sleep(0.02)  # n1 ends in its worker; a tick reads it and hands n2 over
        daemon.tick()
    assert daemon.ahead == []
    settle(daemon)
    one, two = _run_rows(engine, first.run_ids + second.run_ids)
    assert one.status == two.status == "SUCCESS"
    assert one.started_at == utc("2027-01-01T10:00:00")
    assert two.started_at == utc("2027-01-01T10:00:00.200000")
    assert two.finished_at is not None and two.finished_at >= two.started_at


def test_a_worker_that_ends_its_run_while_a_statement_waits_gets_the_next_at_once(
    engine: Engine,
) -> None:
    """While a hot-path statement's reply is on its way (MySQL), the daemon hands the
    runs it claimed ahead to workers that end their run meanwhile (``_while_db_waits``,
    called by the hot connection), without touching the database: the ended run's
    outcome and log lines are written by the next transaction, as any tick's."""
    daemon, _clock, first, second = _one_worker_two_short_runs(engine)
    loop = daemon._selector = selectors.DefaultSelector()  # as run() makes it
    reply, server = socket.socketpair()  # stands for the database connection
    try:
        daemon.wake()
        daemon.tick()  # n1 starts, n2 is claimed ahead
        assert list(daemon.running) == first.run_ids
        assert [run.run_id for run, _ in daemon.ahead] == second.run_ids

        server.send(b"x")  # the reply is there already: nothing to do meanwhile
        daemon._while_db_waits(reply.fileno())
        assert list(daemon.running) == first.run_ids and len(daemon.ahead) == 1
        reply.recv(1)

        daemon._while_db_waits(reply.fileno())  # no reply comes: n1 ends meanwhile
        assert list(daemon.running) == second.run_ids and daemon.ahead == []
        assert [(f.run_id, f.status) for f in daemon._ended] == [(first.run_ids[0], "SUCCESS")]
        assert [r.status for r in _run_rows(engine, first.run_ids)] == ["RUNNING"]
    finally:
        daemon._selector = None  # the ticks below read every child (no loop to wake them)
        loop.close()
        reply.close()
        server.close()
    settle(daemon)
    one, two = _run_rows(engine, first.run_ids + second.run_ids)
    assert one.status == two.status == "SUCCESS"
    assert [line["message"] for line in get_run(engine, first.run_ids[0])["logs"]] == ["done"]
