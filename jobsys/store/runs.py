"""Job runs in the database: claiming, finishing, skipping, cancelling, batch outcome.

Claims are conditional UPDATEs whose rowcount says who won, so several daemons share
the work on SQLite and MySQL alike:
- the job's mutex: ``job_definition.running_run_id`` goes from NULL to the run (a job
  never runs twice at once; a later run waits);
- the run: ``status`` goes from QUEUED to RUNNING with ``worker_id`` = the claimer.
A finished run's dependents that can no longer run become SKIPPED at once, and the
daemon that finishes a batch's last run settles the batch and its schedule's counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.store.db import database_errors, write_engine
from jobsys.store.models import (
    JobBatch,
    JobDefinition,
    JobLog,
    JobRun,
    JobSchedule,
    RunStatus,
)

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
BROKEN = (RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.CANCELLED)
#: How many queued runs one claim pass looks at (oldest first).
CLAIM_WINDOW = 500


@dataclass(frozen=True)
class ClaimedRun:
    run_id: int
    batch_id: int
    job_name: str
    params: dict[str, Any]
    trigger: str
    schedule_id: str | None
    scheduled_for: datetime | None
    timeout_s: int | None
    started_at: datetime


def queued_overview(conn: Connection) -> list[Any]:
    return list(
        conn.execute(
            select(
                col(JobRun.id),
                col(JobRun.batch_id),
                col(JobRun.job_name),
                col(JobRun.depends_on),
                col(JobRun.params),
                col(JobRun.trigger),
                col(JobRun.schedule_id),
                col(JobRun.scheduled_for),
                col(JobRun.timeout_s),
                col(JobRun.cancel_requested),
            )
            .where(col(JobRun.status) == RunStatus.QUEUED)
            .order_by(col(JobRun.id))
            .limit(CLAIM_WINDOW)
        ).all()
    )


def _batch_statuses(conn: Connection, queued: Sequence[Any]) -> dict[int, dict[str, str]]:
    """Statuses of the dependencies the queued runs wait for, by batch and job name.

    Only batches whose queued runs have dependencies are read, and only those jobs, so a
    burst of independent runs costs no extra query.
    """
    wanted: dict[int, set[str]] = {}
    for row in queued:
        if row.depends_on:
            wanted.setdefault(row.batch_id, set()).update(row.depends_on)
    out: dict[int, dict[str, str]] = {row.batch_id: {} for row in queued}
    if not wanted:
        return out
    names = sorted(set().union(*wanted.values()))
    for batch_id, name, status in conn.execute(
        select(col(JobRun.batch_id), col(JobRun.job_name), col(JobRun.status)).where(
            col(JobRun.batch_id).in_(sorted(wanted)), col(JobRun.job_name).in_(names)
        )
    ):
        out[batch_id][name] = status
    return out


def claim_runnable(
    engine: Engine,
    *,
    worker_id: str,
    limit: int,
    clock: Callable[[], datetime],
    known_jobs: Sequence[str],
) -> list[ClaimedRun]:
    """Claim up to ``limit`` queued runs whose dependencies all succeeded.

    Runs whose dependencies failed (or were skipped or cancelled) become SKIPPED; runs
    of jobs this daemon does not know become FAILED; runs with a cancel request become
    CANCELLED. Each claim is its own small transaction. ``clock`` is read after the
    job's mutex is won, so a run's ``started_at`` is never before the previous run of
    the same job finished.
    """
    now = clock()
    if limit <= 0:
        return []
    known = set(known_jobs)
    claimed: list[ClaimedRun] = []
    with database_errors(engine, "cannot claim runs in"):
        with engine.connect() as conn:
            queued = queued_overview(conn)
            statuses = _batch_statuses(conn, queued)
            conn.rollback()
        settle: set[int] = set()
        for row in queued:
            if len(claimed) >= limit:
                break
            batch = statuses[row.batch_id]
            if row.cancel_requested:
                if _end_queued(
                    engine, row.id, RunStatus.CANCELLED, "cancelled before it started", now
                ):
                    settle.add(row.batch_id)
                continue
            broken = [d for d in row.depends_on if batch.get(d) in BROKEN]
            if broken:
                why = f"dependency {broken[0]} {batch[broken[0]].lower()}"
                if _end_queued(engine, row.id, RunStatus.SKIPPED, why, now):
                    batch[row.job_name] = RunStatus.SKIPPED
                    settle.add(row.batch_id)
                continue
            if any(batch.get(d) != RunStatus.SUCCESS for d in row.depends_on):
                continue  # waiting for a dependency
            if row.job_name not in known:
                why = f"job {row.job_name!r} is not defined in this daemon's application"
                if _end_queued(engine, row.id, RunStatus.FAILED, why, now):
                    batch[row.job_name] = RunStatus.FAILED
                    settle.add(row.batch_id)
                continue
            started_at = _claim_one(engine, row.id, row.batch_id, row.job_name, worker_id, clock)
            if started_at is not None:
                batch[row.job_name] = RunStatus.RUNNING
                claimed.append(
                    ClaimedRun(
                        run_id=row.id,
                        batch_id=row.batch_id,
                        job_name=row.job_name,
                        params=dict(row.params or {}),
                        trigger=row.trigger,
                        schedule_id=row.schedule_id,
                        scheduled_for=row.scheduled_for,
                        timeout_s=row.timeout_s,
                        started_at=started_at,
                    )
                )
        for batch_id in settle:
            settle_batch(engine, batch_id, now)
    return claimed


def _claim_one(
    engine: Engine,
    run_id: int,
    batch_id: int,
    job: str,
    worker_id: str,
    clock: Callable[[], datetime],
) -> datetime | None:
    """Take the job's mutex, then the run; returns the start instant, or None if lost."""
    with write_engine(engine).begin() as conn:
        mutex = conn.execute(
            update(JobDefinition)
            .where(col(JobDefinition.name) == job, col(JobDefinition.running_run_id).is_(None))
            .values(running_run_id=run_id, running_worker_id=worker_id)
        )
        if mutex.rowcount != 1:
            return None  # the job runs elsewhere: this run waits
        now = clock()  # after the mutex: the previous run of this job has finished
        run = conn.execute(
            update(JobRun)
            .where(col(JobRun.id) == run_id, col(JobRun.status) == RunStatus.QUEUED)
            .values(status=RunStatus.RUNNING, worker_id=worker_id, started_at=now, updated_at=now)
        )
        if run.rowcount != 1:
            conn.rollback()  # another daemon took the run first; release the mutex too
            return None
        conn.execute(
            update(JobBatch)
            .where(col(JobBatch.id) == batch_id, col(JobBatch.status) == RunStatus.QUEUED)
            .values(status=RunStatus.RUNNING, started_at=now, updated_at=now)
        )
    return now


