"""Row-level runtime helpers called by compiled scripts: array indexing and slicing (§6.9),
time-series access (§8), spreads, lambda calls, destructuring and row results (§9.3)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from itertools import islice
from typing import Any, Sequence

from .errors import ArgumentMismatch, DPTypeError
from .values import Lambda, nested_display

#: Most values a time-series slice may hold (the bound of Array()/Range(), §13.2).
MAX_SLICE = 50_000_000

__all__ = [
    "MAX_CELL_NESTING", "cell", "MAX_SLICE", "slice_too_large", "UNSET", "index_number", "array_index", "array_slice", "hist_at", "ahead", "ts_at",
    "hist_slice", "series_func", "spread",
    "call_value", "pipe_value", "destructure", "result_row", "apply_precision", "ErrorRecord",
]


class _Unset:
    """Marks a tracked variable that has not been assigned in the current row."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


def index_number(v: Any, what: str = "index") -> int:
    """An index or offset: a number, truncated toward zero (§6.9, §8.3)."""
    if type(v) is float:
        if v != v or v in (float("inf"), float("-inf")):
            raise DPTypeError(f"{what} must be a finite number, got {nested_display(v)}")
        return int(v)
    if type(v) is Decimal:
        return int(v)
    if type(v) is int:
        return v
    raise DPTypeError(f"{what} must be a number, got {nested_display(v)}")


def array_index(a: Any, i: Any) -> Any:
    if type(a) is not list:
        raise DPTypeError(f"indexing requires an array, got {nested_display(a)}")
    k = index_number(i)
    n = len(a)
    if k < 0:
        k += n
    return a[k] if 0 <= k < n else None


class _Omitted:
    __slots__ = ()


OMIT: Any = _Omitted()  # an omitted slice bound (null is a TypeError, §6.9)


def array_slice(a: Any, s: Any, e: Any) -> list:
    if type(a) is not list:
        raise DPTypeError(f"slicing requires an array, got {nested_display(a)}")
    ks = None if s is OMIT else index_number(s, "slice index")
    ke = None if e is OMIT else index_number(e, "slice index")
    return a[ks:ke]


def hist_at(buf: Sequence[Any] | None, k: int) -> Any:
    """History value ``k`` rows back (k < 0): null beyond what is retained."""
    if buf is None:
        return None
    return buf[k] if -k <= len(buf) else None


def ahead(S: Any, col: int | None, k: int) -> Any:
    """Look-ahead value (k > 0): batch mode only, input columns only (§8.3)."""
    if col is None or S is None:
        return None
    return S.ahead(col, k)


def ts_at(buf: Sequence[Any] | None, k: int, current: Any, S: Any, col: int | None) -> Any:
    """``n[k]`` for a computed offset (§8.3)."""
    if k == 0:
        return current
    if k < 0:
        return hist_at(buf, k)
    return ahead(S, col, k)


def slice_too_large(a: int, b: int) -> Any:
    """A time-series slice longer than :data:`MAX_SLICE` values (§8.4 gives b − a + 1)."""
    raise DPTypeError(f"slice too large: offsets {a} to {b} give {b - a + 1} values "
                      f"(at most {MAX_SLICE}); use a shorter window")


def hist_slice(buf: Sequence[Any] | None, a: int | None, b: int, current: Any, S: Any,
               col: int | None) -> list:
    """Inclusive row-offset slice ``n[a:b]`` (§8.4), oldest first. ``buf`` holds the retained
    past records (newest last); ``a is None`` means "from the first retained row"."""
    n = len(buf) if buf is not None else 0
    if a is None:
        a = -n  # what is retained: bounded by the data, not by MAX_SLICE
    elif b - a + 1 > MAX_SLICE:
        slice_too_large(a, b)
    if a > b:
        return []
    if b == -1 and buf is not None and -a <= n:
        return buf[a:] if type(buf) is list else list(islice(buf, n + a, n))
    out: list = []
    if a < 0:
        hi = min(b, -1)  # the last past offset in the slice
        # Offsets a .. -n-1 lie before the retained records: nulls; -n .. hi are records.
        out = [None] * max(0, min(hi, -n - 1) - a + 1)
        lo = max(a, -n)
        if lo <= hi:
            out += buf[n + lo:n + hi + 1] if type(buf) is list else \
                list(islice(buf, n + lo, n + hi + 1))  # type: ignore[arg-type]
    if a <= 0 <= b:
        out.append(current)
    for k in range(max(a, 1), b + 1):
        out.append(ahead(S, col, k))
    return out


