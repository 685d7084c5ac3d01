"""URLs, engines and column types on SQLite and MariaDB (jobsys.store.db, .types)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from jobsys.errors import ConfigError, DatabaseError
from jobsys.store.db import (
    dialect_name,
    make_engine,
    mask_url,
    normalize_url,
    session,
)
from jobsys.store.migrate import ensure_current
from jobsys.store.models import (
    AdminUser,
    ApiToken,
    BatchMode,
    JobBatch,
    JobRun,
    RunStatus,
    Trigger,
    WorkerInstance,
    WorkerStatus,
)

NOW = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC)


# --- URLs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("mysql://u:pw@db:3306/jobs", "mysql+pymysql://u:pw@db:3306/jobs?charset=utf8mb4"),
        ("mysql+pymysql://u@db/jobs", "mysql+pymysql://u@db/jobs?charset=utf8mb4"),
        ("mariadb://u:pw@db/jobs", "mysql+pymysql://u:pw@db/jobs?charset=utf8mb4"),
        ("mysql://u@db/jobs?charset=utf8", "mysql+pymysql://u@db/jobs?charset=utf8"),
        ("mysql://u:p%40ss%2Fx@db/jobs", "mysql+pymysql://u:p%40ss%2Fx@db/jobs?charset=utf8mb4"),
        ("  mysql://u@db/jobs  ", "mysql+pymysql://u@db/jobs?charset=utf8mb4"),
        ("sqlite:///./jobsys.db", "sqlite:///./jobsys.db"),
        ("sqlite:///var/jobsys.db", "sqlite:///var/jobsys.db"),
        ("sqlite:////abs/path/jobsys.db", "sqlite:////abs/path/jobsys.db"),
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        (
            "postgres://u:s3cret@db/jobs",
            "unsupported scheme 'postgres' (use mysql:// or sqlite:///)",
        ),
        ("postgresql+psycopg://u:s3cret@db/jobs", "unsupported scheme 'postgresql+psycopg'"),
        ("mysql+mysqldb://u:s3cret@db/jobs", "unsupported scheme 'mysql+mysqldb'"),
        ("jobsys.db", "DATABASE_URL 'jobsys.db' is not a URL"),
        ("", "DATABASE_URL is empty"),
        ("sqlite:///:memory:", "cannot be shared between processes"),
        ("sqlite://", "cannot be shared between processes"),
        ("mysql://u:s3cret@db", "names no database"),
    ],
)
def test_normalize_url_rejects(given: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_url(given)
    message = str(info.value)
    assert fragment in message
    assert "s3cret" not in message
    if "s3cret" in given:
        assert "***" in message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("mysql://u:s3cret@db:3306/jobs", "mysql://u:***@db:3306/jobs"),
        ("mysql+pymysql://u@db/jobs", "mysql+pymysql://u@db/jobs"),
        ("sqlite:///./x.db", "sqlite:///./x.db"),
        ("weird://u:s3cret@[broken", "weird://u:***@[broken"),
    ],
)
def test_mask_url(given: str, expected: str) -> None:
    assert mask_url(given) == expected


# --- engines -------------------------------------------------------------------------


def test_sqlite_pragmas_and_parent_folder(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'dir' / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (tmp_path / "new" / "dir" / "x.db").exists()
        assert dialect_name(engine) == "sqlite"
    finally:
        engine.dispose()


def test_migrated_database_answers_and_dialect(engine: Engine, db_url: str) -> None:
    ensure_current(engine)  # what health and the daemon check first
    assert dialect_name(engine) == ("sqlite" if db_url.startswith("sqlite") else "mysql")


def test_mysql_session_settings(mysql_url: str) -> None:
    engine = make_engine(mysql_url)
    try:
        with engine.connect() as conn:
            assert conn.get_isolation_level() == "READ COMMITTED"
            assert conn.exec_driver_sql("SELECT @@session.time_zone").scalar() == "+00:00"
            assert conn.exec_driver_sql("SELECT @@character_set_client").scalar() == "utf8mb4"
    finally:
        engine.dispose()


def test_unreachable_mysql_is_a_database_error() -> None:
    engine = make_engine("mysql://root:s3cret@127.0.0.1:1/jobs")
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseError) as info:
            ensure_current(engine)
    finally:
        engine.dispose()
    assert time.monotonic() - started < 6
    message = str(info.value)
    assert message.startswith("cannot reach database mysql+pymysql://root:***@127.0.0.1:1/jobs")
    assert "s3cret" not in message


# --- types ---------------------------------------------------------------------------


def _worker(started_at: datetime, **extra: Any) -> WorkerInstance:
    return WorkerInstance(
        id="w1",
        hostname="host",
        pid=42,
        status=WorkerStatus.RUNNING,
        started_at=started_at,
        last_heartbeat_at=started_at,
        version="0.1.0",
        concurrency=4,
        **extra,
    )


def test_utc_datetime_round_trip(engine: Engine) -> None:
    paris = timezone(timedelta(hours=2))
    with session(engine) as s:
        s.add(_worker(NOW.astimezone(paris), stopped_at=NOW.replace(tzinfo=None)))
        s.commit()
    with session(engine) as s:
        row = s.exec(select(WorkerInstance)).one()
    # Aware in any zone -> aware UTC out, microseconds kept; naive in is taken as UTC.
    assert row.started_at == NOW
    assert row.started_at.tzinfo is UTC
    assert row.started_at.microsecond == 123456
    assert row.stopped_at == NOW
    assert row.stopped_at is not None and row.stopped_at.tzinfo is UTC
    # Stored as the naive UTC wall time.
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT started_at FROM worker_instance")).scalar()
    assert str(raw).startswith("2026-03-29 01:30:15.123456")
    # Comparisons bind aware values the same way.
    with session(engine) as s:
        later = select(WorkerInstance).where(
            WorkerInstance.started_at > NOW - timedelta(microseconds=1)
        )
        assert s.exec(later).one().id == "w1"


def test_json_columns_round_trip(engine: Engine) -> None:
    info = {"b": [1, 2], "a": "é ✓"}
    with session(engine) as s:
        s.add(_worker(NOW, info=info))
        s.commit()
    with session(engine) as s:
        assert s.exec(select(WorkerInstance)).one().info == info
    with engine.connect() as conn:
        assert conn.execute(text("SELECT info FROM worker_instance")).scalar() == (
            '{"a":"é ✓","b":[1,2]}'
        )


def test_defaults_and_big_ids(engine: Engine) -> None:
    with session(engine) as s:
        batch = JobBatch(
            trigger=Trigger.MANUAL,
            status=RunStatus.QUEUED,
            mode=BatchMode.JOB,
            created_at=NOW,
            updated_at=NOW,
        )
        s.add(batch)
        s.commit()
        assert batch.id == 1
        run = JobRun(
            batch_id=batch.id,
            job_name="j",
            status=RunStatus.QUEUED,
            trigger=Trigger.MANUAL,
            queued_at=NOW,
            updated_at=NOW,
        )
        s.add(run)
        s.commit()
        assert run.id == 1
    # A row written by plain SQL gets the server defaults.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO job_schedule (id, name, description, cron, execution_mode, "
                "created_at, updated_at) VALUES ('s', 'S', '', '* * * * *', 'ALL_JOBS', :t, :t)"
            ),
            {"t": NOW.replace(tzinfo=None)},
        )
        row = conn.execute(
            text("SELECT timezone, missed_policy, enabled, in_code, grace_s FROM job_schedule")
        ).one()
    assert tuple(row) == ("UTC", "SKIP", 0, 1, 60)


# --- constraints ---------------------------------------------------------------------


def _batch(schedule_id: str | None, scheduled_for: datetime | None, trigger: Trigger) -> JobBatch:
    return JobBatch(
        schedule_id=schedule_id,
        scheduled_for=scheduled_for,
        trigger=trigger,
        status=RunStatus.QUEUED,
        mode=BatchMode.ALL_JOBS,
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_slot_can_be_claimed_once(engine: Engine) -> None:
    slot = datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    with session(engine) as s:
        s.add(_batch("daily", slot, Trigger.CRON))
        s.commit()
    # The same instant written in another zone is the same slot.
    with session(engine) as s:
        s.add(_batch("daily", slot.astimezone(timezone(timedelta(hours=-5))), Trigger.CRON))
        with pytest.raises(IntegrityError):
            s.commit()
    with session(engine) as s:
        s.add(_batch("daily", slot + timedelta(days=1), Trigger.CRON))
        s.add(_batch("other", slot, Trigger.CRON))
        # Manual runs have no slot: any number of them may coexist.
        s.add(_batch("daily", None, Trigger.MANUAL))
        s.add(_batch("daily", None, Trigger.MANUAL))
        s.add(_batch(None, None, Trigger.MANUAL))
        s.commit()
        assert len(s.exec(select(JobBatch)).all()) == 6


def test_deleting_a_user_deletes_its_tokens(engine: Engine) -> None:
    with session(engine) as s:
        user = AdminUser(email="a@example.com", password_hash="x", role="admin", created_at=NOW)
        s.add(user)
        s.commit()
        assert user.id is not None
        s.add(ApiToken(user_id=user.id, token_hash="h1", created_at=NOW))
        s.commit()
        s.delete(user)
        s.commit()
        assert s.exec(select(ApiToken)).all() == []
    with session(engine) as s:
        s.add(ApiToken(user_id=999, token_hash="h2", created_at=NOW))
        with pytest.raises(IntegrityError):
            s.commit()


# --- SQLite transactions -------------------------------------------------------------


def test_sqlite_write_session_survives_a_concurrent_writer(sqlite_url: str) -> None:
    """A read-then-write transaction with ``write=True`` holds the write lock from BEGIN,
    so another connection's commit cannot invalidate its snapshot."""
    ours, theirs = make_engine(sqlite_url), make_engine(sqlite_url)
    try:
        with session(ours) as s:
            s.add(_worker(NOW))
            s.commit()

        def bump() -> None:
            with theirs.begin() as conn:
                conn.execute(text("UPDATE worker_instance SET pid = pid + 1"))

        with session(ours, write=True) as s:
            worker = s.exec(select(WorkerInstance)).one()
            other = threading.Thread(target=bump)
            other.start()
            time.sleep(0.2)  # `bump` is now waiting for our lock
            worker.concurrency = 8
            s.add(worker)
            s.commit()
        other.join(timeout=15)
        assert not other.is_alive()
        with session(ours) as s:
            worker = s.exec(select(WorkerInstance)).one()
        assert (worker.pid, worker.concurrency) == (43, 8)
    finally:
        ours.dispose()
        theirs.dispose()
