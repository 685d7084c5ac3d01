"""Packets on the daemon's hot path (issue 9 item 3): on MySQL a transaction's
statements travel several per round trip, with the same results as one by one: each
keeps its rowcount, they run in order, and a failing one rolls back the whole
transaction, deferred statements included. SQLite (and MySQL without the option) runs
each at once."""

from __future__ import annotations

import select as select_module
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.errors import DatabaseError
from jobsys.store import runs
from jobsys.store.db import make_engine
from jobsys.store.hotpath import HotConnection
from jobsys.store.models import JobDefinition, JobRun, JobSchedule
from tests.integration.test_settle import SCHEDULES, claim, fire_three, outcome, state

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
_SET_DESC = "UPDATE job_definition SET description = ? WHERE name = ?"


def _descriptions(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return dict(
            conn.execute(select(col(JobDefinition.name), col(JobDefinition.description))).all()
        )


def _two_jobs(engine: Engine) -> None:
    with engine.begin() as conn:
        for name in ("a", "b"):
            conn.execute(
                JobDefinition.__table__.insert().values(  # type: ignore[attr-defined]
                    name=name, job_group=name, description="old", updated_at=NOW
                )
            )


def test_packets_are_on_for_mysql_with_the_option_only(engine: Engine, db_url: str) -> None:
    hot = HotConnection(engine)
    with hot.transaction("test", write=False) as tx:
        tx.rows("SELECT 1")
    assert hot.packets is (engine.dialect.name == "mysql")
    if engine.dialect.name == "mysql":
        plain = make_engine(db_url)  # the web's engine: one statement per query
        try:
            other = HotConnection(plain)
            with other.transaction("test", write=False) as tx:
                tx.rows("SELECT 1")
            assert other.packets is False
        finally:
            plain.dispose()


def test_deferred_statements_ride_with_the_next_one_and_the_commit(engine: Engine) -> None:
    _two_jobs(engine)
    hot = HotConnection(engine)
    with hot.transaction("test") as tx:
        first = tx.defer(_SET_DESC, ("new a", "a"))
        missing = tx.defer(_SET_DESC, ("x", "no such job"))
        # A read sees what was deferred before it: they were sent first, in order.
        (row,) = tx.rows("SELECT description FROM job_definition WHERE name = ?", ("a",))
        assert row[0] == "new a"
        assert (first.rowcount, missing.rowcount) == (1, 0)
        last = tx.defer(_SET_DESC, ("new b", "b"))
        assert tx.each([(_SET_DESC, ("again a", "a")), (_SET_DESC, ("y", "nope"))]) == [1, 0]
    assert last.rowcount == 1
    assert _descriptions(engine) == {"a": "again a", "b": "new b"}
    if hot.packets:
        # defer, defer, SELECT | defer, each x2 | COMMIT alone (nothing queued): 3 trips
        assert (hot.statements, hot.round_trips) == (6, 3)
    else:
        assert hot.statements == 6


def test_a_failing_statement_rolls_back_what_was_deferred_before_it(engine: Engine) -> None:
    _two_jobs(engine)
    hot = HotConnection(engine, keep=True)
    with (
        pytest.raises(DatabaseError, match="no_such_table"),
        hot.transaction("cannot test in") as tx,
    ):
        tx.defer(_SET_DESC, ("lost", "a"))
        tx.execute("UPDATE no_such_table SET x = 1")
    assert _descriptions(engine) == {"a": "old", "b": "old"}
    # The kept connection was replaced and works.
    with hot.transaction("test") as tx:
        tx.defer(_SET_DESC, ("kept", "b"))
    assert _descriptions(engine) == {"a": "old", "b": "kept"}


def test_a_tick_of_outcomes_and_claims_costs_few_round_trips(engine: Engine) -> None:
    """Three outcomes (each settling its batch and schedule) and the claim that follows
    them: on MySQL with packets, a handful of round trips whatever the number of runs."""
    fire_three(engine)
    hot, queue = HotConnection(engine), runs.RunQueue()
    ids = claim(engine, hot, queue)
    assert len(ids) == 3
    trips = hot.round_trips
    finished = [outcome(engine, rid, "SUCCESS") for rid in ids]
    finished[0] = replace(finished[0], pid=77)
    assert claim(engine, hot, queue, finished=finished) == []
    assert state(engine) == {sid: ("SUCCESS", "SUCCESS", 0, 0, None) for sid in SCHEDULES}
    with engine.connect() as conn:
        pids = dict(conn.execute(select(col(JobRun.id), col(JobRun.pid))).all())
        locks = conn.execute(select(col(JobDefinition.running_run_id))).scalars().all()
        counts = conn.execute(select(col(JobSchedule.run_count))).scalars().all()
    assert pids[ids[0]] == 77
    assert set(locks) == {None}
    assert sorted(counts) == [1, 1, 1]
    if hot.packets:
        # outcomes + batch locks and reads | settled batches and schedules + COMMIT
        assert hot.round_trips - trips <= 3


def test_firing_claims_each_slot_once_with_packets(engine: Engine) -> None:
    """The chunk's claims travel together; a second firing at the same instant finds
    nothing due (each claim moved its schedule's next run)."""
    app = fire_three(engine)
    from jobsys.planning import schedule_plans
    from jobsys.store import firing

    again, _ = firing.fire_due(
        engine, schedule_plans(app), worker_id="w2", now=NOW + timedelta(seconds=1)
    )
    assert again == []
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                col(JobSchedule.id),
                col(JobSchedule.next_run_at),
                col(JobSchedule.locked_by),
                col(JobSchedule.last_batch_id),
            ).where(col(JobSchedule.id).in_(SCHEDULES))
        ).all()
    assert {r.locked_by for r in rows} == {"w1"}
    assert all(r.last_batch_id is not None for r in rows)
    assert {r.next_run_at.replace(tzinfo=UTC) for r in rows} == {NOW + timedelta(minutes=1)}


