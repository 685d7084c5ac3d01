"""The jobsys tables, as SQLModel classes, and the values their status columns take.

``migrations/versions`` must create exactly this schema (a test compares them). Rules:
every instant is a ``UTCDateTime``; every indexed string has a length (MySQL cannot
index an unbounded one); every index and constraint is named, so migrations can refer
to it on both backends. Statuses, triggers and modes are stored as plain strings; the
``StrEnum`` classes of ``jobsys.vocabulary`` (re-exported here) name the allowed values.

``jobsys.store.tables`` is generated from these classes (``python -m
jobsys.store.tablegen``): the same tables as plain SQLAlchemy Core, for code that must
not import SQLModel (the daemon).

Created/updated times have no default: logic takes "now" from a ``Clock``.
Columns named ``trigger`` and ``before`` are reserved words in MySQL: SQLAlchemy quotes
them, hand-written SQL must too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from jobsys.store.types import JSONText, UTCDateTime, long_text

# Re-exported: the store's callers use them (they live in jobsys.vocabulary so that the
# daemon can name them without importing SQLModel).
from jobsys.vocabulary import BatchMode as BatchMode
from jobsys.vocabulary import MissedPolicy, OverlapPolicy
from jobsys.vocabulary import Role as Role
from jobsys.vocabulary import RunStatus as RunStatus
from jobsys.vocabulary import Trigger as Trigger
from jobsys.vocabulary import WorkerStatus as WorkerStatus

#: The only statuses a run with an ``error`` has: every write of an error ends the run
#: in one of them (``finish_runs`` drops one given with SUCCESS), so an error search
#: reads only these runs, through ``ix_job_run_status_id``.
ERROR_STATUSES = (RunStatus.FAILED.value, RunStatus.CANCELLED.value, RunStatus.SKIPPED.value)

# InnoDB, 4-byte UTF-8, and binary collation so that names compare exactly as in
# Python and SQLite (case-sensitive); ignored by SQLite.
MYSQL_TABLE_OPTIONS: dict[str, str] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def _big_id() -> Column[int]:
    # SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY.
    return Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )


# Server defaults as well as Python ones, so rows written by hand-written SQL (or a
# later migration adding a NOT NULL column) get the same values.
def _flag(default: bool) -> Any:
    return Field(
        default=default, sa_column_kwargs={"server_default": text("1" if default else "0")}
    )


def _count(default: int = 0) -> Any:
    return Field(default=default, sa_column_kwargs={"server_default": text(str(default))})


class JobSchedule(SQLModel, table=True):
    """A schedule defined in code, with its runtime state (enabled, next slot, lease)."""

    __tablename__ = "job_schedule"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: str = Field(primary_key=True, max_length=100)
    name: str = Field(max_length=200)
    description: str = Field(default="", sa_type=long_text())
    cron: str = Field(max_length=120)
    timezone: str = Field(default="UTC", max_length=64, sa_column_kwargs={"server_default": "UTC"})
    execution_mode: str = Field(max_length=16)
    job_group: str | None = Field(default=None, max_length=64)
    environments: list[str] | None = Field(default=None, sa_type=JSONText)
    missed_policy: str = Field(
        default=MissedPolicy.SKIP.value, max_length=16, sa_column_kwargs={"server_default": "SKIP"}
    )
    max_catch_up_s: int | None = None
    overlap_policy: str = Field(
        default=OverlapPolicy.SKIP.value, max_length=16, sa_column_kwargs={"server_default": "SKIP"}
    )
    #: BUFFER_ONE: the slot that came while the previous batch ran, to fire when it ends.
    buffered_slot: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    grace_s: int = _count(60)
    enabled: bool = _flag(False)
    in_code: bool = _flag(True)
    env_active: bool = _flag(True)
    next_run_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    last_run_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_run_status: str | None = Field(default=None, max_length=16)
    last_batch_id: int | None = Field(default=None, sa_type=BigInteger)
    run_count: int = _count()
    failure_count: int = _count()
    consecutive_failures: int = _count()
    locked_by: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime, index=True)
    # issue 10 (migration 0008): a mode JOB schedule's job and params; pause on failure;
    # jitter; who paused the schedule, when and why (cleared when it is enabled again)
    job_name: str | None = Field(default=None, max_length=100)
    job_params: dict[str, Any] | None = Field(default=None, sa_type=JSONText)
    pause_on_failure: int | None = None
    jitter_s: int = _count()
    paused_note: str | None = Field(default=None, sa_type=long_text())
    paused_by: str | None = Field(default=None, max_length=255)
    paused_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class JobDefinition(SQLModel, table=True):
    """A job synced from code; ``running_run_id`` is the mutex that keeps it single."""

    __tablename__ = "job_definition"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    name: str = Field(primary_key=True, max_length=100)
    job_group: str = Field(max_length=64)
    description: str = Field(default="", sa_type=long_text())
    depends_on: list[str] = Field(default_factory=list, sa_type=JSONText)
    timeout_s: int | None = None
    params_schema: dict[str, Any] | None = Field(default=None, sa_type=JSONText)
    in_code: bool = _flag(True)
    running_run_id: int | None = Field(default=None, sa_type=BigInteger)
    running_worker_id: str | None = Field(default=None, max_length=100)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class JobBatch(SQLModel, table=True):
    """One trigger's work. ``uq_job_batch_slot`` makes each cron slot fire once, ever;
    manual batches have no ``scheduled_for`` and so never collide (NULLs are distinct)."""

    __tablename__ = "job_batch"
    __table_args__ = (
        UniqueConstraint("schedule_id", "scheduled_for", name="uq_job_batch_slot"),
        Index("ix_job_batch_schedule_id_id", "schedule_id", "id"),
        Index("ix_job_batch_status_id", "status", "id"),
        MYSQL_TABLE_OPTIONS,
    )

    id: int | None = Field(default=None, sa_column=_big_id())
    schedule_id: str | None = Field(default=None, max_length=100)
    trigger: str = Field(max_length=16)
    scheduled_for: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(max_length=16)
    reason: str | None = Field(default=None, sa_type=long_text())
    mode: str = Field(max_length=16)
    job_group: str | None = Field(default=None, max_length=64)
    skip_dependencies: bool = _flag(False)
    triggered_by: str | None = Field(default=None, max_length=255)
    fired_by: str | None = Field(default=None, max_length=100)
    lateness_ms: int | None = None
    total_runs: int = _count()
    created_at: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_ms: int | None = None
    #: A backfill batch's runs wait while this batch (an earlier slot's) is still active,
    #: so a backfill runs its slots in order, one (or N) at a time.
    after_batch_id: int | None = Field(default=None, sa_type=BigInteger)
    updated_at: datetime = Field(sa_type=UTCDateTime, index=True)
    # "Re-run failed" (or Retry of one run): the batch this one re-runs
    rerun_of: int | None = Field(default=None, sa_type=BigInteger)
    jitter_ms: int | None = None  # the delay a jittered slot got (migration 0008)


class JobRun(SQLModel, table=True):
    """One execution of one job; ``worker_id`` holds the lease while it runs."""

    __tablename__ = "job_run"
    __table_args__ = (
        Index("ix_job_run_status_id", "status", "id"),
        Index("ix_job_run_job_name_id", "job_name", "id"),
        Index("ix_job_run_schedule_id_id", "schedule_id", "id"),
        Index("ix_job_run_batch_id_position", "batch_id", "position"),
        Index("ix_job_run_batch_id_status", "batch_id", "status"),
        Index("ix_job_run_trigger_id", "trigger", "id"),
        Index("ix_job_run_worker_id_status", "worker_id", "status"),
        # /metrics counts runs per job and status from this index alone
        Index("ix_job_run_job_name_status", "job_name", "status"),
        # the runs page's from/to filter; a job page's success rates (migration 0009)
        Index("ix_job_run_queued_at", "queued_at"),
        Index("ix_job_run_job_name_finished_at_status", "job_name", "finished_at", "status"),
        # the overview counts finished runs per hour and status from this index alone (0010)
        Index("ix_job_run_finished_at_status", "finished_at", "status"),
        # the runs page's error search in a time window, one status at a time (0011)
        Index("ix_job_run_status_queued_at", "status", "queued_at"),
        MYSQL_TABLE_OPTIONS,
    )

    id: int | None = Field(default=None, sa_column=_big_id())
    batch_id: int = Field(sa_type=BigInteger)
    job_name: str = Field(max_length=100)
    status: str = Field(max_length=16)
    trigger: str = Field(max_length=16)
    schedule_id: str | None = Field(default=None, max_length=100)
    scheduled_for: datetime | None = Field(default=None, sa_type=UTCDateTime)
    params: dict[str, Any] | None = Field(default=None, sa_type=JSONText)
    triggered_by: str | None = Field(default=None, max_length=255)
    # names of the jobs of the same batch that must succeed first (a batch runs each job
    # at most once, so names are unique within it and runs can be bulk-inserted)
    depends_on: list[str] = Field(default_factory=list, sa_type=JSONText)
    position: int = _count()  # topological index within the batch
    queued_at: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_ms: int | None = None
    error: str | None = Field(default=None, sa_type=long_text())
    timeout_s: int | None = None
    worker_id: str | None = Field(default=None, max_length=100)
    pid: int | None = None
    exit_code: int | None = None
    cancel_requested: bool = _flag(False)
    progress_done: int | None = None
    progress_total: int | None = None
    updated_at: datetime = Field(sa_type=UTCDateTime, index=True)
    # Retries (jobsys.retries): attempt n of a chain whose first attempt is ``retry_of``
    # (None on the first); not claimed before ``not_before``. A failed attempt that was
    # retried in its batch names its successor in ``next_attempt_id``: only rows without
    # one count for the batch's outcome and its dependents.
    attempt: int = _count(1)
    retry_of: int | None = Field(default=None, sa_type=BigInteger, index=True)
    not_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_attempt_id: int | None = Field(default=None, sa_type=BigInteger)
    retry_policy: dict[str, Any] | None = Field(default=None, sa_type=JSONText)


class JobLog(SQLModel, table=True):
    __tablename__ = "job_log"
    __table_args__ = (Index("ix_job_log_run_id_id", "run_id", "id"), MYSQL_TABLE_OPTIONS)

    id: int | None = Field(default=None, sa_column=_big_id())
    run_id: int = Field(sa_type=BigInteger)
    ts: datetime = Field(sa_type=UTCDateTime)
    level: str = Field(max_length=10)
    message: str = Field(sa_type=long_text())


class WorkerInstance(SQLModel, table=True):
    """A daemon process; its heartbeat keeps its leases alive."""

    __tablename__ = "worker_instance"
    __table_args__ = (
        Index("ix_worker_instance_status_last_heartbeat_at", "status", "last_heartbeat_at"),
        MYSQL_TABLE_OPTIONS,
    )

    id: str = Field(primary_key=True, max_length=100)
    worker_type: str = Field(
        default="daemon", max_length=16, sa_column_kwargs={"server_default": "daemon"}
    )
    hostname: str = Field(max_length=255)
    pid: int
    status: str = Field(max_length=16)
    started_at: datetime = Field(sa_type=UTCDateTime)
    last_heartbeat_at: datetime = Field(sa_type=UTCDateTime, index=True)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    wake_host: str | None = Field(default=None, max_length=255)
    wake_port: int | None = None
    version: str = Field(max_length=32)
    concurrency: int
    info: dict[str, Any] | None = Field(default=None, sa_type=JSONText)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_actor_id", "actor", "id"),
        Index("ix_audit_log_action_id", "action", "id"),
        Index("ix_audit_log_target_id_id", "target_id", "id"),
        MYSQL_TABLE_OPTIONS,
    )

    id: int | None = Field(default=None, sa_column=_big_id())
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    actor: str | None = Field(default=None, max_length=255)
    action: str = Field(max_length=64)
    target_type: str | None = Field(default=None, max_length=32)
    target_id: str | None = Field(default=None, max_length=255)
    before: dict[str, Any] | None = Field(default=None, sa_type=JSONText)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSONText)
    ip: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, sa_type=long_text())


class AdminUser(SQLModel, table=True):
    __tablename__ = "admin_user"
    __table_args__ = (UniqueConstraint("email", name="uq_admin_user_email"), MYSQL_TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=255)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)
    disabled: bool = _flag(False)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_api_token_token_hash"),
        MYSQL_TABLE_OPTIONS,
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column_args=[
            ForeignKey("admin_user.id", ondelete="CASCADE", name="fk_api_token_user_id")
        ],
        index=True,
    )
    token_hash: str = Field(max_length=128)
    name: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked: bool = _flag(False)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # None: never


class AdminSession(SQLModel, table=True):
    """A browser session: the signed cookie carries a random id, this row its SHA-256.

    The session is live while ``revoked_at`` is NULL, ``expires_at`` is ahead and the
    account is enabled; logout, a password change and "log out everywhere" revoke it.
    """

    __tablename__ = "admin_session"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_admin_session_token_hash"),
        MYSQL_TABLE_OPTIONS,
    )

    id: int | None = Field(default=None, sa_column=_big_id())
    user_id: int = Field(
        sa_column_args=[
            ForeignKey("admin_user.id", ondelete="CASCADE", name="fk_admin_session_user_id")
        ],
        index=True,
    )
    token_hash: str = Field(max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LoginThrottle(SQLModel, table=True):
    """Login attempts left for one subject: an (account, address) pair or an address.

    ``subject`` is a SHA-256 (hex), so emails and addresses of any length fit the key.
    Rows are changed only under a row lock (``jobsys.store.throttle``).
    """

    __tablename__ = "login_throttle"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    scope: str = Field(primary_key=True, max_length=16)  # "account_ip" or "ip"
    subject: str = Field(primary_key=True, max_length=64)
    attempts: int = _count()  # in the window that began at window_start
    strikes: int = _count()  # windows in a row that ran out of attempts
    window_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    blocked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime, index=True)


class AlertIncident(SQLModel, table=True):
    """One alert incident (``jobsys.alerts``) and the delivery of its webhook messages.

    ``uq_alert_incident_key`` (kind, subject, dedupe_key) makes opening an incident a
    claim by insert, so several daemons never open (and announce) it twice: an open
    incident has ``dedupe_key = "open"`` (set to NULL when it resolves: NULLs are
    distinct, so resolved incidents stay as history); a ``missed`` incident keeps the id
    of its first missed batch as its key for good, so those slots never alert again.
    ``pending`` is the message still to deliver ("firing" or "resolved").
    """

    __tablename__ = "alert_incident"
    __table_args__ = (
        UniqueConstraint("kind", "subject", "dedupe_key", name="uq_alert_incident_key"),
        Index("ix_alert_incident_kind_resolved_at", "kind", "resolved_at"),
        Index("ix_alert_incident_pending_next_attempt_at", "pending", "next_attempt_at"),
        MYSQL_TABLE_OPTIONS,
    )

    id: int | None = Field(default=None, sa_column=_big_id())
    kind: str = Field(max_length=32)
    subject: str = Field(max_length=200)
    dedupe_key: str | None = Field(default=None, max_length=32)
    message: str = Field(sa_type=long_text())
    resolution: str | None = Field(default=None, sa_type=long_text())
    details: dict[str, Any] | None = Field(default=None, sa_type=JSONText)
    ref: int | None = Field(default=None, sa_type=BigInteger)  # kind-specific (newest batch)
    since: datetime = Field(sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    opened_by: str | None = Field(default=None, max_length=100)
    pending: str | None = Field(default=None, max_length=16)
    attempts: int = _count()
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    notified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class PrunedCount(SQLModel, table=True):
    """How many rows of each kind retention deleted, so that the totals ``/metrics``
    computes from history (runs per job and status, skipped slots per schedule and
    reason) never go down when old history is pruned."""

    __tablename__ = "pruned_count"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    kind: str = Field(primary_key=True, max_length=16)  # "run" or "slot"
    label1: str = Field(primary_key=True, max_length=100)  # job name / schedule id
    label2: str = Field(primary_key=True, max_length=32)  # run status / skip reason
    count: int = Field(default=0, sa_type=BigInteger)
