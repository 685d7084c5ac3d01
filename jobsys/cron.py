"""Cron expressions: the dialect, the next slots of a schedule, a plain-English reading.

Dialect (design 6.1): five fields, ``minute hour day-of-month month day-of-week``, with
lists, ranges, steps and the names ``JAN``-``DEC`` and ``SUN``-``SAT``; the macros
``@hourly @daily @midnight @weekly @monthly @yearly @annually``. Everything else is
rejected with a ``CronError`` that names the field.

Semantics (design 6.2), cronie's: the expression is read in the schedule's IANA zone and
every slot is returned as an aware UTC instant.

* A schedule is a *wildcard* schedule when its minute or hour field starts with ``*``;
  every other schedule is *fixed-time*.
* Spring forward: a fixed-time slot whose wall time does not exist fires once, at the
  first instant after the gap (several such slots, and a real slot at that instant, are
  one slot); a wildcard schedule has no slots in the missing wall times.
* Fall back: a fixed-time schedule fires once per wall-clock slot, at its first
  occurrence; a wildcard schedule fires at every real instant whose wall time matches.
* When neither day-of-month nor day-of-week starts with ``*`` a day matches if either
  does; otherwise both must.

croniter enumerates the matching wall-clock times: it is handed a normalised form of the
expression (every field as ``*`` or an explicit list of the values jobsys parsed, see
``_croniter_form``) and iterated on naive datetimes, which it treats as pure wall-clock
arithmetic. jobsys validates the expression itself (errors name the field) and applies
the DST rules above on top: each wall time is mapped to UTC, and the results are merged
and de-duplicated in UTC order.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from jobsys.errors import CronError

__all__ = [
    "CronSchedule",
    "describe",
    "next_slots",
    "validate",
    "validate_timezone",
]

MACROS: Mapping[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_NAMES = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# February counts 29: a day that exists in some year is a day that can fire.
_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# The Gregorian calendar repeats, weekdays included, every 400 years, so a search that
# finds no matching day in that span never will.
_CYCLE_YEARS = 400
_ZERO = timedelta(0)
_MINUTE = timedelta(minutes=1)
# Zones that never change offset: their wall time is UTC, no mapping needed.
_UTC_KEYS = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Etc/Universal", "Zulu"})
_ALLOWED = frozenset("0123456789*,-/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class _FieldError(Exception):
    """A problem inside one field; _parse adds the expression and the field name."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: tuple[str, ...] | None  # names[i] has value i + name_base
    name_base: int
    kind: str  # for "unknown month name" / "unknown day name"


_FIELDS = (
    _Field("minute", 0, 59, None, 0, ""),
    _Field("hour", 0, 23, None, 0, ""),
    _Field("day-of-month", 1, 31, None, 0, ""),
    _Field("month", 1, 12, _MONTHS, 1, "month"),
    # 0 and 7 are both Sunday; 7 is folded into 0 after parsing.
    _Field("day-of-week", 0, 7, _DAYS, 0, "day"),
)


@dataclass(frozen=True, slots=True)
class _Parsed:
    minutes: tuple[int, ...]  # sorted
    hours: tuple[int, ...]  # sorted
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]  # 0-6, Sunday is 0
    day_or: bool  # neither day field starts with "*": a day matches if either does
    wildcard: bool  # minute or hour field starts with "*"
    croniter_expr: str  # the same schedule, as croniter reads it exactly as we do


def _is_digits(text: str) -> bool:
    # str.isdigit alone accepts "²" and other non-ASCII digits.
    return text.isascii() and text.isdigit()


def _value(token: str, spec: _Field) -> int:
    if _is_digits(token):
        # Long digit strings are out of range anyway; this also keeps int() cheap.
        number = int(token) if len(token) <= 6 else None
        if number is None or not spec.lo <= number <= spec.hi:
            shown = token if number is None else str(number)
            raise _FieldError(f"value {shown} out of range {spec.lo}-{spec.hi}")
        return number
    upper = token.upper()
    if spec.names is not None and upper in spec.names:
        return spec.names.index(upper) + spec.name_base
    if upper in ("L", "W", "LW") or (
        len(upper) > 1 and upper[-1] in "LW" and _is_digits(upper[:-1])
    ):
        raise _FieldError(f"{token!r} is not supported (no L or W in this dialect)")
    if token.isascii() and token.isalpha():
        if spec.names is None:
            raise _FieldError(f"{token!r} is not a number")
        raise _FieldError(f"unknown {spec.kind} name {token!r}")
    raise _FieldError(f"invalid value {token!r}")


