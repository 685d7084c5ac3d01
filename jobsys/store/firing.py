"""Firing due schedules exactly once (design 6.3, 6.4).

For each enabled schedule whose ``next_run_at`` has come, one transaction:
1. claim: ``UPDATE job_schedule SET next_run_at = <next slot> WHERE id = ? AND
   next_run_at = <the slot read>`` — exactly one daemon sees rowcount 1;
2. record every missed or superseded slot as a SKIPPED batch with its reason;
3. insert the fired slot's batch and runs — ``uq_job_batch_slot`` (schedule id + slot
   instant) makes a second firing of the same slot impossible even if (1) were bypassed
   (e.g. a schedule disabled and re-enabled onto the same slot);
4. or, if the previous batch is still running, apply the schedule's overlap policy
   (``jobsys.store.overlap``): SKIP records the slot as SKIPPED ("overlap"), BUFFER_ONE
   keeps it for when that batch ends, CANCEL_OTHER cancels that batch and fires, ALLOW
   fires.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from jobsys.clock import iso_utc
from jobsys.scheduler import DuePlan, ScheduleTiming, jitter_offset, plan_due
from jobsys.store.batches import insert_batch, mark_fired, run_rows
from jobsys.store.db import connect, database_errors, write_engine
from jobsys.store.hotpath import marks, tx_in
from jobsys.store.overlap import cancel_batch_in
from jobsys.store.runs import QueuedRun
from jobsys.store.tables import JobBatch, JobRun, JobSchedule, WorkerInstance, col
from jobsys.store.types import BatchPlan
from jobsys.vocabulary import OverlapPolicy, RunStatus, Trigger, WorkerStatus

#: What fires, by schedule id: the plan of each schedule in this daemon's code
#: (``jobsys.planning.schedule_plans``); a schedule not in it never fires here.
Plans = Mapping[str, BatchPlan]

#: Due schedules handled per transaction by ``fire_due``: the daemon claims and starts
#: runs between chunks, so the first jobs start while later slots are still being fired.
FIRE_CHUNK = 200


@dataclass(frozen=True)
class Fired:
    schedule_id: str
    slot: datetime | None
    batch_id: int | None
    run_ids: list[int]
    skipped: int
    overlap: bool = False
    #: BUFFER_ONE kept this slot (``slot``) to fire when the running batch ends.
    buffered: bool = False
    #: CANCEL_OTHER cancelled this (previous, still running) batch before firing.
    cancelled_batch: int | None = None
    #: The slots recorded as missed/skipped, each with its SKIPPED batch, oldest first.
    missed: tuple[tuple[datetime, int | None], ...] = ()
    #: The fired batch's runs as the claim reads them (``runs.QueuedRun``), when the
    #: common path fired it: they join the daemon's queue snapshot without a read.
    queued: tuple[QueuedRun, ...] = ()


def timing_of(row: Any) -> ScheduleTiming:
    """The timing of a ``job_schedule`` row (a Core row or a ``JobSchedule`` model)."""
    return ScheduleTiming(
        cron=row.cron,
        timezone=row.timezone,
        missed=row.missed_policy,
        max_catch_up_s=row.max_catch_up_s,
        grace_s=row.grace_s,
        jitter_s=row.jitter_s,
        jitter_key=row.id,
    )


def runnable_filter() -> list[ColumnElement[bool]]:
    return [
        col(JobSchedule.enabled).is_(True),
        col(JobSchedule.in_code).is_(True),
        col(JobSchedule.env_active).is_(True),
    ]


def earliest_next_run(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        value: datetime | None = conn.execute(
            select(func.min(col(JobSchedule.next_run_at))).where(*runnable_filter())
        ).scalar_one()
        return value


def fire_due(
    engine: Engine, plans: Plans, *, worker_id: str, now: datetime, limit: int = FIRE_CHUNK
) -> tuple[list[Fired], bool]:
    """Fire up to ``limit`` due schedules; returns what fired and whether more are due.

    The common case (one slot due, nothing missed, no overlap to check against a running
    batch) is handled for the whole chunk in one transaction: one conditional UPDATE per
    schedule claims its slot (rowcount 1 = this daemon won it), then every batch and run
    is inserted in a few multi-row statements. Anything else (missed slots, an overlap,
    an empty batch, a slot that already has a batch) takes ``fire_schedule``, one
    schedule per transaction, which records each case with its reason.
    """
    fired: list[Fired] = []
    slow: list[str] = []
    fast: list[tuple[Any, DuePlan, BatchPlan]] = []
    with database_errors(engine, "cannot fire schedules in"):
        try:
            # One transaction reads the due schedules and fires the common case.
            with write_engine(engine).begin() as conn:
                rows = conn.execute(_due_statement(limit + 1), {"b_now": now}).all()
                more = len(rows) > limit
                fast, slow = _split(plans, rows[:limit], now)
                if fast:
                    done, deferred = _fire_many(conn, fast, worker_id=worker_id, now=now)
                    fired += done
                    slow += deferred
        except IntegrityError:
            # A slot of the chunk already has a batch (e.g. a schedule disabled and
            # re-enabled onto the same slot): nothing was written; one at a time instead.
            fired = []
            slow += [row.id for row, _, _ in fast]
    for schedule_id in slow:
        one = fire_schedule(engine, plans, schedule_id, worker_id=worker_id, now=now)
        if one is not None:
            fired.append(one)
    return fired, more


@functools.lru_cache(maxsize=4)
def _due_statement(limit: int) -> Any:  # a Select of the due rows
    return (
        select(
            col(JobSchedule.id),
            col(JobSchedule.next_run_at),
            col(JobSchedule.cron),
            col(JobSchedule.timezone),
            col(JobSchedule.missed_policy),
            col(JobSchedule.max_catch_up_s),
            col(JobSchedule.grace_s),
            col(JobSchedule.overlap_policy),
            col(JobSchedule.last_batch_id),
            col(JobSchedule.jitter_s),
        )
        .where(*runnable_filter(), col(JobSchedule.next_run_at) <= bindparam("b_now"))
        .order_by(col(JobSchedule.next_run_at), col(JobSchedule.id))
        .limit(limit)
    )


def _split(
    plans: Plans, rows: Sequence[Any], now: datetime
) -> tuple[list[tuple[Any, DuePlan, BatchPlan]], list[str]]:
    """The due rows this daemon knows: the common case (fast) and the rest (slow)."""
    slow: list[str] = []
    fast: list[tuple[Any, DuePlan, BatchPlan]] = []
    for row in rows:
        batch = plans.get(row.id)
        if batch is None:
            continue  # not in this daemon's code: it never fires here
        plan = plan_due(timing_of(row), row.next_run_at, now)
        if plan.fire is None and not plan.skipped:
            continue  # its slot waits for its jitter: nothing to do yet
        if plan.fire is None or plan.skipped or not batch.runs:
            slow.append(row.id)
        else:
            fast.append((row, plan, batch))
    return fast, slow


@functools.lru_cache(maxsize=16)
def _claim_slots_sql(count: int) -> str:
    """Claim ``count`` schedules' slots in one UPDATE (plain SQL, ``jobsys.store.hotpath``):
    each row moves to its next slot only where ``next_run_at`` is still the slot read,
    under the row's lock, so each slot is won by exactly one daemon (and
    ``uq_job_batch_slot`` would refuse a second batch anyway). Parameters: (id, next
    slot) pairs; the instant, the worker, the instant; the ids; (id, slot) pairs.
    One statement, not one per schedule: on MariaDB 200 claims took 17-30 ms as single
    UPDATEs (even in one packet) and 8 ms as one."""
    cases = " ".join(["WHEN ? THEN ?"] * count)
    slots = " OR ".join(["(id = ? AND next_run_at = ?)"] * count)
    return (
        f"UPDATE job_schedule SET next_run_at = CASE id {cases} END, last_run_at = ?,"
        " last_run_status = 'QUEUED', run_count = run_count + 1, locked_by = ?,"
        f" updated_at = ? WHERE enabled = 1 AND id IN ({marks(count)}) AND ({slots})"
    )


@functools.lru_cache(maxsize=16)
def _claimed_by_sql(count: int) -> str:
    """Which of ``count`` schedules this claim moved (this worker, this instant)."""
    return (
        f"SELECT id FROM job_schedule WHERE id IN ({marks(count)})"
        " AND locked_by = ? AND last_run_at = ?"
    )


@functools.lru_cache(maxsize=16)
def _set_last_batches_sql(count: int) -> str:
    """Each schedule's new batch in one UPDATE: (schedule id, batch id) pairs, the ids."""
    cases = " ".join(["WHEN ? THEN ?"] * count)
    return (
        f"UPDATE job_schedule SET last_batch_id = CASE id {cases} END WHERE id IN ({marks(count)})"
    )


