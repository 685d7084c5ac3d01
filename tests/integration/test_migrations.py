"""Schema migrations on SQLite and MariaDB (jobsys.store.migrate, migrations/)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Index, MetaData, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import jobsys.store.models  # noqa: F401  (registers the tables)
from jobsys.errors import DatabaseError, SchemaError
from jobsys.store import migrate
from jobsys.store.db import make_engine

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_engine(empty_db_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_db_url)
    try:
        yield engine
    finally:
        engine.dispose()


#: Every revision, oldest first: a new migration is added here.
ALL = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011"]
HEAD = ALL[-1]


def test_head_is_the_newest_revision() -> None:
    assert migrate.head_revision() == HEAD


def test_upgrade_an_empty_database(empty_engine: Engine) -> None:
    assert migrate.current_revision(empty_engine) is None
    assert migrate.pending(empty_engine) == ALL
    with pytest.raises(SchemaError) as info:
        migrate.ensure_current(empty_engine)
    assert str(info.value) == (
        f"database schema is at revision none (empty database) but this jobsys needs {HEAD}: "
        "run `jobsys migrate`"
    )

    assert migrate.upgrade(empty_engine) == ALL

    assert migrate.current_revision(empty_engine) == HEAD
    assert migrate.pending(empty_engine) == []
    migrate.ensure_current(empty_engine)
    assert migrate.upgrade(empty_engine) == []
    tables = set(inspect(empty_engine).get_table_names())
    assert tables == set(SQLModel.metadata.tables) | {migrate.VERSION_TABLE}


def test_unknown_revision_is_a_schema_error(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(SchemaError, match=f"at revision 9999 but this jobsys needs {HEAD}"):
        migrate.ensure_current(empty_engine)
    with pytest.raises(SchemaError, match="revision 9999, which this jobsys does not know"):
        migrate.pending(empty_engine)
    with pytest.raises(SchemaError, match="revision 9999"):
        migrate.upgrade(empty_engine)


def test_upgrade_from_an_older_revision(empty_engine: Engine) -> None:
    from alembic import command

    with empty_engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), ALL[0])
    assert migrate.current_revision(empty_engine) == ALL[0]
    assert migrate.pending(empty_engine) == ALL[1:]
    assert migrate.upgrade(empty_engine) == ALL[1:]
    migrate.ensure_current(empty_engine)


def test_downgrade_removes_everything(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "base")
    assert set(inspect(empty_engine).get_table_names()) <= {migrate.VERSION_TABLE}
    assert migrate.current_revision(empty_engine) is None


def _differences(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": migrate.VERSION_TABLE,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return list(compare_metadata(context, metadata))


def _normalized(type_sql: str) -> str:
    # What both backends report differently for the same type.
    sql = re.sub(r" (COLLATE|CHARACTER SET) \w+", "", type_sql.upper())
    sql = re.sub(r"^(INTEGER|BIGINT)\(\d+\)$", r"\1", sql)
    return {"TINYINT(1)": "BOOL"}.get(sql, sql)


def _column_types(engine: Engine) -> tuple[dict[str, str], dict[str, str]]:
    """``table.column -> type`` as migrated and as modelled, compiled for this backend.

    Stricter than alembic's comparison, which ignores e.g. DATETIME vs DATETIME(6).
    """
    inspector = inspect(engine)
    dialect = engine.dialect
    migrated: dict[str, str] = {}
    modelled: dict[str, str] = {}
    for table in SQLModel.metadata.sorted_tables:
        for column in inspector.get_columns(table.name):
            sql = column["type"].compile(dialect=dialect)
            migrated[f"{table.name}.{column['name']}"] = _normalized(sql)
        for col in table.columns:
            modelled[f"{table.name}.{col.name}"] = _normalized(col.type.compile(dialect=dialect))
    return migrated, modelled


def test_migrated_schema_is_the_models(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)

    assert _differences(empty_engine, SQLModel.metadata) == []
    migrated, modelled = _column_types(empty_engine)
    assert migrated == modelled
    if empty_engine.dialect.name != "sqlite":
        assert modelled["job_run.queued_at"] == "DATETIME(6)"
        assert modelled["job_run.id"] == "BIGINT"
    else:
        # INTEGER PRIMARY KEY: SQLite's autoincrementing rowid.
        assert modelled["job_run.id"] == "INTEGER"

    # The comparison is not blind: a schema with one more index differs.
    changed = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(changed)
    Index("ix_job_log_level", changed.tables["job_log"].c.level)
    assert [diff[0] for diff in _differences(empty_engine, changed)] == ["add_index"]


# Each child says it is ready, waits for the other, then migrates: a start line.
_UPGRADE_IN_CHILD = """
import json, sys, time
from pathlib import Path
from jobsys.store.db import make_engine
from jobsys.store.migrate import upgrade
engine = make_engine(sys.argv[1])
ready = Path(sys.argv[2])
(ready / sys.argv[3]).touch()
deadline = time.monotonic() + 30
while len(list(ready.iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.005)
print(json.dumps(upgrade(engine)))
engine.dispose()
"""


@pytest.mark.slow
def test_concurrent_upgrades_apply_once(empty_db_url: str, tmp_path: Path) -> None:
    """Two processes migrating one fresh database at the same instant both succeed,
    and exactly one of them applies the revisions."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    ready = tmp_path / "ready"
    ready.mkdir()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _UPGRADE_IN_CHILD, empty_db_url, str(ready), str(index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for index in range(2)
    ]
    # Collect every child before asserting, so no pipe is left open on failure.
    outputs = [child.communicate(timeout=90) for child in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    results = [json.loads(out) for out, _ in outputs]
    assert sorted(results) == [[], ALL]

    engine = make_engine(empty_db_url)
    try:
        migrate.ensure_current(engine)
    finally:
        engine.dispose()


def test_unreachable_database_is_a_database_error() -> None:
    engine = make_engine("mysql://root:s3cret@127.0.0.1:1/jobs")
    try:
        for call in (migrate.upgrade, migrate.current_revision, migrate.ensure_current):
            with pytest.raises(DatabaseError) as info:
                call(engine)
            message = str(info.value)
            assert "cannot reach database mysql+pymysql://root:***@127.0.0.1:1/jobs" in message
            assert "s3cret" not in message
    finally:
        engine.dispose()