def _parse_item(item: str, spec: _Field) -> range:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text:
            raise _FieldError(f"missing step after '/' in {item!r}")
        if not _is_digits(step_text):
            raise _FieldError(f"invalid step {step_text!r} in {item!r}")
        step = int(step_text) if len(step_text) <= 6 else spec.hi + 1
        if step == 0:
            raise _FieldError(f"step 0 in {item!r} is not allowed")
        if step > spec.hi:
            raise _FieldError(f"step {step_text} in {item!r} out of range 1-{spec.hi}")
    if base == "*":
        return range(spec.lo, spec.hi + 1, step)
    if not base:
        raise _FieldError(f"missing value before '/' in {item!r}")
    if "-" in base:
        first, _, last = base.partition("-")
        if not first or not last or "-" in last:
            raise _FieldError(f"invalid range {base!r}")
        start, end = _value(first, spec), _value(last, spec)
        if start > end:
            raise _FieldError(f"range {base!r} is reversed")
        return range(start, end + 1, step)
    start = _value(base, spec)
    # "5/15" means "5-<max>/15", as in cronsim and croniter.
    return range(start, (spec.hi if slash else start) + 1, step)


def _parse_field(text: str, spec: _Field) -> frozenset[int]:
    for ch in text:
        if ch not in _ALLOWED:
            if ch in "?#":
                raise _FieldError(f"{ch!r} is not supported in this dialect")
            raise _FieldError(f"unexpected character {ch!r}")
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _FieldError(f"empty item in list {text!r}")
        values |= set(_parse_item(item, spec))
    return frozenset(values)


def _join(items: list[str], word: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def _fail(expr: str, detail: str) -> CronError:
    return CronError(f"invalid cron expression {expr!r}: {detail}")


def _croniter_form(
    minutes: frozenset[int],
    hours: frozenset[int],
    doms: frozenset[int],
    months: frozenset[int],
    dows: frozenset[int],
    day_or: bool,
) -> str:
    """The parsed schedule as an expression that croniter, given ``day_or=day_or``, reads
    exactly as our dialect: it matches the same wall times.

    The user's text is not handed over as written, because croniter 7 reads some of it
    differently: an equal range ``5-5`` or ``5-5/2`` is the whole field to croniter;
    ``a/step`` in day-of-week runs to 6, not to 7 (``5/1`` is Friday-Saturday, ``7/2``
    is every other day from Sunday); a ``*`` item anywhere in a day field's list, and a
    full day-of-month (or day-of-week) list while the other day field's text contains a
    ``*``, make croniter treat that field as unrestricted, which turns our OR into AND;
    and it splits fields on ASCII whitespace only. So every field is passed as ``*``
    (all values) or an explicit sorted list. croniter ORs the day fields only when
    neither is ``*`` and its ``day_or`` is true, so with our ``day_or`` (neither day
    field *starts* with ``*``) it ORs exactly when we do, once a full side under OR is
    written ``* *`` (every day matches either way).
    """

    def field(values: frozenset[int], count: int) -> str:
        return "*" if len(values) == count else ",".join(map(str, sorted(values)))

    dom, dow = field(doms, 31), field(dows, 7)
    if day_or and "*" in (dom, dow):
        # OR with a side that matches every day: every day matches.
        dom = dow = "*"
    return f"{field(minutes, 60)} {field(hours, 24)} {dom} {field(months, 12)} {dow}"


@lru_cache(maxsize=16384)
def _parse(expr: str) -> _Parsed:
    if not isinstance(expr, str):
        raise CronError(f"a cron expression must be text, not {type(expr).__name__}")
    text = expr.strip()
    if not text:
        raise _fail(expr, "the expression is empty")
    if text.startswith("@"):
        word = text.split()[0]
        macro = MACROS.get(word.lower())
        if macro is None:
            raise _fail(expr, f"unknown macro {word!r} (use one of {', '.join(MACROS)})")
        if word != text:
            raise _fail(expr, f"unexpected text after {word}")
        text = macro
    parts = text.split()
    if len(parts) != 5:
        raise _fail(
            expr,
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}",
        )
    sets: list[frozenset[int]] = []
    for part, spec in zip(parts, _FIELDS, strict=True):
        try:
            sets.append(_parse_field(part, spec))
        except _FieldError as exc:
            raise _fail(expr, f"{spec.name} field: {exc}") from None
    minutes, hours, doms, months, dows = sets
    day_or = not parts[2].startswith("*") and not parts[4].startswith("*")
    if not day_or and not any(d <= _MAX_DAYS[m] for m in months for d in doms):
        # With AND, day-of-month alone decides whether a day can exist at all.
        days = [str(d) for d in sorted(doms)]
        what = (
            f"day {days[0]} never occurs" if len(days) == 1 else f"days {_join(days)} never occur"
        )
        where = _join([_MONTH_NAMES[m] for m in sorted(months)], "or")
        raise _fail(expr, f"day-of-month field: {what} in {where}")
    dows = frozenset(d % 7 for d in dows)
    return _Parsed(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        doms=doms,
        months=months,
        dows=dows,
        day_or=day_or,
        wildcard=parts[0].startswith("*") or parts[1].startswith("*"),
        croniter_expr=_croniter_form(minutes, hours, doms, months, dows, day_or),
    )


