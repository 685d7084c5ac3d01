"""The audit log: who did what to which schedule or run, before/after, from where."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from jobsys.store.tables import AuditLog

if TYPE_CHECKING:
    from sqlmodel import Session


def record(
    where: Session | Connection,
    *,
    at: datetime,
    actor: str | None,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str | None = None,
    detail: str | None = None,
) -> None:
    """Insert an audit row in ``where``'s transaction (committed with the change it
    describes). A Core statement, so the daemon can audit without the ORM."""
    conn = where if isinstance(where, Connection) else where.connection()
    conn.execute(
        insert(AuditLog).values(
            at=at,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            before=before,
            after=after,
            ip=ip,
            detail=detail,
        )
    )
