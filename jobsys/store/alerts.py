"""The rows ``jobsys.alerts`` reads and writes: incidents in ``alert_incident`` and the
schedules, runs, workers and batches whose state opens or clears them.

The rules (what is a problem, the messages, when to retry) stay in ``jobsys.alerts``;
this module takes plain values and returns typed rows. Writes are single conditional
statements, so several daemons checking at once open, resolve and send each thing once:
an INSERT that ``uq_alert_incident_key`` lets only one daemon make, and UPDATEs that
only match while the row is still in the state the caller saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnClause, case, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from jobsys.store.db import write_engine
from jobsys.store.tables import AlertIncident, JobBatch, JobRun, JobSchedule, WorkerInstance, col
from jobsys.vocabulary import RunStatus, Trigger, WorkerStatus


@dataclass(frozen=True)
class Incident:
    id: int
    kind: str
    subject: str
    dedupe_key: str | None
    message: str
    resolution: str | None
    details: dict[str, Any] | None
    ref: int | None
    since: datetime
    resolved_at: datetime | None
    opened_by: str | None
    pending: str | None  # the message still to deliver: "firing", "resolved" or None
    attempts: int
    next_attempt_at: datetime | None
    notified_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class ScheduleState:
    id: str
    enabled: bool
    in_code: bool
    env_active: bool
    consecutive_failures: int
    last_batch_id: int | None
    last_run_status: str | None
    # who disabled it and why (the daemon, for pause_on_failure: jobsys.store.upkeep)
    paused_by: str | None = None
    paused_note: str | None = None
    paused_at: datetime | None = None

    @property
    def runnable(self) -> bool:
        return self.enabled and self.in_code and self.env_active


@dataclass(frozen=True)
class RunningRun:
    id: int
    job_name: str
    batch_id: int
    schedule_id: str | None
    started_at: datetime | None
    timeout_s: int | None
    worker_id: str | None


@dataclass(frozen=True)
class QuietWorker:
    """A daemon not marked STOPPED whose last heartbeat is old."""

    id: str
    hostname: str
    pid: int
    last_heartbeat_at: datetime


@dataclass(frozen=True)
class SkippedSlot:
    id: int
    schedule_id: str
    scheduled_for: datetime | None
    reason: str | None


@dataclass(frozen=True)
class FiredSlot:
    id: int
    scheduled_for: datetime | None


_INCIDENT: list[ColumnClause[Any]] = [
    col(AlertIncident.id),
    col(AlertIncident.kind),
    col(AlertIncident.subject),
    col(AlertIncident.dedupe_key),
    col(AlertIncident.message),
    col(AlertIncident.resolution),
    col(AlertIncident.details),
    col(AlertIncident.ref),
    col(AlertIncident.since),
    col(AlertIncident.resolved_at),
    col(AlertIncident.opened_by),
    col(AlertIncident.pending),
    col(AlertIncident.attempts),
    col(AlertIncident.next_attempt_at),
    col(AlertIncident.notified_at),
    col(AlertIncident.updated_at),
]


class AlertReads:
    """Reads on one connection (one transaction, so one snapshot on InnoDB)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def open_incidents(self, kind: str | None = None) -> list[Incident]:
        query = select(*_INCIDENT).where(col(AlertIncident.resolved_at).is_(None))
        if kind is not None:
            query = query.where(col(AlertIncident.kind) == kind)
        return [Incident(*r) for r in self.conn.execute(query)]

    def schedules(self, schedule_id: str | None = None) -> list[ScheduleState]:
        query = select(
            col(JobSchedule.id),
            col(JobSchedule.enabled),
            col(JobSchedule.in_code),
            col(JobSchedule.env_active),
            col(JobSchedule.consecutive_failures),
            col(JobSchedule.last_batch_id),
            col(JobSchedule.last_run_status),
            col(JobSchedule.paused_by),
            col(JobSchedule.paused_note),
            col(JobSchedule.paused_at),
        )
        if schedule_id is not None:
            query = query.where(col(JobSchedule.id) == schedule_id)
        return [ScheduleState(**r._mapping) for r in self.conn.execute(query)]

    def running_runs(self) -> list[RunningRun]:
        rows = self.conn.execute(
            select(
                col(JobRun.id),
                col(JobRun.job_name),
                col(JobRun.batch_id),
                col(JobRun.schedule_id),
                col(JobRun.started_at),
                col(JobRun.timeout_s),
                col(JobRun.worker_id),
            ).where(col(JobRun.status) == RunStatus.RUNNING)
        )
        return [RunningRun(**r._mapping) for r in rows]

    def quiet_workers(self, heard_before: datetime) -> list[QuietWorker]:
        """Daemons not STOPPED whose last heartbeat is before ``heard_before``."""
        rows = self.conn.execute(
            select(
                col(WorkerInstance.id),
                col(WorkerInstance.hostname),
                col(WorkerInstance.pid),
                col(WorkerInstance.last_heartbeat_at),
            ).where(
                col(WorkerInstance.status) != WorkerStatus.STOPPED,
                col(WorkerInstance.last_heartbeat_at) < heard_before,
            )
        )
        return [QuietWorker(*r) for r in rows]

    def run_status(self, run_id: int) -> str | None:
        """None if the run is gone."""
        status: str | None = self.conn.execute(
            select(col(JobRun.status)).where(col(JobRun.id) == run_id)
        ).scalar_one_or_none()
        return status

    def worker_status(self, worker_id: str) -> str | None:
        """None if the worker row is gone."""
        status: str | None = self.conn.execute(
            select(col(WorkerInstance.status)).where(col(WorkerInstance.id) == worker_id)
        ).scalar_one_or_none()
        return status

    def skipped_cron_slots(self, updated_since: datetime) -> list[SkippedSlot]:
        """SKIPPED cron batches recorded from ``updated_since`` on, oldest first."""
        rows = self.conn.execute(
            select(
                col(JobBatch.id),
                col(JobBatch.schedule_id),
                col(JobBatch.scheduled_for),
                col(JobBatch.reason),
            )
            .where(
                col(JobBatch.updated_at) >= updated_since,  # the index
                col(JobBatch.status) == RunStatus.SKIPPED,
                col(JobBatch.trigger) == Trigger.CRON,
                col(JobBatch.schedule_id).is_not(None),
            )
            .order_by(col(JobBatch.id))
        )
        return [SkippedSlot(**r._mapping) for r in rows]

    def newest_refs(self, kind: str) -> dict[str, int | None]:
        """The ``ref`` of the newest incident of ``kind`` per subject (open or not)."""
        rows = self.conn.execute(
            select(col(AlertIncident.subject), col(AlertIncident.ref))
            .where(col(AlertIncident.kind) == kind)
            .order_by(col(AlertIncident.id))
        ).all()
        return {subject: ref for subject, ref in rows}  # the last row per subject wins

    def first_fired_after(self, schedule_id: str, batch_id: int) -> FiredSlot | None:
        """The first cron slot of the schedule that fired (not SKIPPED) after a batch."""
        row = self.conn.execute(
            select(col(JobBatch.id), col(JobBatch.scheduled_for))
            .where(
                col(JobBatch.schedule_id) == schedule_id,
                col(JobBatch.id) > batch_id,
                col(JobBatch.trigger) == Trigger.CRON,
                col(JobBatch.status) != RunStatus.SKIPPED,
            )
            .order_by(col(JobBatch.id))
            .limit(1)
        ).first()
        return None if row is None else FiredSlot(**row._mapping)

    def due_deliveries(self, now: datetime, limit: int) -> list[Incident]:
        """Incidents with a message to send whose next attempt is due, oldest first."""
        rows = self.conn.execute(
            select(*_INCIDENT)
            .where(
                col(AlertIncident.pending).is_not(None),
                col(AlertIncident.next_attempt_at) <= now,
            )
            .order_by(col(AlertIncident.id))
            .limit(limit)
        )
        return [Incident(*r) for r in rows]


