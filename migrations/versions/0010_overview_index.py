"""Index job_run (finished_at, status): the overview page counts finished runs per hour
and status over the last 7 days; with this index that is a range scan of the index alone,
not of every run ever made.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_run_finished_at_status", "job_run", ["finished_at", "status"])


def downgrade() -> None:
    op.drop_index("ix_job_run_finished_at_status", table_name="job_run")
