"""The audit log: who did what to which schedule or run, before/after, from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from jobsys.store.models import AuditLog


def record(
    session: Session,
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
    """Add an audit row to ``session`` (committed with the change it describes)."""
    session.add(
        AuditLog(
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
