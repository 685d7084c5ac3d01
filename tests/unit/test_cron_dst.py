"""Design 6.2 across DST changes, with every expected instant worked out by hand.

Transitions used (from the tz database; checked against zoneinfo in
``test_transitions_are_where_the_cases_assume``):

* America/New_York 2027: 03-14 02:00 EST(-5) -> 03:00 EDT(-4) at 07:00Z;
  11-07 02:00 EDT -> 01:00 EST at 06:00Z (01:00-01:59 happens twice).
* Europe/Berlin 2027: 03-28 02:00 CET(+1) -> 03:00 CEST(+2) at 01:00Z;
  10-31 03:00 CEST -> 02:00 CET at 01:00Z (02:00-02:59 twice).
* Europe/London 2027: 03-28 01:00 GMT -> 02:00 BST at 01:00Z;
  10-31 02:00 BST -> 01:00 GMT at 01:00Z (01:00-01:59 twice).
* Australia/Lord_Howe 2027 (a 30-minute shift): 10-03 02:00 +10:30 -> 02:30 +11 at
  10-02T15:30Z (02:00-02:29 never happens); 04-04 02:00 +11 -> 01:30 +10:30 at
  04-03T15:00Z (01:30-01:59 twice).
* America/Santiago 2027 (changes at midnight): 09-05 00:00 -04 -> 01:00 -03 at 04:00Z
  (Sunday 5 September starts at 01:00); 04-04 00:00 -03 -> 04-03 23:00 -04 at 03:00Z
  (Saturday 3 April has 23:00-23:59 twice).
* America/Havana 2027 (changes at midnight): 03-14 00:00 CST(-5) -> 01:00 CDT(-4) at
  05:00Z; 11-07 01:00 CDT -> 00:00 CST at 05:00Z (00:00-00:59 twice).
* Pacific/Chatham 2027 (+12:45/+13:45, changes at :45): 09-26 02:45 +12:45 -> 03:45
  +13:45 at 09-25T14:00Z.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobsys.cron import CronSchedule, next_slots


def z(text: str) -> datetime:
    """An aware UTC instant from "2027-03-14T07:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NY = "America/New_York"
BERLIN = "Europe/Berlin"
LONDON = "Europe/London"
LORD_HOWE = "Australia/Lord_Howe"
SANTIAGO = "America/Santiago"
HAVANA = "America/Havana"
CHATHAM = "Pacific/Chatham"

# (expr, tz, after, expected slots in UTC); n = len(expected).
SPRING_FIXED = [
    # 02:30 EST/EDT does not exist on 03-14: fires at 03:00 EDT = 07:00Z; next day 02:30 EDT.
    ("30 2 * * *", NY, "2027-03-13T12:00", ["2027-03-14T07:00", "2027-03-15T06:30"]),
    # 02:30 CET/CEST does not exist on 03-28: 03:00 CEST = 01:00Z; next day 02:30 CEST.
    ("30 2 * * *", BERLIN, "2027-03-27T12:00", ["2027-03-28T01:00", "2027-03-29T00:30"]),
    # 01:30 GMT/BST does not exist on 03-28: 02:00 BST = 01:00Z; next day 01:30 BST.
    ("30 1 * * *", LONDON, "2027-03-27T12:00", ["2027-03-28T01:00", "2027-03-29T00:30"]),
    # 02:15 does not exist on 10-03: 02:30 +11 = 10-02T15:30Z; 10-04 02:15 +11 = 10-03T15:15Z.
    ("15 2 * * *", LORD_HOWE, "2027-10-02T00:00", ["2027-10-02T15:30", "2027-10-03T15:15"]),
    # Midnight does not exist on 09-05: the day starts at 01:00 -03 = 04:00Z; then 00:00 -03.
    ("0 0 * * *", SANTIAGO, "2027-09-04T12:00", ["2027-09-05T04:00", "2027-09-06T03:00"]),
    ("30 0 * * *", SANTIAGO, "2027-09-04T12:00", ["2027-09-05T04:00", "2027-09-06T03:30"]),
    # Havana: midnight 03-14 does not exist: 01:00 CDT = 05:00Z; then 00:00 CDT = 04:00Z.
    ("0 0 * * *", HAVANA, "2027-03-13T12:00", ["2027-03-14T05:00", "2027-03-15T04:00"]),
    # Chatham: 03:00 does not exist on 09-26: 03:45 +13:45 = 09-25T14:00Z; then 03:00 +13:45.
    ("0 3 * * *", CHATHAM, "2027-09-25T00:00", ["2027-09-25T14:00", "2027-09-26T13:15"]),
]