_NO_CURRENT: Any = object()


def hist_tail(buf: Sequence[Any], n: int, current: Any) -> list:
    """The last ``n`` records, null-padded at the front, then ``current`` unless it is
    ``_NO_CURRENT`` (``x[-n:0]`` / ``x[-n:-1]`` with constant bounds)."""
    m = len(buf)
    if m >= n:
        out = list(buf) if m == n else list(islice(buf, m - n, m))
    else:
        out = [None] * (n - m)
        out += buf
    if current is not _NO_CURRENT:
        out.append(current)
    return out


def series_func(fn: str, buf: Sequence[Any] | None, n: Any, current: Any) -> Any:
    """The deprecated ref/offset/past/window (§8.8) as time-series access."""
    k = abs(index_number(n, f"{fn}'s count"))
    if fn in ("ref", "offset"):
        return current if k == 0 else hist_at(buf, -k)
    if k == 0:
        return []
    if fn == "past":
        return hist_slice(buf, -k, -1, current, None, None)
    return hist_slice(buf, -(k - 1), 0, current, None, None)


def spread(v: Any) -> list:
    if type(v) is list:
        return v
    if v is None:
        return []
    raise DPTypeError(f"spread requires an array, got {nested_display(v)}")


def call_value(f: Any, name: str, *args: Any) -> Any:
    """Call a variable that must hold a lambda."""
    if type(f) is Lambda:
        if len(args) != len(f.params):
            raise ArgumentMismatch(
                f"lambda argument count mismatch: expected {len(f.params)}, got {len(args)}"
            )
        return f.fn(*args)
    raise DPTypeError(f"{name} is not a function (it holds {nested_display(f)})")


def pipe_value(f: Any, value: Any) -> Any:
    """``value |> f`` with a bare identifier stage: f must hold a lambda (§6.11)."""
    if type(f) is not Lambda:
        raise DPTypeError("pipe right-hand side must be a function call")
    return f.call(value)


def destructure(v: Any, n_names: int, rest_at: int | None) -> list:
    """Values for a destructuring pattern of ``n_names`` items (§10.2)."""
    if v is None:
        return [None] * n_names if rest_at is None else [None if i != rest_at else []
                                                          for i in range(n_names)]
    if type(v) is not list:
        raise DPTypeError(f"cannot destructure a non-array value: {nested_display(v)}")
    if rest_at is None:
        out = v[:n_names]
        return out + [None] * (n_names - len(out))
    out = v[:rest_at]
    out += [None] * (rest_at - len(out))
    out.append(v[rest_at:])
    return out


#: Deepest array nesting an output cell may have: the CSV array form (§9.4) doubles the quotes
#: of a nested array at each level, so its text grows as 2^depth.
MAX_CELL_NESTING = 16


def cell(v: Any) -> Any:
    """An output cell that may be an array: refused when nested too deeply to write."""
    if type(v) is list:
        stack = [(v, 1)]
        while stack:
            items, depth = stack.pop()
            if depth > MAX_CELL_NESTING:
                raise DPTypeError(f"an output value nests arrays more than {MAX_CELL_NESTING} levels "
                                  "deep (the CSV array form doubles its quotes at each level); "
                                  "flatten it before returning it")
            stack.extend((x, depth + 1) for x in items if type(x) is list)
    return v


def result_row(v: Any, n_out: int, warn_extra: Any) -> list | None:
    """Row result -> output row (§9.3)."""
    if type(v) is list:
        for x in v:
            if type(x) is list:
                cell(x)
        n = len(v)
        if n == n_out:
            return v
        if n < n_out:
            return v + [None] * (n_out - n)
        warn_extra(n, n_out)
        return v[:n_out]
    if v is None:
        return None
    return [cell(v)] + [None] * (n_out - 1) if n_out else []


def apply_precision(row: list, scale: int) -> list:
    """Round top-level decimals with more than ``scale`` fractional digits (§5.6)."""
    q = None
    for i, x in enumerate(row):
        if type(x) is Decimal and x.is_finite() and -x.as_tuple().exponent > scale:
            if q is None:
                q = Decimal(1).scaleb(-scale)
                row = list(row)
            row[i] = x.quantize(q, rounding=ROUND_HALF_EVEN)
    return row


class ErrorRecord:
    """The ``_error`` value inside an ERROR block (§9.5)."""

    __slots__ = ("type", "message", "line")

    def __init__(self, kind: str, message: str, line: int | None):
        self.type = kind
        self.message = message
        self.line = None if line is None else float(line)
