"""Manual retries: **Retry** of one failed or cancelled run, **Re-run failed** of a batch.

Both write a new MANUAL batch linked to the old one (``job_batch.rerun_of``) whose runs
are the next attempts of the old ones (``attempt`` + 1, ``retry_of`` = the chain's first
attempt), so the run page shows every attempt. The old batch keeps its outcome. A
re-run holds the batch's failed, cancelled and skipped runs (each job's final attempt)
in dependency order; a dependency that succeeded in the old batch is not run again, so
it is dropped from the new runs' ``depends_on``. The batch, its runs and the audit row
are one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.errors import Conflict, NotFound
from jobsys.store import audit
from jobsys.store.batches import CreatedBatch, insert_batch
from jobsys.store.db import database_errors, session
from jobsys.store.models import JobBatch, JobRun, RunStatus, Trigger
from jobsys.store.types import BatchPlan, PlannedRun
from jobsys.vocabulary import BatchMode

RETRYABLE = (RunStatus.FAILED, RunStatus.CANCELLED)
RERUN = (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED)


def retry_run(
    engine: Engine, run_id: int, *, now: datetime, actor: str | None, ip: str | None = None
) -> CreatedBatch:
    """Queue the next attempt of a FAILED or CANCELLED run as a one-job batch.

    ``NotFound`` for an unknown run; ``Conflict`` when it has not finished, succeeded or
    was skipped, or its automatic retry is already queued."""
    with database_errors(engine, "cannot retry run in"), session(engine, write=True) as s:
        old = s.execute(select(JobRun).where(col(JobRun.id) == run_id)).scalars().first()
        if old is None:
            raise NotFound(f"unknown job run {run_id}")
        if old.status not in RETRYABLE:
            raise Conflict(
                f"job run {run_id} is {old.status}: only a failed or cancelled run can be retried"
            )
        if old.next_attempt_id is not None:
            raise Conflict(f"job run {run_id} was already retried as run {old.next_attempt_id}")
        plan = BatchPlan(
            mode=BatchMode.JOB.value,
            runs=(_planned(old, ()),),
            job=old.job_name,
            params=old.params,
        )
        created = _write(
            s, plan, [old], rerun_of=old.batch_id, schedule_id=None, actor=actor, now=now
        )
        audit.record(
            s,
            at=now,
            actor=actor,
            action="run.retry",
            target_type="run",
            target_id=str(run_id),
            before={"status": old.status, "attempt": old.attempt},
            after={"batch_id": created.batch_id, "job_run_id": created.run_ids[0]},
            ip=ip,
        )
        s.commit()
    return created


def rerun_failed(
    engine: Engine, batch_id: int, *, now: datetime, actor: str | None, ip: str | None = None
) -> CreatedBatch:
    """Queue a new batch of the batch's failed, cancelled and skipped runs.

    ``NotFound`` for an unknown batch; ``Conflict`` while it is still queued or running,
    or when none of its runs failed, was cancelled or skipped."""
    with database_errors(engine, "cannot re-run batch in"), session(engine, write=True) as s:
        batch = s.execute(select(JobBatch).where(col(JobBatch.id) == batch_id)).scalars().first()
        if batch is None:
            raise NotFound(f"unknown batch {batch_id}")
        if not RunStatus(batch.status).finished:
            raise Conflict(f"batch {batch_id} is {batch.status}: re-run it once it has finished")
        old_runs = list(
            s.execute(
                select(JobRun)
                .where(
                    col(JobRun.batch_id) == batch_id,
                    col(JobRun.next_attempt_id).is_(None),
                    col(JobRun.status).in_(RERUN),
                )
                .order_by(col(JobRun.position), col(JobRun.id))
            ).scalars()
        )
        if not old_runs:
            raise Conflict(f"batch {batch_id} has no failed, cancelled or skipped runs to re-run")
        names = {r.job_name for r in old_runs}
        plan = BatchPlan(
            mode=batch.mode,
            runs=tuple(_planned(r, tuple(d for d in r.depends_on if d in names)) for r in old_runs),
            group=batch.job_group,
            job=old_runs[0].job_name if batch.mode == BatchMode.JOB else None,
            params=old_runs[0].params if batch.mode == BatchMode.JOB else None,
            skip_dependencies=batch.skip_dependencies,
        )
        created = _write(
            s,
            plan,
            old_runs,
            rerun_of=batch_id,
            schedule_id=batch.schedule_id,
            actor=actor,
            now=now,
        )
        audit.record(
            s,
            at=now,
            actor=actor,
            action="batch.rerun",
            target_type="batch",
            target_id=str(batch_id),
            before={"status": batch.status},
            after={"batch_id": created.batch_id, "runs": len(created.run_ids)},
            ip=ip,
        )
        s.commit()
    return created


def _planned(old: JobRun, depends_on: tuple[str, ...]) -> PlannedRun:
    return PlannedRun(
        job_name=old.job_name,
        depends_on=depends_on,
        params=old.params,
        timeout_s=old.timeout_s,
        retry=old.retry_policy,
    )


def _write(
    s: Any,
    plan: BatchPlan,
    old_runs: list[JobRun],
    *,
    rerun_of: int,
    schedule_id: str | None,
    actor: str | None,
    now: datetime,
) -> CreatedBatch:
    created = insert_batch(
        s.connection(),
        plan,
        trigger=Trigger.MANUAL,
        schedule_id=schedule_id,
        triggered_by=actor,
        now=now,
    )
    s.execute(
        update(JobBatch).where(col(JobBatch.id) == created.batch_id).values(rerun_of=rerun_of)
    )
    # insert_batch returns the run ids in plan order: the same order as old_runs.
    for new_id, old in zip(created.run_ids, old_runs, strict=True):
        s.execute(
            update(JobRun)
            .where(col(JobRun.id) == new_id)
            .values(attempt=old.attempt + 1, retry_of=old.retry_of or old.id)
        )
    return created
