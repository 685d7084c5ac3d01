"""The slot ledger of a schedule: every slot its cron expected in a window, and its fate.

Pure: the caller reads the records (``jobsys.store.ledger``) and passes them with
``now``. Each expected slot gets exactly one ``LedgerEntry``, so every slot is accounted
for: fired (on time, or late by how much) and how it ended; skipped and why (the daemon
was down, overlap, disabled at the time, not in this environment, ...); or not yet due.

Where the why comes from (design 6.4, "missed and skipped slots are rows"):

- a slot that fired has a batch with ``scheduled_for`` = the slot (``CRON`` or
  ``BACKFILL``) and its ``lateness_ms``;
- a slot the daemon missed, superseded or skipped for overlap has a ``SKIPPED`` batch of
  mode ``SLOT`` whose reason starts with ``missed:``, ``superseded:`` or ``overlap:``; past
  100 missed slots in a row the first recorded one says how many earlier ones it stands for;
- a slot with no record: the schedule was disabled then (enable/disable audit rows), it is
  not in code or not active in this environment, it did not exist yet, no daemon was
  alive (worker heartbeats), or its records were pruned by retention.

Also here: the next slots of a schedule with daylight-saving changes marked
(``upcoming``), for the schedule page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from jobsys.cron import CronSchedule
from jobsys.errors import ConfigError
from jobsys.scheduler import jitter_offset

#: The widest window one ledger covers, and the most slots it lists.
MAX_WINDOW = timedelta(days=7)
MAX_SLOTS = 2000

_NOT_LISTED = re.compile(r"\((\d+) earlier missed slots not listed\)")


class Fate(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RUNNING = "running"  # its batch is queued or running
    BUFFERED = "buffered"  # BUFFER_ONE: fires when the running batch ends
    SKIPPED = "skipped"  # never ran: ``cause`` says why
    DUE = "due"  # due now, within its grace: a daemon is about to fire it
    NOT_YET_DUE = "not_yet_due"


class Cause(StrEnum):
    """Why a slot did not run."""

    DAEMON_DOWN = "daemon_down"  # no daemon fired it within its grace
    OVERLAP = "overlap"  # the previous batch was still running
    SUPERSEDED = "superseded"  # a later slot was due at the same time
    DISABLED = "disabled"  # the schedule was disabled at the time
    NOT_IN_ENVIRONMENT = "not_in_environment"
    NOT_IN_CODE = "not_in_code"
    NOT_CREATED = "not_created"  # before the schedule was first synced
    PRUNED = "pruned"  # older than the history kept (JOBSYS_HISTORY_DAYS)
    UNKNOWN = "unknown"
    ALL_SKIPPED = "all_skipped"  # it fired, but every run in the batch was skipped


class LedgerError(ConfigError):
    """A window the ledger refuses (too wide, reversed, too many slots)."""


@dataclass(frozen=True)
class SlotRecord:
    """A batch whose ``scheduled_for`` is a slot of the schedule."""

    slot: datetime
    batch_id: int
    status: str
    mode: str
    trigger: str
    reason: str | None
    lateness_ms: int | None
    created_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Toggle:
    """An enable or disable of the schedule (an audit row)."""

    at: datetime
    enabled: bool  # the state it left
    actor: str | None = None


@dataclass(frozen=True)
class DaemonSpan:
    """When one daemon was alive: from its start to its stop (or last sign of life)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class ScheduleFacts:
    """What the ledger needs of the schedule itself."""

    id: str
    cron: str
    timezone: str
    grace_s: int
    enabled: bool
    in_code: bool
    env_active: bool
    created_at: datetime | None
    jitter_s: int = 0
    buffered_slot: datetime | None = None


@dataclass(frozen=True)
class LedgerEntry:
    slot: datetime
    fate: Fate
    cause: Cause | None = None
    reason: str = ""
    batch_id: int | None = None
    status: str | None = None
    trigger: str | None = None
    fired_at: datetime | None = None
    late_ms: int | None = None
    on_time: bool | None = None


@dataclass(frozen=True)
class Ledger:
    start: datetime
    end: datetime
    now: datetime
    entries: list[LedgerEntry]
    #: records in the window for instants the current cron does not have (it changed)
    unmatched: list[SlotRecord] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.fate.value] = out.get(e.fate.value, 0) + 1
        return out

    def causes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            if e.cause is not None and e.fate is Fate.SKIPPED:
                out[e.cause.value] = out.get(e.cause.value, 0) + 1
        return out


def check_window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise LedgerError("the window's end must be after its start")
    if end - start > MAX_WINDOW:
        raise LedgerError(f"the window may span at most {MAX_WINDOW.days} days")


