"""Read queries for the CLI and the web API: runs, logs, batches, history.

Results are the frozen rows of ``jobsys.store.rows``, with aware UTC datetimes;
``jobsys.present`` shapes them for JSON and people. Paging is by cursor (the last id
seen), newest first, so pages are stable while new rows arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar, overload

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from jobsys.clock import utc
from jobsys.errors import NotFound
from jobsys.store.models import (
    ERROR_STATUSES,
    AuditLog,
    JobBatch,
    JobDefinition,
    JobLog,
    JobRun,
    JobSchedule,
    RunStatus,
)
from jobsys.store.rows import (
    AttemptRow,
    AuditRow,
    BatchRow,
    BatchWithCounts,
    BatchWithRuns,
    JobActivity,
    LogLineRow,
    LogPage,
    Page,
    RunRow,
    RunSummary,
    RunWithLogs,
    SearchStop,
    field_names,
)

#: Most log lines in one answer (a page of ``log_page``).
MAX_LOG_LINES = 5000
#: Log lines shown when nobody asks for a number: the end of the log, where the error is.
LOG_TAIL_LINES = 1000


_RUN = field_names(RunRow)
_BATCH = field_names(BatchRow)
_SUMMARY = field_names(RunSummary)
_AUDIT = field_names(AuditRow)


def run_row(row: Any) -> RunRow:
    """A ``job_run`` row (or the ``JobRun`` model) as a ``RunRow``."""
    data = {name: getattr(row, name) for name in _RUN}
    data["cancel_requested"] = bool(data["cancel_requested"])
    return RunRow(**data)


@overload
def get_run(engine: Engine, run_id: int, *, with_logs: Literal[True] = ...) -> RunWithLogs: ...


@overload
def get_run(engine: Engine, run_id: int, *, with_logs: bool) -> RunRow: ...


def get_run(engine: Engine, run_id: int, *, with_logs: bool = True) -> RunRow:
    """One run; ``with_logs`` makes it a ``RunWithLogs``: the tail of its log (oldest
    first) and how many lines are stored in all."""
    with engine.connect() as conn:
        row = conn.execute(select(JobRun).where(col(JobRun.id) == run_id)).first()
        if row is None:
            raise NotFound(f"unknown job run {run_id}")
        run = run_row(row)
    if not with_logs:
        return run
    page = log_page(engine, run_id, limit=MAX_LOG_LINES)
    return RunWithLogs(**vars(run), logs=page.lines, log_count=page.total)


def batch_row(row: Any) -> BatchRow:
    """A ``job_batch`` row (or the ``JobBatch`` model) as a ``BatchRow``."""
    data = {name: getattr(row, name) for name in _BATCH}
    data["skip_dependencies"] = bool(data["skip_dependencies"])
    return BatchRow(**data)


def run_attempts(engine: Engine, run: RunRow) -> list[AttemptRow]:
    """Every attempt of the run's chain (automatic and manual retries), oldest first."""
    first = run.retry_of or run.id
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                col(JobRun.id),
                col(JobRun.batch_id),
                col(JobRun.attempt),
                col(JobRun.status),
                col(JobRun.not_before),
                col(JobRun.started_at),
                col(JobRun.finished_at),
                col(JobRun.error),
            )
            .where(or_(col(JobRun.id) == first, col(JobRun.retry_of) == first))
            .order_by(col(JobRun.id))
        ).all()
    return [AttemptRow(**r._mapping) for r in rows]


def get_batch(engine: Engine, batch_id: int) -> BatchWithRuns:
    """One batch with its runs in dependency order."""
    with engine.connect() as conn:
        batch = conn.execute(select(JobBatch).where(col(JobBatch.id) == batch_id)).first()
        if batch is None:
            raise NotFound(f"unknown batch {batch_id}")
        runs = conn.execute(
            select(JobRun)
            .where(col(JobRun.batch_id) == batch_id)
            .order_by(col(JobRun.position), col(JobRun.id))  # a job's attempts in order
        ).all()
    return BatchWithRuns(**vars(batch_row(batch)), runs=[run_row(r) for r in runs])


