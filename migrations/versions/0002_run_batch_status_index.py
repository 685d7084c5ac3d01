"""Index job_run (batch_id, status): settling a batch asks "is any run still active?"
after every finished run; without it that question scans the whole batch.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_run_batch_id_status", "job_run", ["batch_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_job_run_batch_id_status", table_name="job_run")
