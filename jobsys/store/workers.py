"""Worker instances (daemons): registration, heartbeats, wake addresses, recovery.

A daemon's heartbeat is the lease on everything it holds (the runs it executes, the
job mutexes, the schedules whose batch it fired). Leases are stale only when the holder
stopped heartbeating for ``LOCK_TIMEOUT_MS`` or is marked STOPPED (design 6.3, 6.8); a
long job therefore never loses its lease while its daemon lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection, Engine

from jobsys.store.db import database_errors, session, write_engine
from jobsys.store.runs import fail_runs
from jobsys.store.tables import JobDefinition, JobRun, JobSchedule, WorkerInstance, col
from jobsys.vocabulary import RunStatus, WorkerStatus

if TYPE_CHECKING:
    from jobsys.store import models

DAEMON_LOST = "daemon lost"

#: Design 6.9: a daemon is live while its newest heartbeat is at most 5 minutes old.
LIVE_HEARTBEAT_S = 300


def live_window(poll_interval_ms: int | None = None) -> timedelta:
    """How recent a daemon's heartbeat must be for it to count as live: the one
    definition health, ``/metrics``, the UI and the wake-ups of the web and CLI use.

    5 minutes; given the poll interval, three poll periods when that is longer (a daemon
    heartbeats once per poll, so a slow poll must not make it look dead).
    """
    seconds = float(LIVE_HEARTBEAT_S)
    if poll_interval_ms is not None:
        seconds = max(seconds, 3 * poll_interval_ms / 1000)
    return timedelta(seconds=seconds)


def register(
    engine: Engine,
    *,
    worker_id: str,
    hostname: str,
    pid: int,
    wake_host: str | None,
    wake_port: int | None,
    version: str,
    concurrency: int,
    now: datetime,
    info: dict[str, object] | None = None,
) -> None:
    with database_errors(engine, "cannot register worker in"), engine.begin() as conn:
        conn.execute(
            insert(WorkerInstance).values(
                id=worker_id,
                hostname=hostname,
                pid=pid,
                status=WorkerStatus.RUNNING,
                started_at=now,
                last_heartbeat_at=now,
                wake_host=wake_host,
                wake_port=wake_port,
                version=version,
                concurrency=concurrency,
                info=dict(info or {}),
            )
        )


def heartbeat(engine: Engine, worker_id: str, now: datetime) -> bool:
    """Renew this worker's lease. False means another daemon declared it dead (its row is
    STOPPED and its runs were recovered): the caller must abandon what it holds."""
    with write_engine(engine).begin() as conn:
        result = conn.execute(
            update(WorkerInstance)
            .where(
                col(WorkerInstance.id) == worker_id,
                col(WorkerInstance.status) != WorkerStatus.STOPPED,
            )
            .values(last_heartbeat_at=now)
        )
    return result.rowcount == 1


def set_status(engine: Engine, worker_id: str, status: WorkerStatus, now: datetime) -> None:
    values: dict[str, object] = {"status": status, "last_heartbeat_at": now}
    if status == WorkerStatus.STOPPED:
        values["stopped_at"] = now
    with write_engine(engine).begin() as conn:
        conn.execute(
            update(WorkerInstance).where(col(WorkerInstance.id) == worker_id).values(**values)
        )


def live_wake_addresses(
    engine: Engine, now: datetime, stale_after: timedelta
) -> list[tuple[str, int]]:
    """Where to send wake-ups: running daemons that heartbeated recently."""
    with engine.connect() as conn:
        return wake_addresses_on(conn, now, stale_after)


# Built once: the web reads it after every action that wakes the daemons.
_WAKE_ADDRESSES = select(col(WorkerInstance.wake_host), col(WorkerInstance.wake_port)).where(
    col(WorkerInstance.status) == WorkerStatus.RUNNING,
    col(WorkerInstance.last_heartbeat_at) >= bindparam("since"),
    col(WorkerInstance.wake_port).is_not(None),
)


def wake_addresses_on(
    conn: Connection, now: datetime, stale_after: timedelta
) -> list[tuple[str, int]]:
    """``live_wake_addresses`` read on ``conn`` (e.g. in a caller's transaction)."""
    rows = conn.execute(_WAKE_ADDRESSES, {"since": now - stale_after}).all()
    return [(host, int(port)) for host, port in rows if host and port]


def notify_daemons(engine: Engine, now: datetime, stale_after: timedelta) -> int:
    """Wake every live daemon (design 6.6); returns how many were told."""
    from jobsys.wake import send_wake

    return send_wake(live_wake_addresses(engine, now, stale_after))


def list_workers(engine: Engine) -> list[models.WorkerInstance]:
    # The web's and the CLI's: ORM rows (one table per statement: the model's, not the
    # mirror's, or the two would be joined).
    from sqlmodel import col as model_col

    from jobsys.store.models import WorkerInstance as Model

    with session(engine) as s:
        query = select(Model).order_by(model_col(Model.started_at).desc())
        return list(s.execute(query).scalars().all())


@dataclass
class Recovery:
    workers: list[str] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)


