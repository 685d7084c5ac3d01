"""What the overview page (``GET /api/admin/overview``) reads, in aggregate SQL.

Every query is served by an index so the page stays fast with a long history:
- runs active now: ``ix_job_run_status_id`` (QUEUED and RUNNING are few);
- finished runs per hour and status over the last 7 days: ``ix_job_run_finished_at_status``
  (migration 0010) covers the range scan and the grouping, no table rows are read. Even so
  a week of a busy system is tens of thousands of index entries (~75 ms on MariaDB for
  70,000), so an ``HourlyCache`` keeps the counts of closed hours: a run's ``finished_at``
  is the instant it finished, so an hour that ended (with a margin for daemons' clock
  skew) never changes, and each call reads only the last hour or two;
- the latest failures: ``ix_job_run_status_id`` read backwards.
The judging (health, overdue) stays in ``jobsys.health``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from jobsys.clock import utc
from jobsys.store.models import JobRun, JobSchedule, RunStatus

#: Finished outcomes the charts count.
FINAL = (
    RunStatus.SUCCESS.value,
    RunStatus.FAILED.value,
    RunStatus.CANCELLED.value,
    RunStatus.SKIPPED.value,
)
WINDOW = timedelta(days=7)
#: An hour is closed (its counts cached) once it ended this long ago: finished_at comes
#: from the daemons' clocks, which may lag the web's a little.
CLOSE_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class HourCount:
    hour: datetime  # the start of the hour, UTC
    status: str
    count: int


@dataclass(frozen=True)
class FailureRow:
    id: int
    job_name: str
    batch_id: int
    schedule_id: str | None
    trigger: str
    finished_at: datetime | None
    error: str | None
    attempt: int
    retried_as: int | None  # a later attempt of its chain (automatic or manual retry)


@dataclass(frozen=True)
class OverdueRow:
    id: str
    name: str
    next_run_at: datetime | None
    grace_s: int
    locked_by: str | None
    last_run_status: str | None


@dataclass(frozen=True)
class OverviewFigures:
    active: dict[str, int]  # QUEUED / RUNNING -> count
    hourly: list[HourCount]  # finished runs per hour and status, the last 7 days
    failures: list[FailureRow]  # newest first
    schedules: dict[str, OverdueRow]  # enabled, runnable schedules by id


@dataclass
class HourlyCache:
    """Finished-run counts of closed hours, per hour and status (one per web process)."""

    counts: dict[datetime, dict[str, int]] = field(default_factory=dict)
    closed_until: datetime | None = None  # hours before this are in ``counts``
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def _hour_expr(conn: Connection) -> Any:
    """``finished_at`` cut to its hour, as text ``YYYY-MM-DD HH`` (per dialect)."""
    if conn.dialect.name == "sqlite":
        return func.substr(col(JobRun.finished_at), 1, 13)  # stored as 'YYYY-MM-DD HH:...'
    return func.date_format(col(JobRun.finished_at), "%Y-%m-%d %H")


def _parse_hour(text: Any) -> datetime:
    return utc(datetime.strptime(str(text), "%Y-%m-%d %H"))


def _failure(row: Any, later: dict[int, list[int]]) -> FailureRow:
    """A failed run and its newest later attempt (``row`` ends with its chain's id)."""
    run_id, job_name, batch_id, schedule_id, trigger, finished_at, error, attempt, chain = row
    retries = [i for i in later.get(int(chain or 0), []) if i > run_id]
    return FailureRow(
        id=int(run_id),
        job_name=job_name,
        batch_id=int(batch_id),
        schedule_id=schedule_id,
        trigger=trigger,
        finished_at=finished_at,
        error=error,
        attempt=int(attempt),
        retried_as=max(retries, default=None),
    )


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def read_overview(
    engine: Engine, now: datetime, *, failures: int = 10, cache: HourlyCache | None = None
) -> OverviewFigures:
    """The figures in one connection; ``now`` bounds the 7-day window. With ``cache``,
    closed hours are read once and kept."""
    since = _floor_hour(now - WINDOW)
    closed = _floor_hour(now - CLOSE_MARGIN)
    fresh_from = since
    if cache is not None:
        with cache._lock:
            if cache.closed_until is not None and since <= cache.closed_until <= closed:
                fresh_from = cache.closed_until
    with engine.connect() as conn:
        active = {
            str(status): int(n)
            for status, n in conn.execute(
                select(col(JobRun.status), func.count())
                .where(col(JobRun.status).in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]))
                .group_by(col(JobRun.status))
            )
        }
        hour = _hour_expr(conn).label("hour")
        fresh = [
            HourCount(_parse_hour(h), str(status), int(n))
            for h, status, n in conn.execute(
                select(hour, col(JobRun.status), func.count())
                .where(col(JobRun.finished_at) >= fresh_from, col(JobRun.status).in_(FINAL))
                .group_by(hour, col(JobRun.status))
            )
            if h is not None
        ]
        hourly = _merge(cache, fresh, since, fresh_from, closed)
        failed = conn.execute(
            select(
                col(JobRun.id),
                col(JobRun.job_name),
                col(JobRun.batch_id),
                col(JobRun.schedule_id),
                col(JobRun.trigger),
                col(JobRun.finished_at),
                col(JobRun.error),
                col(JobRun.attempt),
                func.coalesce(col(JobRun.retry_of), col(JobRun.id)),
            )
            .where(col(JobRun.status) == RunStatus.FAILED.value)
            .order_by(col(JobRun.id).desc())
            .limit(failures)
        ).all()
        # Each failure's newest later attempt, if any (ix_job_run_retry_of).
        chains = {int(r[-1] or 0) for r in failed}
        later: dict[int, list[int]] = {}
        if chains:
            for first, rid in conn.execute(
                select(col(JobRun.retry_of), col(JobRun.id)).where(col(JobRun.retry_of).in_(chains))
            ):
                later.setdefault(int(first or 0), []).append(int(rid or 0))
        schedules = conn.execute(
            select(
                col(JobSchedule.id),
                col(JobSchedule.name),
                col(JobSchedule.next_run_at),
                col(JobSchedule.grace_s),
                col(JobSchedule.locked_by),
                col(JobSchedule.last_run_status),
            ).where(
                col(JobSchedule.enabled).is_(True),
                col(JobSchedule.in_code).is_(True),
                col(JobSchedule.env_active).is_(True),
            )
        ).all()
    return OverviewFigures(
        active=active,
        hourly=hourly,
        failures=[_failure(r, later) for r in failed],
        schedules={r[0]: OverdueRow(*r) for r in schedules},
    )


