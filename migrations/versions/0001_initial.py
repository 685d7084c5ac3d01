"""Initial schema: schedules, job registry, batches, runs, logs, workers, audit, accounts.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Written by hand and frozen: it spells its types out instead of importing
``jobsys.store.types``, so later changes there cannot change what this revision did.
``tests/test_migrations.py`` checks it yields exactly ``jobsys.store.models``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Naive UTC; DATETIME(6) on MySQL keeps microseconds.
INSTANT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# MySQL's TEXT stops at 64 KiB.
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
# SQLite autoincrements only a column declared INTEGER PRIMARY KEY.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
FALSE = sa.text("0")
TRUE = sa.text("1")
ZERO = sa.text("0")


def _id() -> sa.Column[int]:
    return sa.Column("id", BIG_ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "job_schedule",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", LONG_TEXT, nullable=False),
        sa.Column("cron", sa.String(120), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("execution_mode", sa.String(16), nullable=False),
        sa.Column("job_group", sa.String(64), nullable=True),
        sa.Column("environments", LONG_TEXT, nullable=True),
        sa.Column("missed_policy", sa.String(16), nullable=False, server_default="SKIP"),
        sa.Column("max_catch_up_s", sa.Integer(), nullable=True),
        sa.Column("allow_overlap", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("grace_s", sa.Integer(), nullable=False, server_default=sa.text("60")),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("in_code", sa.Boolean(), nullable=False, server_default=TRUE),
        sa.Column("env_active", sa.Boolean(), nullable=False, server_default=TRUE),
        sa.Column("next_run_at", INSTANT, nullable=True),
        sa.Column("last_run_at", INSTANT, nullable=True),
        sa.Column("last_run_status", sa.String(16), nullable=True),
        sa.Column("last_batch_id", sa.BigInteger(), nullable=True),
        sa.Column("run_count", sa.Integer(), nullable=False, server_default=ZERO),
        sa.Column("failure_count", sa.Integer(), nullable=False, server_default=ZERO),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default=ZERO),
        sa.Column("locked_by", sa.String(100), nullable=True),
        sa.Column("locked_at", INSTANT, nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_job_schedule_next_run_at", "job_schedule", ["next_run_at"])
    op.create_index("ix_job_schedule_updated_at", "job_schedule", ["updated_at"])

    op.create_table(
        "job_definition",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("job_group", sa.String(64), nullable=False),
        sa.Column("description", LONG_TEXT, nullable=False),
        sa.Column("depends_on", LONG_TEXT, nullable=False),
        sa.Column("timeout_s", sa.Integer(), nullable=True),
        sa.Column("params_schema", LONG_TEXT, nullable=True),
        sa.Column("in_code", sa.Boolean(), nullable=False, server_default=TRUE),
        sa.Column("running_run_id", sa.BigInteger(), nullable=True),
        sa.Column("running_worker_id", sa.String(100), nullable=True),
        sa.Column("updated_at", INSTANT, nullable=False),
        **TABLE_OPTIONS,
    )

    op.create_table(
        "job_batch",
        _id(),
        sa.Column("schedule_id", sa.String(100), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("scheduled_for", INSTANT, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", LONG_TEXT, nullable=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("job_group", sa.String(64), nullable=True),
        sa.Column("skip_dependencies", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("triggered_by", sa.String(255), nullable=True),
        sa.Column("fired_by", sa.String(100), nullable=True),
        sa.Column("lateness_ms", sa.Integer(), nullable=True),
        sa.Column("total_runs", sa.Integer(), nullable=False, server_default=ZERO),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("started_at", INSTANT, nullable=True),
        sa.Column("finished_at", INSTANT, nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("updated_at", INSTANT, nullable=False),
        # A cron slot fires once, ever. Manual batches have scheduled_for NULL, and
        # NULLs never collide in a unique index (SQLite and MySQL alike).
        sa.UniqueConstraint("schedule_id", "scheduled_for", name="uq_job_batch_slot"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_job_batch_schedule_id_id", "job_batch", ["schedule_id", "id"])
    op.create_index("ix_job_batch_status_id", "job_batch", ["status", "id"])
    op.create_index("ix_job_batch_updated_at", "job_batch", ["updated_at"])

    op.create_table(
        "job_run",
        _id(),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("job_name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("schedule_id", sa.String(100), nullable=True),
        sa.Column("scheduled_for", INSTANT, nullable=True),
        sa.Column("params", LONG_TEXT, nullable=True),
        sa.Column("triggered_by", sa.String(255), nullable=True),
        sa.Column("depends_on", LONG_TEXT, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False, server_default=ZERO),
        sa.Column("queued_at", INSTANT, nullable=False),
        sa.Column("started_at", INSTANT, nullable=True),
        sa.Column("finished_at", INSTANT, nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error", LONG_TEXT, nullable=True),
        sa.Column("timeout_s", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.String(100), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("progress_done", sa.Integer(), nullable=True),
        sa.Column("progress_total", sa.Integer(), nullable=True),
        sa.Column("updated_at", INSTANT, nullable=False),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_job_run_status_id", "job_run", ["status", "id"])
    op.create_index("ix_job_run_job_name_id", "job_run", ["job_name", "id"])
    op.create_index("ix_job_run_schedule_id_id", "job_run", ["schedule_id", "id"])
    op.create_index("ix_job_run_batch_id_position", "job_run", ["batch_id", "position"])
    op.create_index("ix_job_run_trigger_id", "job_run", ["trigger", "id"])
    op.create_index("ix_job_run_worker_id_status", "job_run", ["worker_id", "status"])
    op.create_index("ix_job_run_updated_at", "job_run", ["updated_at"])

    op.create_table(
        "job_log",
        _id(),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("ts", INSTANT, nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("message", LONG_TEXT, nullable=False),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_job_log_run_id_id", "job_log", ["run_id", "id"])

    op.create_table(
        "worker_instance",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("worker_type", sa.String(16), nullable=False, server_default="daemon"),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", INSTANT, nullable=False),
        sa.Column("last_heartbeat_at", INSTANT, nullable=False),
        sa.Column("stopped_at", INSTANT, nullable=True),
        sa.Column("wake_host", sa.String(255), nullable=True),
        sa.Column("wake_port", sa.Integer(), nullable=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("info", LONG_TEXT, nullable=True),
        **TABLE_OPTIONS,
    )
    op.create_index(
        "ix_worker_instance_last_heartbeat_at", "worker_instance", ["last_heartbeat_at"]
    )
    op.create_index(
        "ix_worker_instance_status_last_heartbeat_at",
        "worker_instance",
        ["status", "last_heartbeat_at"],
    )

    op.create_table(
        "audit_log",
        _id(),
        sa.Column("at", INSTANT, nullable=False),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=True),
        sa.Column("target_id", sa.String(255), nullable=True),
        sa.Column("before", LONG_TEXT, nullable=True),
        sa.Column("after", LONG_TEXT, nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("detail", LONG_TEXT, nullable=True),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor", "id"])
    op.create_index("ix_audit_log_action_id", "audit_log", ["action", "id"])
    op.create_index("ix_audit_log_target_id_id", "audit_log", ["target_id", "id"])

    op.create_table(
        "admin_user",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("last_login_at", INSTANT, nullable=True),
        sa.UniqueConstraint("email", name="uq_admin_user_email"),
        **TABLE_OPTIONS,
    )

    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("last_used_at", INSTANT, nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.ForeignKeyConstraint(
            ["user_id"], ["admin_user.id"], name="fk_api_token_user_id", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_hash", name="uq_api_token_token_hash"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_api_token_user_id", "api_token", ["user_id"])


def downgrade() -> None:
    for table in (
        "api_token",
        "admin_user",
        "audit_log",
        "worker_instance",
        "job_log",
        "job_run",
        "job_batch",
        "job_definition",
        "job_schedule",
    ):
        op.drop_table(table)
