"""Pure planning of due slots: which slot fires, which are missed, what runs next.

No database and no clock here: ``plan_due`` takes the schedule's cron, policy, stored
``next_run_at`` and ``now`` and returns a decision the daemon writes in one transaction.
Design 6.4: a slot is on time when fired within its grace; later slots are missed.
``SKIP`` records missed slots and moves on; ``RUN_ONCE`` runs once now if a slot was
missed within ``max_catch_up``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from jobsys.cron import CronSchedule
from jobsys.vocabulary import MissedPolicy

#: At most this many missed slots are recorded one by one; the rest are summarised, so
#: that a month of downtime on a per-minute schedule does not write 40,000 rows.
MAX_RECORDED_MISSED = 100


@dataclass(frozen=True)
class ScheduleTiming:
    """What planning needs to know of a schedule."""

    cron: str
    timezone: str
    missed: str = MissedPolicy.SKIP.value
    max_catch_up_s: int | None = None
    grace_s: int = 60
    #: Each slot starts up to this many seconds late, by ``jitter_offset(jitter_key, slot)``.
    jitter_s: int = 0
    jitter_key: str = ""  # the schedule id: schedules sharing a cron spread apart

    def offset(self, slot: datetime) -> timedelta:
        return jitter_offset(self.jitter_key, slot, self.jitter_s)


def jitter_offset(key: str, slot: datetime, jitter_s: int) -> timedelta:
    """A delay in [0, ``jitter_s``] s (whole ms) fixed by the schedule and the slot: every
    daemon computes the same one, and a restart does not move it."""
    if jitter_s <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{key}|{slot.isoformat()}".encode()).digest()
    ms = int.from_bytes(digest[:8], "big") % (jitter_s * 1000 + 1)
    return timedelta(milliseconds=ms)


@dataclass(frozen=True)
class SkippedSlot:
    slot: datetime
    reason: str


@dataclass(frozen=True)
class DuePlan:
    """The outcome of handling a schedule whose ``next_run_at`` has come."""

    fire: datetime | None  # the slot to fire now (its batch's scheduled_for), if any
    fire_reason: str | None  # e.g. why a catch-up run happens
    skipped: list[SkippedSlot] = field(default_factory=list)
    next_run_at: datetime | None = None
    missed_count: int = 0


def next_run_after(timing: ScheduleTiming, now: datetime) -> datetime:
    """The first slot strictly after ``now`` (UTC)."""
    return CronSchedule(timing.cron, timing.timezone).next_after(now)


def plan_due(timing: ScheduleTiming, next_run_at: datetime, now: datetime) -> DuePlan:
    """Decide what to do with the slots from ``next_run_at`` up to ``now``.

    ``next_run_at`` is the stored (first unhandled) slot; callers only call this when it
    is ``<= now``. The latest slot within grace fires; every other slot is missed.
    With jitter, a slot is due at ``slot + offset`` and its grace counts from then; a
    slot not yet due is left as the next run.
    """
    cron = _Slots(timing.cron, timing.timezone)
    grace = timedelta(seconds=timing.grace_s)
    # The stored value is normally a slot itself; if the cron changed it may not be, so
    # the slots considered are the cron's slots in [next_run_at, now].
    due: list[datetime] = []
    missed_total = 0
    slot = next_run_at if _is_slot(cron, next_run_at) else cron.next_after(next_run_at)
    while slot + timing.offset(slot) <= now:
        if now - slot - timing.offset(slot) > grace:
            missed_total += 1
        due.append(slot)
        if len(due) > MAX_RECORDED_MISSED + 1:
            due.pop(0)  # keep a bounded window: the newest slots matter
        slot = cron.next_after(slot)
    next_slot = slot

    on_time = [s for s in due if now - s - timing.offset(s) <= grace]
    late = [s for s in due if now - s - timing.offset(s) > grace]
    fire: datetime | None = None
    fire_reason: str | None = None
    skipped = [SkippedSlot(s, "superseded: a later slot is due now") for s in on_time[:-1]]
    if on_time:
        fire = on_time[-1]
    elif late and timing.missed == MissedPolicy.RUN_ONCE:
        limit = timedelta(seconds=timing.max_catch_up_s or 0)
        if now - late[-1] <= limit:
            fire = late.pop()
            missed_total -= 1
            fire_reason = f"catch-up (RUN_ONCE): slot was missed by {_human(now - fire)}"
    recorded = late[-MAX_RECORDED_MISSED:]
    not_listed = missed_total - len(recorded)
    for i, s in enumerate(recorded):
        reason = _missed_reason(timing)
        if i == 0 and not_listed > 0:
            reason += f" ({not_listed} earlier missed slots not listed)"
        skipped.append(SkippedSlot(s, reason))
    skipped.sort(key=lambda x: x.slot)
    return DuePlan(
        fire=fire,
        fire_reason=fire_reason,
        skipped=skipped,
        next_run_at=next_slot,
        missed_count=missed_total,
    )


def next_run_problem(
    timing: ScheduleTiming, next_run_at: datetime | None, now: datetime
) -> str | None:
    """Why an enabled schedule's stored ``next_run_at`` is wrong, or None when it is fine.

    It must be a slot of the cron and no later than the first slot after ``now`` (a
    past slot is fine: it is due, and firing deals with it). Anything else would never
    fire, or fire off its cron: the daemon repairs it (``next_run_after(now)``, no
    back-fill) and ``health`` warns until then.
    """
    if next_run_at is None:
        return "next_run_at is empty"
    cron = CronSchedule(timing.cron, timing.timezone)
    if next_run_at > now:
        # One cron step in the common case: the next slot after now is the stored one.
        upcoming = cron.next_after(now)
        if upcoming == next_run_at:
            return None
    if not _is_slot(cron, next_run_at):
        return f"next_run_at {next_run_at.isoformat()} is not a slot of its cron"
    if next_run_at > now:
        return (
            f"next_run_at {next_run_at.isoformat()} is after its next slot {upcoming.isoformat()}"
        )
    return None


def _missed_reason(timing: ScheduleTiming) -> str:
    if timing.missed == MissedPolicy.RUN_ONCE:
        return "missed: not fired within its grace and older than max_catch_up"
    return "missed: not fired within its grace (policy SKIP)"


def _is_slot(cron: CronSchedule | _Slots, instant: datetime) -> bool:
    return cron.next_after(instant - timedelta(microseconds=1)) == instant


class _Slots:
    """``CronSchedule.next_after`` through a small shared memo: the schedules due at
    one instant often share a cron (a thousand on ``* * * * *``), and each firing asks
    the same two questions (is the stored instant a slot, which slot comes next)."""

    __slots__ = ("cron", "tz")

    def __init__(self, cron: str, tz: str) -> None:
        self.cron = cron
        self.tz = tz

    def next_after(self, instant: datetime) -> datetime:
        return _next_after(self.cron, self.tz, instant)


@lru_cache(maxsize=1024)
def _next_after(cron: str, tz: str, instant: datetime) -> datetime:
    return CronSchedule(cron, tz).next_after(instant)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
