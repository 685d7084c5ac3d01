"""Fixtures shared by the whole suite: databases on SQLite and MariaDB/MySQL.

``db_url``   a migrated, empty database, once per backend: ids ``sqlite`` and ``mysql``.
             The mysql case carries the ``mysql`` marker (``-m "not mysql"`` leaves it out)
             and is skipped unless ``JOBSYS_TEST_MYSQL_URL`` names a database, e.g.
             ``mysql://root@127.0.0.1:3306/jobsys_test`` (CI always sets it).
``engine``   an engine on ``db_url``, disposed after the test.
``sqlite_url``, ``mysql_url``  the same on one backend only (for backend-specific tests).
``empty_db_url``  a database with no tables at all (for migration tests), both backends.

Speed: migrations run once per session. SQLite tests get a copy of a migrated template
file; MySQL tests share one database, emptied (TRUNCATE, so ids restart at 1 as on a
fresh SQLite file) before each test. Tests must therefore not run in parallel against
the same MySQL database: under pytest-xdist each worker uses its own,
``<test db>_<worker>`` (e.g. ``jobsys_test_gw1``), created on first use.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

import jobsys.store.models  # noqa: F401  (registers the tables)
from jobsys.errors import ConfigError
from jobsys.store import migrate
from jobsys.store.db import make_engine, mask_url, normalize_url

MYSQL_ENV = "JOBSYS_TEST_MYSQL_URL"


@dataclass
class _MysqlUse:
    url: str | None = None
    used: bool = False


_MYSQL_USE = pytest.StashKey[_MysqlUse]()


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeated so this file works on its own.
    config.addinivalue_line("markers", "mysql: needs MariaDB/MySQL (JOBSYS_TEST_MYSQL_URL)")
    config.addinivalue_line("markers", "slow: takes seconds")
    config.addinivalue_line("markers", "long: runs for minutes by design (scheduled first)")
    raw = os.environ.get(MYSQL_ENV, "").strip()
    try:
        url = normalize_url(raw) if raw else None
    except ConfigError as exc:
        raise pytest.UsageError(f"{MYSQL_ENV}: {exc}") from None
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if url is not None and worker:
        # One database per xdist worker: the TRUNCATE between tests must not hit a
        # database another worker's test is using.
        base = make_url(url)
        url = base.set(database=f"{base.database}_{worker}").render_as_string(hide_password=False)
    config.stash[_MYSQL_USE] = _MysqlUse(url=url)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first, then slow ones, each group in its usual order.

    pytest-xdist hands tests out in collection order; a three-minute test that starts
    last keeps one worker busy after the others have finished (the suite's tail). Started
    first, it overlaps the short tests instead (one per worker: tests/xdist_schedule.py).
    """
    items.sort(
        key=lambda item: (
            item.get_closest_marker("long") is None,
            item.get_closest_marker("slow") is None,
        )
    )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from tests.xdist_schedule import make_scheduler

    return make_scheduler(config, log)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    use = config.stash.get(_MYSQL_USE, None)
    if use is None:
        return
    if use.url is None:
        line = f"MariaDB tests: SKIPPED ({MYSQL_ENV} not set)"
    elif use.used or _seen_mysql_pass:
        where = mask_url(use.url)
        if os.environ.get("PYTEST_XDIST_WORKER") is None and _seen_mysql_pass and not use.used:
            where += " (one database per worker: <name>_gwN)"
        line = f"MariaDB tests: ran against {where}"
    else:
        line = f"MariaDB tests: none selected ({MYSQL_ENV} is {mask_url(use.url)})"
    terminalreporter.write_line(line)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Under pytest-xdist the workers use the databases; the controller learns from the
    # reports it receives that a MariaDB test ran, so its summary line tells the truth.
    if report.when == "call" and report.passed and "mysql" in report.keywords:
        _seen_mysql_pass.append(True)


_seen_mysql_pass: list[bool] = []


def _mysql_url(config: pytest.Config) -> str:
    use = config.stash[_MYSQL_USE]
    if use.url is None:
        pytest.skip(f"{MYSQL_ENV} not set")
    use.used = True
    return use.url


def _server_engine(url: str) -> Engine:
    """An engine on the MySQL server of ``url`` without its database (to create one)."""
    server = make_url(url).set(database="information_schema")
    return create_engine(server, poolclass=NullPool)


def _create_database(url: str, *, fresh: bool) -> None:
    name = make_url(url).database
    server = _server_engine(url)
    try:
        with server.begin() as conn:
            if fresh:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            conn.exec_driver_sql(
                f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
    finally:
        server.dispose()


def _drop_database(url: str) -> None:
    server = _server_engine(url)
    try:
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{make_url(url).database}`")
    finally:
        server.dispose()


def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        if engine.dialect.name == "sqlite":
            # Fold the WAL into the main file so copying that file copies everything.
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "jobsys.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _mysql_migrated(request: pytest.FixtureRequest) -> str:
    url = _mysql_url(request.config)
    _create_database(url, fresh=False)
    _migrate(url)
    return url


def _copy_sqlite(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "test.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def _mysql_cleaner(_mysql_migrated: str) -> Iterator[Engine]:
    engine = make_engine(_mysql_migrated, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def _empty_mysql_tables(engine: Engine) -> str:
    """Truncate the jobsys tables a test left rows in or drew ids from; return the URL.

    TRUNCATE (not DELETE) so auto-increment ids restart at 1, as on a fresh SQLite file;
    only the used tables, since each TRUNCATE recreates the table (20-80 ms).
    """
    names = [table.name for table in SQLModel.metadata.sorted_tables]
    with engine.connect() as conn:
        probe = " UNION ALL ".join(f"SELECT '{n}', EXISTS(SELECT 1 FROM `{n}`)" for n in names)
        has_rows = {name: bool(flag) for name, flag in conn.exec_driver_sql(probe).all()}
        next_ids: dict[str, int | None] = dict(
            conn.exec_driver_sql(
                "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE()"
            ).all()
        )
        used = [n for n in names if has_rows[n] or (next_ids.get(n) or 1) > 1]
        if used:
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            for name in used:
                conn.exec_driver_sql(f"TRUNCATE TABLE `{name}`")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
        conn.commit()
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database with empty tables, on each backend in turn."""
    if request.param == "sqlite":
        return _copy_sqlite(request.getfixturevalue("_sqlite_template"), tmp_path)
    return _empty_mysql_tables(request.getfixturevalue("_mysql_cleaner"))


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated, empty SQLite database (``sqlite:////abs/path/test.db``)."""
    return _copy_sqlite(_sqlite_template, tmp_path)


@pytest.fixture(params=[pytest.param("mysql", id="mysql", marks=pytest.mark.mysql)])
def mysql_url(request: pytest.FixtureRequest) -> str:
    """A migrated MySQL database with empty tables (skipped without MariaDB)."""
    return _empty_mysql_tables(request.getfixturevalue("_mysql_cleaner"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url``; disposed (connections closed) after the test. As the
    daemon's, its MySQL connections carry several statements per query (packets)."""
    eng = make_engine(db_url, multi_statements=True)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    ]
)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database without any table: a new SQLite file, or ``<test db>_mig`` on MySQL
    (created for the test and dropped after it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    base = make_url(_mysql_url(request.config))
    url = base.set(database=f"{base.database}_mig").render_as_string(hide_password=False)
    _create_database(url, fresh=True)
    try:
        yield url
    finally:
        _drop_database(url)
