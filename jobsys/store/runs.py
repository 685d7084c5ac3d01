"""Job runs in the database: claiming, finishing, skipping, cancelling, batch outcome.

Claims are conditional UPDATEs whose rowcount says who won, so several daemons share
the work on SQLite and MySQL alike:
- the job's mutex: ``job_definition.running_run_id`` goes from NULL to the run (a job
  never runs twice at once; a later run waits);
- the run: ``status`` goes from QUEUED to RUNNING with ``worker_id`` = the claimer.
A finished run's dependents that can no longer run become SKIPPED at once, and the
daemon that finishes a batch's last run settles the batch and its schedule's counters.

Retries: a FAILED attempt whose job retries (``job_run.retry_policy``) gets its next
attempt inserted QUEUED, with ``not_before`` after the back-off, in the transaction
that records the failure, and names it in ``next_attempt_id``. Rows with a next attempt
no longer count: a batch and its dependents see each job's latest attempt only, so they
wait for the final outcome.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, case, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from jobsys.errors import DatabaseError
from jobsys.retries import RetryPolicy, backoff_delay
from jobsys.runspec import RunSpec
from jobsys.store.db import database_errors, write_engine
from jobsys.store.hotpath import CoreTx, HotConnection, Pending, Tx, marks
from jobsys.store.tables import JobBatch, JobDefinition, JobLog, JobRun, JobSchedule, col
from jobsys.vocabulary import RunStatus, Trigger

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
BROKEN = (RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.CANCELLED)
#: How many queued runs one claim pass looks at (oldest first).
CLAIM_WINDOW = 500


class QueuedRun(NamedTuple):
    """A queued run as the claim reads it (the columns of ``queued_overview``)."""

    id: int
    batch_id: int
    job_name: str
    depends_on: list[str]
    params: dict[str, Any] | None
    trigger: str
    schedule_id: str | None
    scheduled_for: datetime | None
    timeout_s: int | None
    cancel_requested: bool
    not_before: datetime | None
    attempt: int
    total_runs: int


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
                col(JobRun.not_before),
                col(JobRun.attempt),
                col(JobBatch.total_runs),
            )
            .join(JobBatch, col(JobBatch.id) == col(JobRun.batch_id))
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
            col(JobRun.batch_id).in_(sorted(wanted)),
            col(JobRun.job_name).in_(names),
            col(JobRun.next_attempt_id).is_(None),  # each job's latest attempt
        )
    ):
        out[batch_id][name] = status
    return out


def _gated_batches(conn: Connection, queued: Sequence[Any]) -> set[int]:
    """Backfill batches among the queued runs' whose ``after_batch_id`` is still active:
    their runs wait (a backfill runs its slots in order). Read only when backfill runs
    are queued, so other claims cost no extra query."""
    backfill = sorted({row.batch_id for row in queued if row.trigger == Trigger.BACKFILL})
    if not backfill:
        return set()
    earlier = JobBatch.__table__.alias("earlier")
    return {
        bid
        for (bid,) in conn.execute(
            select(col(JobBatch.id))
            .join(earlier, earlier.c.id == col(JobBatch.after_batch_id))
            .where(col(JobBatch.id).in_(backfill), earlier.c.status.in_(ACTIVE))
        )
        if bid is not None
    }


@dataclass
class RunQueue:
    """The daemon's snapshot of queued runs (oldest first) and their dependencies' statuses.

    Re-reading up to ``CLAIM_WINDOW`` queued rows for every claim would cost more than
    the claims themselves in a burst, so the daemon keeps this snapshot and takes from
    it. It is read again when it is empty, when the daemon marks it ``stale`` (it fired
    a slot, was woken, or polled), or when it was cut at the window and half of it is
    used up (runs wait beyond it): so a claim from a deep queue costs the same as from a
    short one (items 8 of issue 12). An outdated entry does no harm: every claim is a
    conditional UPDATE.
    """

    rows: list[Any] = field(default_factory=list)
    statuses: dict[int, dict[str, str]] = field(default_factory=dict)
    stale: bool = True
    #: The last read filled the window: more queued runs may wait beyond it.
    truncated: bool = False
    #: The earliest ``not_before`` still ahead among the rows (a retry's back-off): the
    #: daemon claims again then.
    next_due: datetime | None = None
    #: Backfill batches waiting for an earlier slot's batch (``_gated_batches``).
    gated: set[int] = field(default_factory=set)
    #: Some row of the last read waits for other runs of its batch.
    has_dependencies: bool = False
    #: Batches this daemon claimed runs of (so already RUNNING: see
    #: ``_mark_batches_running``).
    started: set[int] = field(default_factory=set)
    #: Batches whose settling failed after their claim pass committed (id → cascade):
    #: settled with the next claim.
    unsettled: dict[int, bool] = field(default_factory=dict)
    #: Runs this daemon claimed that are their batch's only run (first attempt of a
    #: one-run batch): run id → schedule id. Their success settles the batch without
    #: reading it (``_settle_alone``).
    alone: dict[int, str | None] = field(default_factory=dict)

    def refresh(self, conn: Connection) -> None:
        self.rows = queued_overview(conn)
        self.statuses = _batch_statuses(conn, self.rows)
        self.gated = _gated_batches(conn, self.rows)
        self.stale = False
        self.truncated = len(self.rows) >= CLAIM_WINDOW
        self.has_dependencies = any(row.depends_on for row in self.rows)
        self.next_due = min(
            (r.not_before for r in self.rows if r.not_before is not None), default=None
        )

    def nothing_queued(self) -> None:
        """No run is queued anywhere (the daemon's poll just read so): the snapshot is
        complete, and empty, without reading it."""
        self.rows, self.statuses, self.gated = [], {}, set()
        self.stale = self.truncated = self.has_dependencies = False
        self.next_due = None

    def add(self, runs: Sequence[QueuedRun]) -> None:
        """Runs this daemon just queued (a firing): they join a complete snapshot as they
        are (newest, so last), saving the read of every queued run before the claim; an
        outdated or cut snapshot is read again instead."""
        if self.stale or self.truncated or len(self.rows) + len(runs) > CLAIM_WINDOW:
            self.stale = True
            return
        self.rows.extend(runs)
        for run in runs:
            self.statuses.setdefault(run.batch_id, {})
            self.has_dependencies = self.has_dependencies or bool(run.depends_on)

    @property
    def needs_top_up(self) -> bool:
        return self.truncated and len(self.rows) < CLAIM_WINDOW // 2


#: MySQL errors that roll back a claim pass without harm (it is retried next tick):
#: a deadlock between two daemons' claims, or a lock wait timeout.
_RETRYABLE_MYSQL = (1205, 1213)


def claim_runnable(
    engine: Engine,
    *,
    worker_id: str,
    limit: int,
    clock: Callable[[], datetime],
    known_jobs: Collection[str],
    queue: RunQueue | None = None,
    hot: HotConnection | None = None,
    finished: Sequence[Finished] = (),
    pids: Sequence[tuple[int, int]] = (),
    busy_batches: Collection[int] = (),
) -> list[RunSpec]:
    """Claim up to ``limit`` queued runs whose dependencies all succeeded.

    Runs whose dependencies failed (or were skipped or cancelled) become SKIPPED; runs
    of jobs this daemon does not know become FAILED; runs with a cancel request become
    CANCELLED. One transaction per pass claims every free slot. ``clock`` is read after
    each job's mutex is won, so a run's ``started_at`` is never before the previous run
    of the same job finished. ``queue`` (the daemon's snapshot) saves re-reading the
    queued runs on every call; ``hot`` (the daemon's kept connection) carries the claim
    transaction (see ``jobsys.store.hotpath``).

    ``finished`` and ``pids`` (what ``finish_runs`` takes) are recorded first in the
    same transaction, so a tick that ends runs and starts others commits once; their
    batches are settled after it (see ``finish_runs``; ``busy_batches`` as there). If
    the claim meets a deadlock, they are recorded on their own before this returns.
    """
    hot = hot if hot is not None else HotConnection(engine)
    if limit <= 0:
        if finished or pids:
            finish_runs(
                engine,
                finished,
                worker_id=worker_id,
                now=clock(),
                hot=hot,
                pids=pids,
                busy_batches=busy_batches,
            )
        return []
    q = queue if queue is not None else RunQueue()
    known = set(known_jobs)
    claimed: list[RunSpec] = []
    with database_errors(engine, "cannot claim runs in"):
        fresh = q.stale or not q.rows
        if fresh:
            with engine.connect() as conn:
                q.refresh(conn)
                conn.rollback()
        while True:
            try:
                claimed += _claim_pass(
                    engine,
                    hot,
                    q,
                    worker_id,
                    limit - len(claimed),
                    clock,
                    known,
                    finished=finished,
                    pids=pids,
                    busy_batches=busy_batches,
                )
            except (OperationalError, DatabaseError) as exc:
                cause = exc.orig if isinstance(exc, OperationalError) else exc.__cause__
                code = getattr(cause, "args", (None,))[0]
                if code not in _RETRYABLE_MYSQL:
                    raise
                q.stale = True
                if finished or pids:  # rolled back with the claim: on their own now
                    finish_runs(
                        engine,
                        finished,
                        worker_id=worker_id,
                        now=clock(),
                        hot=hot,
                        pids=pids,
                        busy_batches=busy_batches,
                    )
                return claimed
            finished, pids = (), ()  # recorded by the first pass
            if len(claimed) >= limit or fresh or not q.needs_top_up:
                # Not cut at the window: the snapshot holds every queued run (runs queued
                # since mark it stale). Re-reading it here on every claim made a claim's
                # cost grow with the queue's depth.
                return claimed
            # The snapshot ran short of claimable runs: read it again once.
            fresh = True
            with engine.connect() as conn:
                q.refresh(conn)
                conn.rollback()


def _claim_pass(
    engine: Engine,
    hot: HotConnection,
    q: RunQueue,
    worker_id: str,
    limit: int,
    clock: Callable[[], datetime],
    known: set[str],
    *,
    finished: Sequence[Finished] = (),
    pids: Sequence[tuple[int, int]] = (),
    busy_batches: Collection[int] = (),
) -> list[RunSpec]:
    """One transaction: record ``finished`` and ``pids`` (see ``claim_runnable``), end
    what can no longer run, claim up to ``limit`` runs.

    Candidates are tried in rounds, each round in job-name order, so that two daemons
    claiming at once take the job mutexes in the same order (no deadlock) as long as a
    round suffices (it does unless a job runs elsewhere). A job is tried once per pass:
    once claimed or found running elsewhere, its other queued runs wait without a
    statement each (a deep queue of one job used to cost one UPDATE per queued run).
    """
    now = clock()
    claimed: list[RunSpec] = []
    settle: set[int] = set()
    keep: list[Any] = []  # rows still queued after this pass
    rows = q.rows
    tried: set[str] = set()  # jobs tried in this pass: one run of a job at a time
    scanned = 0  # rows[:scanned] of the snapshot were looked at; the rest stay as they are
    with _outcome_transaction(engine, hot, finished, "cannot claim runs in") as (conn, core):
        if finished or pids:
            _record_outcomes(conn, core, finished, pids, worker_id=worker_id, now=now)
        while rows and len(claimed) < limit:
            candidates: list[Any] = []
            rest: list[Any] = []
            for i, row in enumerate(rows):
                if len(candidates) >= limit - len(claimed):
                    rest = rows[i:]
                    break
                scanned += 1
                if row.job_name in tried and not row.cancel_requested and not row.depends_on:
                    # Its job was tried in this pass: it waits. First, and cheap, because a
                    # deep queue of one job is mostly such rows.
                    keep.append(row)
                    continue
                batch = q.statuses.setdefault(row.batch_id, {})
                if row.batch_id in q.gated and not row.cancel_requested:
                    keep.append(row)  # a backfill slot waiting for the one before it
                    continue
                if row.cancel_requested:
                    if _end_queued_in(
                        conn, row.id, RunStatus.CANCELLED, "cancelled before it started", now
                    ):
                        settle.add(row.batch_id)
                    continue
                if row.not_before is not None and row.not_before > now:
                    keep.append(row)  # a retry waiting out its back-off
                    continue
                broken = [d for d in row.depends_on if batch.get(d) in BROKEN]
                if broken:
                    why = f"dependency {broken[0]} {batch[broken[0]].lower()}"
                    if _end_queued_in(conn, row.id, RunStatus.SKIPPED, why, now):
                        batch[row.job_name] = RunStatus.SKIPPED
                        settle.add(row.batch_id)
                    continue
                if any(batch.get(d) != RunStatus.SUCCESS for d in row.depends_on):
                    keep.append(row)  # waiting for a dependency
                    continue
                if row.job_name not in known:
                    why = f"job {row.job_name!r} is not defined in this daemon's application"
                    if _end_queued_in(conn, row.id, RunStatus.FAILED, why, now):
                        batch[row.job_name] = RunStatus.FAILED
                        settle.add(row.batch_id)
                    continue
                if row.job_name in tried:
                    keep.append(row)  # its job runs (here or elsewhere): it waits
                    continue
                tried.add(row.job_name)
                candidates.append(row)
            if not candidates:
                break
            started = _claim_round(conn, candidates, worker_id, clock, keep)
            for row in candidates:  # back in queue order
                if row.id in started:
                    q.statuses[row.batch_id][row.job_name] = RunStatus.RUNNING
                    claimed.append(_claimed_run(row, started[row.id]))
                    if row.total_runs == 1 and row.attempt == 1:
                        q.alone[row.id] = row.schedule_id
            rows = rest
        _mark_batches_running(conn, claimed, q.started)
        cascade = _settle_map(finished)
        busy = {run.batch_id for run in claimed}.union(busy_batches)
        busy |= _settle_alone(conn, finished, q.alone, worker_id, now)
        _settle_in(conn, sorted(b for b, c in cascade.items() if not c and b not in busy), now)
    q.started.update(run.batch_id for run in claimed)
    if len(q.started) > 10_000:  # only a saving: forget old batches now and then
        q.started = {run.batch_id for run in claimed}
    if len(q.alone) > 10_000:  # only a saving (runs abandoned, never finished here)
        q.alone = {run.run_id: run.schedule_id for run in claimed if run.run_id in q.alone}
    # What may have to skip dependents is settled after the commit, in Core.
    cascading = {b: True for b, c in cascade.items() if c}
    cascading.update(dict.fromkeys(settle, True))
    cascading.update(q.unsettled)
    try:
        settle_batches(engine, cascading, now, hot=hot, busy=busy)
        q.unsettled = {}
    except (DatabaseError, SQLAlchemyError):
        # The claims are committed: the caller must get them (or their runs would stay
        # RUNNING, never started); the batches are settled with the next claim.
        q.unsettled = cascading
    # The snapshot keeps, in queue order, the rows looked at that still wait, then the
    # rows not looked at (a slice: a claim does not cost a pass over a deep queue).
    done = {c.run_id for c in claimed}
    kept = sorted((row for row in keep if row.id not in done), key=lambda r: r.id)
    q.rows = kept + q.rows[scanned:]
    # The earliest back-off still ahead: among the rows kept, and (from ``refresh``) among
    # the rest. A value left from a row claimed since only costs an early look.
    ahead = [r.not_before for r in kept if r.not_before is not None and r.not_before > now]
    if q.next_due is not None and q.next_due > now:
        ahead.append(q.next_due)
    q.next_due = min(ahead, default=None)
    return claimed


def _claimed_run(row: Any, started_at: datetime) -> RunSpec:
    """The claimed run; the daemon adds what the database does not hold."""
    return RunSpec(
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


# The claim's statements (plain SQL on the hot path, see ``jobsys.store.hotpath``).
_TAKE_MUTEX = (
    "UPDATE job_definition SET running_run_id = ?, running_worker_id = ?"
    " WHERE name = ? AND running_run_id IS NULL"
)
_RELEASE_MUTEX = (
    "UPDATE job_definition SET running_run_id = NULL, running_worker_id = NULL"
    " WHERE name = ? AND running_run_id = ?"
)
_START_BATCH = (
    "UPDATE job_batch SET status = 'RUNNING', started_at = ?, updated_at = ?"
    " WHERE id = ? AND status = 'QUEUED'"
)
_END_QUEUED = (
    "UPDATE job_run SET status = ?, error = ?, finished_at = ?, updated_at = ?"
    " WHERE id = ? AND status = 'QUEUED'"
)


@functools.lru_cache(maxsize=256)
def _finish_runs_sql(count: int, same: tuple[bool, ...] = ()) -> str:
    """``_FINISH_RUN`` for ``count`` runs in one statement: for each column, (run id,
    value) pairs, or one value where ``same`` says every run has it (the first
    ``_SAME_COLUMNS``); then the run ids and the worker id."""
    cases = f"CASE id {' '.join(['WHEN ? THEN ?'] * count)} END"
    sets = ", ".join(
        f"{column} = ?"
        if i < len(same) and same[i]
        else f"{column} = {cases}"
        if column not in _KEPT_WHEN_NULL
        else f"{column} = COALESCE({cases}, {column})"
        for i, column in enumerate(_FINISH_COLUMNS)
    )
    return (
        f"UPDATE job_run SET {sets} WHERE id IN ({marks(count)})"
        " AND status = 'RUNNING' AND worker_id = ?"
    )


_FINISH_COLUMNS = (  # the first _SAME_COLUMNS are often the same for every run
    "status",
    "error",
    "exit_code",
    "finished_at",
    "duration_ms",
    "updated_at",
    "pid",
    "started_at",
)
#: Columns an outcome may not know (None): the stored value stays. ``started_at`` is
#: written again because a run claimed ahead (``Daemon.ahead``) started after its claim.
_KEPT_WHEN_NULL = ("pid", "started_at")
_SAME_COLUMNS = 3


@functools.lru_cache(maxsize=64)
def _set_pids_sql(count: int) -> str:
    cases = " ".join(["WHEN ? THEN ?"] * count)
    return f"UPDATE job_run SET pid = CASE id {cases} END WHERE id IN ({marks(count)})"


def _set_pids(tx: Tx, pids: Sequence[tuple[int, int]]) -> None:
    if len(pids) == 1:
        tx.defer(_SET_PID, (pids[0][1], pids[0][0]))
    elif pids:
        tx.defer(
            _set_pids_sql(len(pids)),
            (*(v for pair in pids for v in pair), *(run_id for run_id, _ in pids)),
        )


def _start_runs_sql(count: int) -> str:
    return (
        "UPDATE job_run SET status = 'RUNNING', worker_id = ?, started_at = ?, updated_at = ?"
        f" WHERE id IN ({marks(count)}) AND status = 'QUEUED'"
    )


def _claim_round(
    conn: Tx,
    candidates: list[Any],
    worker_id: str,
    clock: Callable[[], datetime],
    keep: list[Any],
) -> dict[int, datetime]:
    """Take each candidate job's mutex (in name order), then all their runs in one
    UPDATE; returns the start instant by run id. Runs whose job runs elsewhere go to
    ``keep`` (they wait); runs taken by another daemon meanwhile are dropped.

    One conditional UPDATE per mutex, on purpose: taking them all in one statement
    (``CASE name ...``, tried) let two daemons run one job at once on MariaDB under
    contention (tests/system/test_multi_daemon.py caught it)."""
    ordered = sorted(candidates, key=lambda r: r.job_name)
    # Each mutex its own conditional UPDATE, sent together (one round trip on MySQL,
    # with the tick's deferred outcomes ahead of them).
    taken_mutexes = conn.each([(_TAKE_MUTEX, (r.id, worker_id, r.job_name)) for r in ordered])
    won: list[Any] = []
    for row, count in zip(ordered, taken_mutexes, strict=True):
        if count == 1:
            won.append(row)
        else:
            keep.append(row)  # the job runs elsewhere: this run waits
    if not won:
        return {}
    now = clock()  # after every mutex: the previous run of each job has finished
    ids = [row.id for row in won]
    at = conn.hot.ts(now)
    taken = conn.execute(_start_runs_sql(len(ids)), (worker_id, at, at, *ids))
    if taken == len(won):
        return dict.fromkeys(ids, now)
    # Another daemon took some of them (or they were cancelled): find ours, and give
    # the other mutexes back.
    ours: set[int] = {
        int(rid)
        for (rid,) in conn.rows(
            f"SELECT id FROM job_run WHERE id IN ({marks(len(ids))})"
            " AND status = 'RUNNING' AND worker_id = ?",
            (*ids, worker_id),
        )
    }
    lost = [row for row in won if row.id not in ours]
    conn.executemany(_RELEASE_MUTEX, [(r.job_name, r.id) for r in lost])
    return dict.fromkeys(sorted(ours), now)


def _mark_batches_running(conn: Tx, claimed: Sequence[RunSpec], started: Collection[int]) -> None:
    """The batches of the claimed runs become RUNNING (those still QUEUED), except
    ``started``: batches this daemon has claimed a run of before (a batch never goes
    back to QUEUED), so a burst from one batch costs no statement per claim for it."""
    first: dict[int, datetime] = {}
    for run in claimed:
        if run.started_at is not None and run.batch_id not in started:  # always set
            first.setdefault(run.batch_id, run.started_at)
    if not first:
        return
    ts = conn.hot.ts
    ids = sorted(first)
    instants = {first[b] for b in ids}
    if len(instants) == 1:  # the common case: one claim round, one instant
        at = ts(instants.pop())
        conn.defer(_start_batches_sql(len(ids)), (at, at, *ids))
    else:
        for b in ids:
            conn.defer(_START_BATCH, (ts(first[b]), ts(first[b]), b))


@functools.lru_cache(maxsize=64)
def _start_batches_sql(count: int) -> str:
    return (
        "UPDATE job_batch SET status = 'RUNNING', started_at = ?, updated_at = ?"
        f" WHERE id IN ({marks(count)}) AND status = 'QUEUED'"
    )


def _end_queued_in(conn: Tx, run_id: int, status: RunStatus, error: str, now: datetime) -> bool:
    at = conn.hot.ts(now)
    return conn.execute(_END_QUEUED, (status.value, error, at, at, run_id)) == 1


@dataclass(frozen=True)
class Finished:
    """A run's outcome, as the daemon hands it to ``finish_runs``."""

    run_id: int
    batch_id: int
    job_name: str
    status: str
    error: str | None
    exit_code: int | None
    started_at: datetime | None
    #: How long the process ran (measured by the executor up to its exit). With
    #: ``started_at`` it gives the end instant, so an outcome written late (the database
    #: was down when the run ended) keeps its true end and duration.
    duration_ms: int | None = None
    #: The run's process, when not recorded yet (written with the outcome).
    pid: int | None = None

    def ended_at(self, now: datetime) -> datetime:
        if self.started_at is None or self.duration_ms is None:
            return now
        return min(now, self.started_at + timedelta(milliseconds=self.duration_ms))


_FINISH_RUN = (
    "UPDATE job_run SET status = ?, error = ?, exit_code = ?, finished_at = ?,"
    " duration_ms = ?, updated_at = ?, pid = COALESCE(?, pid),"
    " started_at = COALESCE(?, started_at) WHERE id = ? AND status = 'RUNNING' AND worker_id = ?"
)
_SET_PID = "UPDATE job_run SET pid = ? WHERE id = ?"


def _release_mutexes_sql(jobs: int, runs: int, *, of_worker: bool = False) -> str:
    # Names and run ids as two lists: a job's mutex can only hold a run of that job,
    # so the cross product matches exactly the pairs given. ``of_worker``: only mutexes
    # this worker holds (one more parameter, the worker id).
    return (
        "UPDATE job_definition SET running_run_id = NULL, running_worker_id = NULL"
        f" WHERE name IN ({marks(jobs)}) AND running_run_id IN ({marks(runs)})"
        + (" AND running_worker_id = ?" if of_worker else "")
    )


def finish_runs(
    engine: Engine,
    outcomes: Sequence[Finished],
    *,
    worker_id: str,
    now: datetime,
    hot: HotConnection | None = None,
    pids: Sequence[tuple[int, int]] = (),
    busy_batches: Collection[int] = (),
    alone: dict[int, str | None] | None = None,
) -> int:
    """Record outcomes and release the job mutexes (one transaction), then settle the
    batches (a second one, see ``settle_batches``). Only the lease holder can finish a
    run: one recovered meanwhile (this daemon was declared dead) is left alone. Returns
    how many outcomes were recorded. ``pids`` (``(run_id, pid)`` pairs of runs started
    since the last call, see ``set_pids``) ride in the same transaction.
    ``busy_batches``: batches with a run still RUNNING under this daemon's lease, which
    cannot be done yet (their "anything still active?" read is saved).

    The daemon records every outcome of a tick here at once (or with its claims, see
    ``claim_runnable``). That is safe on a crash: until this transaction commits, its
    runs stay RUNNING under this daemon's lease, so a daemon that dies before
    committing leaves them to ``workers.recover_dead``, which fails them ("daemon
    lost", retried by their policy) once the lease expires, exactly as for a daemon
    that died while they ran; and a run's job mutex is released only in the
    transaction that records its outcome.
    """
    if not outcomes and not pids:
        return 0
    hot = hot if hot is not None else HotConnection(engine)
    cascade = _settle_map(outcomes)
    with database_errors(engine, "cannot finish runs in"):
        with _outcome_transaction(engine, hot, outcomes, "cannot finish runs in") as (tx, core):
            recorded = _record_outcomes(tx, core, outcomes, pids, worker_id=worker_id, now=now)
            skip = _settle_alone(tx, outcomes, alone or {}, worker_id, now)
            skip.update(busy_batches)
            done = sorted(b for b, c in cascade.items() if not c and b not in skip)
            _settle_in(tx, done, now)
        settle_batches(engine, {b: True for b, c in cascade.items() if c}, now, hot=hot)
    return max(0, recorded.rowcount)


@functools.lru_cache(maxsize=64)
def _settle_alone_sql(count: int) -> str:
    """Settle ``count`` one-run batches as SUCCESS: the instant twice, (batch id,
    duration) pairs, the batch ids, the run ids, the worker id."""
    cases = " ".join(["WHEN ? THEN ?"] * count)
    return (
        "UPDATE job_batch SET status = 'SUCCESS', finished_at = ?, updated_at = ?,"
        f" duration_ms = CASE id {cases} END"
        f" WHERE id IN ({marks(count)}) AND status IN ('QUEUED', 'RUNNING')"
        " AND EXISTS (SELECT 1 FROM job_run WHERE job_run.batch_id = job_batch.id"
        f" AND job_run.id IN ({marks(count)}) AND job_run.status = 'SUCCESS'"
        " AND job_run.worker_id = ?)"
    )


@functools.lru_cache(maxsize=64)
def _settle_alone_schedules_sql(batches: int, schedules: int) -> str:
    """Their schedules' counters after a success: the batch ids twice, the instant, the
    schedule ids, the batch ids, the instant."""
    ids = marks(batches)
    return (
        "UPDATE job_schedule SET consecutive_failures = 0,"
        f" last_run_status = CASE WHEN last_batch_id IN ({ids}) THEN 'SUCCESS'"
        " ELSE last_run_status END,"
        f" locked_by = CASE WHEN last_batch_id IN ({ids}) THEN NULL ELSE locked_by END,"
        f" updated_at = ? WHERE id IN ({marks(schedules)}) AND EXISTS (SELECT 1 FROM job_batch"
        f" WHERE job_batch.schedule_id = job_schedule.id AND job_batch.id IN ({ids})"
        " AND job_batch.status = 'SUCCESS' AND job_batch.finished_at = ?)"
    )


def _settle_alone(
    tx: Tx,
    outcomes: Sequence[Finished],
    alone: dict[int, str | None],
    worker_id: str,
    now: datetime,
) -> set[int]:
    """Settle the batches whose only run just succeeded (``RunQueue.alone``), without
    reading them: the common cron case, one job per slot. Returns their ids.

    Two deferred statements (they travel with the COMMIT on MySQL), each conditional on
    the one before it having happened in this transaction: a batch only if this daemon's
    outcome was recorded (a run recovered by another daemon meanwhile is not ours to
    settle) and it is still active; a schedule's counters only for a batch that now
    carries this instant, so a batch is counted once, as ``_write_settled`` does. A
    success moves no failure count, so one schedule's two batches may share the UPDATE."""
    done: list[tuple[Finished, datetime, str | None]] = []
    for o in outcomes:
        if o.run_id not in alone:
            continue
        schedule_id = alone.pop(o.run_id)
        if o.status == RunStatus.SUCCESS and o.started_at is not None:
            done.append((o, o.started_at, schedule_id))
        # else: the general path (a retry may follow, dependents be skipped)
    if not done:
        return set()
    at = tx.hot.ts(now)
    args: list[Any] = [at, at]
    for o, started, _ in done:
        # The batch started when its only run did (``_mark_batches_running``).
        args += (o.batch_id, max(0, int((now - started).total_seconds() * 1000)))
    args += (o.batch_id for o, _, _ in done)
    args += (o.run_id for o, _, _ in done)
    args.append(worker_id)
    tx.defer(_settle_alone_sql(len(done)), args)
    batch_ids = [o.batch_id for o, _, _ in done]
    schedules = sorted({sid for _, _, sid in done if sid is not None})
    if schedules:
        tx.defer(
            _settle_alone_schedules_sql(len(batch_ids), len(schedules)),
            (*batch_ids, *batch_ids, at, *schedules, *batch_ids, at),
        )
    return set(batch_ids)


def _settle_in(tx: Tx, ids: list[int], now: datetime) -> None:
    """Settle those of these batches (in which only successes just ended) that are done,
    in the transaction that recorded the outcomes (``tx``).

    Safe, although the outcome is not committed yet: two transactions that end a
    batch's last two runs at once must not both miss the other's end. On SQLite they
    cannot overlap (one writer at a time). On MySQL every settler (this, ``_settle``,
    ``settle_batches``) first locks the batch's row, so the later one waits for the
    earlier one's commit and its read (READ COMMITTED) sees that run ended.
    """
    if not ids:
        return
    if tx.hot.dialect == "mysql":
        # Lock, then read (in that order, one round trip with packets): the read only
        # counts for the batches locked.
        locked, counts = tx.query_each(
            [
                (
                    f"SELECT id FROM job_batch WHERE id IN ({marks(len(ids))})"
                    " AND status IN ('QUEUED', 'RUNNING') ORDER BY id FOR UPDATE",
                    ids,
                ),
                (_read_done_sql(len(ids)), ids),
            ]
        )
        mine = {int(b) for (b,) in locked}
        done = _done_of(tx, [r for r in counts if int(r[0]) in mine], now)
    else:
        done = _read_done(tx, ids, now)
    _write_settled(tx, done, exact=True)


@contextlib.contextmanager
def _outcome_transaction(
    engine: Engine, hot: HotConnection, outcomes: Sequence[Finished], doing: str
) -> Iterator[tuple[Tx, Connection | None]]:
    """The transaction that records ``outcomes``: plain SQL on ``hot``; or, when one of
    them FAILED (uncommon), a Core one, since a failed attempt's retry is inserted with
    Core in the same transaction (the Core connection comes second)."""
    if any(o.status == RunStatus.FAILED for o in outcomes):
        with write_engine(engine).begin() as conn:
            yield CoreTx(hot, conn), conn
    else:
        with hot.transaction(doing) as tx:
            yield tx, None


def _record_outcomes(
    tx: Tx,
    core: Connection | None,
    outcomes: Sequence[Finished],
    pids: Sequence[tuple[int, int]],
    *,
    worker_id: str,
    now: datetime,
) -> Pending:
    """``finish_runs``'s statements in ``tx``, deferred (they travel with the next
    statement on MySQL); the result counts the outcomes recorded, once sent."""
    recorded = Pending()
    recorded.rowcount = 0
    if outcomes:
        ts = tx.hot.ts
        rows = []
        for o in outcomes:
            ended = o.ended_at(now)
            duration = (
                None
                if o.started_at is None
                else max(0, int((ended - o.started_at).total_seconds() * 1000))
            )
            at = ts(ended)
            error = None if o.status == RunStatus.SUCCESS else o.error  # models.ERROR_STATUSES
            started = ts(o.started_at)
            rows.append(
                (str(o.status), error, o.exit_code, at, duration, at, o.pid, started, o.run_id)
            )
        if len(rows) == 1:
            recorded = tx.defer(_FINISH_RUN, (*rows[0], worker_id))
        else:  # one statement (one round trip on MySQL, where executemany sends each)
            # Columns with one value in every row (status, error, exit code: commonly
            # SUCCESS, NULL, 0) are set once rather than per run.
            same = tuple(len({row[c] for row in rows}) == 1 for c in range(_SAME_COLUMNS))
            args: list[Any] = []
            for column in range(len(_FINISH_COLUMNS)):
                if column < _SAME_COLUMNS and same[column]:
                    args.append(rows[0][column])
                    continue
                for row in rows:
                    args += (row[-1], row[column])
            args += [row[-1] for row in rows]
            args.append(worker_id)
            recorded = tx.defer(_finish_runs_sql(len(rows), same), args)
        failed = [o.run_id for o in outcomes if o.status == RunStatus.FAILED]
        if failed:
            assert core is not None  # see _outcome_transaction
            _queue_retries(core, failed, worker_id)
        jobs = sorted({o.job_name for o in outcomes})
        tx.defer(
            _release_mutexes_sql(len(jobs), len(outcomes)),
            (*jobs, *(o.run_id for o in outcomes)),
        )
    _set_pids(tx, pids)
    return recorded


def _settle_map(outcomes: Sequence[Finished]) -> dict[int, bool]:
    """The batches to settle after ``outcomes``: id → whether to cascade (something
    other than a success ended, so dependents may have to be skipped)."""
    cascade: dict[int, bool] = {}
    for o in outcomes:
        cascade[o.batch_id] = cascade.get(o.batch_id, False) or o.status != RunStatus.SUCCESS
    return cascade


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
    """Record one run's outcome (see ``finish_runs``); False if this daemon lost it."""
    with database_errors(engine, "cannot finish run in"), engine.connect() as conn:
        row = conn.execute(
            select(col(JobRun.batch_id), col(JobRun.job_name)).where(col(JobRun.id) == run_id)
        ).first()
        conn.rollback()
    if row is None:
        return False
    done = Finished(run_id, row.batch_id, row.job_name, status, error, exit_code, started_at)
    return finish_runs(engine, [done], worker_id=worker_id, now=now) == 1


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
        if failed:  # "daemon lost" is a failed attempt like any other
            _queue_retries(conn, failed, worker_id)
    for batch_id in batches:
        settle_batch(engine, batch_id, now)
    return failed


def _queue_retries(conn: Connection, run_ids: Sequence[int], worker_id: str) -> list[int]:
    """Insert the next attempt of each of these FAILED runs (held by ``worker_id``) whose
    job retries and has attempts left, due after the back-off from the failed attempt's
    end; returns the new run ids. A run with a cancel request is not retried (cancel
    stops further attempts), nor one that already has a next attempt."""
    rows = conn.execute(
        select(JobRun).where(
            col(JobRun.id).in_(sorted(run_ids)),
            col(JobRun.status) == RunStatus.FAILED,
            col(JobRun.worker_id) == worker_id,
            col(JobRun.next_attempt_id).is_(None),
            col(JobRun.cancel_requested).is_(False),
            col(JobRun.retry_policy).is_not(None),
        )
    ).all()
    created: list[int] = []
    for row in rows:
        policy = RetryPolicy.from_dict(row.retry_policy)
        first = row.retry_of or row.id
        delay = None if policy is None else backoff_delay(policy, row.attempt, first_run_id=first)
        if delay is None:
            continue
        ended = row.finished_at or row.updated_at
        inserted = conn.execute(
            insert(JobRun).values(
                batch_id=row.batch_id,
                job_name=row.job_name,
                status=RunStatus.QUEUED,
                trigger=row.trigger,
                schedule_id=row.schedule_id,
                scheduled_for=row.scheduled_for,
                params=row.params,
                triggered_by=row.triggered_by,
                depends_on=row.depends_on,
                position=row.position,
                queued_at=ended,
                timeout_s=row.timeout_s,
                cancel_requested=False,
                updated_at=ended,
                attempt=row.attempt + 1,
                retry_of=first,
                not_before=ended + timedelta(seconds=delay),
                retry_policy=row.retry_policy,
            )
        ).inserted_primary_key
        assert inserted is not None
        new_id = inserted[0]
        conn.execute(update(JobRun).where(col(JobRun.id) == row.id).values(next_attempt_id=new_id))
        created.append(int(new_id))
    return created


def settle_batch(
    engine: Engine, batch_id: int, now: datetime, *, cascade: bool = True
) -> str | None:
    """Skip queued runs that can no longer run; if nothing is left active, set the batch's
    outcome (once: a conditional UPDATE) and its schedule's counters. Returns the outcome
    when this call settled the batch."""
    with write_engine(engine).begin() as conn:
        return _settle(conn, batch_id, now, cascade=cascade)


_BATCH_COUNTS = (
    select(col(JobRun.batch_id), col(JobRun.status), func.count())
    .where(
        col(JobRun.batch_id).in_(bindparam("b_ids", expanding=True)),
        col(JobRun.next_attempt_id).is_(None),  # final attempts only
    )
    .group_by(col(JobRun.batch_id), col(JobRun.status))
)
_BATCH_TIMES = select(
    col(JobBatch.id), col(JobBatch.schedule_id), col(JobBatch.created_at), col(JobBatch.started_at)
).where(col(JobBatch.id).in_(bindparam("b_ids", expanding=True)))
_SETTLE_BATCH = (
    update(JobBatch)
    .where(col(JobBatch.id) == bindparam("b_id"), col(JobBatch.status).in_(ACTIVE))
    .values(
        status=bindparam("b_status"),
        finished_at=bindparam("b_at"),
        updated_at=bindparam("b_at"),
        duration_ms=bindparam("b_duration"),
    )
)
_SETTLE_SCHEDULE = (
    update(JobSchedule)
    .where(col(JobSchedule.id) == bindparam("b_sid"))
    .values(
        failure_count=col(JobSchedule.failure_count) + bindparam("b_failed"),
        # +1 after a failure, back to 0 after anything else
        consecutive_failures=(col(JobSchedule.consecutive_failures) + 1) * bindparam("b_failed"),
        last_run_status=case(
            (col(JobSchedule.last_batch_id) == bindparam("b_id"), bindparam("b_status")),
            else_=col(JobSchedule.last_run_status),
        ),
        locked_by=case(
            (col(JobSchedule.last_batch_id) == bindparam("b_id"), None),
            else_=col(JobSchedule.locked_by),
        ),
        updated_at=bindparam("b_at"),
    )
)


def _outcome(counts: dict[str, int]) -> str:
    if set(counts) <= {RunStatus.SUCCESS}:
        return RunStatus.SUCCESS
    if counts.get(RunStatus.FAILED):
        return RunStatus.FAILED
    if counts.get(RunStatus.CANCELLED):
        return RunStatus.CANCELLED
    return RunStatus.FAILED


def settle_batches(
    engine: Engine,
    batches: dict[int, bool],
    now: datetime,
    *,
    hot: HotConnection | None = None,
    busy: Collection[int] = (),
) -> None:
    """``settle_batch`` for many batches (id → cascade).

    Run after the outcomes are committed, never in their transaction: two daemons that
    finish a batch's last two runs at once must each see the other's run ended, or
    neither would settle the batch. ``busy``: batches the caller knows still have a
    run RUNNING under its lease; they are not done, so only their cascade (skipping
    dependents) is applied. The caller settles them when that run ends.
    """
    if not batches:
        return
    hot = hot if hot is not None else HotConnection(engine)
    cascading = sorted(b for b, cascade in batches.items() if cascade)
    if cascading:  # uncommon (something failed): Core, one transaction
        with write_engine(engine).begin() as conn:
            for batch_id in cascading:
                _settle(conn, batch_id, now, cascade=True)
    ids = sorted(b for b, cascade in batches.items() if not cascade and b not in busy)
    if not ids:
        return
    # Only successes ended in these (nothing to skip): one read tells which are done,
    # with what settling them needs. A batch none of whose runs is active stays so (runs
    # are added to a batch only while one of its runs is active: a retry, with the
    # failure), so on SQLite the read comes before the write lock is taken, and only
    # when something is done; on MySQL it is the write transaction's first statement.
    # The settling UPDATE is conditional: a stale answer cannot settle a batch twice.
    if hot.dialect == "mysql":  # under the batch rows' locks (see _settle_in)
        with hot.transaction("cannot settle batches in") as tx:
            _settle_in(tx, ids, now)
        return
    else:
        with hot.transaction("cannot settle batches in", write=False) as reads:
            done = _read_done(reads, ids, now)
        if not done:
            return
        try:
            with hot.transaction("cannot settle batches in") as tx:
                _write_settled(tx, done)
            return
        except _Contended:
            pass
    # Another daemon settled some of them meanwhile: one by one, so that each schedule's
    # counters move once per batch.
    with hot.transaction("cannot settle batches in") as tx:
        _write_settled(tx, _read_done(tx, ids, now), one_by_one=True)


class _Contended(Exception):
    """A multi-row settle matched fewer batches than it meant to (see ``_write_settled``)."""


@dataclass(frozen=True)
class _Done:
    batch_id: int
    schedule_id: str | None
    outcome: str
    duration_ms: int
    at: Any  # the instant as the column stores it


def _read_done(tx: Tx, ids: list[int], now: datetime) -> list[_Done]:
    """Which of these batches have no active run left (each job's final attempt), with
    their outcome and duration, in one statement."""
    return _done_of(tx, tx.rows(_read_done_sql(len(ids)), ids), now)


@functools.lru_cache(maxsize=64)
def _read_done_sql(count: int) -> str:
    return (
        "SELECT r.batch_id, r.status, COUNT(*), b.schedule_id, b.created_at, b.started_at"
        " FROM job_run r JOIN job_batch b ON b.id = r.batch_id"
        f" WHERE r.batch_id IN ({marks(count)}) AND r.next_attempt_id IS NULL"
        " GROUP BY r.batch_id, r.status, b.schedule_id, b.created_at, b.started_at"
    )


def _done_of(tx: Tx, rows: Sequence[tuple[Any, ...]], now: datetime) -> list[_Done]:
    """``_read_done`` from the rows of its statement."""
    counts: dict[int, dict[str, int]] = {}
    info: dict[int, tuple[str | None, datetime]] = {}
    for batch_id, status, n, schedule_id, created_at, started_at in rows:
        counts.setdefault(int(batch_id), {})[str(status)] = int(n)
        info[int(batch_id)] = (schedule_id, tx.hot.read_ts(started_at or created_at))
    at = tx.hot.ts(now)
    done = []
    for batch_id, by_status in sorted(counts.items()):
        if any(by_status.get(s) for s in ACTIVE):
            continue
        schedule_id, began = info[batch_id]
        duration = max(0, int((now - began).total_seconds() * 1000))
        done.append(_Done(batch_id, schedule_id, str(_outcome(by_status)), duration, at))
    return done


def _write_settled(
    tx: Tx, done: list[_Done], *, one_by_one: bool = False, exact: bool = False
) -> None:
    """Settle ``done`` (conditional on each still being active) and move their schedules'
    counters. Many at once: one UPDATE for the batches and one for the schedules; if the
    batches' UPDATE matched fewer rows than given (another daemon settled one of them),
    ``_Contended`` is raised: the caller rolls back and goes one by one. ``exact``: the
    caller holds the write lock or the batches' row locks, so nobody else settles them
    meanwhile."""
    if not done:
        return
    settled: list[_Done] = []
    args: list[Any] = []
    if exact and len(done) == 1:
        # Under the caller's locks the batch is still active: the UPDATE matches, and
        # its result is not needed (deferred: it travels with the COMMIT on MySQL).
        d = done[0]
        tx.defer(_SETTLE_BATCH_SQL, (d.outcome, d.at, d.at, d.duration_ms, d.batch_id))
        settled = done
    elif len(done) == 1 or one_by_one:
        for d in done:
            if tx.execute(_SETTLE_BATCH_SQL, (d.outcome, d.at, d.at, d.duration_ms, d.batch_id)):
                settled.append(d)
    else:
        for d in done:
            args += (d.batch_id, d.outcome)
        for d in done:
            args += (d.batch_id, d.duration_ms)
        args += (done[0].at, done[0].at, *(d.batch_id for d in done))
        if exact:
            tx.defer(_settle_batches_sql(len(done)), args)
        elif tx.execute(_settle_batches_sql(len(done)), args) != len(done):
            raise _Contended
        settled = done
    scheduled = [d for d in settled if d.schedule_id is not None]
    if len({d.schedule_id for d in scheduled}) == len(scheduled) > 1:
        failed: list[Any] = []
        for d in scheduled:
            failed += (d.schedule_id, 1 if d.outcome == RunStatus.FAILED else 0)
        args = failed + failed
        for d in scheduled:
            args += (d.schedule_id, d.batch_id, d.outcome)
        for d in scheduled:
            args += (d.schedule_id, d.batch_id)
        args += (done[0].at, *(d.schedule_id for d in scheduled))
        tx.defer(_settle_schedules_sql(len(scheduled)), args)
        return
    rows = []
    for d in scheduled:  # in order: one schedule's batches move its counters in turn
        one = 1 if d.outcome == RunStatus.FAILED else 0
        rows.append((one, one, d.batch_id, d.outcome, d.batch_id, d.at, d.schedule_id))
    if tx.hot.packets:
        for row in rows:
            tx.defer(_SETTLE_SCHEDULE_SQL, row)
    else:
        tx.executemany(_SETTLE_SCHEDULE_SQL, rows)


_SETTLE_BATCH_SQL = (
    "UPDATE job_batch SET status = ?, finished_at = ?, updated_at = ?, duration_ms = ?"
    " WHERE id = ? AND status IN ('QUEUED', 'RUNNING')"
)
_SETTLE_SCHEDULE_SQL = (
    "UPDATE job_schedule SET failure_count = failure_count + ?,"
    # +1 after a failure, back to 0 after anything else
    " consecutive_failures = (consecutive_failures + 1) * ?,"
    " last_run_status = CASE WHEN last_batch_id = ? THEN ? ELSE last_run_status END,"
    " locked_by = CASE WHEN last_batch_id = ? THEN NULL ELSE locked_by END,"
    " updated_at = ? WHERE id = ?"
)


@functools.lru_cache(maxsize=64)
def _settle_batches_sql(count: int) -> str:
    """``_SETTLE_BATCH_SQL`` for ``count`` batches: (id, status) pairs, (id, duration)
    pairs, the instant twice, the ids."""
    cases = " ".join(["WHEN ? THEN ?"] * count)
    return (
        f"UPDATE job_batch SET status = CASE id {cases} END,"
        f" duration_ms = CASE id {cases} END, finished_at = ?, updated_at = ?"
        f" WHERE id IN ({marks(count)}) AND status IN ('QUEUED', 'RUNNING')"
    )


@functools.lru_cache(maxsize=64)
def _settle_schedules_sql(count: int) -> str:
    """``_SETTLE_SCHEDULE_SQL`` for ``count`` different schedules: (id, failed) pairs
    twice; (id, batch id, outcome) triples; (id, batch id) pairs; the instant; the
    ids."""
    failed = f"CASE id {' '.join(['WHEN ? THEN ?'] * count)} END"
    last = " ".join(["WHEN id = ? AND last_batch_id = ? THEN ?"] * count)
    mine = " OR ".join(["(id = ? AND last_batch_id = ?)"] * count)
    return (
        f"UPDATE job_schedule SET failure_count = failure_count + {failed},"
        f" consecutive_failures = (consecutive_failures + 1) * {failed},"
        f" last_run_status = CASE {last} ELSE last_run_status END,"
        f" locked_by = CASE WHEN {mine} THEN NULL ELSE locked_by END,"
        f" updated_at = ? WHERE id IN ({marks(count)})"
    )


def _settle(conn: Connection, batch_id: int, now: datetime, *, cascade: bool) -> str | None:
    """``settle_batch`` in the caller's transaction.

    ``cascade=False`` (only successes, so nothing new is blocked) first asks the indexed
    question "is any run still active?" and stops there in the common case, so finishing
    the runs of a large batch stays linear.
    """
    # The batch's row lock first (MySQL; see _settle_in): two settlers never both miss
    # each other's last run.
    conn.execute(_LOCK_BATCH, {"b_batch_id": batch_id})
    if not cascade and _has_active(conn, batch_id):
        return None
    if cascade:
        _skip_blocked(conn, batch_id, now)
    counts: dict[str, int] = {
        status: int(n) for _, status, n in conn.execute(_BATCH_COUNTS, {"b_ids": [batch_id]})
    }
    if any(counts.get(s) for s in ACTIVE):
        return None
    outcome = _outcome(counts)
    batch = conn.execute(_BATCH_TIMES, {"b_ids": [batch_id]}).one()
    began = batch.started_at or batch.created_at
    settled = conn.execute(
        _SETTLE_BATCH,
        {
            "b_id": batch_id,
            "b_status": outcome,
            "b_at": now,
            "b_duration": max(0, int((now - began).total_seconds() * 1000)),
        },
    )
    if settled.rowcount != 1:
        return None
    if batch.schedule_id is not None:
        conn.execute(
            _SETTLE_SCHEDULE,
            {
                "b_sid": batch.schedule_id,
                "b_id": batch_id,
                "b_status": outcome,
                "b_failed": 1 if outcome == RunStatus.FAILED else 0,
                "b_at": now,
            },
        )
    return outcome


_LOCK_BATCH = (
    select(col(JobBatch.id)).where(col(JobBatch.id) == bindparam("b_batch_id")).with_for_update()
)
_ANY_ACTIVE = (
    select(col(JobRun.id))
    .where(col(JobRun.batch_id) == bindparam("b_batch_id"), col(JobRun.status).in_(ACTIVE))
    .limit(1)
)


def _has_active(conn: Connection, batch_id: int) -> bool:
    return conn.execute(_ANY_ACTIVE, {"b_batch_id": batch_id}).first() is not None


def _skip_blocked(conn: Connection, batch_id: int, now: datetime) -> None:
    """Mark SKIPPED every queued run of the batch with a failed, skipped or cancelled
    dependency (in dependency order, so skips cascade in one pass)."""
    runs = conn.execute(
        select(col(JobRun.id), col(JobRun.job_name), col(JobRun.status), col(JobRun.depends_on))
        .where(col(JobRun.batch_id) == batch_id, col(JobRun.next_attempt_id).is_(None))
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


def set_pids(
    engine: Engine, pids: Sequence[tuple[int, int]], *, hot: HotConnection | None = None
) -> None:
    """Record the process running each run: ``(run_id, pid)`` pairs. (The daemon
    writes them with the next outcomes, see ``finish_runs``; this is for a tick that
    has none.)"""
    if not pids:
        return
    hot = hot if hot is not None else HotConnection(engine)
    with hot.transaction("cannot record pids in") as tx:
        _set_pids(tx, pids)


def give_back(
    engine: Engine,
    runs: Sequence[tuple[int, str]],
    *,
    worker_id: str,
    now: datetime,
    hot: HotConnection | None = None,
) -> int:
    """Put claimed runs that never started (``(run_id, job_name)`` pairs, claimed ahead
    by the daemon, see ``Daemon.ahead``) back in the queue, and release their job
    mutexes, in one transaction: another daemon (or this one, later) claims them as
    any queued run. Only runs still RUNNING under ``worker_id`` move (one recovered
    meanwhile is left alone). Their batches stay RUNNING (a batch never goes back to
    QUEUED). Returns how many went back."""
    if not runs:
        return 0
    hot = hot if hot is not None else HotConnection(engine)
    ids = [run_id for run_id, _ in runs]
    jobs = sorted({job for _, job in runs})
    doing = "cannot give runs back in"
    with database_errors(engine, doing), hot.transaction(doing) as tx:
        at = tx.hot.ts(now)
        back = tx.execute(
            "UPDATE job_run SET status = 'QUEUED', worker_id = NULL, started_at = NULL,"
            f" pid = NULL, updated_at = ? WHERE id IN ({marks(len(ids))})"
            " AND status = 'RUNNING' AND worker_id = ?",
            (at, *ids, worker_id),
        )
        tx.defer(
            _release_mutexes_sql(len(jobs), len(ids), of_worker=True),
            (*jobs, *ids, worker_id),
        )
    return max(0, back)


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
