"""Retention: delete history older than ``JOBSYS_HISTORY_DAYS`` in small steps.

What goes, oldest first (each phase walks its table by primary key from the oldest row
and stops at the first row younger than the limit):

1. job runs that finished before the limit, with their log lines;
2. batches created and finished before the limit that have no run left;
3. ``audit_log`` entries older than ``JOBSYS_AUDIT_DAYS`` (a separate, longer limit:
   the audit trail answers "who did what" questions long after the runs are gone);
4. resolved alert incidents and STOPPED worker instances older than the history limit.

What always stays: QUEUED and RUNNING runs (and their batches), each schedule's last
batch (``job_schedule.last_batch_id``) with its runs, and each job's newest run (the
jobs list shows it as "last run").

Each step is one short transaction on at most ``chunk`` rows (1,000), and a ``Pruner``
does steps only until its time budget for the call is spent, so the daemon can prune a
large backlog between firings without delaying them. Deleted runs and skipped slots are
added to ``pruned_count`` in the same transaction, so the totals ``/metrics`` reports
never go down. Several daemons may prune at once: rows are locked and re-read before
they are deleted and tallied.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.engine import Engine

from jobsys.store.db import dialect_name, write_engine
from jobsys.store.tables import (
    AlertIncident,
    AuditLog,
    JobBatch,
    JobDefinition,
    JobLog,
    JobRun,
    JobSchedule,
    PrunedCount,
    WorkerInstance,
    col,
)
from jobsys.vocabulary import RunStatus, WorkerStatus

#: Rows per statement (and per transaction).
CHUNK = 1000
#: Log lines deleted per statement.
LOG_CHUNK = 5000
#: The smallest chunk the budget may shrink a step to.
MIN_CHUNK = 50

ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
SKIP_REASONS = ("missed", "overlap", "superseded")


def skip_reason(reason: str | None) -> str:
    """The class of a SKIPPED batch's reason: missed, overlap, superseded or other."""
    text = (reason or "").lstrip()
    for name in SKIP_REASONS:
        if text.startswith(name):
            return name
    return "other"