def _fire_many(
    conn: Connection,
    due: list[tuple[Any, DuePlan, BatchPlan]],
    *,
    worker_id: str,
    now: datetime,
) -> tuple[list[Fired], list[str]]:
    """The one-transaction path of ``fire_due`` (in ``conn``'s transaction); returns
    what fired and the ids it left to ``fire_schedule`` (their previous batch is still
    running: an overlap)."""
    fired: list[Fired] = []
    deferred: list[str] = []
    previous = [r.last_batch_id for r, _, _ in due if _checks_overlap(r) and r.last_batch_id]
    running: set[int] = set()
    if previous:
        running = {
            bid
            for (bid,) in conn.execute(
                select(col(JobBatch.id)).where(
                    col(JobBatch.id).in_(previous),
                    col(JobBatch.status).in_((RunStatus.QUEUED, RunStatus.RUNNING)),
                )
            )
            if bid is not None
        }
    tried: list[tuple[Any, DuePlan, BatchPlan]] = []
    for row, plan, batch in due:
        if row.last_batch_id in running and _checks_overlap(row):
            deferred.append(row.id)
            continue
        tried.append((row, plan, batch))
    won = _claim_slots(conn, tried, worker_id=worker_id, now=now) if tried else []
    if not won:
        return fired, deferred
    batch_ids = _insert_batches(conn, won, worker_id=worker_id, now=now)
    run_ids = _insert_runs(conn, won, batch_ids, now=now)
    pairs: list[Any] = []
    for row, _, _ in won:
        pairs += (row.id, batch_ids[row.id])
    with tx_in(conn) as tx:
        tx.execute(_set_last_batches_sql(len(won)), (*pairs, *(row.id for row, _, _ in won)))
    for row, plan, _ in won:
        bid = batch_ids[row.id]
        ids = [run.id for run in run_ids.get(bid, ())]
        fired.append(Fired(row.id, plan.fire, bid, ids, 0, queued=tuple(run_ids.get(bid, ()))))
    return fired, deferred


