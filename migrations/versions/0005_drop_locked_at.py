"""Drop job_schedule.locked_at: it was written when a slot fired and never read
(``locked_by`` says which daemon fired a schedule's last batch; the lease is the
daemon's heartbeat, design 6.3).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

Frozen like 0001: types are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    # batch_alter_table: SQLite rebuilds the table (env.py renders batches there).
    with op.batch_alter_table("job_schedule") as batch:
        batch.drop_column("locked_at")


def downgrade() -> None:
    with op.batch_alter_table("job_schedule") as batch:
        batch.add_column(sa.Column("locked_at", INSTANT, nullable=True))