@lru_cache(maxsize=1024)
def _zone(tz: str) -> ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise CronError(f"unknown timezone {tz!r}")
    # "localtime" depends on the host, "right/..." counts leap seconds: neither is IANA.
    if tz in ("localtime", "posixrules") or tz.startswith(("posix/", "right/")):
        raise CronError(f"unknown timezone {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown timezone {tz!r}") from None


def validate_timezone(tz: str) -> ZoneInfo:
    """Return the zone named ``tz`` or raise ``CronError("unknown timezone 'Mars/Base'")``."""
    return _zone(tz)


def validate(expr: str, tz: str = "UTC") -> None:
    """Raise ``CronError`` unless ``expr`` is in the dialect and ``tz`` is a known zone.

    Parsed without the cache: an application with 10,000 schedules validates 10,000
    expressions once at load, and keeping them all would cost its daemon ~15 MiB."""
    _parse.__wrapped__(expr)
    _zone(tz)


# --- slots -------------------------------------------------------------------------------


@lru_cache(maxsize=16384)
def _prototype(expr: str, day_or: bool) -> croniter[datetime]:
    """A parsed croniter for ``_Parsed.croniter_expr``; never iterated, only copied."""
    return croniter(
        expr,
        datetime(2000, 1, 1),
        ret_type=datetime,
        day_or=day_or,
        max_years_between_matches=_CYCLE_YEARS,
    )


def _walls(p: _Parsed, start: datetime) -> Iterator[datetime]:
    """Matching naive wall-clock times >= ``start`` (floored to the minute), in
    increasing order, as croniter enumerates them.

    Stops after a full calendar cycle without a match (unreachable for a validated
    expression) or at the end of the datetime range.
    """
    # A shallow copy shares the parsed fields (croniter only reads them) and gets its own
    # position, so concurrent iterators do not disturb each other and nothing is re-parsed.
    it = copy.copy(_prototype(p.croniter_expr, p.day_or))
    # croniter's next is strictly after its position (it keeps the position as a float
    # timestamp, so keep it on whole minutes, which are exact).
    start = start.replace(second=0, microsecond=0)
    try:
        it.set_current(start - _MINUTE)
    except OverflowError:
        # start is datetime.min: every caller's wall at start is at or before its `after`.
        it.set_current(start)
    wall = start
    try:
        while True:
            wall = it.get_next()
            yield wall
    except CroniterBadDateError:  # no match within _CYCLE_YEARS
        return
    except (OverflowError, ValueError):  # "year 10000 is out of range"
        if wall.year < 9999:
            raise
        return


def _offset(zone: ZoneInfo, wall: datetime) -> timedelta:
    off = zone.utcoffset(wall)
    # ZoneInfo always knows the offset; None is only tzinfo's general contract.
    return off if off is not None else _ZERO


