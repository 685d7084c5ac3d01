"""The schedule daemon: ``tick()`` plus a trivial loop.

Each ``tick`` reads the clock once and, in order: services the job children (logs,
progress, outcomes), heartbeats and recovers dead daemons on the poll period, fires due
schedules, forwards cancel requests, claims runnable runs up to the concurrency, and
does maintenance last (alerts on the poll period, retention in small timed steps). It
returns how long the loop may sleep: until the earliest of the next due slot, the next
heartbeat and the nearest child deadline. The loop sleeps in ``select`` on the wake
socket, the children's pipes and a signal pipe, so a slot fires when it is due, an admin
action takes effect at once, and a finished job frees its slot at once.

The daemon is single-threaded on purpose: it may fork a child per run (see
``executor``; normally the fork server forks, and pool workers take most runs), and
forking is only safe without other threads.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import select
import selectors
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from jobsys import __version__
from jobsys.clock import Clock
from jobsys.config import Settings
from jobsys.definitions import App, validate_params
from jobsys.errors import DatabaseError, DefinitionError
from jobsys.executor import Child, Executor, Outcome
from jobsys.planning import schedule_plans
from jobsys.runspec import RunSpec
from jobsys.store import firing, overlap, runs, upkeep, workers
from jobsys.store.db import make_autocommit_engine
from jobsys.store.hotpath import HotConnection
from jobsys.store.retention import Pruner
from jobsys.store.types import BatchPlan, SyncReport
from jobsys.vocabulary import RunStatus, WorkerStatus
from jobsys.wake import WakeListener, default_wake_host

if TYPE_CHECKING:
    from jobsys.alerts import Alerter

# What the daemon process imports stays lean (issue 9 item 5): its store code builds
# statements from ``jobsys.store.tables``, never from the SQLModel models, and what needs
# the models (the definitions sync, the schema check) runs in a short-lived child;
# ``tests/system/test_daemon_process.py`` checks that SQLModel and pydantic stay out.

log = logging.getLogger("jobsys.daemon")

#: Least time between two progress writes for one run.
PROGRESS_WRITE_S = 0.5

#: Pause after a database error before the next attempt.
DB_RETRY_S = 2.0

#: A started run's pid waits at most this long to be written with the next outcomes
#: (``runs.finish_runs``) before it is written on its own.
PID_WRITE_S = 0.05

#: Claiming ahead (see ``Daemon.ahead``): only while the runs this daemon ends are this
#: short on average (below it, waiting for the database between two runs is what
#: limits throughput); a run claimed ahead that has not started this long after its
#: claim (the workers got longer runs meanwhile) goes back to the queue.
AHEAD_RUN_MS = 50.0
AHEAD_MAX_WAIT_S = 0.5
#: On MySQL, where the loop hands runs over while a statement's reply is on its way,
#: this many times ``concurrency`` runs are claimed ahead (a 1,000-run burst on MariaDB:
#: 15-20% sooner done than with one times, and less CPU per run).
AHEAD_DEPTH_WAITING = 2
#: At most this many wake-ups are handled in one such wait (a child readable without
#: anything to read cannot keep the loop from the reply).
DB_WAIT_ROUNDS = 64
#: Weight of the latest outcome in the running average of run durations.
DURATION_EMA = 0.2

#: Longest single sleep: bounds the effect of a wall-clock jump on the next due slot.
MAX_SLEEP_S = 60.0

#: Linux lets a timed ``epoll_wait`` end late by 0.1% of its timeout (0.5% when niced;
#: ``select_estimate_accuracy``): 3 ms after a 3 s sleep. So a longer sleep ends this
#: fraction early (plus a margin), and the rest is slept with a short, precise timeout.
TIMER_SLACK = 0.006
#: A sleep this short is slept in one ``select`` (its slack is at most ~60 µs).
PRECISE_SLEEP_S = 0.01

#: Retention: a pass starts this often; while one is under way each tick prunes for at
#: most PRUNE_BUDGET_S (never when a slot is due within two budgets), then the loop
#: sleeps at least PRUNE_PAUSE_S before the next step.
PRUNE_EVERY_S = 3600.0
PRUNE_BUDGET_S = 0.05
PRUNE_PAUSE_S = 0.05


@dataclass
class Running:
    child: Child
    run_id: int
    job_name: str
    batch_id: int
    started_at: datetime
    cancel_sent: bool = False
    # Progress is written at most every PROGRESS_WRITE_S per run (jobs may report it
    # many times a second); the latest value waits here until then.
    progress: tuple[int, int | None] | None = None
    progress_written: float = float("-inf")
    schedule_id: str | None = None

    @property
    def log_extra(self) -> dict[str, object]:
        """Context for log lines about this run (``JOBSYS_LOG_FORMAT=json`` fields)."""
        return {
            "run_id": self.run_id,
            "job": self.job_name,
            "batch_id": self.batch_id,
            "schedule_id": self.schedule_id,
        }


@dataclass
class TickStats:
    fired: int = 0
    claimed: int = 0
    finished: int = 0


@dataclass
class Daemon:
    engine: Engine
    app: App
    settings: Settings
    clock: Clock
    executor: Executor | None = None
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    listen_for_wakes: bool = True
    on_tick: Callable[[TickStats], None] | None = None

    def __post_init__(self) -> None:
        self.executor = self.executor or Executor(self.app)
        self.running: dict[int, Running] = {}
        # Runs claimed ahead (RUNNING under this daemon's lease, not started yet), in
        # claim order, with the monotonic instant of their claim. While runs are short,
        # each claim takes up to ``concurrency`` more runs than there are free workers,
        # so a worker that ends a run gets the next one at once instead of after the
        # next claim's round trips (which then carries twice the runs). The claim is
        # committed before a run is handed over, so exactly-once does not change.
        self.ahead: list[tuple[RunSpec, float]] = []
        self._duration_ms: float | None = None  # running average of run durations
        self.queue = runs.RunQueue()
        # Outcomes and log lines not yet written (the database failed us): written first
        # next time, so children keep being reaped (and timed) during an outage.
        self._unrecorded: list[runs.Finished] = []
        # Outcomes read this tick, recorded by its claim transaction (or on their own
        # before anything in the tick that must see them, see _claims_carry_outcomes).
        self._ended: list[runs.Finished] = []
        self._unwritten_logs: dict[int, list[tuple[datetime, str, str]]] = {}
        self._next_renew = 0.0  # monotonic: the next lease renewal while runs are running
        self._ready: set[int] = set()  # run ids whose child's fd was readable
        self._in_db_wait = False  # in _while_db_waits
        self._unstarted: list[tuple[RunSpec, str]] = []  # runs _while_db_waits could not start
        self._stop = False
        self._woken = True
        self._next_heartbeat = 0.0  # monotonic; 0 = at the first tick
        self._due_at: datetime | None = None
        self._more_queued = True
        self._buffered = False  # some schedule has a BUFFER_ONE slot waiting
        self._listener: WakeListener | None = None
        self._selector: selectors.BaseSelector | None = None
        self._signal_r: socket.socket | None = None
        self._signal_w: socket.socket | None = None
        # The idle path (heartbeat, overview poll) uses its own autocommit connection so an
        # idle daemon costs one statement per poll plus the heartbeat.
        self.idle_engine: Engine = make_autocommit_engine(self.settings.database_url)
        # Claims and outcomes (the hot path) use one kept connection and plain SQL.
        self.hot = HotConnection(self.engine, keep=True)
        # (run id, pid) of runs started but not yet recorded: written with the next
        # outcomes, so starting runs costs no transaction of its own.
        # A run that ends before its pid is written carries it in its outcome.
        self._unwritten_pids: dict[int, int] = {}
        self._pids_since = 0.0  # monotonic: when the oldest of them was started
        # Maintenance (see _maintenance): alerts only with a webhook, retention unless 0.
        self.alerter: Alerter | None = None
        if self.settings.alert_webhook_url:
            from jobsys.alerts import Alerter, AlertSettings  # only with a webhook

            self.alerter = Alerter(
                self.engine,
                AlertSettings(
                    webhook_url=self.settings.alert_webhook_url,
                    failures=self.settings.alert_failures,
                    run_seconds=self.settings.alert_run_seconds,
                    heartbeat_seconds=self.settings.alert_heartbeat_seconds,
                ),
                worker_id=self.worker_id,
            )
        self.pruner: Pruner | None = Pruner(
            self.engine,
            history_days=self.settings.history_days,
            audit_days=self.settings.audit_days,
        )
        if not self.pruner.enabled:
            self.pruner = None
        self._next_prune = 0.0  # monotonic; 0 = at the first tick
        # Schedule upkeep (jobsys.store.upkeep): rows whose next_run_at was found right,
        # and whether any schedule of this code can be paused on failure.
        self._checked_next_runs: upkeep.Checked = {}
        self._schedules_sum: int | None = None  # see firing.Overview.schedules_sum
        self._pausable = any(s.pause_on_failure for s in self.app.schedules.values())
        self._trimmed = False  # see _trim_memory

    # -- settings ----------------------------------------------------------------------
    @property
    def poll_s(self) -> float:
        return self.settings.poll_interval_ms / 1000

    @property
    def lock_timeout(self) -> timedelta:
        return timedelta(milliseconds=self.settings.lock_timeout_ms)

    @property
    def keepalive_s(self) -> float:
        """A run stops itself when the daemon has not renewed its lease for this long:
        half the lock timeout, so it is gone before another daemon may recover it."""
        return self.settings.lock_timeout_ms / 2000

    @property
    def renew_s(self) -> float:
        """While runs are running the lease is renewed at least this often."""
        return min(self.poll_s, self.settings.lock_timeout_ms / 8000)

    @functools.cached_property
    def schedule_plans(self) -> dict[str, BatchPlan]:
        """What each schedule of this daemon's code runs, planned once (on first firing)."""
        return schedule_plans(self.app)

    # -- start-up ----------------------------------------------------------------------
    def start(self, *, in_child: bool = False) -> None:
        """Check the schema, sync definitions, recover dead daemons, register.

        ``in_child`` (``run``): the schema check and the sync run in a short-lived
        forked child, so that what they need (alembic; an ORM row per schedule, ~60 MiB
        at its peak with 10,000 schedules) never becomes the daemon's own memory."""
        now = self.clock.now()
        if in_child:
            # The first check of every schedule's next run too: it parses every cron.
            report, checked, repaired = _start_up_in_child(
                self.engine, self.app, self.settings.env, now
            )
            # Keyed by the app's own id strings where it has them, not by a second copy
            # of each (the map holds an entry per enabled schedule, for the daemon's life).
            self._checked_next_runs = {
                sid: checked.pop(sid) for sid in self.app.schedules if sid in checked
            }
            self._checked_next_runs |= checked
            self._log_repaired(repaired)
        else:
            from jobsys.store.migrate import ensure_current
            from jobsys.store.schedules import sync_definitions

            ensure_current(self.engine)
            report = sync_definitions(self.engine, self.app, self.settings.env, now)
        # Plan every schedule now (O(jobs) per group), not on the first, latency-bound firing.
        log.debug("planned %d schedule(s)", len(self.schedule_plans))
        if report.created or report.updated or report.removed:
            log.info(
                "definitions synced: %d new (disabled), %d changed, %d no longer in code",
                len(report.created),
                len(report.updated),
                len(report.removed),
            )
        wake_host, wake_port = None, None
        if self.listen_for_wakes:
            self._listener = WakeListener("0.0.0.0", self.settings.wake_port)
            wake_host = self.settings.wake_host or default_wake_host()
            wake_port = self._listener.port
        workers.register(
            self.engine,
            worker_id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            wake_host=wake_host,
            wake_port=wake_port,
            version=__version__,
            concurrency=self.settings.concurrency,
            now=now,
        )
        assert self.executor is not None
        self.executor.keepalive.beat()
        self._recover(now)
        log.info(
            "daemon started (concurrency %d, poll %.1fs, wake %s:%s)",
            self.settings.concurrency,
            self.poll_s,
            wake_host,
            wake_port,
            extra={"worker_id": self.worker_id},
        )

    def _recover(self, now: datetime) -> None:
        found = workers.recover_dead(self.engine, now, self.lock_timeout, exclude=self.worker_id)
        if found.workers or found.runs:
            log.warning(
                "recovered %d dead daemon(s); %d run(s) marked FAILED (daemon lost)",
                len(found.workers),
                len(found.runs),
            )
            self._more_queued = True
            self.queue.stale = True  # their retries were queued

    # -- one step ----------------------------------------------------------------------
    def tick(self) -> float:
        """Do what is due now; return the seconds until something else will be."""
        stats = TickStats()
        now = self.clock.now()
        mono = self.clock.monotonic()
        woken, self._woken = self._woken, False

        stats.finished = self._service_children()
        while self._unstarted:
            run, error = self._unstarted[0]
            self._fail_unstarted(run, error)
            del self._unstarted[0]
        if self.ahead and not self._stop:
            self._start_ahead(mono)  # before any database work: workers wait for none
        poll_due = mono >= self._next_heartbeat
        if self._ended and not self._claims_carry_outcomes(now, poll_due or woken):
            self._record_ended()
        if self._unwritten_pids and not self._ended and mono - self._pids_since >= PID_WRITE_S:
            self._write_pids()  # no outcome carried them: on their own

        if poll_due or (self.running and mono >= self._next_renew):
            self._renew_lease(now, mono)
        if poll_due:
            self._next_heartbeat = mono + self.poll_s
            if not self._trimmed:
                self._trimmed = True
                _trim_memory()  # start-up parsed every cron: let it go
        if self._pausable and (poll_due or stats.finished):
            self._pause_failing(now)  # before firing: a paused schedule fires no more
        if poll_due or woken:
            overview = firing.poll_overview(self.idle_engine, now - self.lock_timeout)
            self._due_at = overview.earliest_next_run
            self._buffered = overview.has_buffered
            self._more_queued = self._more_queued or overview.has_queued
            if overview.has_queued:
                self.queue.stale = True  # runs may have been queued elsewhere (Run Now, CLI)
            else:
                self.queue.nothing_queued()  # a firing's runs then need no read to claim
            if overview.stale_workers:
                self._recover(now)
            if poll_due and overview.schedules_sum != self._schedules_sum:
                # Some schedule's cron, zone or next run changed (a firing, an edit, a
                # hand-made UPDATE): look for a lost next run among them.
                self._repair_next_runs(now)
                self._schedules_sum = overview.schedules_sum

        recompute_due = False
        fired: list[firing.Fired] = []
        if self._due_at is not None and self._due_at <= now:
            fired, more = firing.fire_due(
                self.engine, self.schedule_plans, worker_id=self.worker_id, now=now
            )
            stats.fired = sum(1 for f in fired if f.batch_id)
            self._buffered = self._buffered or any(f.buffered for f in fired)
            # CANCEL_OTHER flagged running runs: stop this daemon's at once (others' on
            # their next poll or wake-up).
            woken = woken or any(f.cancelled_batch for f in fired)
            # A chunk fired and more are due: claim and start runs first, then fire the
            # next chunk on the next tick (at once). Else the next due instant is read
            # after the claim below, so that reading it does not delay the first job.
            self._due_at = now
            recompute_due = not (more and fired)
            self._more_queued = True
            if all(f.queued or not f.run_ids for f in fired):
                self.queue.add([run for f in fired for run in f.queued])
            else:
                self.queue.stale = True  # fired one by one (``fire_schedule``): read them

        try:
            if self._buffered and (stats.finished or poll_due or woken):
                self._fire_buffered(now)

            if self.running and (poll_due or woken):
                for run_id in runs.cancel_requested(self.engine, self.worker_id):
                    entry = self.running.get(run_id)
                    if entry is not None and not entry.cancel_sent:
                        log.info(
                            "cancelling run %s (asked by an admin)", run_id, extra=entry.log_extra
                        )
                        entry.child.cancel("by an admin")
                        entry.cancel_sent = True

            if self.queue.next_due is not None and self.queue.next_due <= now:
                self._more_queued = True  # a retry's back-off is over
            want = self._claim_limit()
            if not self._stop and want > 0 and (self._more_queued or stats.finished):
                stats.claimed = self._claim_and_start(want, now)
                self._more_queued = stats.claimed == want
            if self._ended:  # no claim carried them
                self._record_ended()
        finally:
            # Logged after the claim: a line costs ~30 µs, and up to 20 are
            # written one by one, so they must not delay the first job.
            self._log_fired(fired, now)

        if recompute_due:
            self._due_at = firing.earliest_next_run(self.engine)
            if self._due_at is not None and self._due_at <= now:
                # Still due: another daemon holds it mid-transaction, or this daemon's
                # code lacks it. Look again shortly instead of spinning.
                self._due_at = now + timedelta(seconds=1)

        self._maintenance(now, mono, poll_due)

        if self.on_tick is not None:
            self.on_tick(stats)
        return self._sleep_seconds(now, mono)

    def _repair_next_runs(self, now: datetime) -> None:
        repaired = upkeep.repair_next_runs(self.engine, now=now, checked=self._checked_next_runs)
        self._log_repaired(repaired)
        for one in repaired:  # the overview read before the repair did not see them
            if self._due_at is None or one.next_run_at < self._due_at:
                self._due_at = one.next_run_at

    def _log_repaired(self, repaired: list[upkeep.Repaired]) -> None:
        for fixed in repaired:
            log.warning(
                "schedule %s: %s; repaired: next run %s",
                fixed.schedule_id,
                fixed.problem,
                fixed.next_run_at.isoformat(),
                extra={"schedule_id": fixed.schedule_id},
            )

    def _pause_failing(self, now: datetime) -> None:
        for paused in upkeep.pause_failing(self.engine, now=now, worker_id=self.worker_id):
            log.warning(
                "schedule %s disabled: %s",
                paused.schedule_id,
                paused.note,
                extra={"schedule_id": paused.schedule_id},
            )

    def _renew_lease(self, now: datetime, mono: float) -> None:
        """Heartbeat; on success tell the job children the daemon is alive (see
        ``forking.KeepAlive``): they stop themselves when this stops for ``keepalive_s``,
        so a stalled daemon's runs end before its lease can expire."""
        if not workers.heartbeat(self.idle_engine, self.worker_id, now):
            self._declared_dead(now)
        assert self.executor is not None
        self.executor.keepalive.beat()
        self._next_renew = mono + self.renew_s

    def _maintenance(self, now: datetime, mono: float, poll_due: bool) -> None:
        """Alerts on the poll period; retention a small timed step per tick. Last in the
        tick, so firing and claiming never wait for it; failures are logged, not raised."""
        if poll_due and self.alerter is not None:
            try:
                self.alerter.check(now)
            except (DatabaseError, SQLAlchemyError) as exc:
                log.warning("alert check failed: %s", exc)
        if self.pruner is None or self._stop:
            return
        if self._due_at is not None and (self._due_at - now).total_seconds() < 2 * PRUNE_BUDGET_S:
            return  # a slot is about to be due: fire it first
        try:
            if not self.pruner.active and mono >= self._next_prune:
                self._next_prune = mono + PRUNE_EVERY_S
                self.pruner.start(now)
            if self.pruner.active:
                step = self.pruner.step(PRUNE_BUDGET_S)
                if step.done and self.pruner.last_pass.total:
                    done = self.pruner.last_pass
                    log.info(
                        "retention: deleted %d run(s), %d log line(s), %d batch(es), "
                        "%d audit entr(ies), %d incident(s), %d worker(s) in %.1fs",
                        done.runs,
                        done.logs,
                        done.batches,
                        done.audit,
                        done.incidents,
                        done.workers,
                        done.seconds,
                    )
        except (DatabaseError, SQLAlchemyError) as exc:
            log.warning("retention step failed (retrying in a poll period): %s", exc)
            self.pruner.abort()
            self._next_prune = mono + self.poll_s

    def _sleep_seconds(self, now: datetime, mono: float) -> float:
        waits = [self._next_heartbeat - mono, MAX_SLEEP_S]
        if self._unwritten_pids:
            waits.append(self._pids_since + PID_WRITE_S - mono)
        if self.running:
            waits.append(self._next_renew - mono)
        if self._due_at is not None:
            waits.append((self._due_at - now).total_seconds())
        if self.queue.next_due is not None:
            waits.append((self.queue.next_due - now).total_seconds())
        for entry in self.running.values():
            deadline = entry.child.next_deadline()
            if deadline is not None:
                waits.append(deadline - mono)
            if entry.progress is not None:
                waits.append(entry.progress_written + PROGRESS_WRITE_S - mono)
        if self._more_queued and len(self.running) < self.settings.concurrency:
            waits.append(0.0)
        if self._ended or self._unstarted or self._ready:  # read during its last statement
            waits.append(0.0)
        if self.ahead:  # given back if no worker is free for it by then
            waits.append(self.ahead[0][1] + AHEAD_MAX_WAIT_S - mono)
        if self.pruner is not None and self.pruner.active:
            waits.append(PRUNE_PAUSE_S)
        return max(0.0, min(waits))

    def _log_fired(self, fired: list[firing.Fired], now: datetime) -> None:
        # One line per slot reads well for a few schedules; a thousand due at once get a
        # summary at INFO and their lines at DEBUG.
        level = logging.INFO if len(fired) <= 20 else logging.DEBUG
        batches = 0
        for one in fired:
            extra = {
                "schedule_id": one.schedule_id,
                "batch_id": one.batch_id,
                "slot": None if one.slot is None else one.slot.isoformat(),
            }
            if one.skipped:
                # Named by the missed slots and their SKIPPED batches (the latest in the
                # fields), not by the slot that fired.
                last_slot, last_batch = one.missed[-1] if one.missed else (None, None)
                log.warning(
                    "%d slot(s) recorded as missed/skipped: %s",
                    one.skipped,
                    ", ".join(f"{slot.isoformat()} (batch {b})" for slot, b in one.missed),
                    extra={
                        "schedule_id": one.schedule_id,
                        "batch_id": last_batch,
                        "slot": None if last_slot is None else last_slot.isoformat(),
                    },
                )
            if one.batch_id is not None and one.slot is not None:
                batches += 1
                late = (now - one.slot).total_seconds() * 1000
                log.log(
                    level,
                    "fired slot %s (%.0f ms late), %d run(s)",
                    one.slot.isoformat(),
                    late,
                    len(one.run_ids),
                    extra=extra,
                )
        if level == logging.DEBUG and batches:
            log.info("fired %d slot(s)", batches)

    def _fire_buffered(self, now: datetime) -> None:
        """BUFFER_ONE: fire the slots kept while their schedule's batch ran, once it ended."""
        for one in overlap.fire_buffered(
            self.engine, self.schedule_plans, worker_id=self.worker_id, now=now
        ):
            log.info(
                "fired buffered slot %s after batch %s ended, %d run(s)",
                one.slot.isoformat(),
                one.after_batch_id,
                len(one.run_ids),
                extra={"schedule_id": one.schedule_id, "batch_id": one.batch_id},
            )
            self._more_queued = True
            self.queue.stale = True

    # -- runs --------------------------------------------------------------------------
    def _claims_carry_outcomes(self, now: datetime, looking: bool) -> bool:
        """Whether this tick's outcomes may wait for its claim transaction (one commit
        for both): only when nothing before the claim must see them recorded: a firing
        (a batch that just ended is no overlap), a buffered slot, pausing a failing
        schedule, a poll or wake-up (they may fire), or the shutdown."""
        if self._stop or looking or self._buffered:
            return False
        if self._due_at is not None and self._due_at <= now:
            return False
        return not (self._pausable and any(f.status != RunStatus.SUCCESS for f in self._ended))

    def _due_pids(self) -> list[tuple[int, int]]:
        """The pids not written yet, taken, once the oldest has waited PID_WRITE_S (a
        run that ends sooner carries its own in its outcome)."""
        if not self._unwritten_pids or self.clock.monotonic() - self._pids_since < PID_WRITE_S:
            return []
        pids = list(self._unwritten_pids.items())
        self._unwritten_pids = {}
        return pids

    def _record_ended(self) -> None:
        """Record this tick's outcomes (with the pids of runs started since the last
        time, if due), then settle their batches (``runs.finish_runs``)."""
        ended, self._ended = self._ended, []
        pids = self._due_pids()
        try:
            runs.finish_runs(
                self.engine,
                ended,
                worker_id=self.worker_id,
                now=self.clock.now(),
                hot=self.hot,
                pids=pids,
                busy_batches=self._busy_batches(),
                alone=self.queue.alone,
            )
        except Exception:
            self._unrecorded = ended  # the children are gone; their outcomes are not
            self._unwritten_pids |= pids
            raise

    def _busy_batches(self) -> set[int]:
        """Batches with a run RUNNING under this daemon's lease (not done yet)."""
        busy = {e.batch_id for e in self.running.values()}
        busy.update(run.batch_id for run, _ in self.ahead)
        return busy

    def _free_workers(self) -> int:
        return max(0, self.settings.concurrency - len(self.running))

    def _claim_limit(self) -> int:
        """How many runs to claim now: one per free worker, plus (while runs are short,
        see ``ahead``) as many again to hand over without waiting, less those already
        claimed ahead."""
        short = self._duration_ms is not None and self._duration_ms < AHEAD_RUN_MS
        extra = self.settings.concurrency if short else 0
        if self.hot.while_waiting is not None and self.hot.dialect == "mysql":
            # Workers also get runs while a claim waits for the server (see
            # _while_db_waits): keep enough ahead for the ones that end meanwhile.
            extra *= AHEAD_DEPTH_WAITING
        return max(0, self._free_workers() + extra - len(self.ahead))

    def _start_ahead(self, mono: float, *, quiet: bool = False) -> None:
        """Hand runs claimed ahead to free workers; give back those that waited too long
        (``AHEAD_MAX_WAIT_S``: the workers got long runs since they were claimed).
        ``quiet``: no database (see ``_while_db_waits``)."""
        free = self._free_workers()
        if free > 0:
            ready, self.ahead = self.ahead[:free], self.ahead[free:]
            now = self.clock.now()  # its true start (written with its outcome)
            self._start_ready([replace(run, started_at=now) for run, _ in ready], quiet=quiet)
        if not quiet and self.ahead and mono - self.ahead[0][1] > AHEAD_MAX_WAIT_S:
            self._give_back()

    def _give_back(self) -> None:
        """Put the runs claimed ahead back in the queue (see ``runs.give_back``)."""
        back, self.ahead = self.ahead, []
        try:
            runs.give_back(
                self.engine,
                [(run.run_id, run.job_name) for run, _ in back],
                worker_id=self.worker_id,
                now=self.clock.now(),
                hot=self.hot,
            )
        except Exception:
            self.ahead = back + self.ahead  # still ours: started or given back later
            raise
        self.queue.stale = True
        self._more_queued = True
        # The runs were not as short as they looked: claim no more ahead until the
        # next outcome says again how long runs take (no give-back every half second
        # while long runs hold the workers).
        self._duration_ms = None

    def _claim_and_start(self, limit: int, now: datetime) -> int:
        ended, self._ended = self._ended, []
        written = self._due_pids()
        try:
            claimed = runs.claim_runnable(
                self.engine,
                worker_id=self.worker_id,
                limit=limit,
                clock=self.clock.now,
                known_jobs=self.app.jobs,
                queue=self.queue,
                hot=self.hot,
                finished=ended,
                pids=written,
                busy_batches=self._busy_batches(),
            )
        except Exception:
            # Recorded again next tick (harmless if this one got as far as committing).
            self._unrecorded = ended
            self._unwritten_pids |= written
            raise
        assert self.executor is not None
        ready: list[RunSpec] = []
        for run in claimed:
            try:
                # Runs nobody gave params to (schedules, run all) must still satisfy the
                # job's declared params: a required one without a default fails clearly.
                params = validate_params(self.app.jobs[run.job_name], run.params)
            except DefinitionError as exc:
                self._fail_unstarted(run, str(exc))
                continue
            # The claimed record, completed with what the database does not hold.
            ready.append(
                replace(
                    run,
                    params=params,
                    database_url=self.settings.database_url,
                    keepalive_s=self.keepalive_s,
                    memory_limit=self.app.jobs[run.job_name].memory_limit,
                )
            )
        free = self._free_workers()
        if len(ready) > free:
            mono = self.clock.monotonic()
            self.ahead += [(run, mono) for run in ready[free:]]
        self._start_ready(ready[:free])
        return len(claimed)

    def _start_ready(self, ready: list[RunSpec], *, quiet: bool = False) -> None:
        """Start claimed runs (one free worker each). ``quiet``: a run that cannot
        start is failed by the next tick, not here (see ``_while_db_waits``)."""
        if not ready:
            return
        assert self.executor is not None
        started = self.executor.start_many(ready)
        pids: list[tuple[int, int]] = []
        debug = log.isEnabledFor(logging.DEBUG)
        for run, child in zip(ready, started, strict=True):
            if isinstance(child, Exception):
                # fork failed (e.g. out of processes): fail the run and keep going
                log.error(
                    "could not start run: %s",
                    child,
                    extra={
                        "run_id": run.run_id,
                        "job": run.job_name,
                        "batch_id": run.batch_id,
                        "schedule_id": run.schedule_id,
                    },
                )
                error = f"could not start: {type(child).__name__}: {child}"
                if quiet:
                    self._unstarted.append((run, error))
                else:
                    self._fail_unstarted(run, error)
                continue
            assert run.started_at is not None  # set by the claim
            entry = Running(
                child,
                run.run_id,
                run.job_name,
                run.batch_id,
                run.started_at,
                schedule_id=run.schedule_id,
            )
            self.running[run.run_id] = entry
            pids.append((run.run_id, child.pid))
            if debug:
                log.debug("run %s started (pid %s)", run.run_id, child.pid, extra=entry.log_extra)
            if self._selector is not None:
                self._selector.register(child, selectors.EVENT_READ, run.run_id)
        if pids and not self._unwritten_pids:
            self._pids_since = self.clock.monotonic()
        self._unwritten_pids |= pids

    def _write_pids(self) -> None:
        pids = list(self._unwritten_pids.items())
        self._unwritten_pids = {}
        try:
            runs.set_pids(self.engine, pids, hot=self.hot)
        except (DatabaseError, SQLAlchemyError) as exc:  # informative only: keep going
            log.warning("could not record the pids of %d run(s): %s", len(pids), exc)

    def _fail_unstarted(self, run: RunSpec, error: str) -> None:
        finished = runs.Finished(
            run_id=run.run_id,
            batch_id=run.batch_id,
            job_name=run.job_name,
            status=RunStatus.FAILED,
            error=error,
            exit_code=None,
            started_at=run.started_at,
        )
        runs.finish_runs(
            self.engine,
            [finished],
            worker_id=self.worker_id,
            now=self.clock.now(),
            hot=self.hot,
            alone=self.queue.alone,  # only to forget it there
        )

    def _service_children(self, *, everything: bool = False, record: bool = False) -> int:
        """Store logs and progress; collect the outcomes of children that exited, for
        one transaction (``record``: at once, else ``tick`` decides when).

        Every due child is read and reaped even when the database fails (its lines and
        outcome wait in memory, written on a later tick): the outcome keeps the moment
        the child ended, not the moment the database came back."""
        # Outcomes not written yet (the database failed us, or the tick that read them
        # failed before its claim) come first.
        ended = self._unrecorded + self._ended
        self._unrecorded, self._ended = [], []
        ready, self._ready = self._ready, set()
        mono = self.clock.monotonic()
        failure: Exception | None = None
        debug = log.isEnabledFor(logging.DEBUG)
        for run_id, entry in list(self.running.items()):
            # In the loop, only children whose fd woke it, whose deadline came, or whose
            # progress waits to be written (tick() driven by hand: all of them).
            if not (everything or self._selector is None or run_id in ready or entry.progress):
                deadline = entry.child.next_deadline()
                if deadline is None or deadline > mono:
                    continue
            self._take_lines(entry)
            outcome = entry.child.poll()
            if outcome is not None:
                self._take_lines(entry)
            if failure is None:
                try:
                    self._write_logs(run_id)
                    self._write_progress(entry, final=outcome is not None)
                except (DatabaseError, SQLAlchemyError) as exc:
                    failure = exc
            if outcome is None:
                continue
            ended.append(self._ended_run(entry, outcome, debug))
        if ended:
            try:
                if failure is not None:
                    raise failure
                for finished in ended:  # lines of runs that ended before the outcome
                    self._write_logs(finished.run_id)
            except Exception:
                self._unrecorded = ended  # the children are gone; their outcomes are not
                raise
            # One transaction for every outcome of this tick, with the pids of runs
            # started since the last one, and normally with the tick's claims (see
            # ``tick`` and ``runs.finish_runs`` on crash safety).
            self._ended = ended
            if record:
                self._record_ended()
            self._queue_after(ended)
        if failure is not None:
            raise failure
        return len(ended)

    def _ended_run(self, entry: Running, outcome: Outcome, debug: bool) -> runs.Finished:
        """Forget a child that ended; its outcome as the store records it."""
        run_id = entry.run_id
        self._forget(run_id)
        last = float(outcome.duration_ms)
        self._duration_ms = (
            last
            if self._duration_ms is None
            else self._duration_ms + DURATION_EMA * (last - self._duration_ms)
        )
        if outcome.status != RunStatus.SUCCESS:
            log.warning(
                "run %s %s%s",
                run_id,
                outcome.status,
                f": {outcome.error}" if outcome.error else "",
                extra=entry.log_extra,
            )
        elif debug:  # a line per successful run only at DEBUG: it costs the hot loop
            log.debug("run %s %s", run_id, outcome.status, extra=entry.log_extra)
        return runs.Finished(
            run_id=run_id,
            batch_id=entry.batch_id,
            job_name=entry.job_name,
            status=outcome.status,
            error=outcome.error,
            exit_code=outcome.exit_code,
            started_at=entry.started_at,
            duration_ms=outcome.duration_ms,
            pid=self._unwritten_pids.pop(run_id, None),
        )

    def _queue_after(self, ended: list[runs.Finished]) -> None:
        """What runs that ended change for the next claim."""
        if self.queue.gated or self.queue.has_dependencies:
            # Dependents (or the next backfill slot) may now run or be skipped: the
            # snapshot's statuses are old.
            self.queue.stale = True
        if any(f.status == RunStatus.FAILED for f in ended):
            # A failed attempt may have queued its retry.
            self.queue.stale = self._more_queued = True

    def _while_db_waits(self, db_fd: int) -> None:
        """Called by the hot connection while a statement's reply is on its way
        (MySQL): workers that ended their run meanwhile get the runs claimed ahead at
        once, instead of after the rest of the tick's round trips (issue 9). Memory and
        workers only, never the database: the connection is mid-transaction. The
        outcomes are kept for the next transaction, as any tick's; a child with
        progress still to write, or a run that cannot start, is left to the tick."""
        # The loop's selector as one fd (epoll, kqueue; not the select() fallback).
        fileno = getattr(self._selector, "fileno", None)
        if fileno is None or not self.ahead or self._stop or self._in_db_wait:
            return  # (most statements: nothing claimed ahead, no poller to make)
        self._in_db_wait = True
        try:
            poller = select.poll()
            poller.register(db_fd, select.POLLIN)
            poller.register(fileno(), select.POLLIN)
            for _ in range(DB_WAIT_ROUNDS):
                if not self.ahead or self._stop:
                    return
                if self._free_workers() > 0:
                    self._start_ahead(self.clock.monotonic(), quiet=True)
                    continue
                if any(fd == db_fd for fd, _ in poller.poll()):
                    return  # the reply is here
                assert self._selector is not None
                woke = {
                    key.data for key, _ in self._selector.select(0) if isinstance(key.data, int)
                }
                if not woke:
                    return  # only the wake socket or a signal: the tick sees to them
                self._collect_quietly(woke)
        except Exception:  # the tick's own paths report and retry whatever went wrong
            log.exception("could not hand runs to workers while waiting for the database")
        finally:
            self._in_db_wait = False

    def _collect_quietly(self, woke: set[int]) -> None:
        """Read the children in ``woke`` and keep the outcomes of those that ended
        (see ``_while_db_waits``). The tick still visits the others (their log lines
        are written there)."""
        self._ready |= woke
        ended: list[runs.Finished] = []
        debug = log.isEnabledFor(logging.DEBUG)
        for run_id in woke:
            entry = self.running.get(run_id)
            if entry is None:
                continue
            self._take_lines(entry)
            if entry.progress is not None:
                continue  # its last progress is written by the tick, before it is forgotten
            outcome = entry.child.poll()
            if outcome is None:
                continue
            self._take_lines(entry)
            ended.append(self._ended_run(entry, outcome, debug))
            self._ready.discard(run_id)
        self._ended += ended
        self._queue_after(ended)

    def _take_lines(self, entry: Running) -> None:
        lines, progress = entry.child.drain()
        if lines:
            self._unwritten_logs.setdefault(entry.run_id, []).extend(
                (x.ts, x.level, x.message) for x in lines
            )
        if progress is not None:
            entry.progress = progress

    def _write_logs(self, run_id: int) -> None:
        lines = self._unwritten_logs.get(run_id)
        if lines:
            runs.append_logs(self.engine, run_id, lines)
        self._unwritten_logs.pop(run_id, None)

    def _write_progress(self, entry: Running, *, final: bool) -> None:
        mono = self.clock.monotonic()
        if entry.progress is None or (
            not final and mono - entry.progress_written < PROGRESS_WRITE_S
        ):
            return
        done, total = entry.progress
        runs.set_progress(self.engine, entry.run_id, done, total, self.clock.now())
        entry.progress, entry.progress_written = None, mono

    def _forget(self, run_id: int) -> None:
        entry = self.running.pop(run_id, None)
        if entry is None:
            return
        # Unregister before close: later children hold copies of this child's fds.
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(entry.child)
        entry.child.close()

    def _declared_dead(self, now: datetime) -> None:
        """Another daemon recovered our leases (we stalled past LOCK_TIMEOUT_MS): whatever
        we run no longer counts, so stop it and start over as a live instance."""
        log.error(
            "this daemon was declared dead by another; abandoning %d run(s)", len(self.running)
        )
        for run_id, entry in list(self.running.items()):
            entry.child.kill()
            self._forget(run_id)  # close() reaps it
            self._unwritten_logs.pop(run_id, None)
        self.ahead = []  # recovered with the rest: not ours to start
        workers.set_status(self.engine, self.worker_id, WorkerStatus.RUNNING, now)

    # -- the loop ----------------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
        self._stop = True
        if self._signal_w is not None:
            with contextlib.suppress(OSError):
                self._signal_w.send(b"x")

    def wake(self) -> None:
        """Look at the database on the next tick (a wake-up datagram came)."""
        self._woken = True

    def run(self) -> int:
        """Start, loop until SIGTERM/SIGINT, shut down gracefully. Returns the exit code."""
        self.start(in_child=True)
        self._selector = selectors.DefaultSelector()
        self.hot.while_waiting = self._while_db_waits
        self._signal_r, self._signal_w = socket.socketpair()
        self._signal_r.setblocking(False)
        self._signal_w.setblocking(False)
        self._selector.register(self._signal_r, selectors.EVENT_READ, "signal")
        if self._listener is not None:
            self._selector.register(self._listener, selectors.EVENT_READ, "wake")
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            while not self._stop:
                started = self.clock.monotonic()
                try:
                    # tick() measures its timeout from its own start: subtract the time the
                    # tick itself took, so a slot is picked up at its instant, not later.
                    timeout = max(0.0, self.tick() - (self.clock.monotonic() - started))
                except (DatabaseError, SQLAlchemyError) as exc:
                    # The database is unreachable or failed us: keep the children, wait a
                    # little and try again (the next tick re-reads everything it needs).
                    log.warning("database error, retrying in %.0fs: %s", DB_RETRY_S, exc)
                    self._woken = True
                    timeout = DB_RETRY_S
                if self._stop:
                    break
                self._wait(timeout)
            self._shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._close()
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.request_stop()

    def _wait(self, timeout: float) -> None:
        assert self._selector is not None
        # time.monotonic, not the clock's: this is the selector's own time base.
        end = time.monotonic() + timeout
        left = timeout
        while True:
            # A long sleep ends early by its possible lateness (see TIMER_SLACK); what is
            # left is slept again, each time shorter and so more precise.
            step = (
                left * (1 - TIMER_SLACK) - PRECISE_SLEEP_S / 2 if left > PRECISE_SLEEP_S else left
            )
            ready = self._selector.select(_floor_ms(step))
            left = end - time.monotonic()
            if ready or self._stop or left <= 0:
                break
            if left < 0.001:
                # select() counts whole ms, rounded up: the last fraction of a ms is slept
                # here (fds unwatched for under 1 ms), so the tick starts when due.
                time.sleep(left)
                break
        for key, _ in ready:
            if key.data == "wake" and self._listener is not None:
                if self._listener.drain():
                    self.wake()
            elif isinstance(key.data, int):
                self._ready.add(key.data)  # a child's run id
            elif key.data == "signal" and self._signal_r is not None:
                with contextlib.suppress(OSError):
                    self._signal_r.recv(64)

    def _shutdown(self) -> None:
        """Stop claiming; let running jobs finish within the grace; then cancel them;
        release every lease; mark the instance STOPPED."""
        now = self.clock.now()
        workers.set_status(self.engine, self.worker_id, WorkerStatus.STOPPING, now)
        if self.ahead:  # not started: back to the queue, for another daemon
            try:
                self._give_back()
            except (DatabaseError, SQLAlchemyError) as exc:
                # release_all below fails them (as runs of a daemon that stopped).
                log.warning("could not give back %d claimed run(s): %s", len(self.ahead), exc)
                self.ahead = []
        grace_end = self.clock.monotonic() + self.settings.shutdown_grace_ms / 1000
        if self.running:
            log.info(
                "waiting up to %.0fs for %d running job(s)",
                self.settings.shutdown_grace_ms / 1000,
                len(self.running),
            )
        cancelled = False
        while self.running:
            self._service_children(everything=True, record=True)
            if not self.running:
                break
            mono = self.clock.monotonic()
            if mono >= self._next_renew:  # the grace may outlast the keep-alive
                try:
                    self._renew_lease(self.clock.now(), mono)
                except (DatabaseError, SQLAlchemyError) as exc:
                    log.warning("could not renew the lease while stopping: %s", exc)
                    self._next_renew = mono + self.renew_s
                continue
            if not cancelled and self.clock.monotonic() >= grace_end:
                for entry in self.running.values():
                    entry.child.cancel("the daemon is shutting down")
                cancelled = True
            waits = [0.5, self._next_renew - self.clock.monotonic()] + [
                d - self.clock.monotonic()
                for d in (e.child.next_deadline() for e in self.running.values())
                if d
            ]
            if not cancelled:
                waits.append(grace_end - self.clock.monotonic())
            if self._selector is not None:
                self._selector.select(max(0.0, min(waits)))
        if self._unrecorded or self._ended:  # left by a tick that failed
            self._ended = self._unrecorded + self._ended
            self._unrecorded = []
            try:
                self._record_ended()
            except (DatabaseError, SQLAlchemyError) as exc:
                log.warning("could not record %d outcome(s): %s", len(self._unrecorded), exc)
        if self._unwritten_pids:
            self._write_pids()
        now = self.clock.now()
        workers.release_all(self.engine, self.worker_id, now)
        workers.set_status(self.engine, self.worker_id, WorkerStatus.STOPPED, now)
        log.info("daemon stopped", extra={"worker_id": self.worker_id})

    def close(self) -> None:
        """Release sockets and the idle connection (``run`` does this on exit)."""
        self._close()

    def _close(self) -> None:
        self.hot.close()
        self.idle_engine.dispose()
        if self.executor is not None:
            self.executor.close()
        for sock in (self._signal_r, self._signal_w):
            if sock is not None:
                sock.close()
        if self._listener is not None:
            self._listener.close()
        if self._selector is not None:
            self._selector.close()


