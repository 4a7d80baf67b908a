"""Date/time builtins (docs/language.md §13.7). Dates are strings; times are naive.

Accepted input forms, tried in order: ``%Y-%m-%d %H:%M:%S``, ``%Y-%m-%d %H:%M``,
``%Y/%m/%d %H:%M:%S``, ``%Y/%m/%d %H:%M``, then date-only ``%Y-%m-%d``, ``%Y/%m/%d``, ``%Y%m%d``
(midnight). Month, day, hour, minute and second take one or two digits (as ``strptime`` does), the
year four, and ``%Y%m%d`` exactly eight digits. Non-string arguments (null included) and
unparseable text are TypeErrors. ``timestamp`` reads the naive time as UTC and ``from_timestamp``
is its inverse (UTC).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from ..errors import DPTypeError
from ..values import kind_of, nested_display, to_number
from .registry import builtin

_EPOCH = datetime(1970, 1, 1)

_DATETIME_RE = re.compile(
    r"([0-9]{4})([-/])([0-9]{1,2})\2([0-9]{1,2})(?: ([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2}))?)?"
)
_COMPACT_RE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")

#: strftime/strptime directives that carry a time of day (a custom ``fmt`` containing one of them
#: is a datetime format; otherwise a date-only one).
_TIME_DIRECTIVES = re.compile(r"%[-_0^#]?[HIklMSpPTRrXcsf]")


def _str_arg(v: Any, fname: str) -> str:
    if type(v) is not str:
        raise DPTypeError(f"{fname} requires a time string, got {kind_of(v)}")
    return v


def _bad(s: str) -> DPTypeError:
    return DPTypeError(f"cannot parse time string: {s}")


@lru_cache(maxsize=4096)
def _parse(s: str) -> tuple[datetime, bool]:
    """(datetime, date_only) for one of the accepted forms; ValueError otherwise."""
    m = _DATETIME_RE.fullmatch(s)
    if m is not None:
        y, _, mo, d, hh, mm, ss = m.groups()
        if hh is None:
            return datetime(int(y), int(mo), int(d)), True
        return datetime(int(y), int(mo), int(d), int(hh), int(mm), int(ss or 0)), False
    m = _COMPACT_RE.fullmatch(s)
    if m is not None:
        y, mo, d = m.groups()
        return datetime(int(y), int(mo), int(d)), True
    raise ValueError(s)


def parse_datetime(v: Any, fname: str) -> datetime:
    """The datetime of a time-string argument (TypeError when it is not one)."""
    s = _str_arg(v, fname)
    try:
        return _parse(s)[0]
    except ValueError:
        raise _bad(s) from None


def format_datetime(dt: datetime) -> str:
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )


def _format_date(dt: date) -> str:
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"


@builtin("now", 0, 0)
def now() -> str:
    return format_datetime(datetime.now())


@builtin("today", 0, 0)
def today() -> str:
    return _format_date(date.today())


@builtin("parse_time", 1, 2)
def parse_time(s: Any, fmt: Any = None) -> str:
    """Normalise a time string: datetime input -> ``YYYY-MM-DD HH:MM:SS``, date-only input ->
    ``YYYY-MM-DD``. With ``fmt`` (strptime-style) the text is parsed with it; the result is a
    datetime when ``fmt`` has a time-of-day directive, else a date."""
    text = _str_arg(s, "parse_time")
    if fmt is None:
        try:
            dt, date_only = _parse(text)
        except ValueError:
            raise _bad(text) from None
    else:
        if type(fmt) is not str:
            raise DPTypeError(f"parse_time's format must be a string, got {kind_of(fmt)}")
        try:
            dt = datetime.strptime(text, fmt)
        except ValueError:
            raise _bad(text) from None
        except re.error as e:  # a format strptime cannot compile ("%Y%Y" repeats a field)
            raise DPTypeError(f"invalid time format {nested_display(fmt)}: {e}") from None
        date_only = _TIME_DIRECTIVES.search(fmt) is None
    return _format_date(dt) if date_only else format_datetime(dt)


@builtin("format_time", 2, 2)
def format_time(s: Any, fmt: Any) -> str:
    dt = parse_datetime(s, "format_time")
    if type(fmt) is not str:
        raise DPTypeError(f"format_time's format must be a string, got {kind_of(fmt)}")
    try:
        return dt.strftime(fmt)
    except ValueError as e:
        raise DPTypeError(f"invalid time format {nested_display(fmt)}: {e}") from None


_DIFF_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
_ADD_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}


def _unit(unit: Any, table: dict[str, int]) -> int:
    if type(unit) is not str or unit not in table:
        raise DPTypeError(
            f"unsupported time unit: {nested_display(unit)} (expected one of {', '.join(table)})"
        )
    return table[unit]


@builtin("time_diff", 2, 3)
def time_diff(t1: Any, t2: Any, unit: Any = "days") -> float:
    """``t1 - t2`` in whole ``unit``s (seconds, minutes, hours, days), truncated toward zero."""
    a = parse_datetime(t1, "time_diff")
    b = parse_datetime(t2, "time_diff")
    per = _unit(unit, _DIFF_UNITS)
    delta = a - b
    secs = delta.days * 86400 + delta.seconds
    q = abs(secs) // per
    return float(q if secs >= 0 else -q)


def _shift(t: Any, amount: Any, unit: Any, fname: str, sign: int) -> str:
    dt = parse_datetime(t, fname)
    x = to_number(amount)
    if math.isnan(x) or math.isinf(x):
        raise DPTypeError(f"{fname} amount must be finite, got {nested_display(amount)}")
    per = _unit(unit, _ADD_UNITS)
    try:
        return format_datetime(dt + timedelta(seconds=sign * int(x) * per))
    except OverflowError:
        raise DPTypeError(f"{fname}: time out of range") from None


@builtin("time_add", 3, 3)
def time_add(t: Any, amount: Any, unit: Any) -> str:
    return _shift(t, amount, unit, "time_add", 1)


@builtin("time_sub", 3, 3)
def time_sub(t: Any, amount: Any, unit: Any) -> str:
    return _shift(t, amount, unit, "time_sub", -1)


@builtin("year", 1, 1)
def year(t: Any) -> float:
    return float(parse_datetime(t, "year").year)


@builtin("month", 1, 1)
def month(t: Any) -> float:
    return float(parse_datetime(t, "month").month)


@builtin("day", 1, 1)
def day(t: Any) -> float:
    return float(parse_datetime(t, "day").day)


@builtin("hour", 1, 1)
def hour(t: Any) -> float:
    return float(parse_datetime(t, "hour").hour)


@builtin("minute", 1, 1)
def minute(t: Any) -> float:
    return float(parse_datetime(t, "minute").minute)


@builtin("second", 1, 1)
def second(t: Any) -> float:
    return float(parse_datetime(t, "second").second)


@builtin("weekday", 1, 1)
def weekday(t: Any) -> float:
    """0 = Monday … 6 = Sunday."""
    return float(parse_datetime(t, "weekday").weekday())


@builtin("timestamp", 1, 1)
def timestamp(t: Any) -> float:
    """Unix seconds of the naive time read as UTC."""
    delta = parse_datetime(t, "timestamp") - _EPOCH
    return float(delta.days * 86400 + delta.seconds)


@builtin("from_timestamp", 1, 1)
def from_timestamp(n: Any) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC of Unix seconds ``n`` (fraction truncated toward zero)."""
    x = to_number(n)
    if math.isnan(x) or math.isinf(x):
        raise DPTypeError(f"from_timestamp requires a finite number, got {nested_display(n)}")
    try:
        return format_datetime(_EPOCH + timedelta(seconds=int(x)))
    except OverflowError:
        raise DPTypeError(f"from_timestamp: timestamp out of range: {nested_display(n)}") from None
