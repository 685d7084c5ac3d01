"""Database URLs, engines and sessions for SQLite and MySQL/MariaDB.

Engines are made by the caller (CLI, daemon, web, tests) and passed down; this module
keeps none.

SQLite transactions. Python's sqlite3 driver, left alone, does not BEGIN before a SELECT
or DDL, so reads are not in the transaction and migrations are not atomic. We follow
SQLAlchemy's recipe: the driver's own transaction handling is switched off and a
``BEGIN`` is emitted when SQLAlchemy starts a transaction. That ``BEGIN`` is deferred:
the write lock is taken by the first write and waited for up to ``busy_timeout``.
Our claims are single conditional UPDATEs whose rowcount says who won, so they need no
more. One trap remains, in WAL mode: a transaction that *reads first and writes later*
fails at once with "database is locked" if another connection committed in between
(SQLite cannot move its snapshot). Such transactions must take the write lock up front:
use ``session(engine, write=True)`` or ``write_engine(engine)``, which emit
``BEGIN IMMEDIATE`` on SQLite (and change nothing on MySQL).
"""

from __future__ import annotations

import re
import threading
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from jobsys.errors import ConfigError, DatabaseError

if TYPE_CHECKING:  # imported when a session is made: the daemon never loads SQLModel
    from sqlmodel import Session

#: Execution option that makes SQLite transactions start with ``BEGIN IMMEDIATE``.
SQLITE_IMMEDIATE = "jobsys_sqlite_begin_immediate"

SQLITE_BUSY_TIMEOUT_MS = 10_000
MYSQL_CONNECT_TIMEOUT_S = 5

_MYSQL_SCHEMES = {"mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql"}
_SQLITE_SCHEMES = {"sqlite", "sqlite+pysqlite"}
_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***``, safe for messages and logs."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


def normalize_url(url: str) -> str:
    """Check a ``DATABASE_URL`` and return the form SQLAlchemy should connect with.

    ``mysql://`` and ``mariadb://`` use PyMySQL with ``charset=utf8mb4``; SQLite needs a
    file (``sqlite:///relative`` or ``sqlite:////absolute``), since an in-memory
    database cannot be shared by the web and daemon processes.
    """
    text = url.strip()
    if not text:
        raise ConfigError(
            "DATABASE_URL is empty (use mysql://user:pass@host:port/db or sqlite:///path)"
        )
    masked = mask_url(text)
    if "://" not in text:
        raise ConfigError(
            f"DATABASE_URL {masked!r} is not a URL "
            "(use mysql://user:pass@host:port/db or sqlite:///path)"
        )
    scheme = text.split("://", 1)[0].lower()
    if scheme not in _MYSQL_SCHEMES | _SQLITE_SCHEMES:
        raise ConfigError(
            f"DATABASE_URL {masked!r}: unsupported scheme {scheme!r} (use mysql:// or sqlite:///)"
        )
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError):
        # The parser's message may quote the URL, password included.
        raise ConfigError(f"DATABASE_URL {masked!r} is not a valid URL") from None
    if scheme in _SQLITE_SCHEMES:
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in database:
            raise ConfigError(
                f"DATABASE_URL {masked!r}: an in-memory SQLite database cannot be shared "
                "between processes; name a file, e.g. sqlite:///./jobsys.db"
            )
        return text
    if not parsed.database:
        raise ConfigError(
            f"DATABASE_URL {masked!r} names no database (mysql://user:pass@host:port/db)"
        )
    parsed = parsed.set(drivername="mysql+pymysql")
    if "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed.render_as_string(hide_password=False)


class MissingDatabase(ConfigError):
    """The SQLite file does not exist and the caller may not create it."""


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    pre_ping: bool = True,
    create: bool = True,
    multi_statements: bool = False,
) -> Engine:
    """An engine for ``url`` (any form ``normalize_url`` accepts), tuned for jobsys.

    ``create=False`` refuses a SQLite file that does not exist (``ConfigError``) instead
    of creating it and its folders: only ``migrate`` and ``demo`` make a database, so a
    typo in the path of any other command does not leave an empty database behind.

    ``pre_ping=False`` (the daemon) saves a round trip per checkout on MySQL; a
    connection the server dropped then fails one statement, SQLAlchemy discards the
    pool, and the caller's retry gets a fresh connection.

    ``multi_statements=True`` (the daemon) lets MySQL connections carry several
    statements per query, so the daemon's hot path sends a transaction's statements in
    few round trips (``jobsys.store.hotpath``). Off elsewhere: every statement jobsys
    sends binds its values, but a server that refuses stacked statements is one more
    wall should that ever change, and the web faces the network.
    """
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, pool_size, create)
    if multi_statements:
        # SQLAlchemy ORs this with the FOUND_ROWS flag it needs for rowcounts.
        parsed = parsed.update_query_dict({"client_flag": str(MYSQL_MULTI_STATEMENTS)})
    return _mysql_engine(parsed, pool_size, pre_ping)


