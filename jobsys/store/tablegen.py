"""Writes ``jobsys/store/tables.py`` from the SQLModel classes of ``jobsys.store.models``.

``python -m jobsys.store.tablegen`` after a change to the models (with its migration);
``tests/unit/test_tables.py`` fails while the file is out of date.

Why a generated copy: the models are the schema (store, web, migrations), but importing
them loads SQLModel, pydantic and SQLAlchemy's ORM, ~16 MiB that the long-lived daemon
process would keep for nothing (issue 9 item 5): it only runs Core statements. The
generated module gives the same tables, columns, value types, primary keys and Python
defaults as plain Core objects, under the same class and attribute names, so the
daemon's store code reads ``col(JobRun.status)`` either way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, Column, Integer, String, Text
from sqlalchemy.types import TypeDecorator, TypeEngine

from jobsys.store.types import JSONText, UTCDateTime

TARGET = Path(__file__).with_name("tables.py")

_HEADER = '''"""The jobsys tables as plain SQLAlchemy Core: GENERATED from ``jobsys.store.models``
by ``python -m jobsys.store.tablegen``; do not edit (``tests/unit/test_tables.py``
checks that it is up to date).

The models are the schema. This module only mirrors what statements need (names,
value types, primary keys, Python-side defaults) without importing SQLModel or pydantic,
for the store code that runs in the daemon process (see ``jobsys.store.tablegen``).
Each class stands for its table in ``select()``, ``insert()``, ``update()``,
``delete()`` and ``select_from()``; its attributes are the table's columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Boolean, Column, ColumnClause, Integer, MetaData, String, Table

from jobsys.store.types import JSONText, UTCDateTime

_T = TypeVar("_T")

#: The mirrored tables (never created from here: migrations create the models' schema).
metadata = MetaData()


class LightTable:
    """A table as a class whose attributes are its columns (like a model class).

    The columns are typed as ``ColumnClause``: SQLAlchemy types a ``Column`` read from
    a class as a declarative attribute, which mypy then cannot use.
    """

    __table__: ClassVar[Table]

    def __init_subclass__(cls, *, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        columns = [value for value in vars(cls).values() if isinstance(value, Column)]
        cls.__table__ = Table(name, metadata, *columns)

    @classmethod
    def __clause_element__(cls) -> Table:
        return cls.__table__


def col(column: ColumnClause[_T]) -> ColumnClause[_T]:
    """The column itself (``sqlmodel.col`` types a model attribute as a column; these
    already are columns): store code written for the models reads the same here."""
    return column
'''


def _kind(type_: TypeEngine[Any]) -> tuple[str, str]:
    """The Core type to mirror a column's type with, and its Python value type."""
    if isinstance(type_, UTCDateTime):
        return "UTCDateTime()", "datetime"
    if isinstance(type_, JSONText):
        return "JSONText()", "Any"
    if isinstance(type_, TypeDecorator):  # sqlmodel's AutoString: a String
        type_ = type_.impl_instance
    if isinstance(type_, Boolean):
        return "Boolean()", "bool"
    if isinstance(type_, Integer):  # BigInteger too (the value is an int either way)
        return "Integer()", "int"
    if isinstance(type_, String | Text):
        return "String()", "str"
    raise TypeError(f"tablegen: no mirror for column type {type_!r}")


def _default(model: Any, column: Column[Any]) -> str | None:
    """The column's Python-side default as source (the ORM applies it on insert; Core
    inserts through the mirror must too), or None."""
    if column.default is None:
        return None
    field = model.model_fields.get(column.name)
    factory = getattr(field, "default_factory", None)
    if factory is not None:
        if factory not in (list, dict):
            raise TypeError(f"tablegen: {column}: unsupported default factory {factory!r}")
        return str(factory.__name__)
    arg = column.default.arg  # type: ignore[attr-defined]
    if not isinstance(arg, bool | int | str | float) or isinstance(arg, type):
        raise TypeError(f"tablegen: {column}: unsupported default {arg!r}")
    return _source(arg.value if hasattr(arg, "value") else arg)


def _source(value: object) -> str:
    """``value`` as ruff formats it (strings in double quotes)."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def render() -> str:
    """The source of ``jobsys/store/tables.py`` for the models as they are now."""
    from sqlmodel import SQLModel

    from jobsys.store import models

    tables = {
        value.__table__.name: value
        for value in vars(models).values()
        if isinstance(value, type) and issubclass(value, SQLModel) and hasattr(value, "__table__")
    }
    assert set(tables) == set(SQLModel.metadata.tables), "a table without a model class"
    out = [_HEADER]
    for name, model in tables.items():
        table = model.__table__
        out.append(f"\n\nclass {model.__name__}(LightTable, name={_source(name)}):\n")
        for column in table.columns:
            core, py = _kind(column.type)
            if column.nullable:
                py = f"{py} | None" if py != "Any" else py
            args = [_source(column.name), core]
            if column.primary_key:
                args.append("primary_key=True")
            default = _default(model, column)
            if default is not None:
                args.append(f"default={default}")
            line = f"    {column.name}: ClassVar[ColumnClause[{py}]] = Column({', '.join(args)})\n"
            if len(line) > 101:  # ruff's line length, newline not counted
                inner = "".join(f"        {a},\n" for a in args)
                line = f"    {column.name}: ClassVar[ColumnClause[{py}]] = Column(\n{inner}    )\n"
            out.append(line)
    return "".join(out)


def main() -> int:
    text = render()
    if TARGET.exists() and TARGET.read_text(encoding="utf-8") == text:
        print(f"{TARGET} is up to date")
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