def test_a_slot_claimed_elsewhere_first_is_not_won(engine: Engine) -> None:
    """The chunk's claim is one UPDATE; when another daemon moved one of its schedules
    first, the rest are still won and that one is left to the other daemon."""
    from sqlalchemy import update

    from jobsys.planning import schedule_plans
    from jobsys.scheduler import plan_due
    from jobsys.store import firing
    from jobsys.store.db import write_engine
    from jobsys.store.tables import JobSchedule as Table

    app = fire_three(engine)
    at = NOW + timedelta(minutes=1)
    with engine.connect() as conn:
        rows = conn.execute(firing._due_statement(10), {"b_now": at}).all()
    assert sorted(r.id for r in rows) == sorted(SCHEDULES)
    plans = schedule_plans(app)
    tried = [(r, plan_due(firing.timing_of(r), r.next_run_at, at), plans[r.id]) for r in rows]
    with engine.begin() as conn:  # another daemon's claim of every-b, committed first
        conn.execute(
            update(Table)
            .where(col(Table.id) == "every-b")
            .values(next_run_at=at + timedelta(minutes=1), locked_by="w2")
        )
    with write_engine(engine).begin() as conn:
        won = firing._claim_slots(conn, tried, worker_id="w1", now=at)
    assert sorted(r.id for r, _, _ in won) == ["every-a", "every-c"]
    with engine.connect() as conn:
        locks = dict(conn.execute(select(col(Table.id), col(Table.locked_by))).all())
    assert locks == {"every-a": "w1", "every-b": "w2", "every-c": "w1"}


