"""The daemon's hot path: plain SQL on one DBAPI connection, for claims and outcomes.

A no-op run costs the daemon a claim, a start and an outcome. Through SQLAlchemy each
statement pays ~0.1 ms of Python (execution context, events, result set-up) on top of
the ~0.02 ms the driver needs, and each transaction a pool checkout; with ~8 statements
per run that was most of the daemon's 2 ms of CPU per run (issue 9 item 3). The few
statements of the common case (take a job's mutex, start runs, record outcomes, release
mutexes, record pids, "is this batch still active?") are therefore written here once as
SQL text per dialect and sent straight to the driver; the SQL is the same as the Core
statements it replaces (same conditions, so the same exactly-once guarantees: every
claim is a conditional UPDATE whose rowcount says who won). Everything uncommon
(retries, skips, cancels, settling a batch) stays in SQLAlchemy Core.

A ``HotConnection`` either keeps its connection (the daemon: one connection for its
life, re-opened after an error or a long idle spell) or checks one out of the engine's
pool per transaction (other callers, tests). Driver errors become ``DatabaseError``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from jobsys.errors import DatabaseError
from jobsys.store.db import dialect_name, mask_url

#: A kept connection unused for this long is replaced before its next use: the server
#: may have closed it (MySQL's ``wait_timeout``), and a failed claim would cost a retry.
MAX_IDLE_S = 300.0


class HotConnection:
    def __init__(self, engine: Engine, *, keep: bool = False) -> None:
        self.engine = engine
        self.keep = keep
        self.dialect = dialect_name(engine)
        self._mysql = self.dialect == "mysql"
        self._proxy: Any = None  # the pool's proxy of the kept connection
        self._last_used = 0.0
        #: Statements sent (tests and benchmarks count them; SQLAlchemy events do not
        #: see this path).
        self.statements = 0

    # -- values ---------------------------------------------------------------------
    def ts(self, value: datetime | None) -> Any:
        """An instant as the column stores it (naive UTC; SQLAlchemy's text form on
        SQLite, so that stored values compare and read back as before)."""
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        if self._mysql:
            return value
        return f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond:06d}"

    def read_ts(self, value: Any) -> datetime:
        """A stored instant read back as plain SQL returns it (SQLite: text), aware UTC."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"not an instant: {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def sql(self, text: str) -> str:
        """``text`` written with ``?`` placeholders, in the driver's paramstyle."""
        return _mysql_sql(text) if self._mysql else text

    # -- connections ----------------------------------------------------------------
    def _connection(self) -> Any:
        if self._proxy is not None and time.monotonic() - self._last_used > MAX_IDLE_S:
            self.close()
        if self._proxy is None:
            self._proxy = self.engine.raw_connection()
        self._last_used = time.monotonic()
        return self._proxy

    def close(self) -> None:
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            with suppress(Exception):
                proxy.close()

    def _discard(self) -> None:
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            with suppress(Exception):
                proxy.invalidate()

    @contextmanager
    def transaction(self, doing: str, *, write: bool = True) -> Iterator[Tx]:
        """One transaction (SQLite: ``BEGIN IMMEDIATE``, as ``write_engine``); committed
        at the end, rolled back on any error. ``write=False``: reads, each seeing what
        was committed before it (SQLite: no transaction at all; MySQL: READ COMMITTED,
        ended by a COMMIT so that no snapshot or metadata lock outlives the call)."""
        try:
            dbapi = self._connection()
        except Exception as exc:
            raise self._error(doing, exc) from exc
        raw = dbapi.dbapi_connection
        cursor = None
        try:
            cursor = raw.cursor()
            if write and not self._mysql:
                cursor.execute("BEGIN IMMEDIATE")
            yield Tx(self, cursor)
            if self._mysql:
                raw.commit()
            elif write:
                cursor.execute("COMMIT")
        except BaseException as exc:
            try:
                raw.rollback() if self._mysql else _sqlite_rollback(raw)
            except Exception:
                self._discard()
            else:
                if not self.keep:
                    self.close()
            if isinstance(exc, self._driver_errors()):
                self._discard()  # it may be broken; a fresh one costs little
                raise self._error(doing, exc) from exc
            raise
        else:
            if not self.keep:
                self.close()
        finally:
            if cursor is not None:
                with suppress(Exception):
                    cursor.close()

    def _driver_errors(self) -> type[BaseException]:
        dbapi: Any = self.engine.dialect.loaded_dbapi
        error: type[BaseException] = dbapi.Error
        return error

    def _error(self, doing: str, exc: BaseException) -> DatabaseError:
        args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
        reason = (
            f"{args[1]} (error {args[0]})"
            if len(args) == 2 and isinstance(args[0], int)
            else (str(exc) or type(exc).__name__)
        )
        password = self.engine.url.password
        if password:
            reason = reason.replace(str(password), "***")
        return DatabaseError(f"{doing} {mask_url(self.engine.url)}: {reason}")


def _sqlite_rollback(raw: Any) -> None:
    if raw.in_transaction:
        raw.execute("ROLLBACK")


class Tx:
    """Statements in one ``HotConnection.transaction``."""

    __slots__ = ("cursor", "hot")

    def __init__(self, hot: HotConnection, cursor: Any) -> None:
        self.hot = hot
        self.cursor = cursor

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns its rowcount (matched rows on MySQL, as
        SQLAlchemy's ``client_flag`` asks)."""
        self.hot.statements += 1
        self.cursor.execute(self.hot.sql(text), tuple(params))
        return int(self.cursor.rowcount)

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> int:
        """One statement for many parameter rows (one round trip per row on MySQL, in
        the driver); returns the summed rowcount. One row: a plain execute."""
        if len(rows) == 1:
            return self.execute(text, rows[0])
        if not rows:
            return 0
        self.hot.statements += 1
        self.cursor.executemany(self.hot.sql(text), [tuple(r) for r in rows])
        return int(self.cursor.rowcount)

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.hot.statements += 1
        self.cursor.execute(self.hot.sql(text), tuple(params))
        return list(self.cursor.fetchall())


@functools.lru_cache(maxsize=256)
def _mysql_sql(text: str) -> str:
    return text.replace("%", "%%").replace("?", "%s")


@functools.lru_cache(maxsize=256)
def marks(count: int) -> str:
    """``?, ?, ...`` for an ``IN (...)`` of ``count`` values (at least one)."""
    return ", ".join("?" * max(1, count))


class CoreTx(Tx):
    """The same statements in a SQLAlchemy transaction (``conn``), for the uncommon
    cases whose other statements are Core (a failed run's retry, written with it)."""

    __slots__ = ("conn",)

    def __init__(self, hot: HotConnection, conn: Connection) -> None:
        super().__init__(hot, None)
        self.conn = conn

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        self.hot.statements += 1
        return int(self.conn.exec_driver_sql(self.hot.sql(text), tuple(params)).rowcount)

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> int:
        if len(rows) == 1:
            return self.execute(text, rows[0])
        if not rows:
            return 0
        self.hot.statements += 1
        result = self.conn.exec_driver_sql(self.hot.sql(text), [tuple(r) for r in rows])
        return int(result.rowcount)

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.hot.statements += 1
        return [tuple(r) for r in self.conn.exec_driver_sql(self.hot.sql(text), tuple(params))]
