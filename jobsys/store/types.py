"""Column types that behave the same on SQLite and MySQL/MariaDB, and the plain values
the store is given to write (a batch plan, the shape of definitions it syncs).

Every instant jobsys stores is UTC. Neither backend keeps a time zone with a DATETIME,
so the column holds naive UTC and the Python side only ever sees aware UTC values:
comparisons with ``Clock.now()`` never mix naive and aware datetimes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

_MYSQL = ("mysql", "mariadb")


def long_text() -> TypeEngine[str]:
    """TEXT, but MEDIUMTEXT on MySQL.

    MySQL's TEXT holds 64 KiB and strict mode rejects a longer value, so a long
    traceback or log line would fail the whole write; MEDIUMTEXT (16 MiB) costs the same.
    """
    # The MySQL dialect is imported where it is used: a daemon on SQLite never loads it.
    from sqlalchemy.dialects import mysql

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
            from sqlalchemy.dialects import mysql

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
            from sqlalchemy.dialects import mysql

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


# -- what the store writes -------------------------------------------------------------
# The store never plans: ``jobsys.planning`` turns the definitions into these values and
# the store writes them as they are.


@dataclass(frozen=True)
class PlannedRun:
    """One run of a planned batch. ``params`` are final (defaults applied); treat them
    as read-only: a schedule's plan is reused for every slot it fires."""

    job_name: str
    depends_on: tuple[str, ...]  # jobs of the same batch this run waits for
    params: dict[str, Any] | None
    timeout_s: int | None
    #: The job's retry policy (``RetryPolicy.to_dict``), copied onto the run; None: none.
    retry: dict[str, Any] | None = None


@dataclass(frozen=True)
class BatchPlan:
    """The runs one trigger creates, in dependency order (a ``BatchMode`` value says
    what was asked: all jobs, a group, one job)."""

    mode: str
    runs: tuple[PlannedRun, ...]
    group: str | None = None  # the group of a GROUP batch
    job: str | None = None  # the job of a JOB batch
    params: dict[str, Any] | None = None  # the params given to a JOB batch, checked
    skip_dependencies: bool = False


@dataclass(frozen=True)
class SyncReport:
    """What ``jobsys.store.schedules.sync_definitions`` changed (schedule ids, job names)."""

    created: list[str]
    updated: list[str]
    removed: list[str]
    jobs_created: list[str]


class ScheduleSpec(Protocol):
    """What the store reads of a schedule defined in code (``ScheduleDef`` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def cron(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def group(self) -> str | None: ...
    @property
    def environments(self) -> tuple[str, ...] | None: ...
    @property
    def missed(self) -> str: ...
    @property
    def max_catch_up_s(self) -> int | None: ...
    @property
    def overlap(self) -> str: ...
    @property
    def grace_s(self) -> int: ...
    @property
    def job(self) -> str | None: ...
    @property
    def params(self) -> Mapping[str, Any] | None: ...
    @property
    def pause_on_failure(self) -> int | None: ...
    @property
    def jitter_s(self) -> int: ...
    def active_in(self, env: str) -> bool: ...


class JobSpec(Protocol):
    """What the store reads of a job defined in code (``JobDef`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def depends_on(self) -> tuple[str, ...]: ...
    @property
    def description(self) -> str: ...
    @property
    def timeout_s(self) -> float | None: ...
    @property
    def params(self) -> Mapping[str, Mapping[str, Any]] | None: ...


class Definitions(Protocol):
    """The definitions the store syncs and shows: plain records by name (``App`` fits;
    the store reads their fields, it does not plan)."""

    @property
    def schedules(self) -> Mapping[str, ScheduleSpec]: ...
    @property
    def jobs(self) -> Mapping[str, JobSpec]: ...
