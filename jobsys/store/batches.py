"""Creating batches: one trigger's work as a set of job runs with dependency edges.

Used by the daemon when a slot fires (CRON) and by the web and CLI for Run Now, run one
job, run all and run a group (MANUAL). The store does not plan: it writes the
``BatchPlan`` that ``jobsys.planning`` made, its runs in that (dependency) order, each
listing the jobs of the same batch it waits for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from jobsys.store import audit
from jobsys.store.db import connect, database_errors
from jobsys.store.tables import JobBatch, JobRun, JobSchedule, col
from jobsys.store.types import BatchPlan
from jobsys.vocabulary import BatchMode, RunStatus, Trigger


@dataclass(frozen=True)
class CreatedBatch:
    batch_id: int
    run_ids: list[int]


def mark_fired(
    conn: Connection, schedule_id: str, created: CreatedBatch, *, worker_id: str, now: datetime
) -> None:
    """A fired cron batch on its schedule (in ``conn``'s transaction): its last batch,
    status and run count, held by the daemon that fired it until the batch settles."""
    conn.execute(
        update(JobSchedule)
        .where(col(JobSchedule.id) == schedule_id)
        .values(
            last_run_at=now,
            last_batch_id=created.batch_id,
            last_run_status=RunStatus.QUEUED if created.run_ids else RunStatus.SUCCESS,
            run_count=col(JobSchedule.run_count) + 1,
            locked_by=worker_id,
        )
    )


def insert_batch(
    conn: Connection,
    plan: BatchPlan,
    *,
    trigger: str,
    schedule_id: str | None = None,
    scheduled_for: datetime | None = None,
    triggered_by: str | None = None,
    fired_by: str | None = None,
    reason: str | None = None,
    lateness_ms: int | None = None,
    jitter_ms: int | None = None,
    now: datetime,
) -> CreatedBatch:
    """Insert a batch and its runs in ``conn``'s transaction (the caller commits; with a
    session, pass ``s.connection()``). Core statements: the daemon fires through here."""
    inserted = conn.execute(
        insert(JobBatch).values(
            schedule_id=schedule_id,
            trigger=trigger,
            scheduled_for=scheduled_for,
            status=RunStatus.QUEUED if plan.runs else RunStatus.SUCCESS,
            reason=reason,
            mode=plan.mode,
            job_group=plan.group,
            skip_dependencies=plan.skip_dependencies,
            triggered_by=triggered_by,
            fired_by=fired_by,
            lateness_ms=lateness_ms,
            jitter_ms=jitter_ms,
            total_runs=len(plan.runs),
            created_at=now,
            updated_at=now,
            finished_at=None if plan.runs else now,
            duration_ms=None if plan.runs else 0,
        )
    )  # a duplicate cron slot raises IntegrityError here
    (key,) = inserted.inserted_primary_key or (None,)
    assert key is not None
    batch_id = int(key)
    if not plan.runs:
        return CreatedBatch(batch_id, [])
    rows = run_rows(
        plan,
        batch_id=batch_id,
        trigger=trigger,
        schedule_id=schedule_id,
        scheduled_for=scheduled_for,
        triggered_by=triggered_by,
        now=now,
    )
    conn.execute(insert(JobRun), rows)  # executemany: one round trip per chunk
    run_ids = [
        rid
        for (rid,) in conn.execute(
            select(col(JobRun.id))
            .where(col(JobRun.batch_id) == batch_id)
            .order_by(col(JobRun.position))
        )
    ]
    return CreatedBatch(batch_id, run_ids)


def run_rows(
    plan: BatchPlan,
    *,
    batch_id: int,
    trigger: str,
    schedule_id: str | None,
    scheduled_for: datetime | None,
    now: datetime,
    triggered_by: str | None = None,
) -> list[dict[str, Any]]:
    """The ``job_run`` rows of one batch, in the plan's (dependency) order."""
    return [
        {
            "batch_id": batch_id,
            "job_name": run.job_name,
            "status": RunStatus.QUEUED,
            "trigger": trigger,
            "schedule_id": schedule_id,
            "scheduled_for": scheduled_for,
            "params": run.params,
            "triggered_by": triggered_by,
            "depends_on": list(run.depends_on),
            "position": position,
            "queued_at": now,
            "timeout_s": run.timeout_s,
            "retry_policy": run.retry,
            "cancel_requested": False,
            "updated_at": now,
        }
        for position, run in enumerate(plan.runs)
    ]


def write_manual_batch(
    engine: Engine,
    plan: BatchPlan,
    *,
    now: datetime,
    actor: str | None,
    schedule_id: str | None = None,
    ip: str | None = None,
) -> CreatedBatch:
    """Write a manual batch (planned by ``jobsys.planning.plan_manual``); with
    ``schedule_id`` it is that schedule's Run Now.

    Never moves a schedule's ``next_run_at``. The batch, its runs and the audit row are
    one transaction.
    """
    action = {
        BatchMode.JOB: "job.run",
        BatchMode.GROUP: "jobs.run_group",
        BatchMode.ALL_JOBS: "jobs.run_all",
    }[BatchMode(plan.mode)]
    target_type, target_id = (
        ("job", plan.job) if plan.mode == BatchMode.JOB else ("group", plan.group)
    )
    if schedule_id is not None:
        action, target_type, target_id = "schedule.trigger", "schedule", schedule_id
    with database_errors(engine, "cannot create batch in"), connect(engine) as s:
        created = insert_batch(
            s,
            plan,
            trigger=Trigger.MANUAL,
            schedule_id=schedule_id,
            triggered_by=actor,
            now=now,
        )
        if schedule_id is not None:
            s.execute(
                update(JobSchedule)
                .where(col(JobSchedule.id) == schedule_id)
                .values(
                    last_run_at=now,
                    last_batch_id=created.batch_id,
                    last_run_status=RunStatus.QUEUED,
                    run_count=col(JobSchedule.run_count) + 1,
                    updated_at=now,
                )
            )
        audit.record(
            s,
            at=now,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            after={
                "batch_id": created.batch_id,
                "runs": len(created.run_ids),
                **({"params": plan.params} if plan.mode == BatchMode.JOB else {}),
                **({"skip_dependencies": True} if plan.skip_dependencies else {}),
            },
            ip=ip,
        )
        s.commit()
    return created