def _end_queued(engine: Engine, run_id: int, status: RunStatus, error: str, now: datetime) -> bool:
    with write_engine(engine).begin() as conn:
        result = conn.execute(
            update(JobRun)
            .where(col(JobRun.id) == run_id, col(JobRun.status) == RunStatus.QUEUED)
            .values(status=status, error=error, finished_at=now, updated_at=now)
        )
    return result.rowcount == 1


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    worker_id: str,
    status: str,
    error: str | None,
    exit_code: int | None,
    started_at: datetime | None,
    now: datetime,
) -> bool:
    """Record a run's outcome and release its job mutex; then settle its batch.

    Only the lease holder can finish a run: if the run was recovered meanwhile (this
    daemon was declared dead), nothing changes and False is returned.
    """
    duration = (
        None if started_at is None else max(0, int((now - started_at).total_seconds() * 1000))
    )
    with database_errors(engine, "cannot finish run in"):
        with write_engine(engine).begin() as conn:
            result = conn.execute(
                update(JobRun)
                .where(
                    col(JobRun.id) == run_id,
                    col(JobRun.status) == RunStatus.RUNNING,
                    col(JobRun.worker_id) == worker_id,
                )
                .values(
                    status=status,
                    error=error,
                    exit_code=exit_code,
                    finished_at=now,
                    duration_ms=duration,
                    updated_at=now,
                )
            )
            conn.execute(
                update(JobDefinition)
                .where(col(JobDefinition.running_run_id) == run_id)
                .values(running_run_id=None, running_worker_id=None)
            )
            batch_id = conn.execute(
                select(col(JobRun.batch_id)).where(col(JobRun.id) == run_id)
            ).scalar_one()
        if result.rowcount == 1:
            settle_batch(engine, batch_id, now, cascade=status != RunStatus.SUCCESS)
    return result.rowcount == 1


