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

Packets (MySQL): each statement sent on its own costs a network round trip (0.2-0.4 ms
on loopback, more across hosts), and a tick that records outcomes and claims runs used
~10 of them plus one per job mutex. When the engine's connections allow several
statements per query (``make_engine(multi_statements=True)``, the daemon's engine), a
transaction's statements travel together: statements whose result the code does not
need at once are queued (``Tx.defer``) and sent ahead of the next one that is needed,
the mutexes of a claim round go in one packet (``Tx.each``), and the last queued ones
go with the ``COMMIT``. The server runs them one by one, in order, exactly as if sent
apart (each keeps its own rowcount; the first error stops the rest and rolls back the
transaction), so nothing about locking or exactly-once changes: only the waiting. On
SQLite (in-process) and without the option, each statement is simply run at once.

Waiting (MySQL): between sending a statement and reading its reply, a connection calls
its ``while_waiting(fd)`` if it has one, with the fd of the connection's socket. The
daemon hands runs it claimed ahead to workers that finished meanwhile, so that no
worker waits for the database (issue 9); it must not use the database itself (this
connection is mid-transaction) and returns once ``fd`` is readable or it has nothing
to do. Only the first reply of a query is waited for this way: later results of a
packet may already sit in the driver's buffer, where polling the socket cannot see them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from jobsys.errors import DatabaseError
from jobsys.store.db import MYSQL_MULTI_STATEMENTS, dialect_name, mask_url

#: The MySQL protocol's COM_QUERY (``pymysql.constants.COMMAND``; not imported, so that
#: a daemon on SQLite never loads PyMySQL).
_COM_QUERY = 0x03

#: A kept connection unused for this long is replaced before its next use: the server
#: may have closed it (MySQL's ``wait_timeout``), and a failed claim would cost a retry.
MAX_IDLE_S = 300.0


class HotConnection:
    def __init__(self, engine: Engine, *, keep: bool = False) -> None:
        self.engine = engine
        self.keep = keep
        self.dialect = dialect_name(engine)
        self._mysql = self.dialect == "mysql"
        #: Statements may travel several per round trip (see the module docstring); known
        #: once connected.
        self.packets = False
        self._proxy: Any = None  # the pool's proxy of the kept connection
        self._last_used = 0.0
        #: Statements sent (tests and benchmarks count them; SQLAlchemy events do not
        #: see this path), and the round trips that carried them.
        self.statements = 0
        self.round_trips = 0
        #: Called with the socket's fd while a reply is on its way (see the docstring).
        self.while_waiting: Callable[[int], None] | None = None

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

    def render(self, cursor: Any, text: str, params: Sequence[Any]) -> str:
        """MySQL: ``text`` with each ``?`` replaced by its parameter as a literal, as
        the driver's own formatting (``mogrify``) writes it, but without its cost per
        value (a dispatch through its encoder table, ~2 µs): most values of a packet
        repeat (statuses, instants, the worker id), so each distinct string and instant
        is escaped once per call. The result is sent with no parameters."""
        parts = _split_marks(text)
        if len(parts) != len(params) + 1:
            raise ValueError(f"{len(params)} parameter(s) for {len(parts) - 1} mark(s): {text}")
        escape = cursor.connection.escape
        memo: dict[Any, str] = {}
        out = [parts[0]]
        for value, part in zip(params, parts[1:], strict=True):
            kind = type(value)
            if kind is int:
                out.append(str(value))
            elif value is None:
                out.append("NULL")
            elif kind is datetime or isinstance(value, str):  # they repeat: escaped once
                literal = memo.get(value)
                if literal is None:
                    literal = memo[value] = escape(value)
                out.append(literal)
            else:  # bool, float, bytes, ...: the driver's own rendering
                out.append(escape(value))
            out.append(part)
        return "".join(out)

    def query(self, cursor: Any, sql: str) -> None:
        """MySQL: run ``sql`` (no parameters) on ``cursor``, as ``cursor.execute``
        does, calling ``while_waiting`` between the send and the read of the reply."""
        waiting = self.while_waiting
        if waiting is None:
            cursor.execute(sql)
            return
        conn = cursor.connection
        while cursor.nextset():  # as execute(): the previous query's results are read
            pass
        # PyMySQL's own steps for execute() (Cursor._query, Connection.query), split so
        # that the wait for the reply can be used.
        cursor._clear_result()
        conn._execute_command(_COM_QUERY, sql.encode(conn.encoding))
        try:
            waiting(conn._sock.fileno())
        finally:  # read the reply whatever happened: the connection stays in step
            conn._affected_rows = conn._read_query_result(unbuffered=False)
            cursor._do_get_result()
            cursor._executed = sql  # (fetchall() and nextset() check it)

    # -- connections ----------------------------------------------------------------
    def _connection(self) -> Any:
        if self._proxy is not None and time.monotonic() - self._last_used > MAX_IDLE_S:
            self.close()
        if self._proxy is None:
            self._proxy = self.engine.raw_connection()
            flags = getattr(self._proxy.dbapi_connection, "client_flag", 0)
            self.packets = self._mysql and bool(flags & MYSQL_MULTI_STATEMENTS)
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
            tx = Tx(self, cursor)
            yield tx
            if tx.queued:
                tx.send((), commit=True)  # the queued statements and the COMMIT: one trip
            elif self._mysql:
                self.round_trips += 1
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


class Pending:
    """A deferred statement's rowcount, known once it has been sent."""

    __slots__ = ("rowcount",)

    def __init__(self) -> None:
        self.rowcount = -1


Statement = tuple[str, Sequence[Any]]


class Tx:
    """Statements in one ``HotConnection.transaction``."""

    __slots__ = ("cursor", "hot", "queued")

    def __init__(self, hot: HotConnection, cursor: Any) -> None:
        self.hot = hot
        self.cursor = cursor
        #: Deferred statements not sent yet (packets only), with their ``Pending``.
        self.queued: list[tuple[str, Sequence[Any], Pending]] = []

    def defer(self, text: str, params: Sequence[Any] = ()) -> Pending:
        """A statement whose result is not needed now: sent ahead of the next statement
        (or with the COMMIT) when statements travel in packets, else run at once."""
        pending = Pending()
        if self.hot.packets:
            self.queued.append((text, params, pending))
        else:
            pending.rowcount = self.execute(text, params)
        return pending

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns its rowcount (matched rows on MySQL, as
        SQLAlchemy's ``client_flag`` asks)."""
        if self.queued:
            return self.send([(text, params)])[0][0]
        self._run(text, params)
        return int(self.cursor.rowcount)

    def _run(self, text: str, params: Sequence[Any]) -> None:
        self.hot.statements += 1
        self.hot.round_trips += 1
        if self.hot._mysql:
            self.hot.query(self.cursor, self.hot.render(self.cursor, text, params))
        else:
            self.cursor.execute(text, tuple(params))

    def each(self, statements: Sequence[Statement]) -> list[int]:
        """Several statements, in order, in one round trip where packets allow; returns
        each one's rowcount."""
        if self.hot.packets:
            return [count for count, _ in self.send(statements)]
        return [self.execute(text, params) for text, params in statements]

    def query_each(self, statements: Sequence[Statement]) -> list[list[tuple[Any, ...]]]:
        """Several queries, in order, in one round trip where packets allow; returns
        each one's rows."""
        if self.hot.packets:
            return [rows for _, rows in self.send(statements)]
        return [self.rows(text, params) for text, params in statements]

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> int:
        """One statement for many parameter rows (one round trip per row on MySQL, in
        the driver, unless packets carry them); returns the summed rowcount. One row: a
        plain execute."""
        if len(rows) == 1:
            return self.execute(text, rows[0])
        if not rows:
            return 0
        if self.hot.packets:
            return sum(self.each([(text, row) for row in rows]))
        self.hot.statements += 1
        self.hot.round_trips += 1
        self.cursor.executemany(self.hot.sql(text), [tuple(r) for r in rows])
        return int(self.cursor.rowcount)

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.queued:
            return self.send([(text, params)])[0][1]
        self._run(text, params)
        return list(self.cursor.fetchall())

    def send(
        self, statements: Sequence[Statement], *, commit: bool = False
    ) -> list[tuple[int, list[tuple[Any, ...]]]]:
        """The queued statements, then ``statements`` (then ``COMMIT``), as one query
        (packets only); returns (rowcount, rows) of each of ``statements``. A failing
        statement raises the driver's error and the server runs none after it."""
        queued, self.queued = self.queued, []
        cursor = self.cursor
        render = self.hot.render
        parts = [render(cursor, text, params) for text, params, _ in queued]
        parts += [render(cursor, text, params) for text, params in statements]
        self.hot.statements += len(parts)  # the COMMIT not counted, as when sent alone
        if commit:
            parts.append("COMMIT")
        self.hot.round_trips += 1
        self.hot.query(cursor, ";\n".join(parts))
        results: list[tuple[int, list[tuple[Any, ...]]]] = []
        total = len(queued) + len(statements) + (1 if commit else 0)
        for i in range(total):
            if i:
                cursor.nextset()
            count = int(cursor.rowcount)
            if i < len(queued):
                queued[i][2].rowcount = count
            elif i < len(queued) + len(statements):
                rows = list(cursor.fetchall()) if cursor.description else []
                results.append((count, rows))
        return results


@functools.lru_cache(maxsize=512)
def _split_marks(text: str) -> list[str]:
    """``text`` cut at its ``?`` marks (no statement here has a ``?`` of its own)."""
    return text.split("?")


@functools.lru_cache(maxsize=256)
def _mysql_sql(text: str) -> str:
    return text.replace("%", "%%").replace("?", "%s")


@functools.lru_cache(maxsize=256)
def marks(count: int) -> str:
    """``?, ?, ...`` for an ``IN (...)`` of ``count`` values (at least one)."""
    return ", ".join("?" * max(1, count))


@contextmanager
def tx_in(conn: Connection) -> Iterator[Tx]:
    """Plain SQL inside the Core transaction ``conn`` (which Core began and will end),
    on its DBAPI connection: for a run of like statements in a Core transaction (e.g.
    one claim per due schedule), without SQLAlchemy's cost per statement and, where the
    connection allows, in one packet (``Tx.each``; nothing is deferred past it). The
    cursor is closed at the end; the transaction goes on."""
    hot = HotConnection(conn.engine)
    raw: Any = conn.connection.dbapi_connection
    hot.packets = hot.dialect == "mysql" and bool(
        getattr(raw, "client_flag", 0) & MYSQL_MULTI_STATEMENTS
    )
    cursor = raw.cursor()
    try:
        yield Tx(hot, cursor)
    finally:
        cursor.close()


class CoreTx(Tx):
    """The same statements in a SQLAlchemy transaction (``conn``), for the uncommon
    cases whose other statements are Core (a failed run's retry, written with it)."""

    __slots__ = ("conn",)

    def __init__(self, hot: HotConnection, conn: Connection) -> None:
        super().__init__(hot, None)
        self.conn = conn

    def defer(self, text: str, params: Sequence[Any] = ()) -> Pending:
        pending = Pending()
        pending.rowcount = self.execute(text, params)
        return pending

    def each(self, statements: Sequence[Statement]) -> list[int]:
        return [self.execute(text, params) for text, params in statements]

    def query_each(self, statements: Sequence[Statement]) -> list[list[tuple[Any, ...]]]:
        return [self.rows(text, params) for text, params in statements]

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