def _claim_slots(
    conn: Connection,
    tried: list[tuple[Any, DuePlan, BatchPlan]],
    *,
    worker_id: str,
    now: datetime,
) -> list[tuple[Any, DuePlan, BatchPlan]]:
    """Claim the slots of ``tried`` (in ``conn``'s transaction); returns those won."""
    with tx_in(conn) as tx:
        ts = tx.hot.ts
        at = ts(now)
        args: list[Any] = []
        for row, plan, _ in tried:
            args += (row.id, ts(plan.next_run_at))
        args += (at, worker_id, at)
        args += (row.id for row, _, _ in tried)
        for row, _, _ in tried:
            args += (row.id, ts(row.next_run_at))
        if tx.execute(_claim_slots_sql(len(tried)), args) == len(tried):
            return tried  # every row matched: all won (the common case, one round trip)
        # Another daemon (or a change) moved some first: ours carry this worker and instant.
        ids = [row.id for row, _, _ in tried]
        mine = {sid for (sid,) in tx.rows(_claimed_by_sql(len(ids)), (*ids, worker_id, at))}
        return [one for one in tried if one[0].id in mine]


def _checks_overlap(row: Any) -> bool:
    """Whether a due slot of ``row`` must look at its previous batch (all but ALLOW)."""
    return bool(row.overlap_policy != OverlapPolicy.ALLOW)


