"""jobsys.cron: the dialect (design 6.1), slots away from DST changes, describe()."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobsys.cron import CronSchedule, describe, next_slots, validate, validate_timezone
from jobsys.errors import CronError, DefinitionError, JobsysError


def z(text: str) -> datetime:
    """An aware UTC instant from "2027-03-14T07:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def slots(expr: str, after: str, n: int, tz: str = "UTC") -> list[datetime]:
    return CronSchedule(expr, tz).next_n(z(after), n)


# --- validation --------------------------------------------------------------------------

FIELD_ERRORS = [
    # (expression, text the message must contain)
    ("60 * * * *", "minute field: value 60 out of range 0-59"),
    ("* 24 * * *", "hour field: value 24 out of range 0-23"),
    ("* * 0 * *", "day-of-month field: value 0 out of range 1-31"),
    ("* * 32 * *", "day-of-month field: value 32 out of range 1-31"),
    ("* * * 0 *", "month field: value 0 out of range 1-12"),
    ("* * * 13 *", "month field: value 13 out of range 1-12"),
    ("* * * * 8", "day-of-week field: value 8 out of range 0-7"),
    ("0-60 * * * *", "minute field: value 60 out of range 0-59"),
    ("99999999999 * * * *", "minute field: value 99999999999 out of range 0-59"),
    # step 0, step too large, malformed steps
    ("*/0 * * * *", "minute field: step 0"),
    ("* 1-5/0 * * *", "hour field: step 0"),
    ("*/60 * * * *", "minute field: step 60 in '*/60' out of range 1-59"),
    ("* * * */13 *", "month field: step 13"),
    ("*/ * * * *", "minute field: missing step"),
    ("*/x * * * *", "minute field: invalid step"),
    ("1/2/3 * * * *", "minute field: invalid step"),
    ("/5 * * * *", "minute field: missing value before '/'"),
    # reversed and malformed ranges
    ("5-1 * * * *", "minute field: range '5-1' is reversed"),
    ("* 23-1 * * *", "hour field: range '23-1' is reversed"),
    ("* * * DEC-JAN *", "month field: range 'DEC-JAN' is reversed"),
    ("* * * * FRI-MON", "day-of-week field: range 'FRI-MON' is reversed"),
    ("1-2-3 * * * *", "minute field: invalid range"),
    ("-5 * * * *", "minute field: invalid range"),
    ("5- * * * *", "minute field: invalid range"),
    ("*-5 * * * *", "minute field: invalid value '*'"),
    # empty list items
    ("1,,2 * * * *", "minute field: empty item"),
    ("1, * * * *", "minute field: empty item"),
    ("* ,1 * * *", "hour field: empty item"),
    ("* * * * 1,", "day-of-week field: empty item"),
    # names: unknown, or in the wrong field
    ("* * * FOO *", "month field: unknown month name 'FOO'"),
    ("* * * * FUN", "day-of-week field: unknown day name 'FUN'"),
    ("* * * * JAN", "day-of-week field: unknown day name 'JAN'"),
    ("* * * MON *", "month field: unknown month name 'MON'"),
    ("JAN * * * *", "minute field: 'JAN' is not a number"),
    ("* MON * * *", "hour field: 'MON' is not a number"),
    ("* * MON * *", "day-of-month field: 'MON' is not a number"),
    ("* * * JANUARY *", "month field: unknown month name 'JANUARY'"),
    ("* * * * 1a", "day-of-week field: invalid value '1a'"),
    # not in the dialect: ? L W #
    ("0 0 ? * 1", "day-of-month field: '?' is not supported"),
    ("0 0 * * ?", "day-of-week field: '?' is not supported"),
    ("0 0 L * *", "day-of-month field: 'L' is not supported"),
    ("0 0 LW * *", "day-of-month field: 'LW' is not supported"),
    ("0 0 15W * *", "day-of-month field: '15W' is not supported"),
    ("0 0 * * 5L", "day-of-week field: '5L' is not supported"),
    ("0 0 * * 1#2", "day-of-week field: '#' is not supported"),
    # garbage characters
    ("* * * * 1%", "day-of-week field: unexpected character '%'"),
    ("1.5 * * * *", "minute field: unexpected character '.'"),
    ("٣ * * * *", "minute field: unexpected character '٣'"),
    ("0 0 * * @", "day-of-week field: unexpected character '@'"),
    # can never fire: day-of-month never exists in the months (day-of-week "*": AND)
    ("0 0 30 2 *", "day-of-month field: day 30 never occurs in February"),
    ("0 0 30,31 2 *", "day-of-month field: days 30 and 31 never occur in February"),
    (
        "0 0 31 4,6,9,11 *",
        "day-of-month field: day 31 never occurs in April, June, September or November",
    ),
    ("0 0 31 2 */1", "day-of-month field: day 31 never occurs in February"),
]