def _start_up_in_child(
    engine: Engine, app: App, env: str, now: datetime
) -> tuple[SyncReport, upkeep.Checked, list[upkeep.Repaired]]:
    """``ensure_current``, ``sync_definitions`` and the first ``repair_next_runs`` (its
    ``Checked`` map and repairs are returned) in a forked child (see ``start``).

    The child makes its own engine (the parent's pooled connections are not shared)
    and reports (or the error, as its class name and message) on a pipe; the parent
    raises the same error. Safe here: the daemon has no other thread yet, and the child
    shares its hash seed, so the ``Checked`` hashes match the parent's."""
    import json

    from jobsys import errors
    from jobsys.store.db import make_engine

    url = engine.url.render_as_string(hide_password=False)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        payload: dict[str, object]
        try:
            os.close(read_fd)
            from jobsys.store.migrate import ensure_current
            from jobsys.store.schedules import sync_definitions

            own = make_engine(url, pre_ping=False, create=False)
            ensure_current(own)
            done = sync_definitions(own, app, env, now)
            checked: upkeep.Checked = {}
            fixed = upkeep.repair_next_runs(own, now=now, checked=checked)
            own.dispose()
            payload = {
                "report": [done.created, done.updated, done.removed, done.jobs_created],
                "checked": checked,
                "repaired": [[f.schedule_id, f.problem, f.next_run_at.isoformat()] for f in fixed],
            }
        except errors.JobsysError as exc:
            payload = {"error": type(exc).__name__, "message": str(exc)}
        except BaseException as exc:  # anything else: reported to the parent too
            payload = {"error": "DatabaseError", "message": f"{type(exc).__name__}: {exc}"}
        try:
            data = json.dumps(payload).encode()
            while data:
                data = data[os.write(write_fd, data) :]
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    try:
        result = json.loads(b"".join(chunks))
    except ValueError:
        raise DatabaseError(
            f"start-up check ended without an answer (wait status {status})"
        ) from None
    if "error" in result:
        kind = getattr(errors, str(result["error"]), None)
        if not (isinstance(kind, type) and issubclass(kind, errors.JobsysError)):
            kind = DatabaseError
        raise kind(result["message"])
    created, updated, removed, jobs_created = result["report"]
    repaired = [
        upkeep.Repaired(sid, problem, datetime.fromisoformat(at))
        for sid, problem, at in result["repaired"]
    ]
    return SyncReport(created, updated, removed, jobs_created), result["checked"], repaired


def _floor_ms(seconds: float) -> float:
    """``seconds`` down to a whole ms (``select`` rounds up), never negative."""
    return max(0.0, math.floor(seconds * 1000) / 1000)


def _trim_memory() -> None:
    """After start-up: forget the parsed crons (every schedule's was parsed once) and
    hand freed memory back to the system; freeze what is left (start-up objects live
    for good) so that the garbage collector stops walking it."""
    import gc

    from jobsys import cron

    cron.clear_caches()
    gc.collect()
    gc.freeze()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory stays reserved, no harm
        pass