def _insert_batches(
    conn: Connection,
    won: list[tuple[Any, DuePlan, BatchPlan]],
    *,
    worker_id: str,
    now: datetime,
) -> dict[str, int]:
    """Insert one batch per schedule; returns batch id by schedule id."""
    rows = []
    for row, plan, batch in won:
        assert plan.fire is not None
        rows.append(
            {
                "schedule_id": row.id,
                "trigger": Trigger.CRON,
                "scheduled_for": plan.fire,
                "status": RunStatus.QUEUED,
                "reason": plan.fire_reason,
                "mode": batch.mode,
                "job_group": batch.group,
                "skip_dependencies": False,
                "fired_by": worker_id,
                **_jitter_and_lateness(row.id, row.jitter_s, plan.fire, now)._asdict(),
                "total_runs": len(batch.runs),
                "created_at": now,
                "updated_at": now,
            }
        )
    got = _insert_rows(conn, JobBatch, rows, key=("schedule_id",))
    if got is not None:
        return {r["schedule_id"]: bid for r, bid in zip(rows, got, strict=True)}
    # Read the ids back by the unique (schedule, slot) key, one query per slot instant.
    by_slot: dict[datetime, list[str]] = {}
    for row, plan, _ in won:
        assert plan.fire is not None
        by_slot.setdefault(plan.fire, []).append(row.id)
    ids: dict[str, int] = {}
    for slot, schedule_ids in by_slot.items():
        for bid, sid in conn.execute(
            select(col(JobBatch.id), col(JobBatch.schedule_id)).where(
                col(JobBatch.scheduled_for) == slot, col(JobBatch.schedule_id).in_(schedule_ids)
            )
        ):
            if bid is not None and sid is not None:
                ids[sid] = bid
    return ids


def _insert_runs(
    conn: Connection,
    won: list[tuple[Any, DuePlan, BatchPlan]],
    batch_ids: dict[str, int],
    *,
    now: datetime,
) -> dict[int, list[QueuedRun]]:
    """Insert every batch's runs in dependency order; returns them by batch id."""
    rows = [
        run
        for row, plan, batch in won
        for run in run_rows(
            batch,
            batch_id=batch_ids[row.id],
            trigger=Trigger.CRON,
            schedule_id=row.id,
            scheduled_for=plan.fire,
            now=now,
        )
    ]
    ids: dict[int, list[int]] = {}
    got = _insert_rows(conn, JobRun, rows, key=("batch_id", "position"))
    if got is not None:
        for run, rid in zip(rows, got, strict=True):
            ids.setdefault(run["batch_id"], []).append(rid)
    else:  # read the ids back: each batch's in position order
        for rid, bid in conn.execute(
            select(col(JobRun.id), col(JobRun.batch_id))
            .where(col(JobRun.batch_id).in_(sorted(batch_ids.values())))
            .order_by(col(JobRun.batch_id), col(JobRun.position))
        ):
            if rid is not None:
                ids.setdefault(bid, []).append(rid)
    # Each batch's rows are in position order, as its ids.
    out: dict[int, list[QueuedRun]] = {}
    for run in rows:
        bid = run["batch_id"]
        position = len(out.setdefault(bid, []))
        out[bid].append(
            QueuedRun(
                id=ids[bid][position],
                batch_id=bid,
                job_name=run["job_name"],
                depends_on=run["depends_on"],
                params=run["params"],
                trigger=run["trigger"],
                schedule_id=run["schedule_id"],
                scheduled_for=run["scheduled_for"],
                timeout_s=run["timeout_s"],
                cancel_requested=False,
                not_before=None,
                attempt=1,
                total_runs=len(ids[bid]),
            )
        )
    return out


def _insert_rows(
    conn: Connection, table: Any, rows: list[dict[str, Any]], *, key: tuple[str, ...]
) -> list[int] | None:
    """Insert ``rows``; their ids in the order of ``rows`` when the insert can tell them
    (``INSERT ... RETURNING`` on SQLite and MariaDB 10.5+, or the driver's id of a single
    row), else None: the caller reads them back. ``key``: columns that tell the rows
    apart (MySQL's RETURNING is matched to them)."""
    if not rows:
        return []
    if conn.dialect.insert_returning and conn.dialect.name == "mysql":
        return _insert_returning_mysql(conn, table, rows, key)
    if conn.dialect.insert_returning:
        statement = insert(table).returning(table.id, sort_by_parameter_order=True)
        return [int(i) for i in conn.execute(statement, rows).scalars()]
    if len(rows) == 1:
        (one,) = conn.execute(insert(table), rows[0]).inserted_primary_key or (None,)
        return None if one is None else [int(one)]
    conn.execute(insert(table), rows)
    return None


