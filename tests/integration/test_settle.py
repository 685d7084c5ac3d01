"""Settling batches on the daemon's hot path (issue 9 item 3): a tick records its
outcomes, claims and the batches they finish in one transaction, several batches and
schedules at once, and a batch is settled (its schedule's counters moved) exactly once
however many times it is asked for."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.definitions import App
from jobsys.planning import schedule_plans
from jobsys.store import firing, runs
from jobsys.store.db import session
from jobsys.store.hotpath import HotConnection
from jobsys.store.models import JobBatch, JobRun, JobSchedule, RunStatus
from jobsys.store.schedules import set_enabled, sync_definitions

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SCHEDULES = ("every-a", "every-b", "every-c")


def fire_three(engine: Engine) -> App:
    """Three every-minute schedules, each of one job, fired at NOW: three one-run batches."""
    app = App("settle")
    for name in ("a", "b", "c"):
        app.job(f"job_{name}", group=name)(lambda ctx: None)
        app.schedule(f"every-{name}", cron="* * * * *", mode="GROUP", group=name)
    app = app.validate()
    sync_definitions(engine, app, "development", NOW - timedelta(minutes=5))
    for sid in SCHEDULES:
        set_enabled(
            engine, app, "development", sid, True, now=NOW - timedelta(minutes=1), actor="test"
        )
    fired, _ = firing.fire_due(engine, schedule_plans(app), worker_id="w1", now=NOW)
    assert len([f for f in fired if f.batch_id]) == 3
    return app


def claim(engine: Engine, hot: HotConnection, queue: runs.RunQueue, **kw: object) -> list[int]:
    got = runs.claim_runnable(
        engine,
        worker_id="w1",
        limit=4,
        clock=lambda: NOW + timedelta(seconds=1),
        known_jobs={"job_a", "job_b", "job_c"},
        queue=queue,
        hot=hot,
        **kw,  # type: ignore[arg-type]
    )
    return [r.run_id for r in got]


def outcome(engine: Engine, run_id: int, status: str) -> runs.Finished:
    with engine.connect() as conn:
        batch_id, job = conn.execute(
            select(col(JobRun.batch_id), col(JobRun.job_name)).where(col(JobRun.id) == run_id)
        ).one()
    return runs.Finished(run_id, batch_id, job, status, None, 0, NOW, 5)


def state(engine: Engine) -> dict[str, tuple[str, str | None, int, int, str | None]]:
    """By schedule: its last batch's status, the schedule's last run status, failure
    count, consecutive failures, lock."""
    with session(engine) as s:
        out = {}
        for row in s.execute(select(JobSchedule).where(col(JobSchedule.id).in_(SCHEDULES))):
            sched = row[0]
            batch = s.get(JobBatch, sched.last_batch_id)
            assert batch is not None
            out[sched.id] = (
                batch.status,
                sched.last_run_status,
                sched.failure_count,
                sched.consecutive_failures,
                sched.locked_by,
            )
        return out


def test_outcomes_claims_and_settling_share_one_transaction(engine: Engine) -> None:
    fire_three(engine)
    hot, queue = HotConnection(engine), runs.RunQueue()
    ids = claim(engine, hot, queue)
    assert len(ids) == 3
    assert {v[0] for v in state(engine).values()} == {"RUNNING"}

    before = hot.statements
    finished = [outcome(engine, rid, "SUCCESS") for rid in ids]
    finished[1] = replace(finished[1], pid=4343)  # a pid not written yet rides along
    assert claim(engine, hot, queue, finished=finished, pids=[(ids[0], 4242)]) == []
    # Outcomes, mutexes, the pid of a run still running, and three batches with their
    # schedules settled, each kind in one statement (MySQL also locks the batch rows).
    assert hot.statements - before <= 7
    assert state(engine) == {sid: ("SUCCESS", "SUCCESS", 0, 0, None) for sid in SCHEDULES}
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(JobRun.status), col(JobRun.pid), col(JobRun.duration_ms))
            .where(col(JobRun.id).in_(ids))
            .order_by(col(JobRun.id))
        ).all()
        times = conn.execute(select(col(JobBatch.finished_at), col(JobBatch.duration_ms))).all()
    assert [tuple(r) for r in rows] == [
        ("SUCCESS", 4242, 5),
        ("SUCCESS", 4343, 5),
        ("SUCCESS", None, 5),
    ]
    assert all(at is not None and ms is not None for at, ms in times)


def test_a_failure_counts_once_however_often_its_batch_is_settled(engine: Engine) -> None:
    fire_three(engine)
    hot, queue = HotConnection(engine), runs.RunQueue()
    ids = claim(engine, hot, queue)
    runs.finish_runs(
        engine,
        [outcome(engine, ids[0], "FAILED"), outcome(engine, ids[1], "SUCCESS")],
        worker_id="w1",
        now=NOW + timedelta(seconds=2),
        hot=hot,
    )
    settled = state(engine)
    assert settled["every-a"] == ("FAILED", "FAILED", 1, 1, None)
    assert settled["every-b"] == ("SUCCESS", "SUCCESS", 0, 0, None)
    assert settled["every-c"][0] == "RUNNING"

    # The third run ends without settling (as if its daemon stopped right after), then
    # every batch is asked to settle again, as another daemon might: the settled ones
    # stay as they are (their counters move once), the third one settles.
    with session(engine, write=True) as s:
        s.execute(
            update(JobRun)
            .where(col(JobRun.id) == ids[2])
            .values(status=RunStatus.FAILED, finished_at=NOW, updated_at=NOW)
        )
        s.commit()
    for _ in range(2):
        batch_ids = [outcome(engine, rid, "SUCCESS").batch_id for rid in ids]
        runs.settle_batches(engine, dict.fromkeys(batch_ids, False), NOW + timedelta(seconds=3))
    assert state(engine) == {
        "every-a": ("FAILED", "FAILED", 1, 1, None),
        "every-b": ("SUCCESS", "SUCCESS", 0, 0, None),
        "every-c": ("FAILED", "FAILED", 1, 1, None),
    }


def test_a_batch_with_a_run_still_running_here_is_not_settled(engine: Engine) -> None:
    fire_three(engine)
    hot, queue = HotConnection(engine), runs.RunQueue()
    ids = claim(engine, hot, queue)
    finished = [outcome(engine, ids[0], "SUCCESS")]
    # ``busy_batches``: the caller knows a run of this batch still runs here, so the
    # batch is not looked at (here it is done, so it stays RUNNING until asked again).
    runs.finish_runs(
        engine, finished, worker_id="w1", now=NOW, hot=hot, busy_batches={finished[0].batch_id}
    )
    assert state(engine)["every-a"][0] == "RUNNING"
    runs.settle_batches(engine, {finished[0].batch_id: False}, NOW)
    assert state(engine)["every-a"] == ("SUCCESS", "SUCCESS", 0, 0, None)