SPRING_DEDUPE = [
    # 02:00 and 02:30 both move to 03:00 EDT: one slot.
    (
        "0,30 2 * * *",
        NY,
        "2027-03-13T12:00",
        ["2027-03-14T07:00", "2027-03-15T06:00", "2027-03-15T06:30"],
    ),
    # The moved 02:00 and the real 03:00 EDT are the same instant: one slot.
    (
        "0 2,3 * * *",
        NY,
        "2027-03-13T12:00",
        ["2027-03-14T07:00", "2027-03-15T06:00", "2027-03-15T07:00"],
    ),
    (
        "0 2,3 * * *",
        BERLIN,
        "2027-03-27T12:00",
        ["2027-03-28T01:00", "2027-03-29T00:00", "2027-03-29T01:00"],
    ),
    (
        "0,30 1 * * *",
        LONDON,
        "2027-03-27T12:00",
        ["2027-03-28T01:00", "2027-03-29T00:00", "2027-03-29T00:30"],
    ),
    # 02:00 and 02:15 move to 02:30 +11, which is also a real slot: one slot at 15:30Z.
    # 10-04 02:00/02:15/02:30 +11 = 10-03T15:00Z/15:15Z/15:30Z.
    (
        "0,15,30 2 * * *",
        LORD_HOWE,
        "2027-10-02T00:00",
        ["2027-10-02T15:30", "2027-10-03T15:00", "2027-10-03T15:15", "2027-10-03T15:30"],
    ),
    # The moved midnight and the real 01:00 -03 are one slot; 09-06 00:00/01:00 -03.
    (
        "0 0,1 * * *",
        SANTIAGO,
        "2027-09-04T12:00",
        ["2027-09-05T04:00", "2027-09-06T03:00", "2027-09-06T04:00"],
    ),
    # The moved midnight and the real 01:00 CDT are one slot.
    (
        "0 0,1 * * *",
        HAVANA,
        "2027-03-13T12:00",
        ["2027-03-14T05:00", "2027-03-15T04:00", "2027-03-15T05:00"],
    ),
]