def _insert_returning_mysql(
    conn: Connection, table: Any, rows: list[dict[str, Any]], key: tuple[str, ...]
) -> list[int]:
    """``_insert_rows`` on MariaDB as one plain ``INSERT ... RETURNING`` with its values
    written in by ``HotConnection.render``: through Core, rendering a chunk's ~2,500
    values cost more CPU than the rest of the firing (issue 9). The values pass through
    each column's own bind processing (JSON text, UTC instants) first, as in Core."""
    columns = tuple(rows[0])
    processors = _bind_processors(table.__table__, columns, conn.dialect)
    values: list[Any] = []
    for row in rows:
        for column, process in zip(columns, processors, strict=True):
            value = row[column]
            values.append(value if process is None else process(value))
    quote = conn.dialect.identifier_preparer.quote
    text = _insert_sql(
        quote(table.__table__.name),
        tuple(quote(c) for c in columns),
        len(rows),
        tuple(quote(k) for k in key),
    )
    with tx_in(conn) as tx:
        returned = tx.rows(text, values)
    ids = {tuple(r[1:]): int(r[0]) for r in returned}
    return [ids[tuple(row[k] for k in key)] for row in rows]


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], count: int, key: tuple[str, ...]) -> str:
    one = f"({', '.join('?' * len(columns))})"
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * count)}"
        f" RETURNING id, {', '.join(key)}"
    )


def _bind_processors(table: Any, columns: tuple[str, ...], dialect: Any) -> list[Any]:
    return [table.c[column].type.bind_processor(dialect) for column in columns]


def fire_schedule(
    engine: Engine, plans: Plans, schedule_id: str, *, worker_id: str, now: datetime
) -> Fired | None:
    """Handle one due schedule; None when another daemon (or a change) got there first."""
    batch = plans.get(schedule_id)
    if batch is None:
        return None  # removed from this daemon's code: it never fires
    with database_errors(engine, "cannot fire schedule in"), connect(engine, write=True) as s:
        row = s.execute(select(JobSchedule).where(col(JobSchedule.id) == schedule_id)).first()
        if (
            row is None
            or not (row.enabled and row.in_code and row.env_active)
            or row.next_run_at is None
            or row.next_run_at > now
        ):
            return None
        plan = plan_due(timing_of(row), row.next_run_at, now)
        if plan.fire is None and not plan.skipped:
            return None  # its slot waits for its jitter
        claimed = s.execute(
            update(JobSchedule)
            .where(
                col(JobSchedule.id) == schedule_id, col(JobSchedule.next_run_at) == row.next_run_at
            )
            .values(next_run_at=plan.next_run_at, updated_at=now)
        )
        if claimed.rowcount != 1:
            s.rollback()
            return None
        try:
            missed = [
                (one.slot, _record_skipped(s, schedule_id, one.slot, one.reason, worker_id, now))
                for one in plan.skipped
            ]
            fired: Fired
            policy = row.overlap_policy
            running = (
                plan.fire is not None and _checks_overlap(row) and _previous_still_running(s, row)
            )
            cancelled: int | None = None
            if running and policy == OverlapPolicy.CANCEL_OTHER and row.last_batch_id:
                cancelled = row.last_batch_id
                why = f"cancelled: slot {iso_utc(plan.fire)} came (overlap CANCEL_OTHER)"
                cancel_batch_in(s, cancelled, why, now)
                running = False
            if plan.fire is None:
                fired = Fired(schedule_id, None, None, [], len(missed), missed=tuple(missed))
            elif running and policy == OverlapPolicy.BUFFER_ONE and row.buffered_slot is None:
                # fired by fire_buffered when that batch ends
                s.execute(
                    update(JobSchedule)
                    .where(col(JobSchedule.id) == schedule_id)
                    .values(buffered_slot=plan.fire)
                )
                fired = Fired(
                    schedule_id,
                    plan.fire,
                    None,
                    [],
                    len(missed),
                    buffered=True,
                    missed=tuple(missed),
                )
            elif running:
                reason = f"overlap: batch #{row.last_batch_id} of this schedule is still running"
                if policy == OverlapPolicy.BUFFER_ONE:
                    reason += f" and slot {iso_utc(row.buffered_slot)} is already buffered"
                missed.append(
                    (plan.fire, _record_skipped(s, schedule_id, plan.fire, reason, worker_id, now))
                )
                fired = Fired(
                    schedule_id,
                    plan.fire,
                    None,
                    [],
                    len(missed),
                    overlap=True,
                    missed=tuple(missed),
                )
            else:
                delay = _jitter_and_lateness(schedule_id, row.jitter_s, plan.fire, now)
                created = insert_batch(
                    s,
                    batch,
                    trigger=Trigger.CRON,
                    schedule_id=schedule_id,
                    scheduled_for=plan.fire,
                    fired_by=worker_id,
                    reason=plan.fire_reason,
                    lateness_ms=delay.lateness_ms,
                    jitter_ms=delay.jitter_ms,
                    now=now,
                )
                mark_fired(s, schedule_id, created, worker_id=worker_id, now=now)
                fired = Fired(
                    schedule_id,
                    plan.fire,
                    created.batch_id,
                    created.run_ids,
                    len(missed),
                    cancelled_batch=cancelled,
                    missed=tuple(missed),
                )
            s.commit()
        except IntegrityError:
            s.rollback()  # the slot already has a batch: it fired (or was recorded) before
            return None
    return fired


