"""Backfill: one batch per past cron slot of a schedule in a range (issue 10 item 3).

``backfill_slots`` is pure: the schedule's slots in ``[start, end)`` from the same
DST-correct iterator the daemon fires from (``jobsys.cron``), capped. ``backfill``
checks the request against the definitions, plans the schedule's batch once
(``jobsys.planning``) and lets the store write one batch per slot that has none
(``jobsys.store.backfill``), or only lists them (dry run).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from jobsys.clock import iso_utc
from jobsys.cron import CronSchedule
from jobsys.definitions import App
from jobsys.errors import Conflict, DefinitionError, NotFound
from jobsys.planning import plan_batch
from jobsys.store.backfill import BackfillResult, existing_batches, write_backfill
from jobsys.store.schedules import get_view

#: At most this many slots per backfill: a typo in a range (a year of a per-minute
#: schedule) fails with a clear error instead of queueing half a million batches.
MAX_BACKFILL_SLOTS = 1000
#: ``parallel`` may ask for up to this many backfill batches of a schedule at once.
MAX_PARALLEL = 100


def backfill_slots(
    cron: str, timezone: str, start: datetime, end: datetime, *, label: str
) -> list[datetime]:
    """The slots of ``cron`` (read in ``timezone``) in ``[start, end)``, as UTC instants
    in order. Raises ``DefinitionError`` (naming ``label``) for an empty or reversed
    range and for more than ``MAX_BACKFILL_SLOTS`` slots."""
    if end <= start:
        raise DefinitionError(
            f"{label}: backfill range is empty: --to {iso_utc(end)} is not after "
            f"--from {iso_utc(start)}"
        )
    slots: list[datetime] = []
    for slot in CronSchedule(cron, timezone).iter_after(start - timedelta(microseconds=1)):
        if slot >= end:
            break
        if len(slots) == MAX_BACKFILL_SLOTS:
            raise DefinitionError(
                f"{label}: backfill range {iso_utc(start)} to {iso_utc(end)} has more than "
                f"{MAX_BACKFILL_SLOTS} slots; backfill it in smaller ranges"
            )
        slots.append(slot)
    return slots


def backfill(
    engine: Engine,
    app: App,
    schedule_id: str,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    actor: str | None,
    env: str,
    dry_run: bool = False,
    parallel: int = 1,
    ip: str | None = None,
) -> BackfillResult:
    """Create (or with ``dry_run`` only list) one ``BACKFILL`` batch per slot of the
    schedule in ``[start, end)`` that has no batch yet; slots that have one are left
    alone and listed. The new batches run in slot order, ``parallel`` at a time.

    ``end`` may not be after ``now``, nor the range reach the schedule's ``next_run_at``
    (a daemon that is behind): those slots are the daemon's to fire.
    """
    label = f"schedule {schedule_id!r}"
    sched = app.schedules.get(schedule_id)
    if sched is None:
        raise NotFound(f"unknown schedule {schedule_id!r}")
    if not sched.active_in(env):
        raise Conflict(f"{label} is not active in environment {env!r} and cannot be backfilled")
    if not 1 <= parallel <= MAX_PARALLEL:
        raise DefinitionError(f"{label}: backfill parallel must be between 1 and {MAX_PARALLEL}")
    if end > now:
        raise DefinitionError(
            f"{label}: backfill --to {iso_utc(end)} is in the future (now {iso_utc(now)}); "
            "only past slots can be backfilled"
        )
    slots = backfill_slots(sched.cron, sched.timezone, start, end, label=label)
    pending = get_view(engine, app, env, schedule_id).next_run_at
    if pending is not None and slots and slots[-1] >= pending:
        # That slot (and later ones) are the daemon's: a batch made here would collide
        # with the one (or the missed record) the daemon writes when it gets there.
        raise DefinitionError(
            f"{label}: backfill range reaches the schedule's next slot {iso_utc(pending)}, "
            f"which the daemon has not fired yet; end the range at or before it"
        )
    if dry_run:
        return BackfillResult(
            schedule_id, slots, [], existing_batches(engine, schedule_id, slots), dry_run=True
        )
    plan = plan_batch(app, mode=sched.mode, group=sched.group)
    return write_backfill(
        engine,
        plan,
        schedule_id=schedule_id,
        slots=slots,
        start=start,
        end=end,
        now=now,
        actor=actor,
        ip=ip,
        parallel=parallel,
    )
