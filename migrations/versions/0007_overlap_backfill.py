"""Overlap policies per schedule and backfill (issue 10 items 2 and 3).

- ``job_schedule.overlap_policy`` (SKIP, BUFFER_ONE, ALLOW, CANCEL_OTHER) replaces the
  ``allow_overlap`` flag (``true`` becomes ALLOW);
- ``job_schedule.buffered_slot``: the slot a BUFFER_ONE schedule fires when its running
  batch ends (indexed: the daemon looks for the few schedules that have one);
- ``job_batch.after_batch_id``: a backfill batch waits while this (earlier) one is active.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

Frozen like 0001: types are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("job_schedule") as batch:
        batch.add_column(
            sa.Column("overlap_policy", sa.String(16), nullable=False, server_default="SKIP")
        )
        batch.add_column(sa.Column("buffered_slot", INSTANT, nullable=True))
    op.execute("UPDATE job_schedule SET overlap_policy = 'ALLOW' WHERE allow_overlap = 1")
    with op.batch_alter_table("job_schedule") as batch:
        batch.drop_column("allow_overlap")
        batch.create_index("ix_job_schedule_buffered_slot", ["buffered_slot"])
    with op.batch_alter_table("job_batch") as batch:
        batch.add_column(sa.Column("after_batch_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_batch") as batch:
        batch.drop_column("after_batch_id")
    with op.batch_alter_table("job_schedule") as batch:
        batch.drop_index("ix_job_schedule_buffered_slot")
        batch.add_column(
            sa.Column("allow_overlap", sa.Boolean(), nullable=False, server_default=sa.text("0"))
        )
    op.execute("UPDATE job_schedule SET allow_overlap = 1 WHERE overlap_policy = 'ALLOW'")
    with op.batch_alter_table("job_schedule") as batch:
        batch.drop_column("buffered_slot")
        batch.drop_column("overlap_policy")
