"""Retries: attempts of a job run, and re-runs of a batch.

- ``job_run.attempt`` (1-based), ``retry_of`` (the chain's first attempt),
  ``not_before`` (not claimed earlier: the back-off), ``next_attempt_id`` (set on a
  failed attempt retried in its batch: it no longer counts for the batch's outcome),
  ``retry_policy`` (the job's policy, copied when the run was planned).
- ``job_batch.rerun_of``: the batch a "Re-run failed" (or a run's Retry) repeats.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Frozen like 0001: types are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("job_run") as batch:
        batch.add_column(
            sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch.add_column(sa.Column("retry_of", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("not_before", INSTANT, nullable=True))
        batch.add_column(sa.Column("next_attempt_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("retry_policy", JSON_TEXT, nullable=True))
        batch.create_index("ix_job_run_retry_of", ["retry_of"])
    with op.batch_alter_table("job_batch") as batch:
        batch.add_column(sa.Column("rerun_of", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_batch") as batch:
        batch.drop_column("rerun_of")
    with op.batch_alter_table("job_run") as batch:
        batch.drop_index("ix_job_run_retry_of")
        for name in ("retry_policy", "next_attempt_id", "not_before", "retry_of", "attempt"):
            batch.drop_column(name)
