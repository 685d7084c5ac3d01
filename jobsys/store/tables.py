"""The jobsys tables as plain SQLAlchemy Core: GENERATED from ``jobsys.store.models``
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


class JobSchedule(LightTable, name="job_schedule"):
    id: ClassVar[ColumnClause[str]] = Column("id", String(), primary_key=True)
    name: ClassVar[ColumnClause[str]] = Column("name", String())
    description: ClassVar[ColumnClause[str]] = Column("description", String(), default="")
    cron: ClassVar[ColumnClause[str]] = Column("cron", String())
    timezone: ClassVar[ColumnClause[str]] = Column("timezone", String(), default="UTC")
    execution_mode: ClassVar[ColumnClause[str]] = Column("execution_mode", String())
    job_group: ClassVar[ColumnClause[str | None]] = Column("job_group", String())
    environments: ClassVar[ColumnClause[Any]] = Column("environments", JSONText())
    missed_policy: ClassVar[ColumnClause[str]] = Column("missed_policy", String(), default="SKIP")
    max_catch_up_s: ClassVar[ColumnClause[int | None]] = Column("max_catch_up_s", Integer())
    overlap_policy: ClassVar[ColumnClause[str]] = Column("overlap_policy", String(), default="SKIP")
    buffered_slot: ClassVar[ColumnClause[datetime | None]] = Column("buffered_slot", UTCDateTime())
    grace_s: ClassVar[ColumnClause[int]] = Column("grace_s", Integer(), default=60)
    enabled: ClassVar[ColumnClause[bool]] = Column("enabled", Boolean(), default=False)
    in_code: ClassVar[ColumnClause[bool]] = Column("in_code", Boolean(), default=True)
    env_active: ClassVar[ColumnClause[bool]] = Column("env_active", Boolean(), default=True)
    next_run_at: ClassVar[ColumnClause[datetime | None]] = Column("next_run_at", UTCDateTime())
    last_run_at: ClassVar[ColumnClause[datetime | None]] = Column("last_run_at", UTCDateTime())
    last_run_status: ClassVar[ColumnClause[str | None]] = Column("last_run_status", String())
    last_batch_id: ClassVar[ColumnClause[int | None]] = Column("last_batch_id", Integer())
    run_count: ClassVar[ColumnClause[int]] = Column("run_count", Integer(), default=0)
    failure_count: ClassVar[ColumnClause[int]] = Column("failure_count", Integer(), default=0)
    consecutive_failures: ClassVar[ColumnClause[int]] = Column(
        "consecutive_failures",
        Integer(),
        default=0,
    )
    locked_by: ClassVar[ColumnClause[str | None]] = Column("locked_by", String())
    created_at: ClassVar[ColumnClause[datetime]] = Column("created_at", UTCDateTime())
    updated_at: ClassVar[ColumnClause[datetime]] = Column("updated_at", UTCDateTime())
    job_name: ClassVar[ColumnClause[str | None]] = Column("job_name", String())
    job_params: ClassVar[ColumnClause[Any]] = Column("job_params", JSONText())
    pause_on_failure: ClassVar[ColumnClause[int | None]] = Column("pause_on_failure", Integer())
    jitter_s: ClassVar[ColumnClause[int]] = Column("jitter_s", Integer(), default=0)
    paused_note: ClassVar[ColumnClause[str | None]] = Column("paused_note", String())
    paused_by: ClassVar[ColumnClause[str | None]] = Column("paused_by", String())
    paused_at: ClassVar[ColumnClause[datetime | None]] = Column("paused_at", UTCDateTime())


class JobDefinition(LightTable, name="job_definition"):
    name: ClassVar[ColumnClause[str]] = Column("name", String(), primary_key=True)
    job_group: ClassVar[ColumnClause[str]] = Column("job_group", String())
    description: ClassVar[ColumnClause[str]] = Column("description", String(), default="")
    depends_on: ClassVar[ColumnClause[Any]] = Column("depends_on", JSONText(), default=list)
    timeout_s: ClassVar[ColumnClause[int | None]] = Column("timeout_s", Integer())
    params_schema: ClassVar[ColumnClause[Any]] = Column("params_schema", JSONText())
    in_code: ClassVar[ColumnClause[bool]] = Column("in_code", Boolean(), default=True)
    running_run_id: ClassVar[ColumnClause[int | None]] = Column("running_run_id", Integer())
    running_worker_id: ClassVar[ColumnClause[str | None]] = Column("running_worker_id", String())
    updated_at: ClassVar[ColumnClause[datetime]] = Column("updated_at", UTCDateTime())


class JobBatch(LightTable, name="job_batch"):
    id: ClassVar[ColumnClause[int]] = Column("id", Integer(), primary_key=True)
    schedule_id: ClassVar[ColumnClause[str | None]] = Column("schedule_id", String())
    trigger: ClassVar[ColumnClause[str]] = Column("trigger", String())
    scheduled_for: ClassVar[ColumnClause[datetime | None]] = Column("scheduled_for", UTCDateTime())
    status: ClassVar[ColumnClause[str]] = Column("status", String())
    reason: ClassVar[ColumnClause[str | None]] = Column("reason", String())
    mode: ClassVar[ColumnClause[str]] = Column("mode", String())
    job_group: ClassVar[ColumnClause[str | None]] = Column("job_group", String())
    skip_dependencies: ClassVar[ColumnClause[bool]] = Column(
        "skip_dependencies",
        Boolean(),
        default=False,
    )
    triggered_by: ClassVar[ColumnClause[str | None]] = Column("triggered_by", String())
    fired_by: ClassVar[ColumnClause[str | None]] = Column("fired_by", String())
    lateness_ms: ClassVar[ColumnClause[int | None]] = Column("lateness_ms", Integer())
    total_runs: ClassVar[ColumnClause[int]] = Column("total_runs", Integer(), default=0)
    created_at: ClassVar[ColumnClause[datetime]] = Column("created_at", UTCDateTime())
    started_at: ClassVar[ColumnClause[datetime | None]] = Column("started_at", UTCDateTime())
    finished_at: ClassVar[ColumnClause[datetime | None]] = Column("finished_at", UTCDateTime())
    duration_ms: ClassVar[ColumnClause[int | None]] = Column("duration_ms", Integer())
    after_batch_id: ClassVar[ColumnClause[int | None]] = Column("after_batch_id", Integer())
    updated_at: ClassVar[ColumnClause[datetime]] = Column("updated_at", UTCDateTime())
    rerun_of: ClassVar[ColumnClause[int | None]] = Column("rerun_of", Integer())
    jitter_ms: ClassVar[ColumnClause[int | None]] = Column("jitter_ms", Integer())


class JobRun(LightTable, name="job_run"):
    id: ClassVar[ColumnClause[int]] = Column("id", Integer(), primary_key=True)
    batch_id: ClassVar[ColumnClause[int]] = Column("batch_id", Integer())
    job_name: ClassVar[ColumnClause[str]] = Column("job_name", String())
    status: ClassVar[ColumnClause[str]] = Column("status", String())
    trigger: ClassVar[ColumnClause[str]] = Column("trigger", String())
    schedule_id: ClassVar[ColumnClause[str | None]] = Column("schedule_id", String())
    scheduled_for: ClassVar[ColumnClause[datetime | None]] = Column("scheduled_for", UTCDateTime())
    params: ClassVar[ColumnClause[Any]] = Column("params", JSONText())
    triggered_by: ClassVar[ColumnClause[str | None]] = Column("triggered_by", String())
    depends_on: ClassVar[ColumnClause[Any]] = Column("depends_on", JSONText(), default=list)
    position: ClassVar[ColumnClause[int]] = Column("position", Integer(), default=0)
    queued_at: ClassVar[ColumnClause[datetime]] = Column("queued_at", UTCDateTime())
    started_at: ClassVar[ColumnClause[datetime | None]] = Column("started_at", UTCDateTime())
    finished_at: ClassVar[ColumnClause[datetime | None]] = Column("finished_at", UTCDateTime())
    duration_ms: ClassVar[ColumnClause[int | None]] = Column("duration_ms", Integer())
    error: ClassVar[ColumnClause[str | None]] = Column("error", String())
    timeout_s: ClassVar[ColumnClause[int | None]] = Column("timeout_s", Integer())
    worker_id: ClassVar[ColumnClause[str | None]] = Column("worker_id", String())
    pid: ClassVar[ColumnClause[int | None]] = Column("pid", Integer())
    exit_code: ClassVar[ColumnClause[int | None]] = Column("exit_code", Integer())
    cancel_requested: ClassVar[ColumnClause[bool]] = Column(
        "cancel_requested",
        Boolean(),
        default=False,
    )
    progress_done: ClassVar[ColumnClause[int | None]] = Column("progress_done", Integer())
    progress_total: ClassVar[ColumnClause[int | None]] = Column("progress_total", Integer())
    updated_at: ClassVar[ColumnClause[datetime]] = Column("updated_at", UTCDateTime())
    attempt: ClassVar[ColumnClause[int]] = Column("attempt", Integer(), default=1)
    retry_of: ClassVar[ColumnClause[int | None]] = Column("retry_of", Integer())
    not_before: ClassVar[ColumnClause[datetime | None]] = Column("not_before", UTCDateTime())
    next_attempt_id: ClassVar[ColumnClause[int | None]] = Column("next_attempt_id", Integer())
    retry_policy: ClassVar[ColumnClause[Any]] = Column("retry_policy", JSONText())


class JobLog(LightTable, name="job_log"):
    id: ClassVar[ColumnClause[int]] = Column("id", Integer(), primary_key=True)
    run_id: ClassVar[ColumnClause[int]] = Column("run_id", Integer())
    ts: ClassVar[ColumnClause[datetime]] = Column("ts", UTCDateTime())
    level: ClassVar[ColumnClause[str]] = Column("level", String())
    message: ClassVar[ColumnClause[str]] = Column("message", String())


class WorkerInstance(LightTable, name="worker_instance"):
    id: ClassVar[ColumnClause[str]] = Column("id", String(), primary_key=True)
    worker_type: ClassVar[ColumnClause[str]] = Column("worker_type", String(), default="daemon")
    hostname: ClassVar[ColumnClause[str]] = Column("hostname", String())
    pid: ClassVar[ColumnClause[int]] = Column("pid", Integer())
    status: ClassVar[ColumnClause[str]] = Column("status", String())
    started_at: ClassVar[ColumnClause[datetime]] = Column("started_at", UTCDateTime())
    last_heartbeat_at: ClassVar[ColumnClause[datetime]] = Column("last_heartbeat_at", UTCDateTime())
    stopped_at: ClassVar[ColumnClause[datetime | None]] = Column("stopped_at", UTCDateTime())
    wake_host: ClassVar[ColumnClause[str | None]] = Column("wake_host", String())
    wake_port: ClassVar[ColumnClause[int | None]] = Column("wake_port", Integer())
    version: ClassVar[ColumnClause[str]] = Column("version", String())
    concurrency: ClassVar[ColumnClause[int]] = Column("concurrency", Integer())
    info: ClassVar[ColumnClause[Any]] = Column("info", JSONText())


class AuditLog(LightTable, name="audit_log"):
    id: ClassVar[ColumnClause[int]] = Column("id", Integer(), primary_key=True)
    at: ClassVar[ColumnClause[datetime]] = Column("at", UTCDateTime())
    actor: ClassVar[ColumnClause[str | None]] = Column("actor", String())
    action: ClassVar[ColumnClause[str]] = Column("action", String())
    target_type: ClassVar[ColumnClause[str | None]] = Column("target_type", String())
    target_id: ClassVar[ColumnClause[str | None]] = Column("target_id", String())
    before: ClassVar[ColumnClause[Any]] = Column("before", JSONText())
    after: ClassVar[ColumnClause[Any]] = Column("after", JSONText())
    ip: ClassVar[ColumnClause[str | None]] = Column("ip", String())
    detail: ClassVar[ColumnClause[str | None]] = Column("detail", String())


class AdminUser(LightTable, name="admin_user"):
    id: ClassVar[ColumnClause[int]] = Column("id", Integer(), primary_key=True)
    email: ClassVar[ColumnClause[str]] = Column("email", String())
    password_hash: ClassVar[ColumnClause[str]] = Column("password_hash", String())
    role: ClassVar[ColumnClause[str]] = Column("role", String())
    disabled: ClassVar[ColumnClause[bool]] = Column("disabled", Boolean(), default=False)
    created_at: ClassVar[ColumnClause[datetime]] = Column("created_at", UTCDateTime())
    last_login_at: ClassVar[ColumnClause[datetime | None]] = Column("last_login_at", UTCDateTime())


class ApiToken(LightTable, name="api_token"):
    id: ClassVar[ColumnClause[int]] = Column("id", Integer(), primary_key=True)
    user_id: ClassVar[ColumnClause[int]] = Column("user_id", Integer())
    token_hash: ClassVar[ColumnClause[str]] = Column("token_hash", String())
    name: ClassVar[ColumnClause[str | None]] = Column("name", String())
    created_at: ClassVar[ColumnClause[datetime]] = Column("created_at", UTCDateTime())
    last_used_at: ClassVar[ColumnClause[datetime | None]] = Column("last_used_at", UTCDateTime())
    revoked: ClassVar[ColumnClause[bool]] = Column("revoked", Boolean(), default=False)
    expires_at: ClassVar[ColumnClause[datetime | None]] = Column("expires_at", UTCDateTime())


class AdminSession(LightTable, name="admin_session"):
    id: ClassVar[ColumnClause[int]] = Column("id", Integer(), primary_key=True)
    user_id: ClassVar[ColumnClause[int]] = Column("user_id", Integer())
    token_hash: ClassVar[ColumnClause[str]] = Column("token_hash", String())
    ip: ClassVar[ColumnClause[str | None]] = Column("ip", String())
    created_at: ClassVar[ColumnClause[datetime]] = Column("created_at", UTCDateTime())
    last_seen_at: ClassVar[ColumnClause[datetime]] = Column("last_seen_at", UTCDateTime())
    expires_at: ClassVar[ColumnClause[datetime]] = Column("expires_at", UTCDateTime())
    revoked_at: ClassVar[ColumnClause[datetime | None]] = Column("revoked_at", UTCDateTime())


class LoginThrottle(LightTable, name="login_throttle"):
    scope: ClassVar[ColumnClause[str]] = Column("scope", String(), primary_key=True)
    subject: ClassVar[ColumnClause[str]] = Column("subject", String(), primary_key=True)
    attempts: ClassVar[ColumnClause[int]] = Column("attempts", Integer(), default=0)
    strikes: ClassVar[ColumnClause[int]] = Column("strikes", Integer(), default=0)
    window_start: ClassVar[ColumnClause[datetime | None]] = Column("window_start", UTCDateTime())
    blocked_until: ClassVar[ColumnClause[datetime | None]] = Column("blocked_until", UTCDateTime())
    updated_at: ClassVar[ColumnClause[datetime]] = Column("updated_at", UTCDateTime())


class AlertIncident(LightTable, name="alert_incident"):
    id: ClassVar[ColumnClause[int]] = Column("id", Integer(), primary_key=True)
    kind: ClassVar[ColumnClause[str]] = Column("kind", String())
    subject: ClassVar[ColumnClause[str]] = Column("subject", String())
    dedupe_key: ClassVar[ColumnClause[str | None]] = Column("dedupe_key", String())
    message: ClassVar[ColumnClause[str]] = Column("message", String())
    resolution: ClassVar[ColumnClause[str | None]] = Column("resolution", String())
    details: ClassVar[ColumnClause[Any]] = Column("details", JSONText())
    ref: ClassVar[ColumnClause[int | None]] = Column("ref", Integer())
    since: ClassVar[ColumnClause[datetime]] = Column("since", UTCDateTime())
    resolved_at: ClassVar[ColumnClause[datetime | None]] = Column("resolved_at", UTCDateTime())
    opened_by: ClassVar[ColumnClause[str | None]] = Column("opened_by", String())
    pending: ClassVar[ColumnClause[str | None]] = Column("pending", String())
    attempts: ClassVar[ColumnClause[int]] = Column("attempts", Integer(), default=0)
    next_attempt_at: ClassVar[ColumnClause[datetime | None]] = Column(
        "next_attempt_at",
        UTCDateTime(),
    )
    notified_at: ClassVar[ColumnClause[datetime | None]] = Column("notified_at", UTCDateTime())
    updated_at: ClassVar[ColumnClause[datetime]] = Column("updated_at", UTCDateTime())


class PrunedCount(LightTable, name="pruned_count"):
    kind: ClassVar[ColumnClause[str]] = Column("kind", String(), primary_key=True)
    label1: ClassVar[ColumnClause[str]] = Column("label1", String(), primary_key=True)
    label2: ClassVar[ColumnClause[str]] = Column("label2", String(), primary_key=True)
    count: ClassVar[ColumnClause[int]] = Column("count", Integer(), default=0)