def _sqlite_engine(url: URL, pool_size: int, create: bool = True) -> Engine:
    path = Path(url.database or "")
    if not str(path).startswith("file:"):
        if not create and not path.exists():
            raise MissingDatabase(
                f"database file {path.absolute()} does not exist; run `jobsys migrate` first"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_size=pool_size)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL may itself have to wait for a lock.
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()
        _add_functions(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
        if immediate and (lock := _WRITE_LOCKS.get(engine)) is not None:
            lock.acquire(conn.connection.dbapi_connection)  # see serialize_sqlite_writes
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _add_functions(dbapi_connection: Any) -> None:
    """MySQL functions the store uses that SQLite lacks: ``crc32`` (see
    ``firing.poll_overview``)."""
    dbapi_connection.create_function("crc32", 1, _crc32, deterministic=True)


def _crc32(text: str | None) -> int | None:
    return None if text is None else zlib.crc32(text.encode())


def _mysql_engine(url: URL, pool_size: int, pre_ping: bool) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        pool_pre_ping=pre_ping,
        # Below the server's wait_timeout, so the pool never hands out a closed socket.
        pool_recycle=3600,
        # Claims are conditional UPDATEs checked by rowcount; READ COMMITTED avoids the
        # gap locks (and their deadlocks) that REPEATABLE READ takes for them.
        isolation_level="READ COMMITTED",
        connect_args={
            "connect_timeout": MYSQL_CONNECT_TIMEOUT_S,
            # Server-side NOW() then agrees with the UTC we store (as on SQLite).
            "init_command": "SET time_zone = '+00:00'",
        },
    )


#: PyMySQL's ``CLIENT.MULTI_STATEMENTS`` (see ``make_engine``).
MYSQL_MULTI_STATEMENTS = 1 << 16


def make_autocommit_engine(url: str) -> Engine:
    """A one-connection engine whose statements commit on their own.

    For the daemon's idle path (heartbeat, the overview poll): each is one statement, so
    wrapping it in BEGIN/COMMIT (SQLite) or leaving a ROLLBACK on pool return (MySQL)
    would triple the round trips an idle daemon makes.
    """
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, pool_size=1, max_overflow=0)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # isolation_level None: the driver never issues BEGIN, so every statement
            # is its own transaction (and no "begin" listener adds one).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                cursor.execute("PRAGMA synchronous = NORMAL")
            finally:
                cursor.close()
            _add_functions(dbapi_connection)

        return engine
    engine = create_engine(
        parsed,
        pool_size=1,
        max_overflow=0,
        pool_recycle=3600,
        pool_reset_on_return=None,
        isolation_level="AUTOCOMMIT",
        connect_args={
            "connect_timeout": MYSQL_CONNECT_TIMEOUT_S,
            "init_command": "SET time_zone = '+00:00'",
        },
    )
    # SQLAlchemy still calls the driver's commit()/rollback() around each use, and PyMySQL
    # sends them to the server; with autocommit on there is nothing to end, so this
    # engine's dialect (its own instance) skips them.
    engine.dialect.do_commit = _no_op  # type: ignore[method-assign,assignment]
    engine.dialect.do_rollback = _no_op  # type: ignore[method-assign,assignment]
    return engine


def _no_op(_dbapi_connection: Any) -> None:
    return None


def write_engine(engine: Engine) -> Engine:
    """``engine`` whose SQLite transactions take the write lock at BEGIN.

    For transactions that read before they write (see the module docstring). It shares
    the pool of ``engine``; on MySQL it behaves exactly like ``engine``.
    """
    return engine.execution_options(**{SQLITE_IMMEDIATE: True})


def session(engine: Engine, *, write: bool = False) -> Session:
    """A ``sqlmodel.Session``; ``write=True`` for read-then-write transactions.

    Objects stay readable after ``commit()`` (``expire_on_commit=False``): callers hand
    them to the API and CLI after the session is gone, and jobsys never relies on
    re-reading them implicitly.
    """
    from sqlmodel import Session

    return Session(write_engine(engine) if write else engine, expire_on_commit=False)