def recover_dead(
    engine: Engine, now: datetime, lock_timeout: timedelta, *, exclude: str | None = None
) -> Recovery:
    """Release what dead daemons held: their RUNNING runs become FAILED ("daemon lost"),
    job mutexes and schedule locks are released, the instance is marked STOPPED.

    A daemon is dead when its heartbeat is older than ``lock_timeout`` or it is marked
    STOPPED while still holding runs (it stopped without cleaning up).
    """
    report = Recovery()
    stale_before = now - lock_timeout
    with database_errors(engine, "cannot recover dead workers in"):
        with write_engine(engine).begin() as conn:
            dead = [
                wid
                for (wid,) in conn.execute(
                    select(col(WorkerInstance.id)).where(
                        col(WorkerInstance.status) != WorkerStatus.STOPPED,
                        col(WorkerInstance.last_heartbeat_at) < stale_before,
                    )
                )
                if wid != exclude
            ]
            for wid in dead:
                # Conditional: if it heartbeated meanwhile, it is alive after all.
                done = conn.execute(
                    update(WorkerInstance)
                    .where(
                        col(WorkerInstance.id) == wid,
                        col(WorkerInstance.status) != WorkerStatus.STOPPED,
                        col(WorkerInstance.last_heartbeat_at) < stale_before,
                    )
                    .values(status=WorkerStatus.STOPPED, stopped_at=now)
                )
                if done.rowcount == 1:
                    report.workers.append(wid)
        # Runs held by any STOPPED worker (just declared dead, or one that died while
        # shutting down) are orphans.
        with engine.connect() as conn:
            orphans = conn.execute(
                select(col(JobRun.id), col(JobRun.worker_id))
                .join(WorkerInstance, col(WorkerInstance.id) == col(JobRun.worker_id))
                .where(
                    col(JobRun.status) == RunStatus.RUNNING,
                    col(WorkerInstance.status) == WorkerStatus.STOPPED,
                )
            ).all()
        by_worker: dict[str, list[int]] = {}
        for run_id, holder in orphans:
            if run_id is not None and holder is not None:
                by_worker.setdefault(holder, []).append(run_id)
        for wid, run_ids in by_worker.items():
            report.runs += fail_runs(
                engine,
                run_ids,
                worker_id=wid,
                error=f"{DAEMON_LOST}: worker {wid} stopped heartbeating",
                now=now,
            )
        with write_engine(engine).begin() as conn:
            stopped = select(col(WorkerInstance.id)).where(
                col(WorkerInstance.status) == WorkerStatus.STOPPED
            )
            conn.execute(
                update(JobDefinition)
                .where(col(JobDefinition.running_worker_id).in_(stopped))
                .values(running_run_id=None, running_worker_id=None)
            )
            conn.execute(
                update(JobSchedule)
                .where(col(JobSchedule.locked_by).in_(stopped))
                .values(locked_by=None)
            )
    return report


def release_all(engine: Engine, worker_id: str, now: datetime) -> None:
    """On shutdown: fail whatever this worker still holds and release its mutexes and locks."""
    with engine.connect() as conn:
        held = [
            rid
            for (rid,) in conn.execute(
                select(col(JobRun.id)).where(
                    col(JobRun.worker_id) == worker_id, col(JobRun.status) == RunStatus.RUNNING
                )
            )
            if rid is not None
        ]
    if held:
        fail_runs(
            engine,
            held,
            worker_id=worker_id,
            error="daemon stopped while the run was active",
            now=now,
        )
    with write_engine(engine).begin() as conn:
        conn.execute(
            update(JobDefinition)
            .where(col(JobDefinition.running_worker_id) == worker_id)
            .values(running_run_id=None, running_worker_id=None)
        )
        conn.execute(
            update(JobSchedule)
            .where(col(JobSchedule.locked_by) == worker_id)
            .values(locked_by=None)
        )
