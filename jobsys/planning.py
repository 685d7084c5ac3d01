"""Planning batches: which runs a trigger creates, from the definitions alone.

Pure: no database, no clock. The store only writes the ``BatchPlan`` these return, so
following a schedule from firing to its runs, or a Run Now request to its batch, crosses
from the definitions to the store once. The daemon plans each schedule once
(``schedule_plans``) and reuses the plan for every slot it fires.
"""

from __future__ import annotations

from typing import Any

from jobsys.definitions import App, default_params, schedule_params, validate_params
from jobsys.errors import DefinitionError, NotFound
from jobsys.store.types import BatchPlan, PlannedRun
from jobsys.vocabulary import BatchMode


def plan_batch(
    app: App,
    *,
    mode: str,
    group: str | None = None,
    job: str | None = None,
    params: dict[str, Any] | None = None,
    skip_dependencies: bool = False,
) -> BatchPlan:
    """The runs of one batch in dependency order, each with the jobs it waits for, its
    params and its timeout.

    ``params`` (already checked, see ``plan_manual``) go to a JOB batch's run; every
    other run gets its job's declared defaults. Raises ``DefinitionError`` for an
    unknown mode, group or job.
    """
    steps = app.plan(mode=mode, group=group, job=job, skip_dependencies=skip_dependencies)
    one_job = mode == BatchMode.JOB
    runs = tuple(
        PlannedRun(
            job_name=name,
            depends_on=deps,
            params=params if one_job and params is not None else default_params(app.jobs[name]),
            timeout_s=run_timeout(app.jobs[name].timeout_s),
            retry=_retry_of(app, name),
        )
        for name, deps in steps
    )
    return BatchPlan(
        mode=BatchMode(mode).value,
        runs=runs,
        group=group if mode == BatchMode.GROUP else None,
        job=job if one_job else None,
        params=params if one_job else None,
        skip_dependencies=skip_dependencies,
    )


def _retry_of(app: App, name: str) -> dict[str, Any] | None:
    policy = app.jobs[name].retry
    return None if policy is None else policy.to_dict()


def run_timeout(timeout_s: float | None) -> int | None:
    """A job's timeout as the whole seconds a run stores (at least 1)."""
    return None if timeout_s is None else max(1, round(timeout_s))


def schedule_plans(app: App) -> dict[str, BatchPlan]:
    """What a slot of each schedule runs (all jobs or its group, with default params;
    or its one job with its params), by schedule id; schedules of one mode and group
    share one plan."""
    shared: dict[tuple[str, str | None], BatchPlan] = {}
    plans: dict[str, BatchPlan] = {}
    for sched in app.schedules.values():
        if sched.mode == BatchMode.JOB:
            plans[sched.id] = plan_batch(
                app, mode=sched.mode, job=sched.job, params=schedule_params(app, sched)
            )
            continue
        key = (sched.mode, sched.group)
        if key not in shared:
            shared[key] = plan_batch(app, mode=sched.mode, group=sched.group)
        plans[sched.id] = shared[key]
    return plans


def plan_manual(
    app: App,
    *,
    mode: str,
    group: str | None = None,
    job: str | None = None,
    params: Any = None,
    skip_dependencies: bool = False,
    schedule_id: str | None = None,
    env: str | None = None,
) -> BatchPlan:
    """Check a manual request (Run Now of a schedule, run one job with params, run all,
    run a group) against the definitions and plan its batch.

    Raises ``DefinitionError`` for bad params (given to anything but one job, or not
    matching the job's declared params) and ``NotFound`` for an unknown group or
    schedule, or a schedule not active in ``env``. Run Now of a schedule plans the
    schedule's own mode and group.
    """
    if mode == BatchMode.JOB:
        params = validate_params(app.get_job(job or ""), params)
    elif params is not None:
        raise DefinitionError("params are only accepted when running one job")
    if mode == BatchMode.GROUP and group not in app.groups:
        raise NotFound(f"unknown group {group!r}")
    if schedule_id is not None:
        sched = app.schedules.get(schedule_id)
        if sched is None:
            raise NotFound(f"unknown schedule {schedule_id!r}")
        if env is not None and not sched.active_in(env):
            raise NotFound(f"schedule {schedule_id!r} is not active in environment {env!r}")
        mode, group = sched.mode, sched.group
        if mode == BatchMode.JOB:  # Run Now of a single-job schedule: its job and params
            job, params = sched.job, schedule_params(app, sched)
    return plan_batch(
        app,
        mode=mode,
        group=group,
        job=job,
        params=params,
        skip_dependencies=skip_dependencies,
    )