@pytest.mark.parametrize(("expr", "fragment"), FIELD_ERRORS)
def test_field_errors_name_the_field(expr: str, fragment: str) -> None:
    with pytest.raises(CronError) as info:
        validate(expr)
    message = str(info.value)
    assert message.startswith(f"invalid cron expression {expr!r}: ")
    assert fragment in message
    # The same through the class.
    with pytest.raises(CronError):
        CronSchedule(expr)


def test_error_message_exactly() -> None:
    with pytest.raises(CronError) as info:
        validate("61 * * * *")
    assert str(info.value) == (
        "invalid cron expression '61 * * * *': minute field: value 61 out of range 0-59"
    )


def test_cron_error_is_a_jobsys_error() -> None:
    with pytest.raises(JobsysError):
        validate("nope")
    assert issubclass(CronError, DefinitionError)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ("\t\n", "the expression is empty"),
        ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("*", "got 1"),
        ("0 0 * * * *", "got 6"),
        ("0 0 * * * 2027", "got 6"),
        ("0 0 * * * echo hi", "got 7"),
        ("@reboot", "unknown macro '@reboot'"),
        ("@every 5m", "unknown macro '@every'"),
        ("@every", "unknown macro '@every'"),
        ("@", "unknown macro '@'"),
        ("@fortnightly", "unknown macro '@fortnightly'"),
        ("@daily 0", "unexpected text after @daily"),
    ],
)
def test_whole_expression_errors(expr: str, fragment: str) -> None:
    with pytest.raises(CronError) as info:
        validate(expr)
    assert str(info.value).startswith(f"invalid cron expression {expr!r}: ")
    assert fragment in str(info.value)


def test_a_day_that_only_fails_by_day_of_month_fires_by_day_of_week() -> None:
    # Neither day field starts with "*": OR, so Mondays in February fire.
    validate("0 0 30 2 1")
    assert slots("0 0 30 2 1", "2027-01-01T00:00", 2) == [
        z("2027-02-01T00:00"),
        z("2027-02-08T00:00"),
    ]


@pytest.mark.parametrize(
    "tz",
    [
        "Mars/Base",
        "",
        "utc",
        "America",
        "../etc/passwd",
        "/etc/passwd",
        "localtime",
        "right/UTC",
        "posix/UTC",
    ],
)
def test_unknown_timezones(tz: str) -> None:
    with pytest.raises(CronError) as info:
        validate_timezone(tz)
    assert str(info.value) == f"unknown timezone {tz!r}"
    with pytest.raises(CronError):
        CronSchedule("* * * * *", tz)
    with pytest.raises(CronError):
        validate("* * * * *", tz)


def test_unknown_timezone_message_exactly() -> None:
    with pytest.raises(CronError, match=r"^unknown timezone 'Mars/Base'$"):
        validate_timezone("Mars/Base")


@pytest.mark.parametrize(
    "tz", ["UTC", "Etc/UTC", "Europe/London", "Asia/Kolkata", "Pacific/Chatham"]
)
def test_known_timezones(tz: str) -> None:
    zone = validate_timezone(tz)
    assert isinstance(zone, ZoneInfo)
    assert zone.key == tz
    validate("0 0 * * *", tz)


# --- accepted features -------------------------------------------------------------------


