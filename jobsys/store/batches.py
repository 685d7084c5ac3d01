"""Creating batches: one trigger's work as a set of job runs with dependency edges.

Used by the daemon when a slot fires (CRON) and by the web and CLI for Run Now, run one
job, run all and run a group (MANUAL). A batch's runs are inserted in dependency order;
each run lists the jobs of the same batch it waits for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from jobsys.definitions import App, default_params, validate_params
from jobsys.errors import DefinitionError, NotFound
from jobsys.store import audit
from jobsys.store.db import database_errors, session
from jobsys.store.models import BatchMode, JobBatch, JobRun, JobSchedule, RunStatus, Trigger


@dataclass(frozen=True)
class CreatedBatch:
    batch_id: int
    run_ids: list[int]


def insert_batch(
    s: Session,
    app: App,
    *,
    mode: str,
    group: str | None = None,
    job: str | None = None,
    params: dict[str, Any] | None = None,
    skip_dependencies: bool = False,
    trigger: str,
    schedule_id: str | None = None,
    scheduled_for: datetime | None = None,
    triggered_by: str | None = None,
    fired_by: str | None = None,
    reason: str | None = None,
    lateness_ms: int | None = None,
    now: datetime,
) -> CreatedBatch:
    """Insert a batch and its runs in ``s`` (the caller commits)."""
    plan = app.plan(mode=mode, group=group, job=job, skip_dependencies=skip_dependencies)
    batch = JobBatch(
        schedule_id=schedule_id,
        trigger=trigger,
        scheduled_for=scheduled_for,
        status=RunStatus.QUEUED if plan else RunStatus.SUCCESS,
        reason=reason,
        mode=mode,
        job_group=group if mode == BatchMode.GROUP else None,
        skip_dependencies=skip_dependencies,
        triggered_by=triggered_by,
        fired_by=fired_by,
        lateness_ms=lateness_ms,
        total_runs=len(plan),
        created_at=now,
        updated_at=now,
        finished_at=None if plan else now,
        duration_ms=None if plan else 0,
    )
    s.add(batch)
    s.flush()  # assigns batch.id; a duplicate cron slot raises IntegrityError here
    assert batch.id is not None
    if not plan:
        return CreatedBatch(batch.id, [])
    rows = run_rows(
        app,
        plan,
        batch_id=batch.id,
        trigger=trigger,
        schedule_id=schedule_id,
        scheduled_for=scheduled_for,
        params=params if mode == BatchMode.JOB else None,
        triggered_by=triggered_by,
        now=now,
    )
    s.execute(insert(JobRun), rows)  # executemany: one round trip per chunk
    run_ids = [
        rid
        for (rid,) in s.execute(
            select(col(JobRun.id))
            .where(col(JobRun.batch_id) == batch.id)
            .order_by(col(JobRun.position))
        )
    ]
    return CreatedBatch(batch.id, run_ids)


def run_rows(
    app: App,
    plan: list[tuple[str, tuple[str, ...]]],
    *,
    batch_id: int,
    trigger: str,
    schedule_id: str | None,
    scheduled_for: datetime | None,
    now: datetime,
    params: dict[str, Any] | None = None,
    triggered_by: str | None = None,
) -> list[dict[str, Any]]:
    """The ``job_run`` rows of one batch, in dependency order. ``params`` is for a
    one-job batch; every other run gets its job's default params."""
    return [
        {
            "batch_id": batch_id,
            "job_name": name,
            "status": RunStatus.QUEUED,
            "trigger": trigger,
            "schedule_id": schedule_id,
            "scheduled_for": scheduled_for,
            "params": params if params is not None else default_params(app.jobs[name]),
            "triggered_by": triggered_by,
            "depends_on": list(deps),
            "position": position,
            "queued_at": now,
            "timeout_s": run_timeout(app, name),
            "cancel_requested": False,
            "updated_at": now,
        }
        for position, (name, deps) in enumerate(plan)
    ]


def run_timeout(app: App, name: str) -> int | None:
    timeout = app.jobs[name].timeout_s
    return None if timeout is None else max(1, round(timeout))


def create_manual_batch(
    engine: Engine,
    app: App,
    *,
    mode: str,
    now: datetime,
    actor: str | None,
    group: str | None = None,
    job: str | None = None,
    params: Any = None,
    skip_dependencies: bool = False,
    schedule_id: str | None = None,
    env: str | None = None,
    ip: str | None = None,
) -> CreatedBatch:
    """Run Now (a schedule), run one job (with params), run all, run a group.

    Never moves a schedule's ``next_run_at``. The batch, its runs and the audit row are
    one transaction.
    """
    if mode == BatchMode.JOB:
        params = validate_params(app.get_job(job or ""), params)
    elif params is not None:
        raise DefinitionError("params are only accepted when running one job")
    if mode == BatchMode.GROUP and group not in app.groups:
        raise NotFound(f"unknown group {group!r}")
    action = {
        BatchMode.JOB: "job.run",
        BatchMode.GROUP: "jobs.run_group",
        BatchMode.ALL_JOBS: "jobs.run_all",
    }[BatchMode(mode)]
    target_type, target_id = ("job", job) if mode == BatchMode.JOB else ("group", group)
    if schedule_id is not None:
        sched = app.schedules.get(schedule_id)
        if sched is None:
            raise NotFound(f"unknown schedule {schedule_id!r}")
        if env is not None and not sched.active_in(env):
            raise NotFound(f"schedule {schedule_id!r} is not active in environment {env!r}")
        mode, group = sched.mode, sched.group
        action, target_type, target_id = "schedule.trigger", "schedule", schedule_id
    with database_errors(engine, "cannot create batch in"), session(engine) as s:
        created = insert_batch(
            s,
            app,
            mode=mode,
            group=group,
            job=job,
            params=params,
            skip_dependencies=skip_dependencies,
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
                **({"params": params} if mode == BatchMode.JOB else {}),
                **({"skip_dependencies": True} if skip_dependencies else {}),
            },
            ip=ip,
        )
        s.commit()
    return created
