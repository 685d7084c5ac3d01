"""Firing due schedules exactly once (design 6.3, 6.4).

For each enabled schedule whose ``next_run_at`` has come, one transaction:
1. claim: ``UPDATE job_schedule SET next_run_at = <next slot> WHERE id = ? AND
   next_run_at = <the slot read>`` — exactly one daemon sees rowcount 1;
2. record every missed or superseded slot as a SKIPPED batch with its reason;
3. insert the fired slot's batch and runs — ``uq_job_batch_slot`` (schedule id + slot
   instant) makes a second firing of the same slot impossible even if (1) were bypassed
   (e.g. a schedule disabled and re-enabled onto the same slot);
4. or, if the previous batch is still running and overlap is not allowed, record the
   slot as SKIPPED ("overlap").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from jobsys.definitions import App
from jobsys.scheduler import plan_due
from jobsys.store.batches import insert_batch
from jobsys.store.db import database_errors, session
from jobsys.store.models import JobBatch, JobSchedule, RunStatus, Trigger
from jobsys.store.schedules import timing_of


@dataclass(frozen=True)
class Fired:
    schedule_id: str
    slot: datetime | None
    batch_id: int | None
    run_ids: list[int]
    skipped: int
    overlap: bool = False


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


def due_schedule_ids(engine: Engine, now: datetime) -> list[str]:
    with engine.connect() as conn:
        return [
            sid
            for (sid,) in conn.execute(
                select(col(JobSchedule.id))
                .where(*runnable_filter(), col(JobSchedule.next_run_at) <= now)
                .order_by(col(JobSchedule.next_run_at), col(JobSchedule.id))
            )
        ]


def fire_schedule(
    engine: Engine, app: App, schedule_id: str, *, worker_id: str, now: datetime
) -> Fired | None:
    """Handle one due schedule; None when another daemon (or a change) got there first."""
    sched = app.schedules.get(schedule_id)
    if sched is None:
        return None  # removed from this daemon's code: it never fires
    with database_errors(engine, "cannot fire schedule in"), session(engine, write=True) as s:
        row = s.get(JobSchedule, schedule_id)
        if (
            row is None
            or not (row.enabled and row.in_code and row.env_active)
            or row.next_run_at is None
            or row.next_run_at > now
        ):
            return None
        plan = plan_due(timing_of(row), row.next_run_at, now)
        claimed = s.connection().execute(
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
            for skipped in plan.skipped:
                _record_skipped(s, schedule_id, skipped.slot, skipped.reason, worker_id, now)
            fired: Fired
            if plan.fire is None:
                fired = Fired(schedule_id, None, None, [], len(plan.skipped))
            elif not row.allow_overlap and _previous_still_running(s, row):
                reason = f"overlap: batch #{row.last_batch_id} of this schedule is still running"
                _record_skipped(s, schedule_id, plan.fire, reason, worker_id, now)
                fired = Fired(schedule_id, plan.fire, None, [], len(plan.skipped) + 1, overlap=True)
            else:
                lateness = int((now - plan.fire).total_seconds() * 1000)
                created = insert_batch(
                    s,
                    app,
                    mode=sched.mode,
                    group=sched.group,
                    trigger=Trigger.CRON,
                    schedule_id=schedule_id,
                    scheduled_for=plan.fire,
                    fired_by=worker_id,
                    reason=plan.fire_reason,
                    lateness_ms=lateness,
                    now=now,
                )
                s.execute(
                    update(JobSchedule)
                    .where(col(JobSchedule.id) == schedule_id)
                    .values(
                        last_run_at=now,
                        last_batch_id=created.batch_id,
                        last_run_status=RunStatus.QUEUED if created.run_ids else RunStatus.SUCCESS,
                        run_count=col(JobSchedule.run_count) + 1,
                        locked_by=worker_id,
                        locked_at=now,
                    )
                )
                fired = Fired(
                    schedule_id, plan.fire, created.batch_id, created.run_ids, len(plan.skipped)
                )
            s.commit()
        except IntegrityError:
            s.rollback()  # the slot already has a batch: it fired (or was recorded) before
            return None
    return fired


def _previous_still_running(s: Session, row: JobSchedule) -> bool:
    if row.last_batch_id is None:
        return False
    prev = s.get(JobBatch, row.last_batch_id)
    return prev is not None and prev.status in (RunStatus.QUEUED, RunStatus.RUNNING)


def _record_skipped(
    s: Session, schedule_id: str, slot: datetime, reason: str, worker_id: str, now: datetime
) -> None:
    s.add(
        JobBatch(
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
    s.flush()


@dataclass(frozen=True)
class Overview:
    """What an idle daemon needs to know, read in one round trip."""

    earliest_next_run: datetime | None
    has_queued: bool
    stale_workers: int


def poll_overview(engine: Engine, stale_before: datetime) -> Overview:
    from jobsys.store.models import JobRun, WorkerInstance, WorkerStatus

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
    )
    with engine.connect() as conn:
        earliest, first_queued, stale = conn.execute(query).one()
    return Overview(earliest, first_queued is not None, int(stale or 0))
