"""Schedule options of issue 10: pause with a reason, pause on failure, single-job
schedules with params, jitter.

- ``job_schedule.paused_note`` / ``paused_by`` / ``paused_at``: who disabled a schedule,
  when and why (set on disable, cleared on enable);
- ``job_schedule.pause_on_failure``: disable after this many failed batches in a row;
- ``job_schedule.job_name`` / ``job_params``: the job and params of a mode JOB schedule;
- ``job_schedule.jitter_s``: the most a slot's start is delayed (0: none);
- ``job_batch.jitter_ms``: the delay a fired slot actually got.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

Frozen like 0001: types are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("job_schedule") as batch:
        batch.add_column(sa.Column("job_name", sa.String(100), nullable=True))
        batch.add_column(sa.Column("job_params", LONG_TEXT, nullable=True))
        batch.add_column(sa.Column("pause_on_failure", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("jitter_s", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("paused_note", LONG_TEXT, nullable=True))
        batch.add_column(sa.Column("paused_by", sa.String(255), nullable=True))
        batch.add_column(sa.Column("paused_at", INSTANT, nullable=True))
    with op.batch_alter_table("job_batch") as batch:
        batch.add_column(sa.Column("jitter_ms", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_batch") as batch:
        batch.drop_column("jitter_ms")
    with op.batch_alter_table("job_schedule") as batch:
        for name in (
            "paused_at",
            "paused_by",
            "paused_note",
            "jitter_s",
            "pause_on_failure",
            "job_params",
            "job_name",
        ):
            batch.drop_column(name)