class _Delay(NamedTuple):
    jitter_ms: int | None
    lateness_ms: int


def _jitter_and_lateness(schedule_id: str, jitter_s: int, slot: datetime, now: datetime) -> _Delay:
    """A fired slot's jitter (None without) and lateness, counted from its jittered
    start: the delay jitter asked for is not the daemon being late."""
    offset = jitter_offset(schedule_id, slot, jitter_s)
    return _Delay(
        jitter_ms=int(offset.total_seconds() * 1000) if jitter_s else None,
        lateness_ms=int((now - slot - offset).total_seconds() * 1000),
    )


def _previous_still_running(s: Connection, row: Any) -> bool:
    if row.last_batch_id is None:
        return False
    status = s.execute(
        select(col(JobBatch.status)).where(col(JobBatch.id) == row.last_batch_id)
    ).scalar()
    return status in (RunStatus.QUEUED, RunStatus.RUNNING)


def _record_skipped(
    s: Connection, schedule_id: str, slot: datetime, reason: str, worker_id: str, now: datetime
) -> int | None:
    inserted = s.execute(
        insert(JobBatch).values(
            schedule_id=schedule_id,
            trigger=Trigger.CRON,
            scheduled_for=slot,
            status=RunStatus.SKIPPED,
            reason=reason,
            mode="SLOT",
            fired_by=worker_id,
            total_runs=0,
            created_at=now,
            finished_at=now,
            duration_ms=0,
            updated_at=now,
            lateness_ms=int((now - slot).total_seconds() * 1000),
        )
    )
    (batch_id,) = inserted.inserted_primary_key or (None,)
    return None if batch_id is None else int(batch_id)


@dataclass(frozen=True)
class Overview:
    """What an idle daemon needs to know, read in one round trip."""

    earliest_next_run: datetime | None
    has_queued: bool
    stale_workers: int
    has_buffered: bool = False  # a BUFFER_ONE slot waits for its schedule's batch to end
    #: A checksum of every runnable schedule's id, cron, time zone and ``next_run_at``:
    #: the daemon looks for a lost next run (``upkeep.repair_next_runs``, which reads
    #: every row) only when it changed, so an idle poll stays one statement.
    schedules_sum: int = 0


def poll_overview(engine: Engine, stale_before: datetime) -> Overview:
    query = select(
        select(func.min(col(JobSchedule.next_run_at))).where(*runnable_filter()).scalar_subquery(),
        select(func.min(col(JobRun.id)))
        .where(col(JobRun.status) == RunStatus.QUEUED)
        .scalar_subquery(),
        select(func.count())
        .select_from(WorkerInstance)
        .where(
            col(WorkerInstance.status) != WorkerStatus.STOPPED,
            col(WorkerInstance.last_heartbeat_at) < stale_before,
        )
        .scalar_subquery(),
        select(func.min(col(JobSchedule.buffered_slot))).scalar_subquery(),
        select(func.sum(1 + func.crc32(_schedule_state())))
        .where(*runnable_filter())
        .scalar_subquery(),
    )
    with engine.connect() as conn:
        earliest, first_queued, stale, buffered, total = conn.execute(query).one()
    return Overview(
        earliest, first_queued is not None, int(stale or 0), buffered is not None, int(total or 0)
    )


def _schedule_state() -> ColumnElement[str]:
    """What a lost next run depends on, as one string per schedule (``crc32`` is MySQL's
    own; on SQLite, ``db`` registers it)."""
    at = func.coalesce(cast(col(JobSchedule.next_run_at), String), "-")
    s = col(JobSchedule.id) + "|" + col(JobSchedule.cron) + "|" + col(JobSchedule.timezone)
    return s + "|" + at