def test_schedule_attributes() -> None:
    schedule = CronSchedule("30 9 * * MON-FRI", "Europe/Berlin")
    assert schedule.expr == "30 9 * * MON-FRI"
    assert schedule.tz == "Europe/Berlin"
    assert schedule.zone == ZoneInfo("Europe/Berlin")
    assert schedule.is_wildcard is False
    assert CronSchedule("* * * * *").tz == "UTC"
    assert "30 9 * * MON-FRI" in repr(schedule)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # lists
        ("5,10,50 * * * *", "2027-06-01T10:07", ["10:10", "10:50", "11:05"]),
        # ranges
        ("58-59 * * * *", "2027-06-01T10:00", ["10:58", "10:59", "11:58"]),
        ("0 22-23 * * *", "2027-06-01T00:00", ["22:00", "23:00"]),
        # steps
        ("*/15 * * * *", "2027-06-01T10:01", ["10:15", "10:30", "10:45", "11:00"]),
        ("5-59/20 * * * *", "2027-06-01T10:00", ["10:05", "10:25", "10:45", "11:05"]),
        ("1-10/4 * * * *", "2027-06-01T10:00", ["10:01", "10:05", "10:09", "11:01"]),
        ("50/5 * * * *", "2027-06-01T10:00", ["10:50", "10:55", "11:50"]),
        ("0 */6 * * *", "2027-06-01T01:00", ["06:00", "12:00", "18:00"]),
        # mixed list items
        ("0,*/20,45 * * * *", "2027-06-01T10:00", ["10:20", "10:40", "10:45", "11:00"]),
        # leading zeros
        ("05 07 * * *", "2027-06-01T00:00", ["07:05"]),
    ],
)
def test_minute_and_hour_syntax(expr: str, after: str, expected: list[str]) -> None:
    got = slots(expr, after, len(expected))
    assert [t.strftime("%H:%M") for t in got] == expected


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # 2027-06-01 is a Tuesday.
        ("0 0 * * 0", "2027-06-01T00:00", ["2027-06-06", "2027-06-13"]),
        ("0 0 * * 7", "2027-06-01T00:00", ["2027-06-06", "2027-06-13"]),
        ("0 0 * * SUN", "2027-06-01T00:00", ["2027-06-06", "2027-06-13"]),
        ("0 0 * * sun", "2027-06-01T00:00", ["2027-06-06", "2027-06-13"]),
        ("0 0 * * 5-7", "2027-06-01T00:00", ["2027-06-04", "2027-06-05", "2027-06-06"]),
        ("0 0 * * FRI-SAT,0", "2027-06-01T00:00", ["2027-06-04", "2027-06-05", "2027-06-06"]),
        ("0 0 * * Mon-Fri", "2027-06-04T00:00", ["2027-06-07", "2027-06-08"]),
        ("0 0 * * */2", "2027-06-01T00:00", ["2027-06-03", "2027-06-05", "2027-06-06"]),
        ("0 0 * * 0-7/7", "2027-06-01T00:00", ["2027-06-06", "2027-06-13"]),
        ("0 0 1 jan,JUL *", "2027-06-01T00:00", ["2027-07-01", "2028-01-01"]),
        ("0 0 1 Mar-May *", "2027-06-01T00:00", ["2028-03-01", "2028-04-01", "2028-05-01"]),
        ("0 0 1 */4 *", "2027-06-01T00:00", ["2027-09-01", "2028-01-01", "2028-05-01"]),
        (
            "0 0 10-12 * *",
            "2027-06-01T00:00",
            ["2027-06-10", "2027-06-11", "2027-06-12", "2027-07-10"],
        ),
    ],
)
def test_day_and_month_syntax(expr: str, after: str, expected: list[str]) -> None:
    got = slots(expr, after, len(expected))
    assert [t.date().isoformat() for t in got] == expected


@pytest.mark.parametrize(
    ("macro", "expansion", "wildcard"),
    [
        ("@hourly", "0 * * * *", True),
        ("@daily", "0 0 * * *", False),
        ("@midnight", "0 0 * * *", False),
        ("@weekly", "0 0 * * 0", False),
        ("@monthly", "0 0 1 * *", False),
        ("@yearly", "0 0 1 1 *", False),
        ("@annually", "0 0 1 1 *", False),
        ("@DAILY", "0 0 * * *", False),
        ("  @Weekly ", "0 0 * * 0", False),
    ],
)
def test_macros(macro: str, expansion: str, wildcard: bool) -> None:
    for tz in ("UTC", "America/New_York"):
        a, b = CronSchedule(macro, tz), CronSchedule(expansion, tz)
        after = z("2027-02-27T13:14")
        assert a.next_n(after, 4) == b.next_n(after, 4)
        assert a.is_wildcard is b.is_wildcard is wildcard
    assert describe(macro) == describe(expansion)