def fail_runs(
    engine: Engine, run_ids: Sequence[int], *, worker_id: str, error: str, now: datetime
) -> list[int]:
    """Mark RUNNING runs held by ``worker_id`` FAILED (recovery, shutdown); settle batches."""
    failed: list[int] = []
    batches: set[int] = set()
    with write_engine(engine).begin() as conn:
        for run_id in run_ids:
            result = conn.execute(
                update(JobRun)
                .where(
                    col(JobRun.id) == run_id,
                    col(JobRun.status) == RunStatus.RUNNING,
                    col(JobRun.worker_id) == worker_id,
                )
                .values(status=RunStatus.FAILED, error=error, finished_at=now, updated_at=now)
            )
            if result.rowcount == 1:
                failed.append(run_id)
                batches.add(
                    conn.execute(
                        select(col(JobRun.batch_id)).where(col(JobRun.id) == run_id)
                    ).scalar_one()
                )
            conn.execute(
                update(JobDefinition)
                .where(col(JobDefinition.running_run_id) == run_id)
                .values(running_run_id=None, running_worker_id=None)
            )
    for batch_id in batches:
        settle_batch(engine, batch_id, now)
    return failed


def settle_batch(
    engine: Engine, batch_id: int, now: datetime, *, cascade: bool = True
) -> str | None:
    """Skip queued runs that can no longer run; if nothing is left active, set the batch's
    outcome (once: a conditional UPDATE) and its schedule's counters. Returns the outcome
    when this call settled the batch.

    ``cascade=False`` (a run succeeded, so nothing new is blocked) first asks the indexed
    question "is any run still active?" and stops there in the common case, so finishing
    the runs of a large batch stays linear.
    """
    if not cascade and _has_active(engine, batch_id):
        return None
    with write_engine(engine).begin() as conn:
        if cascade:
            _skip_blocked(conn, batch_id, now)
        counts: dict[str, int] = {
            status: int(n)
            for status, n in conn.execute(
                select(col(JobRun.status), func.count())
                .where(col(JobRun.batch_id) == batch_id)
                .group_by(col(JobRun.status))
            )
        }
        if any(counts.get(s) for s in ACTIVE):
            return None
        if set(counts) <= {RunStatus.SUCCESS}:
            outcome = RunStatus.SUCCESS
        elif counts.get(RunStatus.FAILED):
            outcome = RunStatus.FAILED
        elif counts.get(RunStatus.CANCELLED):
            outcome = RunStatus.CANCELLED
        else:
            outcome = RunStatus.FAILED
        batch = conn.execute(
            select(
                col(JobBatch.schedule_id), col(JobBatch.created_at), col(JobBatch.started_at)
            ).where(col(JobBatch.id) == batch_id)
        ).one()
        began = batch.started_at or batch.created_at
        settled = conn.execute(
            update(JobBatch)
            .where(col(JobBatch.id) == batch_id, col(JobBatch.status).in_(ACTIVE))
            .values(
                status=outcome,
                finished_at=now,
                updated_at=now,
                duration_ms=max(0, int((now - began).total_seconds() * 1000)),
            )
        )
        if settled.rowcount != 1 or batch.schedule_id is None:
            return outcome if settled.rowcount == 1 else None
        failed = outcome == RunStatus.FAILED
        conn.execute(
            update(JobSchedule)
            .where(col(JobSchedule.id) == batch.schedule_id)
            .values(
                failure_count=col(JobSchedule.failure_count) + (1 if failed else 0),
                consecutive_failures=(col(JobSchedule.consecutive_failures) + 1) if failed else 0,
                last_run_status=case(
                    (col(JobSchedule.last_batch_id) == batch_id, outcome),
                    else_=col(JobSchedule.last_run_status),
                ),
                locked_by=case(
                    (col(JobSchedule.last_batch_id) == batch_id, None),
                    else_=col(JobSchedule.locked_by),
                ),
                updated_at=now,
            )
        )
    return outcome


