"""The slot ledger (``jobsys.ledger``): every expected slot gets exactly one fate, from
the batch records, the enable/disable history, the daemons' lives and the clock; and
the next slots with their daylight-saving changes marked."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jobsys.ledger import (
    MAX_SLOTS,
    Cause,
    DaemonSpan,
    Fate,
    LedgerEntry,
    LedgerError,
    ScheduleFacts,
    SlotRecord,
    Toggle,
    build_ledger,
    enabled_at,
    expected_slots,
    upcoming,
)

T0 = datetime(2030, 1, 7, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
FACTS = ScheduleFacts(
    id="hourly",
    cron="0 * * * *",
    timezone="UTC",
    grace_s=60,
    enabled=True,
    in_code=True,
    env_active=True,
    created_at=T0 - timedelta(days=30),
)
ALWAYS_UP = [DaemonSpan(T0 - timedelta(days=30), T0 + timedelta(days=30))]


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def fired(hour: int, status: str = "SUCCESS", late_ms: int = 800, **kw: object) -> SlotRecord:
    values: dict[str, object] = {
        "slot": at(hour),
        "batch_id": 100 + hour,
        "status": status,
        "mode": "ALL_JOBS",
        "trigger": "CRON",
        "reason": None,
        "lateness_ms": late_ms,
        "created_at": at(hour) + timedelta(milliseconds=late_ms),
    }
    values.update(kw)
    return SlotRecord(**values)  # type: ignore[arg-type]


def skipped(hour: int, reason: str) -> SlotRecord:
    return SlotRecord(at(hour), 200 + hour, "SKIPPED", "SLOT", "CRON", reason, 0, at(hour))


def ledger(
    records: list[SlotRecord],
    *,
    now: datetime = T0 + timedelta(hours=6, minutes=30),
    facts: ScheduleFacts = FACTS,
    **kw: object,
) -> dict[datetime, LedgerEntry]:
    kw.setdefault("daemons", ALWAYS_UP)
    built = build_ledger(facts, at(0), at(6), now=now, records=records, **kw)  # type: ignore[arg-type]
    assert [e.slot for e in built.entries] == [at(h) for h in range(6)]  # every slot, once
    return {e.slot: e for e in built.entries}


def test_fired_on_time_and_late_with_their_outcome() -> None:
    entries = ledger(
        [
            fired(0),
            fired(1, "FAILED"),
            fired(2, late_ms=25 * 60_000, reason="catch-up (RUN_ONCE): slot was missed by 25m"),
            fired(3, "CANCELLED"),
            fired(4, "RUNNING"),
            fired(5, "SKIPPED"),
        ]
    )
    e0, e1, e2 = entries[at(0)], entries[at(1)], entries[at(2)]
    assert (e0.fate, e0.on_time, e0.late_ms, e0.batch_id) == (Fate.SUCCEEDED, True, 800, 100)
    assert (e1.fate, e1.on_time) == (Fate.FAILED, True)
    assert (e2.fate, e2.on_time, e2.late_ms) == (Fate.SUCCEEDED, False, 25 * 60_000)
    assert "catch-up" in e2.reason
    assert entries[at(3)].fate is Fate.CANCELLED
    assert entries[at(4)].fate is Fate.RUNNING
    e5 = entries[at(5)]
    assert (e5.fate, e5.cause) == (Fate.SKIPPED, Cause.ALL_SKIPPED)


def test_skip_records_say_why() -> None:
    entries = ledger(
        [
            skipped(0, "missed: not fired within its grace (policy SKIP)"),
            skipped(1, "overlap: batch #7 of this schedule is still running"),
            skipped(2, "superseded: a later slot is due now"),
            skipped(3, "something new"),
            fired(4),
            fired(5),
        ]
    )
    causes = [(entries[at(h)].fate, entries[at(h)].cause) for h in range(4)]
    assert causes == [
        (Fate.SKIPPED, Cause.DAEMON_DOWN),
        (Fate.SKIPPED, Cause.OVERLAP),
        (Fate.SKIPPED, Cause.SUPERSEDED),
        (Fate.SKIPPED, Cause.UNKNOWN),
    ]
    assert entries[at(1)].reason.startswith("overlap: batch #7")
    assert entries[at(1)].batch_id == 201


def test_disabled_at_the_time_from_the_toggles() -> None:
    toggles = [
        Toggle(at(1) + timedelta(minutes=10), enabled=False),
        Toggle(at(3), enabled=True),  # enabling at a slot: the next slot after it fires
    ]
    entries = ledger([fired(0), fired(4), fired(5)], toggles=toggles)
    assert entries[at(1)].cause is Cause.UNKNOWN  # still enabled at 01:00
    assert (entries[at(2)].fate, entries[at(2)].cause) == (Fate.SKIPPED, Cause.DISABLED)
    assert (entries[at(3)].fate, entries[at(3)].cause) == (Fate.SKIPPED, Cause.DISABLED)


def test_state_before_the_first_toggle_is_what_it_changed() -> None:
    # Created disabled, enabled at 02:30: the slots before were disabled ones.
    toggles = [Toggle(at(2.5), enabled=True)]
    assert not enabled_at(toggles, at(1), now_enabled=True)
    assert enabled_at(toggles, at(3), now_enabled=True)
    assert enabled_at([], at(1), now_enabled=True)
    assert not enabled_at([], at(1), now_enabled=False)


def test_daemon_down_when_no_daemon_lived_through_the_grace() -> None:
    # A daemon until 01:30, the next from 03:00:30 (it fires 03:00 within its grace).
    daemons = [DaemonSpan(at(-10), at(1.5)), DaemonSpan(at(3) + timedelta(seconds=30), at(7))]
    entries = ledger([fired(0), fired(1), fired(3), fired(4), fired(5)], daemons=daemons)
    e2 = entries[at(2)]
    assert (e2.fate, e2.cause) == (Fate.SKIPPED, Cause.DAEMON_DOWN)
    assert "no daemon" in e2.reason


def test_a_missed_slot_with_a_daemon_alive_is_unknown() -> None:
    entries = ledger([fired(0), fired(1), fired(3), fired(4), fired(5)])
    assert (entries[at(2)].fate, entries[at(2)].cause) == (Fate.SKIPPED, Cause.UNKNOWN)


def test_unlisted_missed_slots_are_accounted_by_their_summary() -> None:
    note = "missed: not fired within its grace (policy SKIP) (2 earlier missed slots not listed)"
    entries = ledger([skipped(2, note), fired(3), fired(4), fired(5)], facts=FACTS)
    for h in (0, 1):
        e = entries[at(h)]
        assert (e.fate, e.cause) == (Fate.SKIPPED, Cause.DAEMON_DOWN)
        assert "batch #202" in e.reason


def test_not_in_environment_not_in_code_and_not_created() -> None:
    elsewhere = replace(FACTS, env_active=False)
    entries = ledger([], facts=elsewhere, now=at(3) + timedelta(minutes=5))
    assert (entries[at(0)].fate, entries[at(0)].cause) == (Fate.SKIPPED, Cause.NOT_IN_ENVIRONMENT)
    assert (entries[at(5)].fate, entries[at(5)].cause) == (
        Fate.NOT_YET_DUE,
        Cause.NOT_IN_ENVIRONMENT,
    )
    removed = ledger([], facts=replace(FACTS, in_code=False))
    assert entries and removed[at(1)].cause is Cause.NOT_IN_CODE
    young = ledger([fired(3), fired(4), fired(5)], facts=replace(FACTS, created_at=at(2.5)))
    assert (young[at(2)].fate, young[at(2)].cause) == (Fate.SKIPPED, Cause.NOT_CREATED)


def test_due_not_yet_due_buffered_and_pruned() -> None:
    now = at(4) + timedelta(seconds=30)  # 04:00 is within its 60 s grace
    entries = ledger(
        [fired(1), fired(2)],
        now=now,
        facts=replace(FACTS, buffered_slot=at(3)),
        history_cutoff=at(0.5),
    )
    assert (entries[at(0)].fate, entries[at(0)].cause) == (Fate.SKIPPED, Cause.PRUNED)
    assert entries[at(3)].fate is Fate.BUFFERED
    assert entries[at(4)].fate is Fate.DUE
    assert entries[at(5)].fate is Fate.NOT_YET_DUE
    assert entries[at(5)].cause is None
    off = ledger([], now=now, facts=replace(FACTS, enabled=False))
    assert (off[at(5)].fate, off[at(5)].cause) == (Fate.NOT_YET_DUE, Cause.DISABLED)


def test_jitter_moves_when_a_slot_is_due() -> None:
    jittered = replace(FACTS, jitter_s=600)
    now = at(5) + timedelta(seconds=1)  # 05:00 + up to 10 min of jitter: maybe not due yet
    built = build_ledger(jittered, at(5), at(6), now=now, records=[], daemons=ALWAYS_UP)
    assert built.entries[0].fate in (Fate.NOT_YET_DUE, Fate.DUE)


def test_records_off_the_cron_are_listed_apart_and_counts_add_up() -> None:
    odd = fired(1, slot=at(1) + timedelta(minutes=30))
    built = build_ledger(FACTS, at(0), at(6), now=at(7), records=[fired(0), odd], daemons=ALWAYS_UP)
    assert built.unmatched == [odd]
    assert sum(built.counts().values()) == 6
    assert built.counts()["succeeded"] == 1
    assert sum(built.causes().values()) == 5


def test_window_bounds() -> None:
    with pytest.raises(LedgerError, match="after its start"):
        expected_slots("0 * * * *", "UTC", at(2), at(1))
    with pytest.raises(LedgerError, match="at most 7 days"):
        expected_slots("0 * * * *", "UTC", at(0), at(0) + timedelta(days=8))
    with pytest.raises(LedgerError, match=f"more than {MAX_SLOTS} slots"):
        expected_slots("* * * * *", "UTC", at(0), at(48))
    assert len(expected_slots("* * * * *", "UTC", at(0), at(0) + timedelta(minutes=2000))) == 2000
    # the window's start is included, its end excluded
    assert expected_slots("0 * * * *", "UTC", at(0), at(2)) == [at(0), at(1)]


# -- next slots and daylight saving ----------------------------------------------------
def test_spring_forward_is_marked_on_the_first_slot_after_it() -> None:
    # New York, 2030-03-10: 02:00 EST jumps to 03:00 EDT. 02:30 does not exist.
    slots = upcoming("30 2 * * *", "America/New_York", datetime(2030, 3, 8, 12, tzinfo=UTC), 4)
    local = [s.local.strftime("%m-%d %H:%M") for s in slots]
    assert local == ["03-09 02:30", "03-10 03:00", "03-11 02:30", "03-12 02:30"]
    assert slots[0].dst_change is None and slots[0].note == ""
    assert slots[1].dst_change == (-5 * 3600, -4 * 3600)
    assert "summer time starts" in slots[1].note
    assert "end of the skipped hour" in slots[1].note
    assert slots[2].dst_change is None


def test_fall_back_marks_the_change_and_the_repeated_time() -> None:
    # New York, 2030-11-03: 02:00 EDT goes back to 01:00 EST; 01:30 happens twice.
    fixed = upcoming("30 1 * * *", "America/New_York", datetime(2030, 11, 1, 12, tzinfo=UTC), 3)
    assert [s.local.strftime("%m-%d %H:%M") for s in fixed] == [
        "11-02 01:30",
        "11-03 01:30",
        "11-04 01:30",
    ]
    assert fixed[1].dst_change is None  # still summer time at the first 01:30
    assert "happens twice" in fixed[1].note and "first time" in fixed[1].note
    assert fixed[2].dst_change == (-4 * 3600, -5 * 3600)
    assert "summer time ends" in fixed[2].note
    wild = upcoming("30 * * * *", "America/New_York", datetime(2030, 11, 3, 4, tzinfo=UTC), 3)
    assert [s.local.strftime("%H:%M") for s in wild] == ["00:30", "01:30", "01:30"]
    assert "first time" in wild[1].note
    assert "second time" in wild[2].note and wild[2].dst_change == (-4 * 3600, -5 * 3600)


def test_a_zone_without_changes_has_no_marks() -> None:
    slots = upcoming("0 9 * * *", "Asia/Tokyo", T0, 10)
    assert len(slots) == 10
    assert all(s.dst_change is None and s.note == "" for s in slots)
    assert slots[0].offset_s == 9 * 3600