@pytest.mark.parametrize(
    ("expr", "wildcard"),
    [
        ("* * * * *", True),
        ("*/15 * * * *", True),
        ("0 * * * *", True),
        ("0 */2 * * *", True),
        ("* 3 * * *", True),
        ("*/5 9-17 * * *", True),
        ("0 3 * * *", False),
        ("0,30 1-3 * * *", False),
        ("0-59 0-23 * * *", False),  # every minute, but written without "*": fixed-time
        ("5,* 3 * * *", False),  # the rule looks at the first character only
        ("0 0 * * *", False),
    ],
)
def test_is_wildcard_follows_cronie(expr: str, wildcard: bool) -> None:
    assert CronSchedule(expr).is_wildcard is wildcard


def test_whitespace_between_fields_is_free() -> None:
    assert slots(" 0\t12  *  * *\n", "2027-06-01T00:00", 1) == [z("2027-06-01T12:00")]


# --- slots in UTC ------------------------------------------------------------------------


def test_after_is_exclusive() -> None:
    assert slots("0 12 * * *", "2027-06-01T12:00", 1) == [z("2027-06-02T12:00")]
    assert slots("* * * * *", "2027-06-01T12:00", 2) == [
        z("2027-06-01T12:01"),
        z("2027-06-01T12:02"),
    ]


def test_after_with_seconds_and_microseconds() -> None:
    s = CronSchedule("* * * * *")
    assert s.next_after(datetime(2027, 6, 1, 12, 0, 0, 1, tzinfo=UTC)) == z("2027-06-01T12:01")
    assert s.next_after(datetime(2027, 6, 1, 11, 59, 59, 999999, tzinfo=UTC)) == z(
        "2027-06-01T12:00"
    )
    assert s.next_after(datetime(2027, 6, 1, 12, 0, 30, tzinfo=UTC)) == z("2027-06-01T12:01")


def test_naive_after_means_utc_and_results_are_aware_utc() -> None:
    s = CronSchedule("0 9 * * *", "Asia/Kolkata")  # 09:00 IST = 03:30Z
    got = s.next_after(datetime(2027, 6, 1, 0, 0))
    assert got == z("2027-06-01T03:30")
    assert got.tzinfo is UTC
    # An aware `after` in another zone is the same instant.
    assert s.next_after(datetime(2027, 6, 1, 9, 0, tzinfo=ZoneInfo("Asia/Kolkata"))) == z(
        "2027-06-02T03:30"
    )


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # minute -> hour
        ("59 * * * *", "2027-06-01T10:59", ["2027-06-01T11:59"]),
        ("0 * * * *", "2027-06-01T10:59:59", ["2027-06-01T11:00"]),
        # hour -> day
        ("0 0 * * *", "2027-06-01T23:59", ["2027-06-02T00:00"]),
        ("30 23 * * *", "2027-06-01T23:30", ["2027-06-02T23:30"]),
        # day -> month, skipping months without the day
        (
            "0 0 31 * *",
            "2027-01-31T00:00",
            ["2027-03-31T00:00", "2027-05-31T00:00", "2027-07-31T00:00"],
        ),
        ("0 0 30 * *", "2027-01-30T00:00", ["2027-03-30T00:00"]),
        # month -> year
        ("0 0 1 1 *", "2027-12-31T23:59:59", ["2028-01-01T00:00", "2029-01-01T00:00"]),
        ("59 23 31 12 *", "2027-12-31T23:59", ["2028-12-31T23:59"]),
        # leap day: 2028, 2032; 2100 is not a leap year, so 2096 -> 2104
        ("0 0 29 2 *", "2027-03-01T00:00", ["2028-02-29T00:00", "2032-02-29T00:00"]),
        ("0 0 29 2 *", "2096-03-01T00:00", ["2104-02-29T00:00"]),
        # Feb 29 that is also a Sunday (AND: day-of-week starts with "*"): every 28 years
        ("0 0 29 2 */7", "2026-01-01T00:00", ["2032-02-29T00:00", "2060-02-29T00:00"]),
        # last slot of a leap year
        ("59 23 31 12 *", "2028-12-31T23:58", ["2028-12-31T23:59"]),
        ("0 12 29 2 *", "2028-02-29T11:59", ["2028-02-29T12:00", "2032-02-29T12:00"]),
    ],
)
def test_boundaries(expr: str, after: str, expected: list[str]) -> None:
    assert slots(expr, after, len(expected)) == [z(e) for e in expected]


