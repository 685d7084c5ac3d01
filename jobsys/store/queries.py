"""Read queries for the CLI and the web API: runs, logs, batches, history.

Results are plain dicts with snake_case keys and ISO-8601 UTC times, as the API returns
them. Paging is by cursor (the last id seen), newest first, so pages are stable while
new rows arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from jobsys.clock import iso_utc, utc
from jobsys.errors import NotFound
from jobsys.store.models import (
    AuditLog,
    JobBatch,
    JobDefinition,
    JobLog,
    JobRun,
    JobSchedule,
    RunStatus,
)

#: Most log lines in one answer (a page of ``log_page``).
MAX_LOG_LINES = 5000
#: Log lines shown when nobody asks for a number: the end of the log, where the error is.
LOG_TAIL_LINES = 1000


def run_to_dict(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "job_name": run.job_name,
        "status": run.status,
        "trigger": run.trigger,
        "schedule_id": run.schedule_id,
        "batch_id": run.batch_id,
        "scheduled_for": iso_utc(run.scheduled_for),
        "params": run.params,
        "triggered_by": run.triggered_by,
        "depends_on": run.depends_on,
        "position": run.position,
        "queued_at": iso_utc(run.queued_at),
        "started_at": iso_utc(run.started_at),
        "finished_at": iso_utc(run.finished_at),
        "duration_ms": run.duration_ms,
        "error": run.error,
        "timeout_s": run.timeout_s,
        "worker_id": run.worker_id,
        "exit_code": run.exit_code,
        "cancel_requested": bool(run.cancel_requested),
        "progress_done": run.progress_done,
        "progress_total": run.progress_total,
    }


def get_run(engine: Engine, run_id: int, *, with_logs: bool = True) -> dict[str, Any]:
    """One run; ``with_logs`` adds the tail of its log (``logs``, oldest first) and how
    many lines are stored in all (``log_count``)."""
    with engine.connect() as conn:
        row = conn.execute(select(JobRun).where(col(JobRun.id) == run_id)).first()
        if row is None:
            raise NotFound(f"unknown job run {run_id}")
        data = run_to_dict(row)
    if with_logs:
        page = log_page(engine, run_id, limit=MAX_LOG_LINES)
        data["logs"] = [
            {"ts": line["ts"], "level": line["level"], "message": line["message"]}
            for line in page.lines
        ]
        data["log_count"] = page.total
    return data


def batch_to_dict(batch: Any) -> dict[str, Any]:
    return {
        "id": batch.id,
        "schedule_id": batch.schedule_id,
        "trigger": batch.trigger,
        "scheduled_for": iso_utc(batch.scheduled_for),
        "status": batch.status,
        "reason": batch.reason,
        "mode": batch.mode,
        "job_group": batch.job_group,
        "skip_dependencies": bool(batch.skip_dependencies),
        "triggered_by": batch.triggered_by,
        "fired_by": batch.fired_by,
        "lateness_ms": batch.lateness_ms,
        "jitter_ms": batch.jitter_ms,
        "total_runs": batch.total_runs,
        "created_at": iso_utc(batch.created_at),
        "started_at": iso_utc(batch.started_at),
        "finished_at": iso_utc(batch.finished_at),
        "duration_ms": batch.duration_ms,
    }


def get_batch(engine: Engine, batch_id: int) -> dict[str, Any]:
    """One batch with its runs in dependency order."""
    with engine.connect() as conn:
        batch = conn.execute(select(JobBatch).where(col(JobBatch.id) == batch_id)).first()
        if batch is None:
            raise NotFound(f"unknown batch {batch_id}")
        runs = conn.execute(
            select(JobRun).where(col(JobRun.batch_id) == batch_id).order_by(col(JobRun.position))
        ).all()
    data = batch_to_dict(batch)
    data["runs"] = [run_to_dict(r) for r in runs]
    return data


def batches_of_schedule(engine: Engine, schedule_id: str) -> list[dict[str, Any]]:
    """All batches of a schedule, oldest first (tests and small tools; the API pages)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(JobBatch)
            .where(col(JobBatch.schedule_id) == schedule_id)
            .order_by(col(JobBatch.id))
        ).all()
    return [batch_to_dict(r) for r in rows]


# -- paged lists for the web API ------------------------------------------------------
@dataclass(frozen=True)
class Page:
    """One page, newest first; ``next_cursor`` is the id to pass for the next page."""

    items: list[dict[str, Any]]
    next_cursor: int | None


def _page(rows: Sequence[Any], limit: int, convert: Callable[[Any], dict[str, Any]]) -> Page:
    more = len(rows) > limit
    shown = rows[:limit]
    return Page([convert(r) for r in shown], shown[-1].id if more and shown else None)