SPRING_WILDCARD = [
    # 01:45 EST = 06:45Z, then straight to 03:00 EDT = 07:00Z: nothing in 02:xx.
    (
        "*/15 * * * *",
        NY,
        "2027-03-14T06:30",
        ["2027-03-14T06:45", "2027-03-14T07:00", "2027-03-14T07:15"],
    ),
    # Hour 2 does not exist on 03-14: the first slot is 02:00 EDT on 03-15.
    ("* 2 * * *", NY, "2027-03-13T12:00", ["2027-03-15T06:00", "2027-03-15T06:01"]),
    # 01:45 CET = 00:45Z, then 03:00 CEST = 01:00Z.
    (
        "*/15 * * * *",
        BERLIN,
        "2027-03-28T00:30",
        ["2027-03-28T00:45", "2027-03-28T01:00", "2027-03-28T01:15"],
    ),
    # 00:45 GMT, then 02:00 BST = 01:00Z.
    (
        "*/15 * * * *",
        LONDON,
        "2027-03-28T00:30",
        ["2027-03-28T00:45", "2027-03-28T01:00", "2027-03-28T01:15"],
    ),
    # 01:50 +10:30 = 15:20Z; 02:00-02:20 do not exist; 02:30 +11 = 15:30Z.
    (
        "*/10 * * * *",
        LORD_HOWE,
        "2027-10-02T15:15",
        ["2027-10-02T15:20", "2027-10-02T15:30", "2027-10-02T15:40"],
    ),
    # Only half of hour 2 is missing: 02:30 +11 = 15:30Z is the first slot.
    ("* 2 * * *", LORD_HOWE, "2027-10-02T00:00", ["2027-10-02T15:30", "2027-10-02T15:31"]),
    # 23:30 -04 = 03:30Z, then the day starts at 01:00 -03 = 04:00Z.
    (
        "*/30 * * * *",
        SANTIAGO,
        "2027-09-05T03:00",
        ["2027-09-05T03:30", "2027-09-05T04:00", "2027-09-05T04:30"],
    ),
    # Hour 0 does not exist on 09-05: first slot 00:00 -03 on 09-06 = 03:00Z.
    ("*/15 0 * * *", SANTIAGO, "2027-09-04T12:00", ["2027-09-06T03:00", "2027-09-06T03:15"]),
    # Reached by skipping to a matching day (Sunday 09-05): 01:00 -03 = 04:00Z is real.
    ("*/20 1 * * SUN", SANTIAGO, "2027-09-01T00:00", ["2027-09-05T04:00", "2027-09-05T04:20"]),
    # Hour 0 does not exist on 03-14 in Havana; 23:30 CST = 04:30Z, then 01:00 CDT = 05:00Z.
    ("*/30 * * * *", HAVANA, "2027-03-14T04:00", ["2027-03-14T04:30", "2027-03-14T05:00"]),
    # 03:45-03:59 +13:45 exist on 09-26: 03:45 +13:45 = 09-25T14:00Z.
    ("* 3 * * *", CHATHAM, "2027-09-25T00:00", ["2027-09-25T14:00", "2027-09-25T14:01"]),
]

FALL_FIXED = [
    # The exact example of design 6.2: 01:30 EDT = 05:30Z, not also 01:30 EST = 06:30Z;
    # the next day 01:30 EST = 06:30Z.
    ("30 1 * * *", NY, "2027-11-06T12:00", ["2027-11-07T05:30", "2027-11-08T06:30"]),
    # Already past the first 01:30 (after = 01:10 EST): the second one does not fire.
    ("30 1 * * *", NY, "2027-11-07T06:10", ["2027-11-08T06:30"]),
    # 02:30 CEST = 00:30Z only; next day 02:30 CET = 01:30Z.
    ("30 2 * * *", BERLIN, "2027-10-30T12:00", ["2027-10-31T00:30", "2027-11-01T01:30"]),
    # 01:30 BST = 00:30Z only; next day 01:30 GMT.
    ("30 1 * * *", LONDON, "2027-10-30T12:00", ["2027-10-31T00:30", "2027-11-01T01:30"]),
    # 01:45 +11 = 04-03T14:45Z only; 04-05 01:45 +10:30 = 04-04T15:15Z.
    ("45 1 * * *", LORD_HOWE, "2027-04-03T00:00", ["2027-04-03T14:45", "2027-04-04T15:15"]),
    # 23:30 -03 = 04-04T02:30Z only; 04-04 23:30 -04 = 04-05T03:30Z.
    ("30 23 * * *", SANTIAGO, "2027-04-03T12:00", ["2027-04-04T02:30", "2027-04-05T03:30"]),
    # Havana midnight 11-07 happens twice: 00:00 CDT = 04:00Z only; then 00:00 CST = 05:00Z.
    ("0 0 * * *", HAVANA, "2027-11-06T12:00", ["2027-11-07T04:00", "2027-11-08T05:00"]),
]

