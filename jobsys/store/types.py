"""Column types that behave the same on SQLite and MySQL/MariaDB.

Every instant jobsys stores is UTC. Neither backend keeps a time zone with a DATETIME,
so the column holds naive UTC and the Python side only ever sees aware UTC values:
comparisons with ``Clock.now()`` never mix naive and aware datetimes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

_MYSQL = ("mysql", "mariadb")


def long_text() -> TypeEngine[str]:
    """TEXT, but MEDIUMTEXT on MySQL.

    MySQL's TEXT holds 64 KiB and strict mode rejects a longer value, so a long
    traceback or log line would fail the whole write; MEDIUMTEXT (16 MiB) costs the same.
    """
    return Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: stored as naive UTC, returned as aware UTC.

    Binding an aware value converts it to UTC; a naive value is taken to be UTC already.
    MySQL gets ``DATETIME(6)`` so microseconds survive (plain DATETIME truncates them).
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime needs a datetime, got {type(value).__name__}")
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class JSONText(TypeDecorator[Any]):
    """A JSON value kept as text (not the native JSON type, so both backends agree).

    Keys are sorted so equal values store equal text. The column is not mutation
    tracked: assign a new value instead of changing a list or dict in place.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.MEDIUMTEXT())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(value)