def _merge(
    cache: HourlyCache | None,
    fresh: list[HourCount],
    since: datetime,
    fresh_from: datetime,
    closed: datetime,
) -> list[HourCount]:
    """The cached closed hours before ``fresh_from`` plus the fresh counts; the hours the
    fresh read closed go into the cache."""
    if cache is None:
        return fresh
    with cache._lock:
        old = [
            HourCount(h, status, n)
            for h, by_status in cache.counts.items()
            if since <= h < fresh_from
            for status, n in by_status.items()
        ]
        if cache.closed_until is None or cache.closed_until <= closed:
            for h in [h for h in cache.counts if h < since or h >= fresh_from]:
                del cache.counts[h]
            for c in fresh:
                if c.hour < closed:
                    cache.counts.setdefault(c.hour, {})[c.status] = c.count
            cache.closed_until = closed
    return old + fresh


def waiting_reason(engine: Engine, run_id: int, now: datetime) -> str | None:
    """Why a QUEUED run has not started, in the order the daemon's claim checks it
    (``runs._claim_pass``); None when the run is not queued.

    Behind a retry back-off, an earlier backfill slot, a dependency, another run of the
    same job; else no daemon alive, or every alive daemon's slots busy; else it is about
    to be claimed.
    """
    from jobsys.clock import iso_utc
    from jobsys.store.models import JobBatch, JobDefinition, WorkerInstance, WorkerStatus
    from jobsys.store.workers import live_window

    active = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
    with engine.connect() as conn:
        run = conn.execute(
            select(
                col(JobRun.status),
                col(JobRun.batch_id),
                col(JobRun.job_name),
                col(JobRun.depends_on),
                col(JobRun.not_before),
                col(JobRun.cancel_requested),
            ).where(col(JobRun.id) == run_id)
        ).first()
        if run is None or run.status != RunStatus.QUEUED.value:
            return None
        if run.cancel_requested:
            return "cancel requested: it ends without starting"
        if run.not_before is not None and utc(run.not_before) > now:
            return f"retry back-off: not before {iso_utc(utc(run.not_before))}"
        after = conn.execute(
            select(col(JobBatch.after_batch_id)).where(col(JobBatch.id) == run.batch_id)
        ).scalar()
        if after is not None:
            earlier = conn.execute(
                select(col(JobBatch.status)).where(col(JobBatch.id) == after)
            ).scalar()
            if earlier in active:
                return f"waiting for batch #{after} (the slot before it) to finish"
        depends = list(run.depends_on or [])
        if depends:
            for name, dep_id, status in conn.execute(
                select(col(JobRun.job_name), col(JobRun.id), col(JobRun.status))
                .where(
                    col(JobRun.batch_id) == run.batch_id,
                    col(JobRun.job_name).in_(depends),
                )
                .order_by(col(JobRun.position))
            ):
                if status != RunStatus.SUCCESS.value:
                    return f"waiting for dependency {name} (run #{dep_id}, {status})"
        holder = conn.execute(
            select(col(JobDefinition.running_run_id)).where(col(JobDefinition.name) == run.job_name)
        ).scalar()
        if holder is not None and holder != run_id:
            return f"behind run #{holder} of the same job (one run of a job at a time)"
        ahead = conn.execute(
            select(func.min(col(JobRun.id))).where(
                col(JobRun.job_name) == run.job_name,
                col(JobRun.status) == RunStatus.QUEUED.value,
                col(JobRun.id) < run_id,
            )
        ).scalar()
        if ahead is not None:
            return f"behind run #{ahead} of the same job (one run of a job at a time)"
        since = now - live_window()
        alive = conn.execute(
            select(func.count(), func.coalesce(func.sum(col(WorkerInstance.concurrency)), 0)).where(
                col(WorkerInstance.status) != WorkerStatus.STOPPED,
                col(WorkerInstance.last_heartbeat_at) >= since,
            )
        ).one()
        if not alive[0]:
            return "no daemon is alive to run it (start one with `jobsys daemon`)"
        running = conn.execute(
            select(func.count()).where(col(JobRun.status) == RunStatus.RUNNING.value)
        ).scalar_one()
        if running >= int(alive[1]):
            return f"all workers are busy ({running} running, {int(alive[1])} slots)"
    return "about to start: waiting for a daemon to claim it"