def test_or_rule_when_neither_day_field_starts_with_star() -> None:
    # 1-31 covers every day-of-month: OR, so every day fires, Mondays or not.
    # 2027-06-01 is a Tuesday.
    got = slots("0 0 1-31 * 1", "2027-06-01T00:00", 3)
    assert got == [z("2027-06-02T00:00"), z("2027-06-03T00:00"), z("2027-06-04T00:00")]
    # The 13th, or any Friday: 2027-08-06 and 08-13 are Fridays, 08-13 once.
    got = slots("0 0 13 * 5", "2027-08-01T00:00", 4)
    assert got == [
        z("2027-08-06T00:00"),
        z("2027-08-13T00:00"),
        z("2027-08-20T00:00"),
        z("2027-08-27T00:00"),
    ]
    got = slots("0 0 13 * FRI", "2027-08-27T00:00", 2)
    assert got == [z("2027-09-03T00:00"), z("2027-09-10T00:00")]
    got = slots("0 0 13 * FRI", "2027-09-10T00:00", 1)
    assert got == [z("2027-09-13T00:00")]


def test_and_rule_when_a_day_field_starts_with_star() -> None:
    # Day-of-month starts with "*": both must match, so Mondays only (2027-06-07, 14, 21).
    assert slots("0 0 */1 * MON", "2027-06-01T00:00", 3) == [
        z("2027-06-07T00:00"),
        z("2027-06-14T00:00"),
        z("2027-06-21T00:00"),
    ]
    # Odd days of the month that are Mondays: 2027-06-07, 06-21, 07-05.
    assert slots("0 0 */2 * 1", "2027-06-01T00:00", 3) == [
        z("2027-06-07T00:00"),
        z("2027-06-21T00:00"),
        z("2027-07-05T00:00"),
    ]
    # Day-of-week starts with "*": the 1st only, whatever the weekday.
    assert slots("0 0 1 * */1", "2027-06-01T00:00", 2) == [
        z("2027-07-01T00:00"),
        z("2027-08-01T00:00"),
    ]
    # Both "*": every day.
    assert slots("0 0 * * *", "2027-06-01T00:00", 2) == [
        z("2027-06-02T00:00"),
        z("2027-06-03T00:00"),
    ]
    # Only day-of-month restricted: the 13th only.
    assert slots("0 0 13 * *", "2027-06-01T00:00", 2) == [
        z("2027-06-13T00:00"),
        z("2027-07-13T00:00"),
    ]
    # Only day-of-week restricted: Fridays only.
    assert slots("0 0 * * 5", "2027-06-01T00:00", 2) == [
        z("2027-06-04T00:00"),
        z("2027-06-11T00:00"),
    ]


def test_iteration_api() -> None:
    s = CronSchedule("*/20 * * * *", "Europe/London")
    after = z("2027-06-01T10:05")
    it = s.iter_after(after)
    first = [next(it) for _ in range(4)]
    assert first == s.next_n(after, 4) == next_slots("*/20 * * * *", "Europe/London", after, 4)
    assert first == [
        z("2027-06-01T10:20"),
        z("2027-06-01T10:40"),
        z("2027-06-01T11:00"),
        z("2027-06-01T11:20"),
    ]
    assert s.next_after(after) == first[0]
    assert s.next_n(after, 0) == []
    assert s.next_n(after, -1) == []
    assert next_slots("0 0 * * *", "UTC", after, 0) == []


def test_next_slots_validates() -> None:
    with pytest.raises(CronError, match="minute field"):
        next_slots("61 * * * *", "UTC", z("2027-06-01T00:00"), 1)
    with pytest.raises(CronError, match="unknown timezone 'Nowhere/Land'"):
        next_slots("* * * * *", "Nowhere/Land", z("2027-06-01T00:00"), 1)


