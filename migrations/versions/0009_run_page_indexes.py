"""Index job_run (queued_at) and (job_name, finished_at, status): the runs page filters
runs by when they were queued, and a job's page counts its finished runs per status over
the last 24 hours and 7 days; with these both are index range scans, not walks of every
run ever made.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_run_queued_at", "job_run", ["queued_at"])
    op.create_index(
        "ix_job_run_job_name_finished_at_status", "job_run", ["job_name", "finished_at", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_job_run_job_name_finished_at_status", table_name="job_run")
    op.drop_index("ix_job_run_queued_at", table_name="job_run")
