"""Bar times: parsing the time column into datetimes, and the annualisation the bar spacing
implies (docs/backtest.md, "Time and annualisation").

* The time format is chosen once, from a sample of the data (:func:`infer_format`): ISO 8601
  (``2024-01-08``, ``2024-01-08 09:30:00``, ``20240108``) and the common formats of
  :data:`FORMATS`, in that order; slashed dates are month first (``1/8/2024`` is 8 January)
  unless a day above 12 says otherwise. ``--time-format`` gives any strftime format instead.
* Periods per year follow from the spacing of the bars (:func:`annualisation`): daily bars give
  252 (365 when bars fall on weekends too), intraday bars the bars per trading day x 252,
  weekly 52, monthly 12, quarterly 4, yearly 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = ["FORMATS", "TimeError", "infer_format", "parse_times", "spacing_stats", "annualisation",
           "Annualisation"]

#: Formats tried after ISO 8601, in order (strftime codes; single-digit months, days and hours
#: are accepted too).
FORMATS = (
    "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
    "%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
    "%d/%m/%Y", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M",
    "%Y.%m.%d", "%d.%m.%Y", "%Y%m%d %H:%M:%S", "%Y%m%d%H%M%S",
    "%Y年%m月%d日", "%d-%b-%Y", "%b %d, %Y",
)
ISO = "ISO8601"


class TimeError(ValueError):
    """A time value that does not parse (picklable: it crosses from workers). ``where``: places
    known (instrument, file line), shown after the message, then the ``hint``."""

    def __init__(self, message: str, value: Any = None, key: Any = None, hint: str = "",
                 where: list[str] | None = None):
        super().__init__(message, value, key, hint, where)
        self.message, self.value, self.key, self.hint = message, value, key, hint
        self.where = list(where or [])

    def __str__(self) -> str:
        where = f" ({', '.join(self.where)})" if self.where else ""
        return self.message + where + (f"; {self.hint}" if self.hint else "")


def _parse(values: Any, fmt: str) -> pd.DatetimeIndex:
    with np.errstate(all="ignore"):
        out = pd.to_datetime(pd.Index(values, dtype=object), format=fmt, errors="coerce")
    if getattr(out, "tz", None) is not None:  # keep the wall-clock time of the exchange
        out = out.tz_localize(None)
    return pd.DatetimeIndex(out)


def _texts(values: Iterable[Any]) -> list[str]:
    return [str(v).strip() for v in values if v is not None and str(v).strip() not in ("", "null", "nan", "NaT")]


def infer_format(sample: Sequence[Any], given: str | None = None) -> str:
    """The format of the time values in ``sample``: ``given``, else ISO 8601 or the first of
    :data:`FORMATS` that parses every value. Raises TimeError naming a value nothing parses."""
    texts = _texts(sample)
    if given:
        bad = [t for t, v in zip(texts, _parse(texts, given)) if pd.isna(v)]
        if bad:
            raise TimeError(f"time value {bad[0]!r} does not match --time-format {given!r}", bad[0],
                            hint="check the format's codes (docs/backtest.md, 'Time and annualisation')")
        return given
    if not texts:
        return ISO
    best_bad: list[str] | None = None
    for fmt in (ISO,) + FORMATS:
        try:
            parsed = _parse(texts, fmt)
        except (ValueError, TypeError, OverflowError):
            continue
        bad = [t for t, v in zip(texts, parsed) if pd.isna(v)]
        if not bad:
            return fmt
        if best_bad is None or len(bad) < len(best_bad):
            best_bad = bad
    assert best_bad
    raise TimeError(f"time value {best_bad[0]!r} is not a date or time this program reads (ISO 8601 such as "
                    "2024-01-08 or 2024-01-08 09:30:00, 2024/01/08, 01/08/2024, 20240108, ...)", best_bad[0],
                    hint="give its format with --time-format, e.g. --time-format '%d/%m/%Y'")


def parse_times(values: Any, fmt: str, *, column: str = "time") -> np.ndarray:
    """``values`` (text, or datetimes already) as datetime64[ns]. Raises TimeError naming the
    first value that does not parse (an empty time included)."""
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values.dtype):
        out = pd.DatetimeIndex(values)
        if out.tz is not None:
            out = out.tz_localize(None)
        result = out.to_numpy(dtype="datetime64[ns]")
    else:
        # Bars share their times across instruments: parse each distinct text once.
        codes, uniques = pd.factorize(np.asarray(values, dtype=object))
        try:
            parsed = _parse(np.asarray(uniques, dtype=object), fmt).to_numpy(dtype="datetime64[ns]")
        except (ValueError, TypeError, OverflowError) as exc:
            raise TimeError(f"{column} does not parse as {fmt}: {exc}", hint="give the format with --time-format") from None
        result = np.concatenate((parsed, np.array(["NaT"], dtype="datetime64[ns]")))[codes]  # code -1: missing
    bad = np.flatnonzero(np.isnat(result))
    if len(bad):
        v = np.asarray(values, dtype=object)[bad[0]]
        shown = "an empty value" if v is None or str(v).strip() in ("", "nan", "None", "NaT") else repr(str(v))
        fmt_text = "ISO 8601" if fmt == ISO else repr(fmt)
        raise TimeError(f"{column} {shown} is not a time in the format {fmt_text}", v,
                        hint="give the format with --time-format")
    return result


def spacing_stats(times: np.ndarray) -> tuple[float, float, float, int] | None:
    """(median seconds between bars, median bars per calendar day, share of days that are
    Saturday or Sunday, bars) of one instrument's sorted times; None below 2 bars."""
    n = len(times)
    if n < 2:
        return None
    t = times.astype("datetime64[ns]").astype(np.int64)
    delta = float(np.median(np.diff(t))) / 1e9
    days = times.astype("datetime64[D]")
    uniq, counts = np.unique(days, return_counts=True)
    weekday = (uniq.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday: 0 is Monday
    weekend = float(np.mean(weekday >= 5))
    return delta, float(np.median(counts)), weekend, n


@dataclass(frozen=True)
class Annualisation:
    periods: float  # bars per year
    bar: str  # "daily", "4 bars per trading day", "weekly", ...
    days_per_year: int  # trading days a year: 252, or 365 for data with weekend bars
    source: str  # "inferred" or "--periods-per-year"

    def describe(self) -> str:
        if self.source != "inferred":
            return f"{self.periods:g} periods per year ({self.source})"
        return f"{self.periods:g} periods per year (inferred from the bar spacing: {self.bar})"


def annualisation(stats: Sequence[tuple[float, float, float, int]], override: float | None = None) -> Annualisation:
    """Periods per year from the instruments' :func:`spacing_stats` (medians over the
    instruments, weighted by bars)."""
    if override:
        return Annualisation(float(override), "given", 0, "--periods-per-year")
    stats = [s for s in stats if s is not None]
    if not stats:
        return Annualisation(252.0, "daily (too few bars to tell)", 252, "inferred")
    weights = np.array([s[3] for s in stats], dtype=float)

    def wmedian(i: int) -> float:
        vals = np.array([s[i] for s in stats], dtype=float)
        order = np.argsort(vals)
        cum = np.cumsum(weights[order])
        return float(vals[order][np.searchsorted(cum, cum[-1] / 2)])

    delta, per_day, weekend = wmedian(0), wmedian(1), wmedian(2)
    days = 365 if weekend > 0.1 else 252
    hour, day = 3600.0, 86400.0
    if delta < 20 * hour:
        per_day = max(1.0, round(per_day))
        return Annualisation(per_day * days, f"intraday, {per_day:g} bars per trading day x {days} days",
                             days, "inferred")
    if delta < 4 * day:
        return Annualisation(float(days), "daily" + (" (weekends included)" if days == 365 else ""), days, "inferred")
    if delta < 10 * day:
        return Annualisation(52.0, "weekly", days, "inferred")
    if delta < 45 * day:
        return Annualisation(12.0, "monthly", days, "inferred")
    if delta < 120 * day:
        return Annualisation(4.0, "quarterly", days, "inferred")
    per_year = max(1, round(365.25 * day / delta))
    return Annualisation(float(per_year), "yearly" if per_year == 1 else f"every {delta / day:.0f} days", days,
                         "inferred")


def years_between(first: Any, last: Any) -> float:
    """Calendar years from ``first`` to ``last`` (datetime64): days / 365.25."""
    seconds = (np.datetime64(last, "ns") - np.datetime64(first, "ns")).astype(np.int64) / 1e9
    return float(seconds) / (365.25 * 86400)
