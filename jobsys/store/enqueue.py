"""Writing a run queued from application code (``jobsys.enqueue``, trigger EVENT).

Everything happens on the caller's connection, in its transaction: nothing is committed
here, so the run exists only if that transaction commits.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import event
from sqlalchemy.engine import Connection

from jobsys.store.batches import insert_batch
from jobsys.store.types import BatchPlan
from jobsys.store.workers import live_window, wake_addresses_on
from jobsys.vocabulary import Trigger

#: ``triggered_by`` of a run queued by ``jobsys.enqueue``.
ENQUEUED_BY = "jobsys.enqueue"


def insert_event_run(
    conn: Connection, plan: BatchPlan, *, now: datetime
) -> tuple[int, list[tuple[str, int]]]:
    """Insert the one-run batch ``plan`` (trigger EVENT) in ``conn``'s transaction
    (begun here if none is); return the run id and where to wake live daemons."""
    if not conn.in_transaction():
        conn.begin()  # the caller's to commit, like SQLAlchemy's autobegin
    created = insert_batch(conn, plan, trigger=Trigger.EVENT, triggered_by=ENQUEUED_BY, now=now)
    addresses = wake_addresses_on(conn, now, live_window())
    return created.run_ids[0], addresses


#: Callbacks waiting for each caller connection's commit. One pair of listeners per
#: connection (removing a listener while SQLAlchemy dispatches it is not allowed).
_pending: weakref.WeakKeyDictionary[Connection, list[Callable[[], None]]] = (
    weakref.WeakKeyDictionary()
)


def on_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` when ``conn``'s transaction commits (just before the commit
    reaches the database); forget it if the transaction rolls back."""
    if conn not in _pending:
        _pending[conn] = []

        def committed(_conn: Connection) -> None:
            waiting, _pending[conn] = _pending[conn], []
            for fn in waiting:
                fn()

        def rolled_back(_conn: Connection) -> None:
            _pending[conn] = []

        event.listen(conn, "commit", committed)
        event.listen(conn, "rollback", rolled_back)
    _pending[conn].append(callback)