def batches_of_schedule(engine: Engine, schedule_id: str) -> list[BatchRow]:
    """All batches of a schedule, oldest first (tests and small tools; the API pages)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(JobBatch)
            .where(col(JobBatch.schedule_id) == schedule_id)
            .order_by(col(JobBatch.id))
        ).all()
    return [batch_row(r) for r in rows]


# -- paged lists for the web API ------------------------------------------------------
T = TypeVar("T")


def _page(rows: Sequence[Any], limit: int, convert: Callable[[Any], T]) -> Page[T]:
    more = len(rows) > limit
    shown = rows[:limit]
    return Page([convert(r) for r in shown], shown[-1].id if more and shown else None)


#: An error-text search reads at most this many runs per page, in page order from the
#: cursor; when it stops first, the page says so (``Page.searched``) and its cursor goes on
#: from there. A search that matches nothing then costs the same at 100,000 runs as at
#: 10 million: the text is in no index, so every run searched is a row read.
ERROR_SEARCH_RUNS = 20_000


def list_runs(
    engine: Engine,
    *,
    job: str | None = None,
    statuses: Sequence[str] | None = None,
    triggers: Sequence[str] | None = None,
    schedule_id: str | None = None,
    batch_id: int | None = None,
    queued_from: datetime | None = None,
    queued_to: datetime | None = None,
    error_text: str | None = None,
    limit: int = 50,
    cursor: int | None = None,
    search_runs: int = ERROR_SEARCH_RUNS,
) -> Page[RunRow]:
    """Job runs, newest first, filtered; ``cursor`` is the last id of the previous page.

    ``queued_from`` (included) and ``queued_to`` (excluded) bound when they were queued;
    with either, the order is by ``queued_at`` (then id), newest first, so the window is a
    range of ``ix_job_run_queued_at`` read from its end (ids follow the order runs were
    inserted in, and ``ORDER BY id`` walked every newer run to reach an old window).

    ``error_text`` keeps runs whose error contains it (case-insensitive). Only runs in
    ``ERROR_STATUSES`` have an error, and the text is in no index, so a page searches
    the next ``search_runs`` runs in page order (by id: the next ``search_runs`` ids)
    whatever the other filters; if that bound is reached before the page is full, the
    page has ``searched`` set and its cursor continues the search with older runs."""
    if error_text is not None:
        statuses = [s for s in (statuses or ERROR_STATUSES) if s in ERROR_STATUSES]
        if not statuses:
            return Page([], None)
    by_time = queued_from is not None or queued_to is not None
    order = (
        (col(JobRun.queued_at).desc(), col(JobRun.id).desc())
        if by_time
        else (col(JobRun.id).desc(),)
    )
    with engine.connect() as conn:
        # Where the page starts: the window and the cursor, in page order.
        start: list[Any] = []
        if queued_from is not None:
            start.append(col(JobRun.queued_at) >= queued_from)
        if queued_to is not None:
            start.append(col(JobRun.queued_at) < queued_to)
        if cursor is not None:
            start.extend(_older_than(conn, cursor, by_time))
        stop = None
        if error_text is not None:
            stop = (
                _time_search_stop(conn, start, order, search_runs)
                if by_time
                else _id_search_stop(conn, cursor, search_runs)
            )
        query = select(JobRun).where(*start).order_by(*order).limit(limit + 1)
        if stop is not None:
            query = query.where(*_not_older_than(stop, by_time))
        if error_text is not None:
            # lower() on both sides: SQLite's LIKE ignores ASCII case, utf8mb4_bin does not
            query = query.where(
                func.lower(col(JobRun.error)).contains(error_text.lower(), autoescape=True)
            )
        if job is not None:
            query = query.where(col(JobRun.job_name) == job)
        if triggers:
            query = query.where(col(JobRun.trigger).in_(list(triggers)))
        if schedule_id is not None:
            query = query.where(col(JobRun.schedule_id) == schedule_id)
        if batch_id is not None:
            query = query.where(col(JobRun.batch_id) == batch_id)
        rows: list[Any]
        if error_text is not None and statuses:
            # One status at a time: each reads its range of ix_job_run_status_id (by id)
            # or ix_job_run_status_queued_at (in a window) in page order. With an IN list
            # MariaDB walks the page order (PK, queued_at) and reads every run of it.
            # Once a page's worth is found, the next status reads only runs before its end.
            rows = []
            for status in statuses:
                one = query.where(col(JobRun.status) == status)
                if len(rows) > limit:
                    one = one.where(*_before_row(rows[limit], by_time))
                rows += conn.execute(one).all()
                rows.sort(key=_page_key(by_time), reverse=True)
                del rows[limit + 1 :]
        else:
            if statuses:
                query = query.where(col(JobRun.status).in_(list(statuses)))
            rows = list(conn.execute(query).all())
    page = _page(rows, limit, run_row)
    if stop is None or len(rows) > limit:
        return page
    return Page(page.items, stop.last_id, stop)


def _before_row(row: Any, by_time: bool) -> list[Any]:
    """Conditions for the runs before ``row`` in page order (newer than it)."""
    if not by_time:
        return [col(JobRun.id) > row.id]
    at = row.queued_at
    return [
        col(JobRun.queued_at) >= at,
        or_(col(JobRun.queued_at) > at, col(JobRun.id) > row.id),
    ]


def _page_key(by_time: bool) -> Callable[[Any], Any]:
    if by_time:
        return lambda row: (row.queued_at, row.id)
    return lambda row: row.id


def _older_than(conn: Connection, cursor: int, by_time: bool) -> list[Any]:
    """Conditions for the runs after run ``cursor`` in page order."""
    if not by_time:
        return [col(JobRun.id) < cursor]
    # The cursor's queued_at (of the run before it, if it was deleted since: retention
    # removes the oldest runs first).
    at = conn.execute(
        select(col(JobRun.queued_at))
        .where(col(JobRun.id) <= cursor)
        .order_by(col(JobRun.id).desc())
        .limit(1)
    ).scalar()
    if at is None:
        return [false()]
    # The plain bound on queued_at is what the range scan uses; the pair orders ties.
    return [
        col(JobRun.queued_at) <= at,
        or_(col(JobRun.queued_at) < at, and_(col(JobRun.queued_at) == at, col(JobRun.id) < cursor)),
    ]


def _not_older_than(stop: SearchStop, by_time: bool) -> list[Any]:
    """Conditions for the runs up to and including the stop, in page order."""
    if not by_time:
        return [col(JobRun.id) >= stop.last_id]
    at = stop.last_queued_at
    assert at is not None  # a time window's stop is a run of it
    return [
        col(JobRun.queued_at) >= at,
        or_(col(JobRun.queued_at) > at, col(JobRun.id) >= stop.last_id),
    ]


def _id_search_stop(conn: Connection, cursor: int | None, runs: int) -> SearchStop | None:
    """Where a search by id stops: ``runs`` ids below the cursor (or the newest id);
    None when that reaches the oldest run."""
    # Two scalar subqueries: SQLite reads one end of the key for a lone min() or max(),
    # but scans a whole index for both in one SELECT.
    ends: Any = conn.execute(
        select(
            select(func.min(col(JobRun.id))).scalar_subquery(),
            select(func.max(col(JobRun.id))).scalar_subquery(),
        )
    ).one()
    oldest, newest = ends
    if oldest is None:
        return None
    last_id = (cursor if cursor is not None else int(newest) + 1) - runs
    if last_id <= oldest:
        return None
    at = conn.execute(
        select(col(JobRun.queued_at))
        .where(col(JobRun.id) >= last_id)
        .order_by(col(JobRun.id))
        .limit(1)
    ).scalar()
    return SearchStop(runs, last_id, utc(at) if at is not None else None)


def _time_search_stop(
    conn: Connection, start: list[Any], order: tuple[Any, ...], runs: int
) -> SearchStop | None:
    """Where a search in a time window stops: the ``runs``-th run from ``start`` (the
    window and the cursor, no other filter: a walk of ``ix_job_run_queued_at`` alone);
    None when the window has no more runs than that."""
    found = conn.execute(
        select(col(JobRun.id), col(JobRun.queued_at))
        .where(*start)
        .order_by(*order)
        .offset(runs - 1)
        .limit(2)
    ).all()
    if len(found) < 2:
        return None  # the bound falls on the last run there is, or beyond it
    last: Any = found[0]
    return SearchStop(runs, int(last.id), utc(last.queued_at))


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
) -> Page[BatchWithCounts]:
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

    def convert(row: Any) -> BatchWithCounts:
        return BatchWithCounts(**vars(batch_row(row)), counts=counts.get(row.id, {}))

    return _page(rows, limit, convert)


def audit_row(row: Any) -> AuditRow:
    return AuditRow(**{name: getattr(row, name) for name in _AUDIT})


def list_audit(
    engine: Engine,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> Page[AuditRow]:
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
    return _page(rows, limit, audit_row)


def job_activity(engine: Engine, names: Sequence[str]) -> dict[str, JobActivity]:
    """Per job: its newest run (``last_run``), the run holding its mutex
    (``running_run_id``) and how many of its runs are queued and running (``active``)."""
    last: dict[str, RunSummary] = {}
    holders: dict[str, int | None] = {}
    active: dict[str, dict[str, int]] = {n: {} for n in names}
    with engine.connect() as conn:
        for name in names:
            row = conn.execute(
                select(*(getattr(JobRun, k) for k in _SUMMARY))
                .where(col(JobRun.job_name) == name)
                .order_by(col(JobRun.id).desc())
                .limit(1)
            ).first()
            if row is not None:
                last[name] = RunSummary(*row)
        for name, run_id in conn.execute(
            select(col(JobDefinition.name), col(JobDefinition.running_run_id)).where(
                col(JobDefinition.running_run_id).is_not(None)
            )
        ):
            holders[name] = run_id
        for name, status, n in conn.execute(
            select(col(JobRun.job_name), col(JobRun.status), func.count())
            .where(col(JobRun.status).in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]))
            .group_by(col(JobRun.job_name), col(JobRun.status))
        ):
            if name in active:
                active[name][status] = int(n)
    return {n: JobActivity(last.get(n), holders.get(n), active[n]) for n in names}


def _log_line(row: Any) -> LogLineRow:
    line_id, ts, level, message = row
    return LogLineRow(line_id, ts, level, message)


def run_logs(
    engine: Engine, run_id: int, *, after_id: int | None = None, limit: int = MAX_LOG_LINES
) -> list[LogLineRow]:
    """A run's log lines, oldest first; ``after_id`` tails them."""
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
    return [_log_line(row) for row in rows]


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
    return LogPage([_log_line(row) for row in rows], earlier, later)


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