def test_a_one_run_batch_recovered_elsewhere_is_not_settled_again(engine: Engine) -> None:
    """The shortcut for one-run batches settles a batch only with this daemon's own
    recorded success: a run recovered by another daemon meanwhile (FAILED there) keeps
    that outcome and its schedule's failure count."""
    from sqlalchemy import update

    fire_three(engine)
    hot, queue = HotConnection(engine), runs.RunQueue()
    ids = claim(engine, hot, queue)
    assert len(ids) == 3 and set(queue.alone) == set(ids)
    lost = outcome(engine, ids[0], "SUCCESS")
    with engine.begin() as conn:  # another daemon declared us dead and failed this run
        conn.execute(
            update(JobRun)
            .where(col(JobRun.id) == ids[0])
            .values(status="FAILED", worker_id="w2", error="daemon lost", finished_at=NOW)
        )
        conn.execute(
            update(JobDefinition)
            .where(col(JobDefinition.running_run_id) == ids[0])
            .values(running_run_id=None, running_worker_id=None)
        )
    runs.settle_batches(engine, {lost.batch_id: True}, NOW + timedelta(seconds=2))
    before = state(engine)
    assert before["every-a"][:4] == ("FAILED", "FAILED", 1, 1)

    finished = [outcome(engine, rid, "SUCCESS") for rid in ids]
    assert claim(engine, hot, queue, finished=finished) == []
    after = state(engine)
    assert after["every-a"] == before["every-a"]  # not ours any more: untouched
    assert after["every-b"] == after["every-c"] == ("SUCCESS", "SUCCESS", 0, 0, None)
    assert queue.alone == {}


def test_a_run_ended_between_the_snapshot_and_its_claim_is_not_started(engine: Engine) -> None:
    """When a run was ended meanwhile (here set SKIPPED behind the daemon's back), the
    UPDATE that starts a claim round's runs comes up short: that run is not returned,
    and its job's mutex, taken for it, is free."""
    fire_three(engine)
    hot, queue = HotConnection(engine), runs.RunQueue()
    with engine.connect() as conn:
        queue.refresh(conn)
        by_job: dict[str, int] = {
            name: int(rid or 0)
            for name, rid in conn.execute(select(col(JobRun.job_name), col(JobRun.id))).all()
        }
    with engine.begin() as conn:
        conn.execute(
            JobRun.__table__.update()  # type: ignore[attr-defined]
            .where(col(JobRun.id) == by_job["job_b"])
            .values(status="SKIPPED")
        )
    started = claim(engine, hot, queue)
    assert sorted(started) == sorted([by_job["job_a"], by_job["job_c"]])
    with engine.connect() as conn:
        mutexes = dict(
            conn.execute(select(col(JobDefinition.name), col(JobDefinition.running_run_id))).all()
        )
        statuses = dict(conn.execute(select(col(JobRun.id), col(JobRun.status))).all())
    assert mutexes == {"job_a": by_job["job_a"], "job_b": None, "job_c": by_job["job_c"]}
    assert statuses[by_job["job_b"]] == "SKIPPED"


def test_a_batch_whose_last_run_ended_elsewhere_during_a_claim_is_settled(
    engine: Engine,
) -> None:
    """This daemon records its run's outcome in the tick that also tries the batch's
    other run, which another daemon ran meanwhile: that claim comes up short, and the
    batch, then over, must be settled here (no one else will). (A version that checked
    the short claim after the commit missed it: bench/run.py's three-daemon scaling
    run waited forever for its batch.)"""
    from jobsys.definitions import App
    from jobsys.manual import create_manual_batch
    from jobsys.store.models import JobBatch
    from jobsys.store.schedules import sync_definitions

    app = App("two")
    for name in ("job_a", "job_b"):
        app.job(name, group=name)(lambda ctx: None)
    app = app.validate()
    sync_definitions(engine, app, "development", NOW)
    batch_id = create_manual_batch(engine, app, mode="ALL_JOBS", now=NOW, actor="t").batch_id
    hot, queue = HotConnection(engine), runs.RunQueue()

    def claim_up_to(limit: int, **kw: object) -> list[int]:
        got = runs.claim_runnable(
            engine,
            worker_id="w1",
            limit=limit,
            clock=lambda: NOW + timedelta(seconds=1),
            known_jobs={"job_a", "job_b"},
            queue=queue,
            hot=hot,
            **kw,  # type: ignore[arg-type]
        )
        return [r.run_id for r in got]

    (first,) = claim_up_to(1)
    with engine.begin() as conn:  # the other run: started, run and ended by daemon w2
        conn.execute(
            JobRun.__table__.update()  # type: ignore[attr-defined]
            .where(col(JobRun.batch_id) == batch_id, col(JobRun.id) != first)
            .values(status="SUCCESS", worker_id="w2", finished_at=NOW, started_at=NOW)
        )
    assert claim_up_to(4, finished=[outcome(engine, first, "SUCCESS")]) == []
    with engine.connect() as conn:
        status = conn.execute(
            select(col(JobBatch.status)).where(col(JobBatch.id) == batch_id)
        ).scalar_one()
        held = conn.execute(select(col(JobDefinition.running_run_id))).scalars().all()
    assert status == "SUCCESS"
    assert set(held) == {None}


