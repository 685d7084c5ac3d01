"""Pure planning: on-time, missed (SKIP), catch-up (RUN_ONCE), next run."""

from datetime import UTC, datetime, timedelta

from jobsys.scheduler import MAX_RECORDED_MISSED, ScheduleTiming, next_run_after, plan_due


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


HOURLY = ScheduleTiming(cron="0 * * * *", timezone="UTC")


def test_on_time_slot_fires() -> None:
    plan = plan_due(HOURLY, t("2027-01-01T10:00:00"), t("2027-01-01T10:00:00.005"))
    assert plan.fire == t("2027-01-01T10:00:00")
    assert plan.skipped == []
    assert plan.next_run_at == t("2027-01-01T11:00:00")


def test_within_grace_is_on_time_beyond_is_missed() -> None:
    plan = plan_due(HOURLY, t("2027-01-01T10:00:00"), t("2027-01-01T10:01:00"))
    assert plan.fire == t("2027-01-01T10:00:00")
    plan = plan_due(HOURLY, t("2027-01-01T10:00:00"), t("2027-01-01T10:01:01"))
    assert plan.fire is None
    assert [s.slot for s in plan.skipped] == [t("2027-01-01T10:00:00")]
    assert "missed" in plan.skipped[0].reason and "SKIP" in plan.skipped[0].reason
    assert plan.next_run_at == t("2027-01-01T11:00:00")


def test_skip_after_downtime_records_each_missed_slot_and_fires_the_current_one() -> None:
    # Down from 10:00 to 13:00:30: 10, 11, 12 missed; 13:00 is within grace and fires.
    plan = plan_due(HOURLY, t("2027-01-01T10:00:00"), t("2027-01-01T13:00:30"))
    assert plan.fire == t("2027-01-01T13:00:00")
    assert [s.slot for s in plan.skipped] == [
        t("2027-01-01T10:00:00"),
        t("2027-01-01T11:00:00"),
        t("2027-01-01T12:00:00"),
    ]
    assert plan.missed_count == 3
    assert plan.next_run_at == t("2027-01-01T14:00:00")


def test_run_once_catches_up_the_newest_missed_slot_within_max_age() -> None:
    timing = ScheduleTiming(
        cron="0 * * * *", timezone="UTC", missed="RUN_ONCE", max_catch_up_s=3600
    )
    plan = plan_due(timing, t("2027-01-01T10:00:00"), t("2027-01-01T12:30:00"))
    assert plan.fire == t("2027-01-01T12:00:00")
    assert plan.fire_reason is not None and "catch-up" in plan.fire_reason
    assert [s.slot for s in plan.skipped] == [t("2027-01-01T10:00:00"), t("2027-01-01T11:00:00")]
    assert plan.missed_count == 2
    assert plan.next_run_at == t("2027-01-01T13:00:00")


def test_run_once_does_not_catch_up_beyond_max_age() -> None:
    timing = ScheduleTiming(
        cron="0 2 * * *", timezone="UTC", missed="RUN_ONCE", max_catch_up_s=3600
    )
    plan = plan_due(timing, t("2027-01-01T02:00:00"), t("2027-01-01T05:00:00"))
    assert plan.fire is None
    assert [s.slot for s in plan.skipped] == [t("2027-01-01T02:00:00")]
    assert plan.next_run_at == t("2027-01-02T02:00:00")


def test_long_downtime_is_summarised_not_listed_forever() -> None:
    every_minute = ScheduleTiming(cron="* * * * *", timezone="UTC")
    start = t("2027-01-01T00:00:00")
    plan = plan_due(every_minute, start, start + timedelta(days=2, seconds=30))
    assert plan.fire == start + timedelta(days=2)
    assert len(plan.skipped) == MAX_RECORDED_MISSED
    assert plan.missed_count == 2 * 24 * 60
    assert (
        f"{2 * 24 * 60 - MAX_RECORDED_MISSED} earlier missed slots not listed"
        in plan.skipped[0].reason
    )
    assert plan.next_run_at == start + timedelta(days=2, minutes=1)


def test_stored_next_run_that_is_not_a_slot_uses_the_crons_slots() -> None:
    # The cron changed from "30 * * * *" to hourly; the stored 10:30 is no longer a slot.
    plan = plan_due(HOURLY, t("2027-01-01T10:30:00"), t("2027-01-01T11:00:01"))
    assert plan.fire == t("2027-01-01T11:00:00")
    assert plan.skipped == []


def test_next_run_after_dst() -> None:
    ny = ScheduleTiming(cron="30 1 * * *", timezone="America/New_York")
    first = next_run_after(ny, t("2027-11-06T12:00:00"))
    assert first == t("2027-11-07T05:30:00")
    assert next_run_after(ny, first) == t("2027-11-08T06:30:00")
