"""Alert incidents, pruned-row tallies, and the index /metrics counts runs from.

- ``alert_incident``: one row per alert incident (``jobsys.alerts``); opening one is a
  claim by insert on (kind, subject, dedupe_key), so several daemons announce it once.
- ``pruned_count``: how many runs and skipped slots retention deleted, by label, so the
  ``/metrics`` totals do not go down when history is pruned.
- ``ix_job_run_job_name_status``: ``jobsys_job_runs_total{job,status}`` is a count over
  this index alone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Frozen like 0001: types are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def upgrade() -> None:
    op.create_table(
        "alert_incident",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("dedupe_key", sa.String(32), nullable=True),
        sa.Column("message", LONG_TEXT, nullable=False),
        sa.Column("resolution", LONG_TEXT, nullable=True),
        sa.Column("details", LONG_TEXT, nullable=True),
        sa.Column("ref", sa.BigInteger(), nullable=True),
        sa.Column("since", INSTANT, nullable=False),
        sa.Column("resolved_at", INSTANT, nullable=True),
        sa.Column("opened_by", sa.String(100), nullable=True),
        sa.Column("pending", sa.String(16), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", INSTANT, nullable=True),
        sa.Column("notified_at", INSTANT, nullable=True),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.UniqueConstraint("kind", "subject", "dedupe_key", name="uq_alert_incident_key"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_alert_incident_kind_resolved_at", "alert_incident", ["kind", "resolved_at"])
    op.create_index(
        "ix_alert_incident_pending_next_attempt_at",
        "alert_incident",
        ["pending", "next_attempt_at"],
    )
    op.create_table(
        "pruned_count",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("label1", sa.String(100), primary_key=True),
        sa.Column("label2", sa.String(32), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_job_run_job_name_status", "job_run", ["job_name", "status"])


def downgrade() -> None:
    op.drop_index("ix_job_run_job_name_status", table_name="job_run")
    op.drop_table("pruned_count")
    op.drop_table("alert_incident")