_AWKWARD: list[object] = [
    None,
    0,
    -7,
    2**62,
    True,
    False,
    1.5,
    "plain",
    'it\'s "quoted" \\ back\\slashed; -- not a comment',
    "new\nline\ttab\x00nul\x1a",
    "ünïcödé ✓ 🚀",
    "",
    "?",  # a mark inside a value is a value, not a mark
    datetime(2030, 1, 1, 12, 0, 0),
    datetime(2030, 1, 1, 12, 0, 0, 123456),
]


def test_values_written_into_a_statement_read_back_as_the_drivers_own(
    engine: Engine,
) -> None:
    """The hot path writes parameters into the statement text (``HotConnection.render``)
    instead of the driver's formatting: every kind of value must read back exactly as
    when the driver sends it (quotes, backslashes, NUL, non-ASCII, instants, booleans)."""
    hot = HotConnection(engine)
    sql = "SELECT " + ", ".join("?" for _ in _AWKWARD)
    with hot.transaction("test", write=False) as tx:
        ours = tx.rows(sql, _AWKWARD)
        if engine.dialect.name == "mysql":
            tx.cursor.execute(sql.replace("?", "%s"), tuple(_AWKWARD))
        else:
            tx.cursor.execute(sql, tuple(_AWKWARD))
        drivers = list(tx.cursor.fetchall())
    assert ours == drivers
    assert ours[0][8] == _AWKWARD[8] and ours[0][10] == _AWKWARD[10]
    if engine.dialect.name == "mysql":
        with pytest.raises(ValueError, match="2 parameter"):
            hot.render(None, "SELECT ?", [1, 2])


@pytest.mark.parametrize("packets", [True, False], ids=["packets", "one-by-one"])
def test_a_mysql_reply_is_waited_for_by_while_waiting(mysql_url: str, packets: bool) -> None:
    """Between sending a statement and reading its reply, the connection lends the wait
    to ``while_waiting`` (the daemon hands runs to workers then). Results come back as
    without it; a failing ``while_waiting`` still leaves the connection in step. (MySQL
    only: SQLite runs in-process, with no reply to wait for.)"""
    engine = make_engine(mysql_url, multi_statements=packets)
    hot = HotConnection(engine, keep=True)
    calls: list[tuple[bool, float]] = []

    def waiting(fd: int) -> None:
        poller = select_module.poll()
        poller.register(fd, select_module.POLLIN)
        early = bool(poller.poll(0))
        started = time.monotonic()
        poller.poll(5000)  # until the reply is here, as the daemon's wait returns
        calls.append((early, time.monotonic() - started))

    try:
        _two_jobs(engine)
        hot.while_waiting = waiting
        with hot.transaction("test") as tx:
            assert tx.rows("SELECT SLEEP(0.2), ?", ("x",)) == [(0, "x")]
            pending = tx.defer(_SET_DESC, ("new", "a"))
            assert tx.execute(_SET_DESC, ("new", "b")) == 1
        assert hot.packets is packets
        assert pending.rowcount == 1
        assert _descriptions(engine) == {"a": "new", "b": "new"}
        # The first reply was not there when the wait began, and came during it.
        assert calls[0][0] is False and calls[0][1] >= 0.15
        assert len(calls) == hot.round_trips - 1  # all but the COMMIT sent alone

        def broken(fd: int) -> None:
            raise RuntimeError("the daemon's side failed")

        hot.while_waiting = broken
        with pytest.raises(RuntimeError), hot.transaction("test") as tx:
            tx.execute(_SET_DESC, ("newer", "a"))
        assert _descriptions(engine)["a"] == "new"  # rolled back
        hot.while_waiting = None
        with hot.transaction("test") as tx:
            assert tx.rows("SELECT ?", ("still in step",)) == [("still in step",)]
    finally:
        hot.close()
        engine.dispose()