def test_near_the_end_of_time() -> None:
    s = CronSchedule("0 0 1 1 *")
    assert s.next_n(datetime(9998, 6, 1, tzinfo=UTC), 5) == [datetime(9999, 1, 1, tzinfo=UTC)]
    with pytest.raises(CronError, match="no slot after"):
        s.next_after(datetime(9999, 6, 1, tzinfo=UTC))


def test_next_after_is_fast() -> None:
    # The daemon computes next slots for 10,000 schedules: well under 1 ms each.
    schedules = [
        CronSchedule("*/15 * * * *"),
        CronSchedule("0 2 * * *", "America/New_York"),
        CronSchedule("30 9 * * MON-FRI", "Europe/Berlin"),
        CronSchedule("0 0 1 * *", "Australia/Lord_Howe"),
    ]
    after = z("2027-03-01T00:00:07")
    start = time.perf_counter()
    for i in range(2500):
        for s in schedules:
            s.next_after(after + timedelta(minutes=7 * i))
    per_call = (time.perf_counter() - start) / 10_000
    assert per_call < 0.001


# --- describe ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ("* * * * *", "Every minute"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("*/7 * * * *", "At every 7th minute"),
        ("0 * * * *", "At minute 0 past every hour"),
        ("@hourly", "At minute 0 past every hour"),
        ("0 2 * * *", "At 02:00 every day"),
        ("@daily", "At 00:00 every day"),
        ("30 9 * * 1-5", "At 09:30 on Monday through Friday"),
        ("30 9 * * MON-FRI", "At 09:30 on Monday through Friday"),
        ("0 0 1 * *", "At 00:00 on day 1 of the month"),
        ("@monthly", "At 00:00 on day 1 of the month"),
        ("@weekly", "At 00:00 on Sunday"),
        ("0 0 * * 7", "At 00:00 on Sunday"),
        ("@yearly", "At 00:00 on January 1"),
        ("0 9,17 * * *", "At 09:00 and 17:00 every day"),
        ("0 */2 * * *", "At minute 0 past every 2nd hour"),
        ("15 3-5 * * *", "At 03:15, 04:15 and 05:15 every day"),
        ("0 9-17 * * 1-5", "At minute 0 past hours 9 through 17 on Monday through Friday"),
        ("*/10 9-17 * * *", "Every 10 minutes during hours 9 through 17"),
        ("* 3 * * *", "Every minute during hour 3"),
        ("0 0 1,15 * *", "At 00:00 on days 1 and 15 of the month"),
        ("0 12 * JAN,JUL *", "At 12:00 every day in January and July"),
        ("0 0 * * 5-7", "At 00:00 on Friday through Sunday"),
        ("0 0 * * SAT,SUN", "At 00:00 on Saturday and Sunday"),
        ("0 0 13 * 5", "At 00:00 on day 13 of the month or on Friday"),
        ("0 0 */2 * 1", "At 00:00 on every 2nd day of the month if it falls on Monday"),
        ("0 0 1-31 * 1", "At 00:00 every day"),  # OR with a full day-of-month
        ("5-59/15 * * * *", "At every 15th minute from 5 through 50"),
        ("0 0 1 3-5 *", "At 00:00 on day 1 of the month in March through May"),
    ],
)
def test_describe(expr: str, text: str) -> None:
    assert describe(expr) == text
    assert CronSchedule(expr, "Europe/Berlin").describe() == text


def test_describe_rejects_invalid_expressions() -> None:
    with pytest.raises(CronError, match="minute field"):
        describe("61 * * * *")


def _random_expression(rng: random.Random) -> str:
    bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    fields = []
    for lo, hi in bounds:
        items = []
        for _ in range(rng.randint(1, 3)):
            kind = rng.randrange(6)
            a = rng.randint(lo, hi)
            b = rng.randint(a, hi)
            step = rng.randint(1, hi)
            items.append(
                ["*", f"*/{step}", str(a), f"{a}-{b}", f"{a}-{b}/{step}", f"{a}/{step}"][kind]
            )
        fields.append(",".join(items))
    return " ".join(fields)


def test_describe_never_raises_for_valid_expressions() -> None:
    rng = random.Random(6_1)
    described = 0
    for _ in range(3000):
        expr = _random_expression(rng)
        try:
            schedule = CronSchedule(expr)
        except CronError:
            continue
        text = schedule.describe()
        assert text and text[0].isupper() and "  " not in text
        described += 1
    assert described > 2000
