"""What ``jobsys health`` reads (design 6.9): the daemons not stopped and the schedules
that can fire. The judging stays in ``jobsys.health``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.store.models import JobSchedule, WorkerInstance, WorkerStatus


@dataclass(frozen=True)
class LiveWorker:
    """A daemon not marked STOPPED."""

    id: str
    hostname: str
    pid: int
    status: str
    started_at: datetime
    last_heartbeat_at: datetime


@dataclass(frozen=True)
class RunnableSchedule:
    """An enabled schedule, defined in code and active in this environment."""

    id: str
    next_run_at: datetime | None
    grace_s: int
    consecutive_failures: int
    cron: str = ""
    timezone: str = "UTC"


@dataclass(frozen=True)
class StoppedWorker:
    """The newest daemon marked STOPPED (to say since when none runs, and how it ended)."""

    hostname: str
    pid: int
    last_heartbeat_at: datetime
    stopped_at: datetime | None


@dataclass(frozen=True)
class HealthFigures:
    workers: list[LiveWorker]  # newest heartbeat first
    schedules: list[RunnableSchedule]
    last_stopped: StoppedWorker | None  # read only when no daemon is live


def read_health(engine: Engine) -> HealthFigures:
    """The reads in one connection; raises on database errors."""
    with engine.connect() as conn:
        workers = conn.execute(
            select(
                col(WorkerInstance.id),
                col(WorkerInstance.hostname),
                col(WorkerInstance.pid),
                col(WorkerInstance.status),
                col(WorkerInstance.started_at),
                col(WorkerInstance.last_heartbeat_at),
            )
            .where(col(WorkerInstance.status) != WorkerStatus.STOPPED)
            .order_by(col(WorkerInstance.last_heartbeat_at).desc())
        ).all()
        last_stopped = (
            None
            if workers
            else conn.execute(
                select(
                    col(WorkerInstance.hostname),
                    col(WorkerInstance.pid),
                    col(WorkerInstance.last_heartbeat_at),
                    col(WorkerInstance.stopped_at),
                )
                .where(col(WorkerInstance.status) == WorkerStatus.STOPPED)
                .order_by(col(WorkerInstance.last_heartbeat_at).desc())
                .limit(1)
            ).first()
        )
        schedules = conn.execute(
            select(
                col(JobSchedule.id),
                col(JobSchedule.next_run_at),
                col(JobSchedule.grace_s),
                col(JobSchedule.consecutive_failures),
                col(JobSchedule.cron),
                col(JobSchedule.timezone),
            ).where(
                col(JobSchedule.enabled).is_(True),
                col(JobSchedule.in_code).is_(True),
                col(JobSchedule.env_active).is_(True),
            )
        ).all()
    return HealthFigures(
        workers=[LiveWorker(*w) for w in workers],
        schedules=[RunnableSchedule(*s) for s in schedules],
        last_stopped=StoppedWorker(*last_stopped) if last_stopped is not None else None,
    )
