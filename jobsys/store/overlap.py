"""Overlap policies in the store (design 6.4, issue 10 item 2): cancelling the running
batch (CANCEL_OTHER) and firing a slot that BUFFER_ONE kept while it ran.

``jobsys.store.firing`` decides per due slot; this module holds what it writes beyond
a batch: a cancelled batch, and the buffered slot's batch once the previous one ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from jobsys.clock import iso_utc
from jobsys.store.batches import insert_batch, mark_fired
from jobsys.store.db import connect, database_errors
from jobsys.store.tables import JobBatch, JobRun, JobSchedule, col
from jobsys.store.types import BatchPlan
from jobsys.vocabulary import RunStatus, Trigger

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


def cancel_batch_in(conn: Connection, batch_id: int, why: str, now: datetime) -> None:
    """Cancel a batch in ``conn``'s transaction: its queued runs end CANCELLED at once,
    its running ones are flagged (their daemon stops them, as for an admin's cancel)."""
    from jobsys.store.runs import _settle  # the batch outcome rules live there

    conn.execute(
        update(JobRun)
        .where(col(JobRun.batch_id) == batch_id, col(JobRun.status) == RunStatus.QUEUED)
        .values(
            status=RunStatus.CANCELLED,
            error=why,
            cancel_requested=True,
            finished_at=now,
            updated_at=now,
        )
    )
    flagged = conn.execute(
        update(JobRun)
        .where(col(JobRun.batch_id) == batch_id, col(JobRun.status) == RunStatus.RUNNING)
        .values(cancel_requested=True, updated_at=now)
    ).rowcount
    if not flagged:
        _settle(conn, batch_id, now, cascade=True)  # nothing runs: it ends now


@dataclass(frozen=True)
class BufferedFire:
    """A buffered slot fired after its schedule's previous batch ended."""

    schedule_id: str
    slot: datetime
    batch_id: int
    run_ids: list[int]
    after_batch_id: int | None


def has_buffered(engine: Engine) -> bool:
    """Whether any schedule has a buffered slot (an indexed lookup)."""
    with engine.connect() as conn:
        return (
            conn.execute(
                select(col(JobSchedule.id))
                .where(col(JobSchedule.buffered_slot).is_not(None))
                .limit(1)
            ).first()
            is not None
        )


def fire_buffered(
    engine: Engine, plans: Mapping[str, BatchPlan], *, worker_id: str, now: datetime
) -> list[BufferedFire]:
    """Fire each buffered slot whose schedule's previous batch has ended.

    One transaction per schedule: the conditional UPDATE clearing ``buffered_slot`` is
    the claim (rowcount 1 = this daemon fires it), and ``uq_job_batch_slot`` keeps the
    slot to one batch whatever happens. Slots of schedules disabled, removed from code
    or not in this daemon's code stay put (a toggle clears them).
    """
    fired: list[BufferedFire] = []
    with database_errors(engine, "cannot fire buffered slots in"):
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    col(JobSchedule.id),
                    col(JobSchedule.buffered_slot),
                    col(JobSchedule.last_batch_id),
                    col(JobBatch.status),
                )
                .outerjoin(JobBatch, col(JobBatch.id) == col(JobSchedule.last_batch_id))
                .where(
                    col(JobSchedule.buffered_slot).is_not(None),
                    col(JobSchedule.enabled).is_(True),
                    col(JobSchedule.in_code).is_(True),
                    col(JobSchedule.env_active).is_(True),
                )
            ).all()
            conn.rollback()
        for sid, slot, previous, status in rows:
            plan = plans.get(sid)
            if plan is None or slot is None or status in ACTIVE:
                continue  # not this daemon's, or the previous batch still runs
            one = _fire_one(engine, plan, sid, slot, previous, worker_id=worker_id, now=now)
            if one is not None:
                fired.append(one)
    return fired


def _fire_one(
    engine: Engine,
    plan: BatchPlan,
    schedule_id: str,
    slot: datetime,
    previous: int | None,
    *,
    worker_id: str,
    now: datetime,
) -> BufferedFire | None:
    with connect(engine, write=True) as s:
        claimed = s.execute(
            update(JobSchedule)
            .where(col(JobSchedule.id) == schedule_id, col(JobSchedule.buffered_slot) == slot)
            .values(buffered_slot=None, updated_at=now)
        )
        if claimed.rowcount != 1:
            s.rollback()
            return None
        reason = f"buffered (BUFFER_ONE): slot {iso_utc(slot)} came while batch #{previous} ran"
        try:
            created = insert_batch(
                s,
                plan,
                trigger=Trigger.CRON,
                schedule_id=schedule_id,
                scheduled_for=slot,
                fired_by=worker_id,
                reason=reason,
                lateness_ms=int((now - slot).total_seconds() * 1000),
                now=now,
            )
        except IntegrityError:
            s.rollback()  # the slot has a batch already (it cannot fire twice)
            with connect(engine, write=True) as again:
                again.execute(
                    update(JobSchedule)
                    .where(
                        col(JobSchedule.id) == schedule_id, col(JobSchedule.buffered_slot) == slot
                    )
                    .values(buffered_slot=None, updated_at=now)
                )
                again.commit()
            return None
        mark_fired(s, schedule_id, created, worker_id=worker_id, now=now)
        s.commit()
    return BufferedFire(schedule_id, slot, created.batch_id, created.run_ids, previous)
