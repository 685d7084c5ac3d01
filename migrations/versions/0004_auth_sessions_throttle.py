"""Server-side browser sessions, an atomic login throttle, API token lifetimes.

- ``admin_session``: one row per browser login; the signed cookie carries a random id
  whose SHA-256 is ``token_hash``. Logout, a password change, a disabled account and
  "log out everywhere" revoke rows, so a copied cookie stops working at once.
- ``login_throttle``: login attempts per (account, client address) and per address,
  consumed under a row lock before the password is checked, so concurrent guesses cannot
  overrun the limit (``jobsys.store.throttle``).
- ``api_token.expires_at``: an optional lifetime (``admin token EMAIL --expires-in``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Frozen like 0001: types are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def upgrade() -> None:
    op.create_table(
        "admin_session",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("last_seen_at", INSTANT, nullable=False),
        sa.Column("expires_at", INSTANT, nullable=False),
        sa.Column("revoked_at", INSTANT, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["admin_user.id"], name="fk_admin_session_user_id", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_hash", name="uq_admin_session_token_hash"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_admin_session_user_id", "admin_session", ["user_id"])
    op.create_index("ix_admin_session_expires_at", "admin_session", ["expires_at"])
    op.create_table(
        "login_throttle",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("strikes", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("window_start", INSTANT, nullable=True),
        sa.Column("blocked_until", INSTANT, nullable=True),
        sa.Column("updated_at", INSTANT, nullable=False),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_login_throttle_updated_at", "login_throttle", ["updated_at"])
    with op.batch_alter_table("api_token") as batch:
        batch.add_column(sa.Column("expires_at", INSTANT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        batch.drop_column("expires_at")
    op.drop_index("ix_login_throttle_updated_at", table_name="login_throttle")
    op.drop_table("login_throttle")
    op.drop_table("admin_session")