FALL_WILDCARD = [
    # 01:00 EDT, 01:30 EDT, 01:00 EST, 01:30 EST, 02:00 EST.
    (
        "*/30 * * * *",
        NY,
        "2027-11-07T04:40",
        [
            "2027-11-07T05:00",
            "2027-11-07T05:30",
            "2027-11-07T06:00",
            "2027-11-07T06:30",
            "2027-11-07T07:00",
        ],
    ),
    # Starting inside the first 01:xx (after = 01:30 EDT): 01:00 EST is still ahead.
    (
        "*/30 * * * *",
        NY,
        "2027-11-07T05:30",
        ["2027-11-07T06:00", "2027-11-07T06:30", "2027-11-07T07:00"],
    ),
    # Starting inside the second 01:xx (after = 01:10 EST).
    ("*/30 * * * *", NY, "2027-11-07T06:10", ["2027-11-07T06:30", "2027-11-07T07:00"]),
    # Hour 1 twice, then the next day's 01:00 EST.
    (
        "*/20 1 * * *",
        NY,
        "2027-11-06T12:00",
        [
            "2027-11-07T05:00",
            "2027-11-07T05:20",
            "2027-11-07T05:40",
            "2027-11-07T06:00",
            "2027-11-07T06:20",
            "2027-11-07T06:40",
            "2027-11-08T06:00",
        ],
    ),
    # 02:00 CEST, 02:30 CEST, 02:00 CET, 02:30 CET, 03:00 CET.
    (
        "*/30 * * * *",
        BERLIN,
        "2027-10-30T23:40",
        [
            "2027-10-31T00:00",
            "2027-10-31T00:30",
            "2027-10-31T01:00",
            "2027-10-31T01:30",
            "2027-10-31T02:00",
        ],
    ),
    # 01:00 BST, 01:30 BST, 01:00 GMT, 01:30 GMT, 02:00 GMT.
    (
        "*/30 * * * *",
        LONDON,
        "2027-10-30T23:40",
        [
            "2027-10-31T00:00",
            "2027-10-31T00:30",
            "2027-10-31T01:00",
            "2027-10-31T01:30",
            "2027-10-31T02:00",
        ],
    ),
    # 01:30 +11, 01:45 +11, 01:30 +10:30, 01:45 +10:30, 02:00 +10:30.
    (
        "*/15 * * * *",
        LORD_HOWE,
        "2027-04-03T14:20",
        [
            "2027-04-03T14:30",
            "2027-04-03T14:45",
            "2027-04-03T15:00",
            "2027-04-03T15:15",
            "2027-04-03T15:30",
        ],
    ),
    # Saturday 23:00 -03, 23:30 -03, 23:00 -04, 23:30 -04, then Sunday 23:00 -04.
    (
        "*/30 23 * * *",
        SANTIAGO,
        "2027-04-03T12:00",
        [
            "2027-04-04T02:00",
            "2027-04-04T02:30",
            "2027-04-04T03:00",
            "2027-04-04T03:30",
            "2027-04-05T03:00",
        ],
    ),
    # Midnight hour twice in Havana: 00:00/00:30 CDT, then 00:00/00:30 CST.
    (
        "*/30 0 * * *",
        HAVANA,
        "2027-11-06T12:00",
        ["2027-11-07T04:00", "2027-11-07T04:30", "2027-11-07T05:00", "2027-11-07T05:30"],
    ),
]


def _check(expr: str, tz: str, after: str, expected: list[str]) -> None:
    got = CronSchedule(expr, tz).next_n(z(after), len(expected))
    assert got == [z(e) for e in expected]
    assert all(t.tzinfo is UTC for t in got)
    # The functional API agrees.
    assert next_slots(expr, tz, z(after), len(expected)) == got


