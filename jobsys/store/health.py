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


@dataclass(frozen=True)
class HealthFigures:
    workers: list[LiveWorker]  # newest heartbeat first
    schedules: list[RunnableSchedule]


def read_health(engine: Engine) -> HealthFigures:
    """Both reads in one connection; raises on database errors."""
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
        schedules = conn.execute(
            select(
                col(JobSchedule.id),
                col(JobSchedule.next_run_at),
                col(JobSchedule.grace_s),
                col(JobSchedule.consecutive_failures),
            ).where(
                col(JobSchedule.enabled).is_(True),
                col(JobSchedule.in_code).is_(True),
                col(JobSchedule.env_active).is_(True),
            )
        ).all()
    return HealthFigures(
        workers=[LiveWorker(*w) for w in workers],
        schedules=[RunnableSchedule(*s) for s in schedules],
    )
