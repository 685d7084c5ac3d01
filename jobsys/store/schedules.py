"""Schedules in the database: definitions sync, merged views, enable/disable.

Design 6.7. Code is the source of definitions, the database of runtime state:
- a new definition becomes a row, **disabled**;
- a changed cron or timezone recomputes ``next_run_at`` (when enabled);
- a definition removed from code keeps its row, marked ``in_code = false``, and never fires;
- a definition filtered out by ``JOBSYS_ENV`` is marked ``env_active = false``.
Enabling computes ``next_run_at`` from now (no back-fill); disabling clears it and does
not stop a running batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from jobsys.clock import iso_utc
from jobsys.errors import NotFound
from jobsys.scheduler import next_run_after
from jobsys.store.db import database_errors, session
from jobsys.store.firing import timing_of
from jobsys.store.models import AuditLog, JobDefinition, JobSchedule
from jobsys.store.types import Definitions, ScheduleSpec, SyncReport

#: Longest note a disable may carry (the web and the CLI refuse longer ones).
MAX_NOTE_LENGTH = 1000


_DEFINITION_KEYS = (
    "name",
    "description",
    "cron",
    "timezone",
    "execution_mode",
    "job_group",
    "environments",
    "missed_policy",
    "max_catch_up_s",
    "overlap_policy",
    "grace_s",
    "job_name",
    "job_params",
    "pause_on_failure",
    "jitter_s",
)


def _definition_fields(sched: ScheduleSpec, env: str) -> dict[str, Any]:
    return {
        "name": sched.name,
        "description": sched.description,
        "cron": sched.cron,
        "timezone": sched.timezone,
        "execution_mode": sched.mode,
        "job_group": sched.group,
        "environments": list(sched.environments) if sched.environments is not None else None,
        "missed_policy": sched.missed,
        "max_catch_up_s": sched.max_catch_up_s,
        "overlap_policy": sched.overlap,
        "grace_s": sched.grace_s,
        "job_name": sched.job,
        "job_params": dict(sched.params) if sched.params is not None else None,
        "pause_on_failure": sched.pause_on_failure,
        "jitter_s": sched.jitter_s,
        "in_code": True,
        "env_active": sched.active_in(env),
    }


def sync_definitions(
    engine: Engine, app: Definitions, env: str, now: datetime, *, mark_removed: bool = True
) -> SyncReport:
    """Bring the database's schedules and job registry in line with ``app`` (its
    records are read as plain values: ``App`` or anything of the same shape).

    Safe to run from several processes at once: a row another process inserted first is
    simply updated. ``mark_removed=False`` (used by the web and the CLI) never marks rows
    as "not in code", so a process running older code cannot hide a newer definition.
    """
    created: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    jobs_created: list[str] = []
    with database_errors(engine, "cannot sync definitions to"):
        for attempt in range(3):
            try:
                with session(engine, write=True) as s:
                    created, updated, removed = _sync_schedules(s, app, env, now, mark_removed)
                    jobs_created = _sync_jobs(s, app, now, mark_removed)
                    s.commit()
                break
            except IntegrityError:
                # Another process inserted the same new row between our read and insert.
                if attempt == 2:
                    raise
    return SyncReport(created, updated, removed, jobs_created)


def _sync_schedules(
    s: Session, app: Definitions, env: str, now: datetime, mark_removed: bool
) -> tuple[list[str], list[str], list[str]]:
    rows = {row.id: row for row in s.exec(select(JobSchedule))}
    created: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    for sched in app.schedules.values():
        fields = _definition_fields(sched, env)
        row = rows.get(sched.id)
        if row is None:
            s.add(JobSchedule(id=sched.id, enabled=False, created_at=now, updated_at=now, **fields))
            created.append(sched.id)
            continue
        changes = {k: v for k, v in fields.items() if getattr(row, k) != v}
        if not changes:
            continue
        timing_changed = "cron" in changes or "timezone" in changes or "in_code" in changes
        for key, value in changes.items():
            setattr(row, key, value)
        if row.enabled and row.in_code and (timing_changed or row.next_run_at is None):
            row.next_run_at = next_run_after(timing_of(row), now)
        row.updated_at = now
        updated.append(sched.id)
    if mark_removed:
        for row in rows.values():
            if row.id not in app.schedules and row.in_code:
                row.in_code = False
                row.next_run_at = None
                row.updated_at = now
                removed.append(row.id)
    return created, updated, removed


def _sync_jobs(s: Session, app: Definitions, now: datetime, mark_removed: bool) -> list[str]:
    rows = {row.name: row for row in s.exec(select(JobDefinition))}
    created: list[str] = []
    for job in app.jobs.values():
        fields: dict[str, Any] = {
            "job_group": job.group,
            "description": job.description,
            "depends_on": list(job.depends_on),
            "timeout_s": int(job.timeout_s) if job.timeout_s is not None else None,
            "params_schema": {k: dict(v) for k, v in job.params.items()} if job.params else None,
            "in_code": True,
        }
        row = rows.get(job.name)
        if row is None:
            s.add(JobDefinition(name=job.name, updated_at=now, **fields))
            created.append(job.name)
        elif any(getattr(row, k) != v for k, v in fields.items()):
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = now
    if mark_removed:
        for row in rows.values():
            if row.name not in app.jobs and row.in_code:
                row.in_code = False
                row.updated_at = now
    return created


# -- views ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ScheduleView:
    """A schedule as the API and CLI show it: code definition merged with DB state
    (``jobsys.present`` formats it)."""

    id: str
    name: str
    description: str
    cron: str
    timezone: str
    execution_mode: str
    job_group: str | None
    environments: list[str] | None
    missed_policy: str
    max_catch_up_s: int | None
    overlap_policy: str
    grace_s: int
    enabled: bool
    in_code: bool
    env_active: bool
    synced: bool
    last_run_at: datetime | None
    last_run_status: str | None
    last_batch_id: int | None
    next_run_at: datetime | None
    run_count: int
    failure_count: int
    consecutive_failures: int
    locked_by: str | None
    job_name: str | None = None
    job_params: dict[str, Any] | None = None
    pause_on_failure: int | None = None
    jitter_s: int = 0
    # who disabled the schedule, when and why (None while enabled)
    paused_note: str | None = None
    paused_by: str | None = None
    paused_at: datetime | None = None

    @property
    def runnable(self) -> bool:
        return self.in_code and self.env_active


def _view(row: JobSchedule | None, sched: ScheduleSpec | None, env: str) -> ScheduleView:
    if sched is not None:
        defined = _definition_fields(sched, env)
    else:
        assert row is not None
        defined = {k: getattr(row, k) for k in _DEFINITION_KEYS}
        defined["in_code"] = False
        defined["env_active"] = row.env_active
    schedule_id = sched.id if sched is not None else row.id if row is not None else ""
    return ScheduleView(
        id=schedule_id,
        enabled=bool(row and row.enabled and defined["in_code"]),
        synced=row is not None,
        last_run_at=row.last_run_at if row else None,
        last_run_status=row.last_run_status if row else None,
        last_batch_id=row.last_batch_id if row else None,
        next_run_at=row.next_run_at if row and row.enabled else None,
        run_count=row.run_count if row else 0,
        failure_count=row.failure_count if row else 0,
        consecutive_failures=row.consecutive_failures if row else 0,
        locked_by=row.locked_by if row else None,
        **_paused(row),
        **defined,
    )


def _paused(row: JobSchedule | None) -> dict[str, Any]:
    """Who disabled the schedule, when and why; nothing while it is enabled."""
    if row is None or row.enabled:
        return {}
    return {"paused_note": row.paused_note, "paused_by": row.paused_by, "paused_at": row.paused_at}


def schedule_views(
    engine: Engine, app: Definitions, env: str, *, include_inactive: bool = False
) -> list[ScheduleView]:
    """Code schedules active in ``env`` (all with ``include_inactive``), then rows no longer
    in code, each merged with its database state."""
    with database_errors(engine, "cannot read schedules from"), session(engine) as s:
        rows = {row.id: row for row in s.exec(select(JobSchedule))}
    views = [
        _view(rows.get(sched.id), sched, env)
        for sched in app.schedules.values()
        if include_inactive or sched.active_in(env)
    ]
    views += [
        _view(row, None, env) for sid, row in sorted(rows.items()) if sid not in app.schedules
    ]
    return views


def get_view(engine: Engine, app: Definitions, env: str, schedule_id: str) -> ScheduleView:
    """One schedule as ``schedule_views(include_inactive=True)`` shows it (one row read)."""
    with database_errors(engine, "cannot read schedules from"), session(engine) as s:
        row = s.get(JobSchedule, schedule_id)
    sched = app.schedules.get(schedule_id)
    if row is None and sched is None:
        raise NotFound(f"unknown schedule {schedule_id!r}")
    return _view(row, sched, env)


def _lags(row: JobSchedule, sched: ScheduleSpec, env: str) -> bool:
    """Whether ``row`` differs from the definition of ``sched`` (a sync would change it)."""
    return any(getattr(row, k) != v for k, v in _definition_fields(sched, env).items())


def set_enabled(
    engine: Engine,
    app: Definitions,
    env: str,
    schedule_id: str,
    enabled: bool,
    *,
    now: datetime,
    actor: str | None,
    ip: str | None = None,
    note: str | None = None,
) -> ScheduleView:
    """Enable (``next_run_at`` from now, no back-fill) or disable (clears it) a schedule.

    Disabling records who (``actor``), when and why (``note``, optional); disabling a
    disabled schedule with a note replaces its note. Enabling clears them. Only
    schedules in code and active in this environment can be enabled. The change and an
    audit row are one transaction.
    """
    sched = app.schedules.get(schedule_id)
    if sched is None:
        get_view(engine, app, env, schedule_id)  # raises NotFound for unknown ids
        if enabled:
            raise NotFound(f"schedule {schedule_id!r} is not in code and cannot be enabled")
    elif enabled and not sched.active_in(env):
        raise NotFound(f"schedule {schedule_id!r} is not active in environment {env!r}")
    # The web and the daemons sync every definition when they start; sync again only if
    # this row lags its code (a per-call sync of every definition costs ~1 s at 1,000).
    for attempt in range(2):
        with (
            database_errors(engine, "cannot update schedule in"),
            session(engine, write=True) as s,
        ):
            row = s.get(JobSchedule, schedule_id)
            lagging = sched is not None and (row is None or _lags(row, sched, env))
            if not (lagging and attempt == 0):
                return _write_enabled(
                    s, row, sched, env, schedule_id, enabled, now, actor, ip, note
                )
        # Outside the transaction above: the sync takes the write lock itself.
        sync_definitions(engine, app, env, now, mark_removed=False)
    raise AssertionError("unreachable: the second attempt returns or raises")


# Built once: under a burst of enables, the ORM's unit of work cost more than the SQL.
_AUDIT_INSERT = insert(AuditLog)
_SCHEDULE_UPDATE = update(JobSchedule).where(col(JobSchedule.id) == bindparam("_id"))


def _write_enabled(
    s: Session,
    row: JobSchedule | None,
    sched: ScheduleSpec | None,
    env: str,
    schedule_id: str,
    enabled: bool,
    now: datetime,
    actor: str | None,
    ip: str | None,
    note: str | None = None,
) -> ScheduleView:
    """The change and its audit row, in the write transaction ``s``."""
    if row is None:
        raise NotFound(f"unknown schedule {schedule_id!r}")
    if row.enabled != enabled or (not enabled and note is not None):
        # ``row`` leaves the session: the change is one UPDATE and the view is built from
        # the detached object, with no flush.
        s.expunge(row)
        before: dict[str, Any] = {"enabled": row.enabled, "next_run_at": iso_utc(row.next_run_at)}
        if not row.enabled and row.paused_note is not None:
            before["note"] = row.paused_note
        changes: dict[str, Any] = {
            "enabled": enabled,
            "next_run_at": next_run_after(timing_of(row), now) if enabled else None,
            "buffered_slot": None,  # a slot buffered (BUFFER_ONE) before a toggle never fires
            "updated_at": now,
            "paused_note": None if enabled else note,
            "paused_by": None if enabled else actor,
            "paused_at": None if enabled else now,
        }
        if enabled and row.pause_on_failure and row.consecutive_failures >= row.pause_on_failure:
            # A fresh start: else the daemon would pause it again at once.
            before["consecutive_failures"] = row.consecutive_failures
            changes["consecutive_failures"] = 0
        s.execute(_SCHEDULE_UPDATE, {"_id": schedule_id, **changes})
        for key, value in changes.items():
            setattr(row, key, value)
        after: dict[str, Any] = {"enabled": enabled, "next_run_at": iso_utc(row.next_run_at)}
        if note is not None and not enabled:
            after["note"] = note
        s.execute(
            _AUDIT_INSERT,
            {
                "at": now,
                "actor": actor,
                "action": "schedule.enable" if enabled else "schedule.disable",
                "target_type": "schedule",
                "target_id": schedule_id,
                "before": before,
                "after": after,
                "ip": ip,
                "detail": None,
            },
        )
    s.commit()
    return _view(row, sched, env)
