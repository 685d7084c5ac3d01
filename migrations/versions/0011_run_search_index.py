"""Index job_run (status, queued_at): the runs page searches error text only in runs that
can have one (FAILED, CANCELLED, SKIPPED), one status at a time, and within a time window
reads each status's runs through this index, newest queued first, instead of every run
of the window.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_run_status_queued_at", "job_run", ["status", "queued_at"])


def downgrade() -> None:
    op.drop_index("ix_job_run_status_queued_at", table_name="job_run")
