"""The records a schedule's slot ledger (``jobsys.ledger``) is built from, read in one
connection: the batches of its slots in the window (``uq_job_batch_slot`` is an index on
schedule id + slot), its enable/disable audit rows (``ix_audit_log_target_id_id``), the
lives of the daemons (``worker_instance`` is small) and, from its row, when it was first
synced and which slot BUFFER_ONE holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.ledger import DaemonSpan, SlotRecord, Toggle
from jobsys.store.db import database_errors
from jobsys.store.models import AuditLog, JobBatch, JobSchedule, WorkerInstance, WorkerStatus

TOGGLES = ("schedule.enable", "schedule.disable")


@dataclass(frozen=True)
class LedgerInputs:
    records: list[SlotRecord]
    toggles: list[Toggle]
    daemons: list[DaemonSpan]
    created_at: datetime | None
    buffered_slot: datetime | None


def ledger_inputs(
    engine: Engine,
    schedule_id: str,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    beat: timedelta,
    live: timedelta,
) -> LedgerInputs:
    """What ``build_ledger`` needs for slots in [start, end).

    A daemon lived from its start to its stop; one that died without stopping lived
    until one heartbeat period (``beat``) after its last heartbeat; one still
    heartbeating (within ``live``) lives on until ``now``.
    """
    with database_errors(engine, "cannot read the slot ledger from"), engine.connect() as conn:
        batches = conn.execute(
            select(
                col(JobBatch.scheduled_for),
                col(JobBatch.id),
                col(JobBatch.status),
                col(JobBatch.mode),
                col(JobBatch.trigger),
                col(JobBatch.reason),
                col(JobBatch.lateness_ms),
                col(JobBatch.created_at),
                col(JobBatch.finished_at),
            ).where(
                col(JobBatch.schedule_id) == schedule_id,
                col(JobBatch.scheduled_for) >= start,
                col(JobBatch.scheduled_for) < end,
            )
        ).all()
        audits = conn.execute(
            select(col(AuditLog.at), col(AuditLog.action), col(AuditLog.actor))
            .where(col(AuditLog.target_id) == schedule_id, col(AuditLog.action).in_(TOGGLES))
            .order_by(col(AuditLog.id))
        ).all()
        workers = conn.execute(
            select(
                col(WorkerInstance.started_at),
                col(WorkerInstance.stopped_at),
                col(WorkerInstance.last_heartbeat_at),
                col(WorkerInstance.status),
            ).where(
                col(WorkerInstance.started_at) < end,
                or_(
                    col(WorkerInstance.stopped_at).is_(None),
                    col(WorkerInstance.stopped_at) >= start,
                ),
            )
        ).all()
        row = conn.execute(
            select(col(JobSchedule.created_at), col(JobSchedule.buffered_slot)).where(
                col(JobSchedule.id) == schedule_id
            )
        ).first()
    records = [
        SlotRecord(slot, bid, status, mode, trigger, reason, late, created, finished)
        for slot, bid, status, mode, trigger, reason, late, created, finished in batches
        if slot is not None and bid is not None  # the query excludes them; for the types
    ]
    toggles = [Toggle(at, action == "schedule.enable", actor) for at, action, actor in audits]
    spans: list[DaemonSpan] = []
    for started, stopped, beat_at, status in workers:
        if stopped is not None:
            until = stopped
        elif status != WorkerStatus.STOPPED and now - beat_at <= live:
            until = now
        else:
            until = beat_at + beat
        spans.append(DaemonSpan(started, until))
    return LedgerInputs(
        records,
        toggles,
        spans,
        row.created_at if row is not None else None,
        row.buffered_slot if row is not None else None,
    )