def connect(engine: Engine, *, write: bool = False) -> Connection:
    """A Core connection used like ``session`` (``execute``, ``commit``, ``rollback``;
    what is not committed is rolled back when it closes), for store code that runs in
    the daemon: no ORM, so the daemon process never imports SQLModel (issue 9 item 5).
    ``write=True`` for read-then-write transactions, as for ``session``."""
    return (write_engine(engine) if write else engine).connect()


#: How long a writer waits for the process's write lock before going ahead anyway (and
#: meeting SQLite's own ``busy_timeout``): a bound, so a writer nested in another on the
#: same thread cannot hang forever.
WRITE_LOCK_WAIT_S = 30.0
_READ_ONLY_PREFIXES = ("SELECT", "PRAGMA", "BEGIN", "COMMIT", "ROLLBACK", "WITH", "EXPLAIN")


class _WriteLock:
    """One writer at a time on this engine, held from its first write (or ``BEGIN
    IMMEDIATE``) to its COMMIT/ROLLBACK."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holder: Any = None  # the DBAPI connection in the write transaction

    def acquire(self, dbapi_connection: Any) -> None:
        if self.holder is dbapi_connection:
            return
        if self.lock.acquire(timeout=WRITE_LOCK_WAIT_S):
            self.holder = dbapi_connection

    def release(self, connection: Any) -> None:
        # do_commit/do_rollback get the pool's proxy, the pool events the raw connection
        dbapi_connection = getattr(connection, "dbapi_connection", connection)
        if self.holder is dbapi_connection and dbapi_connection is not None:
            self.holder = None
            self.lock.release()


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, _WriteLock] = weakref.WeakKeyDictionary()


def serialize_sqlite_writes(engine: Engine) -> None:
    """Make this process's write transactions on ``engine`` queue for a lock (SQLite only).

    SQLite lets one writer in at a time and makes the others retry until
    ``busy_timeout``; with many threads (the web under load) retrying writers are served
    in no order, so some wait past the timeout and fail with "database is locked". With
    this lock the process's writers take turns, and only one of them at a time competes
    with the other processes (the daemons). For the web; the daemon forks, and a lock
    held at the fork would stay held in the child, so it does not use it.
    """
    if engine.dialect.name != "sqlite" or engine in _WRITE_LOCKS:
        return
    state = _WRITE_LOCKS[engine] = _WriteLock()  # BEGIN IMMEDIATE takes it (``_on_begin``)

    @event.listens_for(engine, "before_cursor_execute")
    def _before_write(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if conn.in_transaction() and not statement.lstrip().upper().startswith(_READ_ONLY_PREFIXES):
            state.acquire(conn.connection.dbapi_connection)

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        state.release(dbapi_connection)  # a transaction that ended without COMMIT/ROLLBACK

    @event.listens_for(engine.pool, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: Any, _exc: Any) -> None:
        state.release(dbapi_connection)

    dialect: Any = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def commit_then_release(dbapi_connection: Any) -> None:
        try:
            do_commit(dbapi_connection)
        finally:
            state.release(dbapi_connection)

    def rollback_then_release(dbapi_connection: Any) -> None:
        try:
            do_rollback(dbapi_connection)
        finally:
            state.release(dbapi_connection)

    # This engine's own dialect instance: the lock is released once COMMIT is done, not
    # before (the "commit" event fires before it).
    dialect.do_commit = commit_then_release
    dialect.do_rollback = rollback_then_release


def dialect_name(engine: Engine) -> str:
    """``"sqlite"`` or ``"mysql"`` (MariaDB included)."""
    name = engine.dialect.name
    return "mysql" if name in ("mysql", "mariadb") else name


def error_reason(exc: BaseException) -> str:
    """The driver's message for ``exc``, without SQLAlchemy's SQL and URL decoration."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        orig = exc.orig
        args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
        # PyMySQL errors are (code, message) pairs.
        if len(args) == 2 and isinstance(args[0], int):
            return f"{args[1]} (error {args[0]})"
        return str(orig) or type(orig).__name__
    return str(exc) or type(exc).__name__


@contextmanager
def database_errors(engine: Engine, doing: str) -> Iterator[None]:
    """Turn SQLAlchemy errors raised inside into ``DatabaseError("<doing> <url>: why")``."""
    try:
        yield
    except SQLAlchemyError as exc:
        reason = error_reason(exc)
        password = engine.url.password
        if password:
            reason = reason.replace(str(password), "***")
        raise DatabaseError(f"{doing} {mask_url(engine.url)}: {reason}") from exc