def _has_active(engine: Engine, batch_id: int) -> bool:
    with engine.connect() as conn:
        row = conn.execute(
            select(col(JobRun.id))
            .where(col(JobRun.batch_id) == batch_id, col(JobRun.status).in_(ACTIVE))
            .limit(1)
        ).first()
    return row is not None


def _skip_blocked(conn: Connection, batch_id: int, now: datetime) -> None:
    """Mark SKIPPED every queued run of the batch with a failed, skipped or cancelled
    dependency (in dependency order, so skips cascade in one pass)."""
    runs = conn.execute(
        select(col(JobRun.id), col(JobRun.job_name), col(JobRun.status), col(JobRun.depends_on))
        .where(col(JobRun.batch_id) == batch_id)
        .order_by(col(JobRun.position))
    ).all()
    status = {r.job_name: r.status for r in runs}
    for r in runs:
        if status[r.job_name] != RunStatus.QUEUED:
            continue
        broken = [d for d in r.depends_on if status.get(d) in BROKEN]
        if broken:
            why = f"dependency {broken[0]} {status[broken[0]].lower()}"
            done = conn.execute(
                update(JobRun)
                .where(col(JobRun.id) == r.id, col(JobRun.status) == RunStatus.QUEUED)
                .values(status=RunStatus.SKIPPED, error=why, finished_at=now, updated_at=now)
            )
            if done.rowcount == 1:
                status[r.job_name] = RunStatus.SKIPPED


def append_logs(engine: Engine, run_id: int, lines: Sequence[tuple[datetime, str, str]]) -> None:
    if not lines:
        return
    with write_engine(engine).begin() as conn:
        conn.execute(
            insert(JobLog),
            [
                {"run_id": run_id, "ts": ts, "level": level, "message": message}
                for ts, level, message in lines
            ],
        )


def set_progress(engine: Engine, run_id: int, done: int, total: int | None, now: datetime) -> None:
    with write_engine(engine).begin() as conn:
        conn.execute(
            update(JobRun)
            .where(col(JobRun.id) == run_id)
            .values(progress_done=done, progress_total=total, updated_at=now)
        )


def cancel_requested(engine: Engine, worker_id: str) -> list[int]:
    """Runs this worker executes that an admin asked to cancel."""
    with engine.connect() as conn:
        return [
            rid
            for (rid,) in conn.execute(
                select(col(JobRun.id)).where(
                    col(JobRun.worker_id) == worker_id,
                    col(JobRun.status) == RunStatus.RUNNING,
                    col(JobRun.cancel_requested).is_(True),
                )
            )
            if rid is not None
        ]


def request_cancel(engine: Engine, run_id: int, now: datetime) -> str:
    """Cancel a run: a queued run ends CANCELLED at once; a running one is flagged and its
    daemon stops it (terminate, then kill). Returns the run's status after the call."""
    from jobsys.errors import Conflict, NotFound

    with write_engine(engine).begin() as conn:
        row = conn.execute(
            select(col(JobRun.status), col(JobRun.batch_id)).where(col(JobRun.id) == run_id)
        ).first()
        if row is None:
            raise NotFound(f"unknown job run {run_id}")
        if row.status == RunStatus.QUEUED:
            conn.execute(
                update(JobRun)
                .where(col(JobRun.id) == run_id, col(JobRun.status) == RunStatus.QUEUED)
                .values(
                    status=RunStatus.CANCELLED,
                    error="cancelled before it started",
                    cancel_requested=True,
                    finished_at=now,
                    updated_at=now,
                )
            )
            result = RunStatus.CANCELLED
        elif row.status == RunStatus.RUNNING:
            conn.execute(
                update(JobRun)
                .where(col(JobRun.id) == run_id)
                .values(cancel_requested=True, updated_at=now)
            )
            result = RunStatus.RUNNING
        else:
            raise Conflict(f"job run {run_id} already finished ({row.status})")
    if result == RunStatus.CANCELLED:
        settle_batch(engine, row.batch_id, now)
    return result


def count_active(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(JobRun).where(col(JobRun.status).in_(ACTIVE))
            ).scalar_one()
        )