def expected_slots(cron: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """The cron's slots in [start, end); more than ``MAX_SLOTS`` is a ``LedgerError``."""
    check_window(start, end)
    slots: list[datetime] = []
    for slot in CronSchedule(cron, tz).iter_after(start - timedelta(microseconds=1)):
        if slot >= end:
            break
        slots.append(slot)
        if len(slots) > MAX_SLOTS:
            raise LedgerError(
                f"the window holds more than {MAX_SLOTS} slots of {cron!r}; choose a shorter one"
            )
    return slots


_STATUS_FATE = {
    "SUCCESS": Fate.SUCCEEDED,
    "FAILED": Fate.FAILED,
    "CANCELLED": Fate.CANCELLED,
    "QUEUED": Fate.RUNNING,
    "RUNNING": Fate.RUNNING,
}


def _skip_cause(reason: str) -> Cause:
    head = reason.split(":", 1)[0].strip().lower()
    return {
        "missed": Cause.DAEMON_DOWN,
        "overlap": Cause.OVERLAP,
        "superseded": Cause.SUPERSEDED,
    }.get(head, Cause.UNKNOWN)


def _from_record(rec: SlotRecord, grace_s: int) -> LedgerEntry:
    if rec.mode == "SLOT":  # a skipped slot's record: no runs
        reason = rec.reason or "skipped"
        return LedgerEntry(
            rec.slot,
            Fate.SKIPPED,
            _skip_cause(reason),
            reason,
            batch_id=rec.batch_id,
            status=rec.status,
            trigger=rec.trigger,
        )
    late = rec.lateness_ms
    on_time = None if late is None else late <= grace_s * 1000
    fate = _STATUS_FATE.get(rec.status, Fate.SKIPPED)
    return LedgerEntry(
        rec.slot,
        fate,
        Cause.ALL_SKIPPED if fate is Fate.SKIPPED else None,
        rec.reason or "",
        batch_id=rec.batch_id,
        status=rec.status,
        trigger=rec.trigger,
        fired_at=rec.created_at,
        late_ms=late,
        on_time=on_time,
    )


def enabled_at(toggles: Sequence[Toggle], instant: datetime, *, now_enabled: bool) -> bool:
    """Whether the schedule could fire ``instant``: the state the last toggle up to it
    left. An enable at exactly ``instant`` does not count (enabling computes the next
    slot strictly after now); before the first toggle, the state that toggle changed."""
    ordered = sorted(toggles, key=lambda t: t.at)
    last: Toggle | None = None
    for t in ordered:
        if t.at > instant:
            break
        last = t
    if last is None:
        return (not ordered[0].enabled) if ordered else now_enabled
    if last.enabled and last.at == instant:
        return False
    return last.enabled


def _daemon_alive(spans: Sequence[DaemonSpan], lo: datetime, hi: datetime) -> bool:
    return any(s.start <= hi and s.end >= lo for s in spans)


def _summarised(records: Sequence[SlotRecord], slot: datetime) -> SlotRecord | None:
    """The missed-slot record that stands for unlisted earlier slots including ``slot``."""
    for rec in sorted(records, key=lambda r: r.slot):
        if rec.slot <= slot:
            continue
        if rec.mode == "SLOT" and rec.reason and _NOT_LISTED.search(rec.reason):
            return rec
        return None  # the next record after the slot does not summarise it
    return None


def build_ledger(
    facts: ScheduleFacts,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    records: Sequence[SlotRecord],
    toggles: Sequence[Toggle] = (),
    daemons: Sequence[DaemonSpan] = (),
    history_cutoff: datetime | None = None,
) -> Ledger:
    """One entry per slot of ``facts.cron`` in [start, end), oldest first."""
    slots = expected_slots(facts.cron, facts.timezone, start, end)
    by_slot = {r.slot: r for r in records}
    grace = timedelta(seconds=facts.grace_s)
    entries: list[LedgerEntry] = []
    for slot in slots:
        rec = by_slot.get(slot)
        if rec is not None:
            entries.append(_from_record(rec, facts.grace_s))
            continue
        due = slot + jitter_offset(facts.id, slot, facts.jitter_s)
        entries.append(
            _unrecorded(facts, slot, due, grace, now, records, toggles, daemons, history_cutoff)
        )
    wanted = set(slots)
    unmatched = sorted((r for r in records if r.slot not in wanted), key=lambda r: r.slot)
    return Ledger(start, end, now, entries, unmatched)


def _unrecorded(
    facts: ScheduleFacts,
    slot: datetime,
    due: datetime,
    grace: timedelta,
    now: datetime,
    records: Sequence[SlotRecord],
    toggles: Sequence[Toggle],
    daemons: Sequence[DaemonSpan],
    history_cutoff: datetime | None,
) -> LedgerEntry:
    """The fate of a slot that has no batch."""
    if facts.buffered_slot == slot:
        return LedgerEntry(
            slot, Fate.BUFFERED, reason="buffered (BUFFER_ONE): fires when the running batch ends"
        )

    def skipped(cause: Cause, reason: str) -> LedgerEntry:
        return LedgerEntry(slot, Fate.SKIPPED, cause, reason)

    future = due > now
    # Causes that hold whenever the slot is: the schedule's state now.
    if not facts.in_code:
        return _future_or(slot, future, skipped(Cause.NOT_IN_CODE, "not in code: never fires"))
    if not facts.env_active:
        return _future_or(
            slot,
            future,
            skipped(Cause.NOT_IN_ENVIRONMENT, "not active in this environment: never fires here"),
        )
    if future:
        if not facts.enabled:
            return LedgerEntry(
                slot,
                Fate.NOT_YET_DUE,
                Cause.DISABLED,
                "the schedule is disabled: it will not fire unless enabled",
            )
        return LedgerEntry(slot, Fate.NOT_YET_DUE)
    if facts.created_at is not None and slot < facts.created_at:
        return skipped(Cause.NOT_CREATED, "before the schedule was first synced")
    if not enabled_at(toggles, slot, now_enabled=facts.enabled):
        return skipped(Cause.DISABLED, "the schedule was disabled at the time")
    if now - due <= grace:
        return LedgerEntry(slot, Fate.DUE, reason="due now: a daemon fires it within its grace")
    if history_cutoff is not None and slot < history_cutoff:
        return skipped(Cause.PRUNED, "older than the history kept; its record was pruned")
    summary = _summarised(records, slot)
    if summary is not None:
        return skipped(
            Cause.DAEMON_DOWN,
            f"missed: not fired within its grace (summarised in batch #{summary.batch_id})",
        )
    if not _daemon_alive(daemons, due, due + grace):
        return skipped(Cause.DAEMON_DOWN, "no daemon was running within its grace")
    return skipped(Cause.UNKNOWN, "not fired and no record of why")


def _future_or(slot: datetime, future: bool, past: LedgerEntry) -> LedgerEntry:
    if future:
        return LedgerEntry(slot, Fate.NOT_YET_DUE, past.cause, past.reason)
    return past


# -- the next slots, with daylight-saving changes marked -------------------------------
@dataclass(frozen=True)
class Upcoming:
    slot: datetime  # UTC
    local: datetime  # in the schedule's zone (aware)
    offset_s: int  # the zone's UTC offset at the slot
    #: the offset changed since the previous slot (or since ``after`` for the first):
    #: (previous offset, this offset) in seconds
    dst_change: tuple[int, int] | None = None
    note: str = ""


def _utcoffset_s(zone: ZoneInfo, instant: datetime) -> int:
    delta = instant.astimezone(zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def format_offset(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def upcoming(cron: str, tz: str, after: datetime, count: int) -> list[Upcoming]:
    """The next ``count`` slots after ``after``, each marked when the zone's offset
    changed since the slot before (a daylight-saving change), when it sits at the end of
    a spring-forward gap, or when its wall time occurs twice (fall back)."""
    sched = CronSchedule(cron, tz)
    zone = sched.zone
    previous = _utcoffset_s(zone, after)
    out: list[Upcoming] = []
    for slot in _take(sched.iter_after(after), count):
        offset = _utcoffset_s(zone, slot)
        local = slot.astimezone(zone)
        change = (previous, offset) if offset != previous else None
        notes: list[str] = []
        if change is not None:
            kind = "summer time starts" if offset > previous else "summer time ends"
            notes.append(
                f"clocks change before this slot ({kind}: "
                f"UTC{format_offset(previous)} to UTC{format_offset(offset)})"
            )
        just_before = _utcoffset_s(zone, slot - timedelta(microseconds=1))
        if just_before < offset:
            notes.append("at the end of the skipped hour (wall times in the gap move here)")
        wall = local.replace(tzinfo=None)
        first = _utcoffset_s_wall(zone, wall, 0)
        second = _utcoffset_s_wall(zone, wall, 1)
        if first != second:
            which = "first" if offset == first else "second"
            notes.append(f"{wall:%H:%M} happens twice today; this is the {which} time")
        out.append(Upcoming(slot, local, offset, change, "; ".join(notes)))
        previous = offset
    return out


def _utcoffset_s_wall(zone: ZoneInfo, wall: datetime, fold: int) -> int:
    delta = wall.replace(tzinfo=zone, fold=fold).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def _take(it: Iterator[datetime], n: int) -> Iterator[datetime]:
    for i, x in enumerate(it):
        if i >= n:
            return
        yield x
