"""Backfill batches in the database: one ``BACKFILL`` batch per slot that has none.

``uq_job_batch_slot`` (schedule id + slot instant) keeps a slot to one batch, whatever
its trigger: slots that already have a batch (fired, recorded as missed, or backfilled
before) are left alone and reported; a concurrent backfill or firing of the same slot
makes the insert fail, and the whole backfill is retried against the new state.

Order: each new batch names, in ``after_batch_id``, the batch ``parallel`` slots before
it; the claim (``jobsys.store.runs``) leaves its runs queued while that batch is active.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from jobsys.clock import iso_utc
from jobsys.store import audit
from jobsys.store.batches import insert_batch
from jobsys.store.db import database_errors, session
from jobsys.store.models import JobBatch, Trigger
from jobsys.store.types import BatchPlan


@dataclass(frozen=True)
class Existing:
    slot: datetime
    batch_id: int
    status: str
    trigger: str


@dataclass(frozen=True)
class BackfillResult:
    schedule_id: str
    slots: list[datetime]  # every slot of the range, in order
    created: list[tuple[datetime, int]]  # (slot, new batch id), in slot order
    existing: list[Existing]  # slots that had a batch already, left alone
    dry_run: bool = False

    def entries(self) -> list[dict[str, Any]]:
        """One entry per slot of the range, in order (the API's and CLI's list)."""
        created = dict(self.created)
        existing = {e.slot: e for e in self.existing}
        out: list[dict[str, Any]] = []
        for slot in self.slots:
            had = existing.get(slot)
            out.append(
                {
                    "slot": iso_utc(slot),
                    "existing": had is not None,
                    "batch_id": had.batch_id if had else created.get(slot),
                    "status": had.status if had else None,
                    "trigger": had.trigger if had else None,
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id,
            "dry_run": self.dry_run,
            "created": len(self.created),
            "existing": len(self.existing),
            "slots": self.entries(),
        }


def _existing_in(s: Session, schedule_id: str, slots: Sequence[datetime]) -> list[Existing]:
    if not slots:
        return []
    wanted = set(slots)
    rows = s.execute(
        select(
            col(JobBatch.id),
            col(JobBatch.scheduled_for),
            col(JobBatch.status),
            col(JobBatch.trigger),
        ).where(
            col(JobBatch.schedule_id) == schedule_id,
            col(JobBatch.scheduled_for) >= min(slots),
            col(JobBatch.scheduled_for) <= max(slots),
        )
    ).all()
    found = [
        Existing(r.scheduled_for, r.id, r.status, r.trigger)
        for r in rows
        if r.scheduled_for in wanted
    ]
    return sorted(found, key=lambda e: e.slot)


def existing_batches(engine: Engine, schedule_id: str, slots: Sequence[datetime]) -> list[Existing]:
    """The slots of ``slots`` that have a batch already (a dry run's answer)."""
    with database_errors(engine, "cannot read batches from"), session(engine) as s:
        return _existing_in(s, schedule_id, slots)


def write_backfill(
    engine: Engine,
    plan: BatchPlan,
    *,
    schedule_id: str,
    slots: Sequence[datetime],
    start: datetime,
    end: datetime,
    now: datetime,
    actor: str | None,
    ip: str | None,
    parallel: int,
) -> BackfillResult:
    """Insert a batch for every slot of ``slots`` without one, and an audit row, in one
    transaction. Never moves the schedule's ``next_run_at`` or its counters."""
    with database_errors(engine, "cannot backfill in"):
        for attempt in range(3):
            try:
                with session(engine, write=True) as s:
                    result = _write(s, plan, schedule_id, slots, now, actor, parallel)
                    audit.record(
                        s,
                        at=now,
                        actor=actor,
                        action="schedule.backfill",
                        target_type="schedule",
                        target_id=schedule_id,
                        after={
                            "from": iso_utc(start),
                            "to": iso_utc(end),
                            "slots": len(slots),
                            "created": len(result.created),
                            "existing": len(result.existing),
                            "parallel": parallel,
                        },
                        ip=ip,
                    )
                    s.commit()
                return result
            except IntegrityError:
                # A slot got a batch meanwhile (the daemon, another backfill): start over
                # from the new state; nothing of this attempt was written.
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


def _write(
    s: Session,
    plan: BatchPlan,
    schedule_id: str,
    slots: Sequence[datetime],
    now: datetime,
    actor: str | None,
    parallel: int,
) -> BackfillResult:
    existing = _existing_in(s, schedule_id, slots)
    taken = {e.slot for e in existing}
    created: list[tuple[datetime, int]] = []
    for slot in slots:
        if slot in taken:
            continue
        batch = insert_batch(
            s.connection(),
            plan,
            trigger=Trigger.BACKFILL,
            schedule_id=schedule_id,
            scheduled_for=slot,
            triggered_by=actor,
            reason=f"backfill of slot {iso_utc(slot)}",
            now=now,
        )
        if len(created) >= parallel:
            # wait for the batch ``parallel`` slots back: at most ``parallel`` run at once
            s.execute(
                update(JobBatch)
                .where(col(JobBatch.id) == batch.batch_id)
                .values(after_batch_id=created[-parallel][1])
            )
        created.append((slot, batch.batch_id))
    return BackfillResult(schedule_id, list(slots), created, existing)
