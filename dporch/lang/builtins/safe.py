"""Safe functions (docs/language.md §13.3) and null helpers (§13.4).

The ``safe_*`` functions accept their last parameter either positionally or as the keyword
``default=`` (the caller passes keywords as Python keyword arguments).
"""

from __future__ import annotations

import math
from decimal import Decimal, DecimalException
from typing import Any

from ..errors import ArgumentMismatch, DPTypeError
from ..values import DEC, dp_equal, number_to_decimal, to_decimal, to_number
from .registry import builtin

_MISSING = object()


def _missing_positional(name: str, needed: int) -> ArgumentMismatch:
    # ``f(x, default=0)`` has the right argument count but lacks a positional argument.
    return ArgumentMismatch(f"{name} needs {needed} positional argument(s) before default=")


def _div_default(default: Any) -> Any:
    if default is _MISSING:
        return 0.0
    if default is None or type(default) is Decimal:
        return default
    return to_number(default)


@builtin("safe_div", 2, 3, keywords=("default",))
def safe_div(a: Any = _MISSING, b: Any = _MISSING, default: Any = _MISSING) -> Any:
    """``a / b``, or ``default`` (0 if omitted) when ``b`` is zero or either operand is null.
    Operands are converted per §4.3; a decimal operand with a decimal or number partner divides
    as decimals (like the ``/`` operator, §4.6)."""
    if b is _MISSING:
        raise _missing_positional("safe_div", 2)
    if a is None or b is None:
        return _div_default(default)
    ta, tb = type(a), type(b)
    if (ta is Decimal and (tb is Decimal or tb is float)) or (tb is Decimal and ta is float):
        try:
            da = a if ta is Decimal else number_to_decimal(a)
            db = b if tb is Decimal else number_to_decimal(b)
        except Exception:  # NaN / inf number with a decimal: fall back to number division
            pass
        else:
            if da.is_finite() and db.is_finite():
                if not db:
                    return _div_default(default)
                try:
                    return DEC.divide(da, db)
                except DecimalException:
                    raise DPTypeError(f"decimal result out of range: {da} / {db}") from None
    x = to_number(a)
    y = to_number(b)
    if y == 0:
        return _div_default(default)
    return x / y


@builtin("safe_get", 2, 3, keywords=("default",))
def safe_get(arr: Any = _MISSING, i: Any = _MISSING, default: Any = None) -> Any:
    """Element ``i`` (truncated; negative counts from the end) of ``arr``, or ``default`` (null if
    omitted) when ``arr`` is not an array, ``i`` is not a usable number, or it is out of range."""
    if i is _MISSING:
        raise _missing_positional("safe_get", 2)
    if type(arr) is not list or i is None:
        return default
    try:
        x = to_number(i)
    except DPTypeError:
        return default
    if math.isnan(x) or math.isinf(x):
        return default
    k = int(x)
    n = len(arr)
    if k < 0:
        k += n
    if 0 <= k < n:
        return arr[k]
    return default


@builtin("safe_number", 1, 2, keywords=("default",))
def safe_number(v: Any = _MISSING, default: Any = 0.0) -> Any:
    """``v`` converted per §4.3, or ``default`` (0 if omitted) when it cannot be converted."""
    if v is _MISSING:
        raise _missing_positional("safe_number", 1)
    if type(v) is float:
        return v
    if v is None:
        return default
    try:
        return to_number(v)
    except DPTypeError:
        return default


@builtin("safe_decimal", 1, 2, keywords=("default",))
def safe_decimal(v: Any = _MISSING, default: Any = None) -> Any:
    """``decimal(v)``, or ``default`` (null if omitted) when the conversion fails."""
    if v is _MISSING:
        raise _missing_positional("safe_decimal", 1)
    if v is None or type(v) is bool:
        return default
    try:
        return to_decimal(v)
    except DPTypeError:
        return default


@builtin("coalesce", 1, None)
def coalesce(*args: Any) -> Any:
    for v in args:
        if v is not None:
            return v
    return None


@builtin("nvl", 2, 2)
def nvl(v: Any, d: Any) -> Any:
    return d if v is None else v


@builtin("if_null", 2, 2)
def if_null(v: Any, d: Any) -> Any:
    return d if v is None else v


@builtin("nullif", 2, 2)
def nullif(a: Any, b: Any) -> Any:
    return None if dp_equal(a, b) else a