def list_runs(
    engine: Engine,
    *,
    job: str | None = None,
    statuses: Sequence[str] | None = None,
    triggers: Sequence[str] | None = None,
    schedule_id: str | None = None,
    batch_id: int | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> Page:
    """Job runs, newest first, filtered; ``cursor`` is the last id of the previous page."""
    query = select(JobRun).order_by(col(JobRun.id).desc()).limit(limit + 1)
    if job is not None:
        query = query.where(col(JobRun.job_name) == job)
    if statuses:
        query = query.where(col(JobRun.status).in_(list(statuses)))
    if triggers:
        query = query.where(col(JobRun.trigger).in_(list(triggers)))
    if schedule_id is not None:
        query = query.where(col(JobRun.schedule_id) == schedule_id)
    if batch_id is not None:
        query = query.where(col(JobRun.batch_id) == batch_id)
    if cursor is not None:
        query = query.where(col(JobRun.id) < cursor)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return _page(rows, limit, run_to_dict)


def batch_run_counts(conn: Connection, batch_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per batch, how many of its runs are in each status."""
    counts: dict[int, dict[str, int]] = {b: {} for b in batch_ids}
    if not batch_ids:
        return counts
    for batch_id, status, n in conn.execute(
        select(col(JobRun.batch_id), col(JobRun.status), func.count())
        .where(col(JobRun.batch_id).in_(list(batch_ids)))
        .group_by(col(JobRun.batch_id), col(JobRun.status))
    ):
        counts[batch_id][status] = int(n)
    return counts


def schedule_history(
    engine: Engine, schedule_id: str, *, limit: int = 50, cursor: int | None = None
) -> Page:
    """A schedule's batches (fired, manual, missed and skipped slots), newest first, each
    with ``counts``: its runs per status."""
    query = (
        select(JobBatch)
        .where(col(JobBatch.schedule_id) == schedule_id)
        .order_by(col(JobBatch.id).desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        query = query.where(col(JobBatch.id) < cursor)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        counts = batch_run_counts(conn, [r.id for r in rows[:limit]])

    def convert(row: Any) -> dict[str, Any]:
        data = batch_to_dict(row)
        data["counts"] = counts.get(row.id, {})
        return data

    return _page(rows, limit, convert)


def audit_to_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": iso_utc(row.at),
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "before": row.before,
        "after": row.after,
        "ip": row.ip,
        "detail": row.detail,
    }


def list_audit(
    engine: Engine,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> Page:
    """Audit entries, newest first; ``action`` ending in ``.`` or ``*`` matches a prefix
    (``schedule.`` is every schedule action)."""
    query = select(AuditLog).order_by(col(AuditLog.id).desc()).limit(limit + 1)
    if actor is not None:
        query = query.where(col(AuditLog.actor) == actor)
    if action is not None:
        if action.endswith(("*", ".")):
            prefix = action.rstrip("*")
            query = query.where(
                func.substr(col(AuditLog.action), 1, len(prefix)) == prefix  # no LIKE escapes
            )
        else:
            query = query.where(col(AuditLog.action) == action)
    if target is not None:
        query = query.where(col(AuditLog.target_id) == target)
    if cursor is not None:
        query = query.where(col(AuditLog.id) < cursor)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return _page(rows, limit, audit_to_dict)


def run_summary(row: Any) -> dict[str, Any]:
    """The short form of a run (the jobs list's "last run")."""
    return {
        "id": row.id,
        "batch_id": row.batch_id,
        "status": row.status,
        "trigger": row.trigger,
        "triggered_by": row.triggered_by,
        "queued_at": iso_utc(row.queued_at),
        "started_at": iso_utc(row.started_at),
        "finished_at": iso_utc(row.finished_at),
        "duration_ms": row.duration_ms,
        "error": row.error,
    }


def job_activity(engine: Engine, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per job: its newest run (``last_run``), the run holding its mutex
    (``running_run_id``) and how many of its runs are queued and running (``active``)."""
    out: dict[str, dict[str, Any]] = {
        n: {"last_run": None, "running_run_id": None, "active": {}} for n in names
    }
    with engine.connect() as conn:
        for name in names:
            row = conn.execute(
                select(
                    col(JobRun.id),
                    col(JobRun.batch_id),
                    col(JobRun.status),
                    col(JobRun.trigger),
                    col(JobRun.triggered_by),
                    col(JobRun.queued_at),
                    col(JobRun.started_at),
                    col(JobRun.finished_at),
                    col(JobRun.duration_ms),
                    col(JobRun.error),
                )
                .where(col(JobRun.job_name) == name)
                .order_by(col(JobRun.id).desc())
                .limit(1)
            ).first()
            if row is not None:
                out[name]["last_run"] = run_summary(row)
        for name, run_id in conn.execute(
            select(col(JobDefinition.name), col(JobDefinition.running_run_id)).where(
                col(JobDefinition.running_run_id).is_not(None)
            )
        ):
            if name in out:
                out[name]["running_run_id"] = run_id
        for name, status, n in conn.execute(
            select(col(JobRun.job_name), col(JobRun.status), func.count())
            .where(col(JobRun.status).in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]))
            .group_by(col(JobRun.job_name), col(JobRun.status))
        ):
            if name in out:
                out[name]["active"][status] = int(n)
    return out


def run_logs(
    engine: Engine, run_id: int, *, after_id: int | None = None, limit: int = MAX_LOG_LINES
) -> list[dict[str, Any]]:
    """A run's log lines with their ids, oldest first; ``after_id`` tails them."""
    query = (
        select(col(JobLog.id), col(JobLog.ts), col(JobLog.level), col(JobLog.message))
        .where(col(JobLog.run_id) == run_id)
        .order_by(col(JobLog.id))
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(col(JobLog.id) > after_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {"id": lid, "ts": iso_utc(ts), "level": level, "message": msg}
        for lid, ts, level, msg in rows
    ]


@dataclass(frozen=True)
class LogPage:
    """Consecutive log lines of one run, oldest first, and where they sit in the log."""

    lines: list[dict[str, Any]]
    earlier: int  # lines stored before the first one here
    later: int  # lines stored after the last one here

    @property
    def total(self) -> int:
        return self.earlier + len(self.lines) + self.later


def log_page(
    engine: Engine,
    run_id: int,
    *,
    after_id: int | None = None,
    before_id: int | None = None,
    limit: int = LOG_TAIL_LINES,
) -> LogPage:
    """A page of a run's log: by default its last ``limit`` lines (the end is where the
    error and the truncation note are); ``before_id`` pages back from there (the
    ``limit`` lines just before that id); ``after_id`` tails a running job (the first
    ``limit`` lines after that id). Both cursors are log line ids."""
    if after_id is not None and before_id is not None:
        raise ValueError("give after_id or before_id, not both")
    of_run = col(JobLog.run_id) == run_id
    query = select(col(JobLog.id), col(JobLog.ts), col(JobLog.level), col(JobLog.message)).where(
        of_run
    )
    if after_id is not None:
        query = query.where(col(JobLog.id) > after_id).order_by(col(JobLog.id))
    else:
        if before_id is not None:
            query = query.where(col(JobLog.id) < before_id)
        query = query.order_by(col(JobLog.id).desc())

    def count(*where: Any) -> int:
        found = conn.execute(select(func.count()).select_from(JobLog).where(of_run, *where))
        return int(found.scalar_one())

    with engine.connect() as conn:
        rows = list(conn.execute(query.limit(limit)).all())
        if after_id is None:
            rows.reverse()
        if rows:
            earlier = count(col(JobLog.id) < rows[0][0])
            later = count(col(JobLog.id) > rows[-1][0])
        elif after_id is not None:
            earlier, later = count(col(JobLog.id) <= after_id), 0
        elif before_id is not None:
            earlier, later = 0, count(col(JobLog.id) >= before_id)
        else:
            earlier = later = 0
    lines = [
        {"id": lid, "ts": iso_utc(ts), "level": level, "message": msg}
        for lid, ts, level, msg in rows
    ]
    return LogPage(lines, earlier, later)


# -- change feed (the web's Server-Sent Events) ----------------------------------------
#: Tables whose rows carry an indexed ``updated_at``, by the event name they feed.
CHANGE_TABLES: dict[str, Any] = {"run": JobRun, "batch": JobBatch, "schedule": JobSchedule}


def latest_change(conn: Connection, kind: str) -> datetime | None:
    """The newest ``updated_at`` of a change table (reads one end of its index)."""
    model = CHANGE_TABLES[kind]
    value: datetime | None = conn.execute(select(func.max(model.updated_at))).scalar_one()
    return None if value is None else utc(value)


def changed_rows(
    conn: Connection,
    kind: str,
    since: datetime,
    *,
    after: tuple[datetime, Any] | None = None,
    limit: int = 500,
) -> list[Any]:
    """Rows of a change table with ``updated_at >= since``, ordered by (``updated_at``,
    key); ``after`` continues from the last (``updated_at``, key) of the previous page."""
    model = CHANGE_TABLES[kind]
    key = model.id
    query = select(model).where(model.updated_at >= since)
    if after is not None:
        at, last = after
        query = query.where(or_(model.updated_at > at, and_(model.updated_at == at, key > last)))
    return list(conn.execute(query.order_by(model.updated_at, key).limit(limit)).all())


def latest_log_id(conn: Connection) -> int:
    return int(conn.execute(select(func.max(col(JobLog.id)))).scalar_one() or 0)


def log_activity(conn: Connection, after_id: int, limit: int = 10_000) -> list[tuple[int, int]]:
    """``(run_id, newest log id)`` for runs that logged lines with ids above ``after_id``
    (looks at no more than ``limit`` lines)."""
    recent = (
        select(col(JobLog.id), col(JobLog.run_id))
        .where(col(JobLog.id) > after_id)
        .order_by(col(JobLog.id))
        .limit(limit)
        .subquery()
    )
    rows = conn.execute(
        select(recent.c.run_id, func.max(recent.c.id)).group_by(recent.c.run_id)
    ).all()
    return sorted((int(run_id), int(last)) for run_id, last in rows)
