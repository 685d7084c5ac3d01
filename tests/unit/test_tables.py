"""``jobsys.store.tables`` (the Core mirror of the models the daemon's store code uses)
is generated from the models and must stay so: up to date, and the same tables."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from jobsys.store import models, tablegen, tables
from jobsys.store.types import JSONText, UTCDateTime


def test_the_mirror_is_up_to_date() -> None:
    assert tablegen.TARGET.read_text(encoding="utf-8") == tablegen.render(), (
        "jobsys/store/tables.py is out of date: run `python -m jobsys.store.tablegen`"
    )


def _shape(metadata: Any) -> dict[str, list[tuple[str, bool, object]]]:
    """Per table: each column's name, whether it is in the primary key, and its
    Python-side default (a value, or the factory's name)."""
    out: dict[str, list[tuple[str, bool, object]]] = {}
    for name, table in metadata.tables.items():
        columns = []
        for column in table.columns:
            default = column.default
            if default is None:
                value: object = None
            elif default.is_callable:
                value = getattr(default.arg, "__name__", "?")
            else:
                value = default.arg
            columns.append((column.name, column.primary_key, value))
        out[name] = columns
    return out


def test_the_mirror_has_the_models_tables_columns_keys_and_defaults() -> None:
    assert _shape(tables.metadata) == _shape(SQLModel.metadata)
    for name, table in SQLModel.metadata.tables.items():
        light = tables.metadata.tables[name]
        for column in table.columns:
            # the same kind of value (UTCDateTime, JSONText, bool, int, str)
            kind = column.type
            if isinstance(kind, TypeDecorator) and not isinstance(kind, UTCDateTime | JSONText):
                kind = kind.impl_instance  # sqlmodel's AutoString
            assert isinstance(kind, type(light.c[column.name].type)), column


def test_the_mirror_classes_are_named_as_the_models() -> None:
    for name in ("JobSchedule", "JobRun", "JobBatch", "WorkerInstance", "AuditLog"):
        model, light = getattr(models, name), getattr(tables, name)
        assert light.__table__.name == model.__table__.name
        assert light.id.table is light.__table__


def test_the_generator_refuses_a_column_type_it_cannot_mirror() -> None:
    from sqlalchemy import LargeBinary

    with pytest.raises(TypeError, match="no mirror"):
        tablegen._kind(LargeBinary())
