"""Manual batches: Run Now of a schedule, run one job (with params), run all, run a group.

The one place the web and the CLI go through: the request is checked and planned against
the definitions (``jobsys.planning``, pure), then the store writes the plan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from jobsys.definitions import App
from jobsys.planning import plan_manual
from jobsys.store.batches import CreatedBatch, write_manual_batch


def create_manual_batch(
    engine: Engine,
    app: App,
    *,
    mode: str,
    now: datetime,
    actor: str | None,
    group: str | None = None,
    job: str | None = None,
    params: Any = None,
    skip_dependencies: bool = False,
    schedule_id: str | None = None,
    env: str | None = None,
    ip: str | None = None,
) -> CreatedBatch:
    """Check and plan the request (see ``plan_manual`` for its errors), then write the
    batch, its runs and the audit row in one transaction. Never moves a schedule's
    ``next_run_at``."""
    plan = plan_manual(
        app,
        mode=mode,
        group=group,
        job=job,
        params=params,
        skip_dependencies=skip_dependencies,
        schedule_id=schedule_id,
        env=env,
    )
    return write_manual_batch(engine, plan, now=now, actor=actor, schedule_id=schedule_id, ip=ip)