def _gap_end(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The transition instant in (lo, hi]: lo has the old offset, hi the new one."""
    before = _offset(zone, lo.astimezone(zone))
    low, high = 0, int((hi - lo).total_seconds())  # invariant: low old offset, high new
    while high - low > 1:
        mid = (low + high) // 2
        if _offset(zone, (lo + timedelta(seconds=mid)).astimezone(zone)) == before:
            low = mid
        else:
            high = mid
    return lo + timedelta(seconds=high)


def _slots(p: _Parsed, zone: ZoneInfo, is_utc: bool, after: datetime) -> Iterator[datetime]:
    """Slots strictly after ``after`` (aware UTC), in increasing order."""
    if is_utc:
        for wall in _walls(p, after.replace(tzinfo=None, second=0, microsecond=0)):
            instant = wall.replace(tzinfo=UTC)
            if instant > after:
                yield instant
        return

    start = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0, fold=0)
    last = after
    if not p.wildcard:
        # Fixed-time: each wall time maps to one instant (the first occurrence, or the end
        # of the gap); the map never goes back in time, so walking walls in order yields
        # instants in order, and equal instants are one slot.
        for wall in _walls(p, start):
            off0 = _offset(zone, wall)
            off1 = _offset(zone, wall.replace(fold=1))
            if off0 >= off1:  # exists (once, or first of two occurrences)
                instant = (wall - off0).replace(tzinfo=UTC)
            else:  # skipped by a spring-forward
                lo = (wall - off1).replace(tzinfo=UTC)
                instant = _gap_end(zone, lo, (wall - off0).replace(tzinfo=UTC))
            if instant > last:
                last = instant
                yield instant
        return

    # Wildcard: every real instant whose wall time matches. If `after` falls in a repeated
    # hour, the second occurrences of wall times before it may still be ahead, so start
    # one repeat-length earlier.
    off0, off1 = _offset(zone, start), _offset(zone, start.replace(fold=1))
    if off0 > off1:
        start -= off0 - off1
    # In a repeated period the wall order differs from time order: all first occurrences
    # come before all second occurrences. Hold the second ones until the period is over.
    pending: list[datetime] = []
    for wall in _walls(p, start):
        off0 = _offset(zone, wall)
        off1 = _offset(zone, wall.replace(fold=1))
        if off0 > off1:  # repeated wall time
            first = (wall - off0).replace(tzinfo=UTC)
            if pending and first >= pending[0]:  # a later repeated period
                for instant in pending:
                    if instant > last:
                        last = instant
                        yield instant
                pending.clear()
            if first > last:
                last = first
                yield first
            pending.append((wall - off1).replace(tzinfo=UTC))
            continue
        for instant in pending:
            if instant > last:
                last = instant
                yield instant
        pending.clear()
        if off0 == off1:  # a gap (off0 < off1) has no wildcard slots
            instant = (wall - off0).replace(tzinfo=UTC)
            if instant > last:
                last = instant
                yield instant
    for instant in pending:
        if instant > last:
            last = instant
            yield instant


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


# --- description -------------------------------------------------------------------------


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _step(values: list[int]) -> int:
    """The common difference of three or more evenly spaced values, else 0."""
    if len(values) < 3:
        return 0
    step = values[1] - values[0]
    ok = step >= 2 and all(b - a == step for a, b in itertools.pairwise(values))
    return step if ok else 0


def _runs(values: list[int], label: Mapping[int, str] | None = None) -> list[str]:
    """Values as list items, three or more consecutive ones as "a through b"."""

    def name(value: int) -> str:
        return label[value] if label is not None else str(value)

    items: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            items.append(f"{name(values[i])} through {name(values[j])}")
        else:
            items.extend(name(v) for v in values[i : j + 1])
        i = j + 1
    return items


def _numbers(values: list[int], lo: int, hi: int, unit: str) -> str:
    """ "minute 5", "every 15th minute", "minutes 0 through 10 and 30", ..."""
    step = _step(values)
    if step:
        if values[0] == lo and values[-1] + step > hi:
            return f"every {_ordinal(step)} {unit}"
        return f"every {_ordinal(step)} {unit} from {values[0]} through {values[-1]}"
    if len(values) == 1:
        return f"{unit} {values[0]}"
    return f"{unit}s {_join(_runs(values))}"


def _weekdays(dows: frozenset[int], word: str) -> str:
    # Monday first, so that "5-7" reads "Friday through Sunday".
    ordered = sorted((d - 1) % 7 for d in dows)
    names = {i: _DAY_NAMES[(i + 1) % 7] for i in range(7)}
    return _join(_runs(ordered, names), word)


def _describe_time(p: _Parsed) -> tuple[str, bool]:
    """The time-of-day part, and whether it is a list of clock times."""
    minutes, hours = list(p.minutes), list(p.hours)
    every_hour = len(hours) == 24
    if len(minutes) * len(hours) <= 4:
        return "At " + _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes]), True
    step = _step(minutes)
    if len(minutes) == 60:
        text = "Every minute"
    elif step and minutes[0] == 0 and minutes[-1] + step > 59 and 60 % step == 0:
        text = f"Every {step} minutes"
    else:
        text = "At " + _numbers(minutes, 0, 59, "minute")
        if every_hour:
            # "At every 7th minute" needs no "past every hour"; "At minute 5" does.
            return text if text.startswith("At every") else f"{text} past every hour", False
        return f"{text} past {_hours(hours)}", False
    return (text if every_hour else f"{text} during {_hours(hours)}"), False


def _hours(hours: list[int]) -> str:
    return _numbers(hours, 0, 23, "hour")


def _month_days(doms: frozenset[int]) -> str:
    values = sorted(doms)
    step = _step(values)
    if step:
        tail = (
            ""
            if values[0] == 1 and values[-1] + step > 31
            else (f" from {values[0]} through {values[-1]}")
        )
        return f"every {_ordinal(step)} day of the month{tail}"
    if len(values) == 1:
        return f"day {values[0]} of the month"
    return f"days {_join(_runs(values))} of the month"


def _describe(p: _Parsed) -> str:
    text, clock = _describe_time(p)
    all_doms, all_dows, all_months = len(p.doms) == 31, len(p.dows) == 7, len(p.months) == 12
    if p.day_or:
        # Either field matching is enough, so a full one makes every day match.
        by_dom = by_dow = not (all_doms or all_dows)
    else:
        by_dom, by_dow = not all_doms, not all_dows
    months = sorted(p.months)
    if by_dom and not by_dow and len(p.doms) == 1 and len(months) == 1:
        (day,) = p.doms
        return f"{text} on {_MONTH_NAMES[months[0]]} {day}"
    if by_dom and by_dow:
        if p.day_or:
            text += f" on {_month_days(p.doms)} or on {_weekdays(p.dows, 'or')}"
        else:
            text += f" on {_month_days(p.doms)} if it falls on {_weekdays(p.dows, 'or')}"
    elif by_dom:
        text += f" on {_month_days(p.doms)}"
    elif by_dow:
        text += f" on {_weekdays(p.dows, 'and')}"
    elif clock:
        text += " every day"
    if not all_months:
        names = {m: _MONTH_NAMES[m] for m in range(1, 13)}
        text += f" in {_join(_runs(months, names))}"
    return text


def describe(expr: str) -> str:
    """A plain-English reading of ``expr``; raises ``CronError`` if it is not valid."""
    return _describe(_parse(expr))


# --- the schedule ------------------------------------------------------------------------


class CronSchedule:
    """A validated cron expression read in an IANA timezone."""

    __slots__ = ("_is_utc", "_parsed", "expr", "is_wildcard", "tz", "zone")

    expr: str
    tz: str
    zone: ZoneInfo
    is_wildcard: bool

    def __init__(self, expr: str, tz: str = "UTC") -> None:
        self._parsed = _parse(expr)
        self.zone = _zone(tz)
        self.expr = expr
        self.tz = tz
        self.is_wildcard = self._parsed.wildcard
        self._is_utc = tz in _UTC_KEYS

    def __repr__(self) -> str:
        return f"CronSchedule({self.expr!r}, tz={self.tz!r})"

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Successive slots strictly after ``after`` (naive means UTC), as aware UTC."""
        return _slots(self._parsed, self.zone, self._is_utc, _as_utc(after))

    def next_after(self, after: datetime) -> datetime:
        """The first slot strictly after ``after`` (naive means UTC), as aware UTC."""
        for instant in self.iter_after(after):
            return instant
        raise CronError(f"cron expression {self.expr!r} has no slot after {after.isoformat()}")

    def next_n(self, after: datetime, n: int) -> list[datetime]:
        """The first ``n`` slots strictly after ``after``, as aware UTC."""
        result: list[datetime] = []
        if n <= 0:
            return result
        for instant in self.iter_after(after):
            result.append(instant)
            if len(result) == n:
                break
        return result

    def describe(self) -> str:
        """A plain-English reading of the expression (wall-clock times in ``tz``)."""
        return _describe(self._parsed)


@lru_cache(maxsize=16384)
def _schedule(expr: str, tz: str) -> CronSchedule:
    return CronSchedule(expr, tz)


def clear_caches() -> None:
    """Forget every parsed expression (they are parsed again when next used). The
    daemon calls this after start-up, which parses every schedule's cron once: with
    10,000 schedules the caches hold tens of MiB it would otherwise keep for good."""
    for cached in (_parse, _prototype, _schedule):
        cached.cache_clear()


def next_slots(expr: str, tz: str, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` slots of ``expr`` in ``tz`` strictly after ``after``, in UTC."""
    return _schedule(expr, tz).next_n(after, count)