@contextmanager
def alert_reads(engine: Engine) -> Iterator[AlertReads]:
    with engine.connect() as conn:
        yield AlertReads(conn)


def open_incident(
    engine: Engine,
    *,
    kind: str,
    subject: str,
    dedupe_key: str,
    message: str,
    details: dict[str, Any],
    ref: int | None,
    now: datetime,
    opened_by: str,
) -> bool:
    """Insert an open incident, its "firing" message due now; False if another daemon
    already has it (the unique key)."""
    try:
        with write_engine(engine).begin() as conn:
            conn.execute(
                insert(AlertIncident).values(
                    kind=kind,
                    subject=subject[:200],
                    dedupe_key=dedupe_key,
                    message=message,
                    details=details,
                    ref=ref,
                    since=now,
                    opened_by=opened_by,
                    pending="firing",
                    attempts=0,
                    next_attempt_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def resolve_incident(
    engine: Engine, incident_id: int, *, resolution: str, now: datetime, keep_key: bool
) -> bool:
    """Mark the incident resolved (once: False if it already was); its "resolved"
    message becomes pending, unless its "firing" message is still undelivered: that goes
    first. Without ``keep_key`` the dedupe key is cleared so the same problem can open
    a new incident later."""
    firing = col(AlertIncident.pending) == "firing"
    values: dict[str, Any] = {
        "resolved_at": now,
        "resolution": resolution,
        "pending": case((firing, "firing"), else_="resolved"),
        "attempts": case((firing, col(AlertIncident.attempts)), else_=0),
        "next_attempt_at": case((firing, col(AlertIncident.next_attempt_at)), else_=now),
        "updated_at": now,
    }
    if not keep_key:
        values["dedupe_key"] = None
    with write_engine(engine).begin() as conn:
        done = conn.execute(
            update(AlertIncident)
            .where(col(AlertIncident.id) == incident_id, col(AlertIncident.resolved_at).is_(None))
            .values(**values)
        )
    return done.rowcount == 1


def extend_incident(
    engine: Engine, incident_id: int, *, ref: int, details: dict[str, Any], now: datetime
) -> None:
    """Move an open incident's ``ref`` forward (never back) with new details."""
    with write_engine(engine).begin() as conn:
        conn.execute(
            update(AlertIncident)
            .where(
                col(AlertIncident.id) == incident_id,
                col(AlertIncident.resolved_at).is_(None),
                col(AlertIncident.ref) < ref,
            )
            .values(ref=ref, details=details, updated_at=now)
        )


def claim_delivery(
    engine: Engine, incident_id: int, *, pending: str, now: datetime, retry_at: datetime
) -> bool:
    """Take one delivery attempt of the incident's ``pending`` message (counted, next
    attempt pushed to ``retry_at``); False if another daemon took it first."""
    with write_engine(engine).begin() as conn:
        claimed = conn.execute(
            update(AlertIncident)
            .where(
                col(AlertIncident.id) == incident_id,
                col(AlertIncident.pending) == pending,
                col(AlertIncident.next_attempt_at) <= now,
            )
            .values(
                attempts=col(AlertIncident.attempts) + 1,
                next_attempt_at=retry_at,
            )
        )
    return claimed.rowcount == 1


def finish_delivery(
    engine: Engine, incident_id: int, *, pending: str, now: datetime, delivered: bool
) -> None:
    """The ``pending`` message is dealt with (sent, or given up); a resolved incident
    whose "firing" message this was has its "resolved" message due next."""
    then_resolved = pending == "firing"
    resolved = col(AlertIncident.resolved_at).is_not(None)
    with write_engine(engine).begin() as conn:
        conn.execute(
            update(AlertIncident)
            .where(col(AlertIncident.id) == incident_id, col(AlertIncident.pending) == pending)
            .values(
                pending=case((resolved, "resolved"), else_=None) if then_resolved else None,
                attempts=0,
                next_attempt_at=case((resolved, now), else_=None) if then_resolved else None,
                **({"notified_at": now} if delivered else {}),
            )
        )
