"""``jobsys.enqueue``: queue a run of a job from application code (trigger ``EVENT``).

A web app (or anything else) that shares the database with the daemons calls
``enqueue("send-invoice", {"invoice_id": 42})`` when something happens; a daemon runs
the job as soon as it is woken. The params are checked against the job's declared
params first (``DefinitionError``, nothing written). Given the caller's SQLAlchemy
``connection``, the run is inserted in the caller's transaction and exists only if that
transaction commits; the daemons are woken after the commit.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from jobsys.definitions import App

#: SQLAlchemy announces a commit just before it happens, and a daemon woken before the
#: row is visible would find nothing and wait for its poll: so a wake-up goes out at
#: once and again this long after (from a thread the interpreter waits for at exit, so
#: a script that commits and exits still wakes the daemons).
WAKE_AGAIN_AFTER_S = 0.05

_engines: dict[str, Engine] = {}
_apps: dict[str, App] = {}
_lock = threading.Lock()


def enqueue(
    job: str,
    params: dict[str, Any] | None = None,
    *,
    app: App | None = None,
    database_url: str | None = None,
    connection: Connection | None = None,
) -> int:
    """Queue one run of ``job`` with ``params``; return the run's id.

    ``app``: the application (default: the one ``JOBSYS_APP`` names). ``connection``:
    the caller's SQLAlchemy connection; the insert joins its transaction (one is begun
    if none is) and is not committed here. Otherwise ``database_url`` (default
    ``DATABASE_URL``) is used and the run is committed before this returns.

    Raises ``DefinitionError`` for an unknown job or params that do not match its
    declared params, before anything is written; ``ConfigError`` when no database or
    application is given; ``DatabaseError`` when the database fails.
    """
    from jobsys.clock import SystemClock
    from jobsys.errors import ConfigError
    from jobsys.planning import plan_manual
    from jobsys.store.enqueue import insert_event_run
    from jobsys.vocabulary import BatchMode

    if connection is not None and database_url is not None:
        raise ConfigError("jobsys.enqueue: give connection or database_url, not both")
    the_app = app if app is not None else _default_app()
    plan = plan_manual(the_app, mode=BatchMode.JOB, job=job, params=params)
    now = SystemClock().now()
    if connection is not None:
        run_id, addresses = insert_event_run(connection, plan, now=now)
        _wake_after_commit(connection, addresses)
        return run_id
    engine = _engine(database_url or os.environ.get("DATABASE_URL", ""))
    from jobsys.store.db import database_errors, write_engine

    with (
        database_errors(engine, "cannot enqueue a run in"),
        write_engine(engine).begin() as conn,
    ):
        run_id, addresses = insert_event_run(conn, plan, now=now)
    _send(addresses)
    return run_id


def _default_app() -> App:
    from jobsys.errors import ConfigError
    from jobsys.loader import load_app

    spec = (os.environ.get("JOBSYS_APP") or "").strip()
    if not spec:
        raise ConfigError("jobsys.enqueue: pass app= or set JOBSYS_APP")
    with _lock:
        if spec not in _apps:
            _apps[spec] = load_app(spec)
        return _apps[spec]


def _engine(url: str) -> Engine:
    from jobsys.errors import ConfigError
    from jobsys.store.db import make_engine

    if not url.strip():
        raise ConfigError("jobsys.enqueue: pass database_url= or connection=, or set DATABASE_URL")
    with _lock:
        if url not in _engines:
            _engines[url] = make_engine(url, create=False)
        return _engines[url]


def _wake_after_commit(connection: Connection, addresses: list[tuple[str, int]]) -> None:
    """Wake the daemons once the caller's transaction commits (never if it rolls back)."""
    if not addresses:
        return  # no live daemon: the next one to start finds the run
    from jobsys.store.enqueue import on_commit

    def woken() -> None:
        # Called just before the commit happens: wake now and from a thread, shortly after.
        _send(addresses)
        threading.Thread(target=_send_later, args=(addresses,)).start()

    on_commit(connection, woken)


def _send_later(addresses: list[tuple[str, int]]) -> None:
    import time

    time.sleep(WAKE_AGAIN_AFTER_S)
    _send(addresses)


def _send(addresses: list[tuple[str, int]]) -> None:
    from jobsys.wake import send_wake

    send_wake(addresses)
