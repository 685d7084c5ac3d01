"""Bring the database schema to the revision this jobsys was built with.

Alembic is driven from code (no ``alembic.ini``): ``alembic_config`` points it at the
``migrations/`` folder and ``migrations/env.py`` runs on the connection we hand it.
The version is kept in ``jobsys_alembic_version``, not alembic's default table, so jobsys
can share a database with an application that uses alembic itself.

``upgrade`` may run in several processes at once (two daemons starting, ``jobsys migrate``
during a deploy): a lock serialises them and the loser finds nothing left to do.
"""

from __future__ import annotations

import fcntl
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from jobsys.errors import DatabaseError, SchemaError
from jobsys.resources import resource_dir
from jobsys.store.db import database_errors, dialect_name, mask_url

VERSION_TABLE = "jobsys_alembic_version"
MYSQL_LOCK_NAME = "jobsys_migrate"
MYSQL_LOCK_TIMEOUT_S = 60


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic ``Config`` for jobsys's migrations, optionally bound to ``connection``.

    Also the way to write a new revision, e.g.
    ``command.revision(alembic_config(conn), "add x", rev_id="0002", autogenerate=True)``.
    """
    config = Config()
    # ConfigParser interpolates "%": escape it in the path.
    config.set_main_option("script_location", str(resource_dir("migrations")).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


@functools.cache
def head_revision() -> str:
    """The newest revision in ``migrations/versions``. Cached: the files do not change
    while a process runs, and reading them (importing every revision) took ~10 ms on each
    health check, that is on every /daemon/status and overview call."""
    head = _scripts().get_current_head()
    if head is None:
        raise SchemaError("jobsys has no migrations (is the migrations folder missing?)")
    return head


def _current(conn: Connection) -> str | None:
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _pending(current: str | None) -> list[str]:
    """Revisions after ``current`` up to head, in the order they apply."""
    try:
        revisions = list(_scripts().iterate_revisions("heads", current or "base"))
    except (CommandError, RevisionError):
        raise SchemaError(
            f"database schema is at revision {current}, which this jobsys does not know "
            "(was it migrated by a newer jobsys?)"
        ) from None
    return [rev.revision for rev in reversed(revisions)]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; ``None`` for a database jobsys never migrated."""
    with database_errors(engine, "cannot reach database"), engine.connect() as conn:
        return _current(conn)


def pending(engine: Engine) -> list[str]:
    """Revisions ``upgrade`` would apply, oldest first (empty when up to date)."""
    return _pending(current_revision(engine))


def ensure_current(engine: Engine) -> None:
    """Raise ``SchemaError`` unless the database is exactly at ``head_revision()``."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        shown = current if current is not None else "none (empty database)"
        raise SchemaError(
            f"database schema is at revision {shown} but this jobsys needs {head}: "
            "run `jobsys migrate`"
        )


def upgrade(engine: Engine) -> list[str]:
    """Apply every pending revision; return them, oldest first (empty when up to date)."""
    if dialect_name(engine) == "sqlite":
        # Lock before connecting: the first connection to a new file switches it to WAL,
        # which two processes doing at once can fail with "database is locked".
        with (
            _file_lock(_sqlite_lock_path(engine)),
            database_errors(engine, "cannot reach database"),
            engine.connect() as conn,
            database_errors(engine, "migrating database"),
        ):
            return _apply(conn)
    with (
        database_errors(engine, "cannot reach database"),
        engine.connect() as conn,
        _migration_lock(engine, conn),
        database_errors(engine, "migrating database"),
    ):
        return _apply(conn)


def _apply(conn: Connection) -> list[str]:
    # Read the revision only now, under the lock: another process may just have migrated.
    todo = _pending(_current(conn))
    conn.commit()
    if todo:
        # One transaction: atomic on SQLite (transactional DDL); MySQL commits each DDL.
        with conn.begin():
            command.upgrade(alembic_config(conn), "head")
    return todo


@contextmanager
def _migration_lock(engine: Engine, conn: Connection) -> Iterator[None]:
    with _mysql_lock(engine, conn):
        yield


def _sqlite_lock_path(engine: Engine) -> Path:
    database = engine.url.database or ""
    return Path(f"{database}.migrate.lock")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # flock is per open file description: it excludes other processes and other threads.
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _mysql_lock(engine: Engine, conn: Connection) -> Iterator[None]:
    # A named lock belongs to the session, survives the implicit commits of DDL, and is
    # dropped by the server if this process dies.
    got = conn.execute(
        text("SELECT GET_LOCK(:name, :timeout)"),
        {"name": MYSQL_LOCK_NAME, "timeout": MYSQL_LOCK_TIMEOUT_S},
    ).scalar()
    conn.commit()
    if got != 1:
        raise DatabaseError(
            f"migrating database {mask_url(engine.url)}: another migration still holds the "
            f"lock {MYSQL_LOCK_NAME!r} after {MYSQL_LOCK_TIMEOUT_S} s"
        )
    try:
        yield
    finally:
        try:
            if conn.in_transaction():
                conn.rollback()
            conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": MYSQL_LOCK_NAME})
            conn.commit()
        except SQLAlchemyError:
            # Closing the session releases the lock too; and an error that got us here
            # matters more than this one.
            conn.invalidate()