@dataclass
class PruneReport:
    runs: int = 0
    logs: int = 0
    batches: int = 0
    audit: int = 0
    incidents: int = 0
    workers: int = 0
    seconds: float = 0.0
    done: bool = False

    @property
    def total(self) -> int:
        return self.runs + self.logs + self.batches + self.audit + self.incidents + self.workers

    def add(self, other: PruneReport) -> None:
        for name in ("runs", "logs", "batches", "audit", "incidents", "workers", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.done = other.done


PHASES = ("runs", "batches", "audit", "incidents", "workers")


@dataclass
class _Pass:
    history_cutoff: datetime
    audit_cutoff: datetime | None
    protected_batches: set[int]
    protected_runs: set[int]
    phase: int = 0
    after: int = 0  # the last primary key looked at in this phase
    total: PruneReport = field(default_factory=PruneReport)


class Pruner:
    """One retention pass at a time, advanced by ``step`` calls within a time budget.

    ``start(now)`` fixes the cutoffs and reads what must stay; ``step`` deletes chunks
    until the budget is spent or the pass is over (``active`` turns False).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        history_days: int,
        audit_days: int = 0,
        chunk: int = CHUNK,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.history_days = history_days
        self.audit_days = audit_days
        self.max_chunk = chunk
        self.chunk = chunk
        self.timer = timer
        self._pass: _Pass | None = None
        #: What the last completed pass deleted, and the time its steps took.
        self.last_pass = PruneReport()

    @property
    def enabled(self) -> bool:
        return self.history_days > 0 or self.audit_days > 0

    @property
    def active(self) -> bool:
        return self._pass is not None

    def start(self, now: datetime) -> None:
        if not self.enabled:
            return
        self._pass = _Pass(
            history_cutoff=now - timedelta(days=self.history_days),
            audit_cutoff=now - timedelta(days=self.audit_days) if self.audit_days else None,
            protected_batches=set(),
            protected_runs=set(),
            phase=0 if self.history_days > 0 else PHASES.index("audit"),
        )
        if self.history_days > 0:
            self._pass.protected_batches, self._pass.protected_runs = _protected(self.engine)

    def abort(self) -> None:
        """Drop the current pass (after an error); ``start`` begins a new one."""
        self._pass = None

    def step(self, budget_s: float) -> PruneReport:
        """Delete chunks until ``budget_s`` is spent or the pass ends; what was deleted."""
        report = PruneReport()
        started = self.timer()
        current = self._pass
        while current is not None:
            t0 = self.timer()
            rows_before = report.runs + report.batches + report.audit
            finished = self._one(current, report, deadline=started + budget_s)
            took = self.timer() - t0
            rows = report.runs + report.batches + report.audit - rows_before
            if rows >= MIN_CHUNK and took > 0 and budget_s > 0:
                # Size chunks so one takes about the budget at the rate just seen (each
                # step also has a fixed cost: a commit), smoothed against one-off stalls.
                target = rows / took * budget_s
                self.chunk = int(min(self.max_chunk, max(MIN_CHUNK, (self.chunk + target) / 2)))
            if finished:
                current.phase += 1
                current.after = 0
                if current.phase >= len(PHASES):
                    report.done = True
                    break
            if self.timer() - started + took > budget_s:
                break  # another chunk like this one would overrun the budget
        report.seconds = self.timer() - started
        if current is not None:
            current.total.add(report)
            if report.done:
                self.last_pass = current.total
                self._pass = None
        return report

    def run(self) -> PruneReport:
        """Finish the current pass without a budget (tests, tools)."""
        total = PruneReport()
        while self.active:
            total.add(self.step(3600.0))
        return total

    def _one(self, p: _Pass, report: PruneReport, deadline: float) -> bool:
        """One chunk of the current phase; True when the phase has nothing more to do."""
        phase = PHASES[p.phase]
        if phase == "runs":
            return self._runs(p, report, deadline)
        if phase == "batches":
            return self._batches(p, report)
        if phase == "audit":
            return self._audit(p, report)
        if self.history_days <= 0:
            return True  # history is kept: incidents and workers too
        if phase == "incidents":
            return self._incidents(p, report)
        return self._workers(p, report)

    # -- runs and their logs -------------------------------------------------------
    def _runs(self, p: _Pass, report: PruneReport, deadline: float) -> bool:
        cutoff = p.history_cutoff
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    col(JobRun.id),
                    col(JobRun.batch_id),
                    col(JobRun.status),
                    col(JobRun.queued_at),
                    col(JobRun.finished_at),
                )
                .where(col(JobRun.id) > p.after)
                .order_by(col(JobRun.id))
                .limit(self.chunk)
            ).all()
        doomed: list[int] = []
        last = p.after
        reached_recent = False
        for row in rows:
            if row.queued_at >= cutoff:
                reached_recent = True  # later ids were queued later still
                break
            last = row.id
            if (
                row.status not in ACTIVE
                and row.finished_at is not None
                and row.finished_at < cutoff
                and row.batch_id not in p.protected_batches
                and row.id not in p.protected_runs
            ):
                doomed.append(row.id)
        if doomed:
            logs, runs = _delete_runs(self.engine, doomed, deadline, self.timer)
            report.logs += logs
            report.runs += runs
            if runs == 0 and logs:
                return False  # out of time amid many log lines: this chunk again next step
        p.after = last
        return reached_recent or len(rows) < self.chunk

    # -- batches -------------------------------------------------------------------
    def _batches(self, p: _Pass, report: PruneReport) -> bool:
        cutoff = p.history_cutoff
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    col(JobBatch.id),
                    col(JobBatch.status),
                    col(JobBatch.created_at),
                    col(JobBatch.finished_at),
                )
                .where(col(JobBatch.id) > p.after)
                .order_by(col(JobBatch.id))
                .limit(self.chunk)
            ).all()
            candidates: list[int] = []
            last = p.after
            reached_recent = False
            for row in rows:
                if row.created_at >= cutoff:
                    reached_recent = True
                    break
                last = row.id
                ended = row.finished_at or row.created_at
                if (
                    row.status not in ACTIVE
                    and ended < cutoff
                    and row.id not in p.protected_batches
                ):
                    candidates.append(row.id)
            with_runs = _batches_with_runs(conn, candidates)
        doomed = [b for b in candidates if b not in with_runs]
        if doomed:
            report.batches += _delete_batches(self.engine, doomed)
        p.after = last
        return reached_recent or len(rows) < self.chunk

    # -- audit, incidents, workers -------------------------------------------------
    def _audit(self, p: _Pass, report: PruneReport) -> bool:
        if p.audit_cutoff is None:
            return True
        with self.engine.connect() as conn:
            ids = [
                i
                for (i,) in conn.execute(
                    select(col(AuditLog.id))
                    .where(col(AuditLog.at) < p.audit_cutoff)
                    .order_by(col(AuditLog.at))
                    .limit(self.chunk)
                )
            ]
        if ids:
            with write_engine(self.engine).begin() as conn:
                report.audit += conn.execute(
                    delete(AuditLog).where(col(AuditLog.id).in_(ids))
                ).rowcount
        return len(ids) < self.chunk

    def _incidents(self, p: _Pass, report: PruneReport) -> bool:
        with write_engine(self.engine).begin() as conn:
            ids = [
                i
                for (i,) in conn.execute(
                    select(col(AlertIncident.id))
                    .where(
                        col(AlertIncident.resolved_at).is_not(None),
                        col(AlertIncident.resolved_at) < p.history_cutoff,
                        col(AlertIncident.pending).is_(None),
                    )
                    .limit(self.chunk)
                )
            ]
            if ids:
                report.incidents += conn.execute(
                    delete(AlertIncident).where(col(AlertIncident.id).in_(ids))
                ).rowcount
        return len(ids) < self.chunk

    def _workers(self, p: _Pass, report: PruneReport) -> bool:
        with write_engine(self.engine).begin() as conn:
            ids = [
                i
                for (i,) in conn.execute(
                    select(col(WorkerInstance.id))
                    .where(
                        col(WorkerInstance.status) == WorkerStatus.STOPPED,
                        col(WorkerInstance.last_heartbeat_at) < p.history_cutoff,
                    )
                    .limit(self.chunk)
                )
            ]
            if ids:
                report.workers += conn.execute(
                    delete(WorkerInstance).where(col(WorkerInstance.id).in_(ids))
                ).rowcount
        return len(ids) < self.chunk


def prune(
    engine: Engine, now: datetime, *, history_days: int, audit_days: int = 0, chunk: int = CHUNK
) -> PruneReport:
    """One whole retention pass (tests and tools; the daemon steps a ``Pruner``)."""
    pruner = Pruner(engine, history_days=history_days, audit_days=audit_days, chunk=chunk)
    pruner.start(now)
    return pruner.run()


# -- helpers ---------------------------------------------------------------------------
def _protected(engine: Engine) -> tuple[set[int], set[int]]:
    """Each schedule's last batch, and each job's newest run: they always stay."""
    with engine.connect() as conn:
        batches = {
            int(b)
            for (b,) in conn.execute(
                select(col(JobSchedule.last_batch_id)).where(
                    col(JobSchedule.last_batch_id).is_not(None)
                )
            )
            if b is not None
        }
        names = [n for (n,) in conn.execute(select(col(JobDefinition.name)))]
        runs: set[int] = set()
        for part in _chunks(names, 100):
            # one index seek per job name, in one round trip
            newest = conn.execute(
                select(
                    *[
                        select(func.max(col(JobRun.id)))
                        .where(col(JobRun.job_name) == name)
                        .scalar_subquery()
                        for name in part
                    ]
                )
            ).one()
            runs.update(int(r) for r in newest if r is not None)
    return batches, runs


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _delete_runs(
    engine: Engine, run_ids: list[int], deadline: float, timer: Callable[[], float]
) -> tuple[int, int]:
    """Delete the runs and their log lines: (log lines, runs) deleted.

    Usually one transaction: the runs' log lines (when fewer than ``LOG_CHUNK``), the runs
    and their tally. Runs with more lines lose them ``LOG_CHUNK`` per transaction first;
    past the deadline that returns early with the runs left for the next step.
    """
    logs = 0
    while True:
        with write_engine(engine).begin() as conn:
            ids = [
                i
                for (i,) in conn.execute(
                    select(col(JobLog.id))
                    .where(col(JobLog.run_id).in_(run_ids))
                    .order_by(col(JobLog.run_id), col(JobLog.id))
                    .limit(LOG_CHUNK)
                )
            ]
            if ids:
                logs += conn.execute(delete(JobLog).where(col(JobLog.id).in_(ids))).rowcount
            if len(ids) < LOG_CHUNK:
                # Lock and re-read: another daemon may be pruning the same rows.
                rows = conn.execute(
                    select(col(JobRun.id), col(JobRun.job_name), col(JobRun.status))
                    .where(col(JobRun.id).in_(run_ids), col(JobRun.status).not_in(ACTIVE))
                    .with_for_update()
                ).all()
                if rows:
                    conn.execute(delete(JobRun).where(col(JobRun.id).in_([r.id for r in rows])))
                    _add_counts(conn, "run", Counter((r.job_name, r.status) for r in rows))
                return logs, len(rows)
        if timer() >= deadline:
            return logs, 0


def _batches_with_runs(conn: Connection, batch_ids: list[int]) -> set[int]:
    if not batch_ids:
        return set()
    return {
        int(b)
        for (b,) in conn.execute(
            select(col(JobRun.batch_id)).where(col(JobRun.batch_id).in_(batch_ids)).distinct()
        )
    }


def _delete_batches(engine: Engine, batch_ids: list[int]) -> int:
    with write_engine(engine).begin() as conn:
        rows = conn.execute(
            select(
                col(JobBatch.id),
                col(JobBatch.schedule_id),
                col(JobBatch.status),
                col(JobBatch.reason),
            )
            .where(col(JobBatch.id).in_(batch_ids), col(JobBatch.status).not_in(ACTIVE))
            .with_for_update()
        ).all()
        # A run is never added to an old batch, but check under the lock all the same.
        busy = _batches_with_runs(conn, [r.id for r in rows])
        rows = [r for r in rows if r.id not in busy]
        if not rows:
            return 0
        conn.execute(delete(JobBatch).where(col(JobBatch.id).in_([r.id for r in rows])))
        _add_counts(
            conn,
            "slot",
            Counter(
                (r.schedule_id, skip_reason(r.reason))
                for r in rows
                if r.status == RunStatus.SKIPPED and r.schedule_id is not None
            ),
        )
    return len(rows)


def _add_counts(conn: Connection, kind: str, counts: Counter[tuple[str, str]]) -> None:
    """Add ``counts`` to ``pruned_count`` (an upsert on either backend)."""
    if not counts:
        return
    values = [
        {"kind": kind, "label1": a[:100], "label2": b[:32], "count": n}
        for (a, b), n in sorted(counts.items())
    ]
    table = PrunedCount.__table__
    # Each dialect's upsert, imported when used: a daemon on SQLite never loads MySQL's.
    if dialect_name(conn.engine) == "mysql":
        from sqlalchemy.dialects import mysql

        stmt_my = mysql.insert(table).values(values)
        conn.execute(stmt_my.on_duplicate_key_update(count=table.c.count + stmt_my.inserted.count))
    else:
        from sqlalchemy.dialects import sqlite

        stmt_lite = sqlite.insert(table).values(values)
        conn.execute(
            stmt_lite.on_conflict_do_update(
                index_elements=["kind", "label1", "label2"],
                set_={"count": table.c.count + stmt_lite.excluded.count},
            )
        )