def _ids(cases: list[tuple[str, str, str, list[str]]]) -> list[str]:
    return [f"{tz}:{expr}@{after}" for expr, tz, after, _ in cases]


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), SPRING_FIXED, ids=_ids(SPRING_FIXED))
def test_spring_forward_fixed_time_fires_at_end_of_gap(
    expr: str, tz: str, after: str, expected: list[str]
) -> None:
    assert not CronSchedule(expr, tz).is_wildcard
    _check(expr, tz, after, expected)


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"), SPRING_DEDUPE, ids=_ids(SPRING_DEDUPE)
)
def test_spring_forward_slots_at_one_instant_are_one_slot(
    expr: str, tz: str, after: str, expected: list[str]
) -> None:
    _check(expr, tz, after, expected)


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"), SPRING_WILDCARD, ids=_ids(SPRING_WILDCARD)
)
def test_spring_forward_wildcard_has_no_slots_in_gap(
    expr: str, tz: str, after: str, expected: list[str]
) -> None:
    assert CronSchedule(expr, tz).is_wildcard
    _check(expr, tz, after, expected)


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), FALL_FIXED, ids=_ids(FALL_FIXED))
def test_fall_back_fixed_time_fires_once_at_first_occurrence(
    expr: str, tz: str, after: str, expected: list[str]
) -> None:
    assert not CronSchedule(expr, tz).is_wildcard
    _check(expr, tz, after, expected)


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"), FALL_WILDCARD, ids=_ids(FALL_WILDCARD)
)
def test_fall_back_wildcard_fires_at_every_real_instant(
    expr: str, tz: str, after: str, expected: list[str]
) -> None:
    assert CronSchedule(expr, tz).is_wildcard
    _check(expr, tz, after, expected)


def test_design_example_exactly() -> None:
    schedule = CronSchedule("30 1 * * *", "America/New_York")
    after = datetime(2027, 11, 6, 12, 0, tzinfo=UTC)
    assert schedule.next_n(after, 2) == [
        datetime(2027, 11, 7, 5, 30, tzinfo=UTC),
        datetime(2027, 11, 8, 6, 30, tzinfo=UTC),
    ]


def test_hourly_macro_is_wildcard_through_fall_back() -> None:
    # @hourly = "0 * * * *": the hour field starts with "*", so 01:00 fires twice.
    got = CronSchedule("@hourly", NY).next_n(z("2027-11-07T04:30"), 3)
    assert got == [z("2027-11-07T05:00"), z("2027-11-07T06:00"), z("2027-11-07T07:00")]


def test_daily_macro_is_fixed_time_in_midnight_gap() -> None:
    assert CronSchedule("@daily", SANTIAGO).next_after(z("2027-09-04T12:00")) == z(
        "2027-09-05T04:00"
    )


def test_after_in_local_zone_is_the_same_instant() -> None:
    # An aware `after` in any zone means the same instant; fold=1 picks 01:10 EST.
    after = datetime(2027, 11, 7, 1, 10, fold=1, tzinfo=ZoneInfo(NY))
    assert CronSchedule("30 1 * * *", NY).next_after(after) == z("2027-11-08T06:30")
    assert CronSchedule("*/30 * * * *", NY).next_after(after) == z("2027-11-07T06:30")


@pytest.mark.parametrize(
    ("tz", "instant", "before", "after"),
    [
        (NY, "2027-03-14T07:00", -5, -4),
        (NY, "2027-11-07T06:00", -4, -5),
        (BERLIN, "2027-03-28T01:00", 1, 2),
        (BERLIN, "2027-10-31T01:00", 2, 1),
        (LONDON, "2027-03-28T01:00", 0, 1),
        (LONDON, "2027-10-31T01:00", 1, 0),
        (LORD_HOWE, "2027-10-02T15:30", 10.5, 11),
        (LORD_HOWE, "2027-04-03T15:00", 11, 10.5),
        (SANTIAGO, "2027-09-05T04:00", -4, -3),
        (SANTIAGO, "2027-04-04T03:00", -3, -4),
        (HAVANA, "2027-03-14T05:00", -5, -4),
        (HAVANA, "2027-11-07T05:00", -4, -5),
        (CHATHAM, "2027-09-25T14:00", 12.75, 13.75),
    ],
)
def test_transitions_are_where_the_cases_assume(
    tz: str, instant: str, before: float, after: float
) -> None:
    zone = ZoneInfo(tz)
    t = z(instant)
    assert (t - timedelta(seconds=1)).astimezone(zone).utcoffset() == timedelta(hours=before)
    assert t.astimezone(zone).utcoffset() == timedelta(hours=after)
