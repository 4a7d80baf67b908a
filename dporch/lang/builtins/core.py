"""Aggregates, array utilities, ``print`` and the conversion builtins (docs/language.md §13.1, §13.9).

Argument convention of the aggregates (``sum max min mean median``): when the first argument is an
array only that array is used (other arguments are ignored), otherwise all arguments are. Nulls are
skipped; other elements are converted per §4.3 (strings parsed, bools 1/0, nested arrays are a
TypeError). The result is a number, or a decimal when every non-null input is a decimal.
"""

from __future__ import annotations

import math
import sys
from decimal import Decimal
from typing import Any

from ..errors import ArgumentMismatch, DPTypeError, ScriptExit
from ..values import (
    DEC,
    display,
    dp_equal,
    kind_of,
    nested_display,
    number_to_decimal,
    to_decimal,
    to_number,
)
from .registry import builtin

__all__ = ["sort_key", "sorted_values", "aggregate_items"]

_NO_ARG = object()

# --------------------------------------------------------------------------------------------
# aggregates


def _convert(v: Any, fname: str) -> float:
    try:
        return to_number(v)
    except DPTypeError as e:
        raise DPTypeError(f"{fname}: {e.message}") from None


def aggregate_items(args: tuple[Any, ...], fname: str) -> tuple[list[Any], bool]:
    """The non-null values an aggregate works on, and whether they are all decimals.

    When they are not all decimals every value is returned as a float; otherwise as Decimal.
    An empty list is reported as "not all decimal"."""
    items = args[0] if args and type(args[0]) is list else args
    out: list[Any] = []
    append = out.append
    n_dec = 0
    for v in items:
        t = type(v)
        if t is float:
            append(v)
        elif v is None:
            continue
        elif t is Decimal:
            append(v)
            n_dec += 1
        else:
            append(_convert(v, fname))
    if n_dec and n_dec == len(out):
        return out, True
    if n_dec:
        out = [float(x) if type(x) is Decimal else x for x in out]
    return out, False


@builtin("sum", 0, None)
def dp_sum(*args: Any) -> Any:
    if args and type(args[0]) is list:
        # Fast path: an array of numbers and nulls, summed left to right as below.
        total = 0.0
        for x in args[0]:
            if type(x) is float:
                total += x
            elif x is not None:
                break
        else:
            return total
    items, all_dec = aggregate_items(args, "sum")
    if all_dec:
        total = items[0]
        for d in items[1:]:
            total = DEC.add(total, d)
        return total
    total = 0.0
    for x in items:
        total += x
    return total


def _extreme(args: tuple[Any, ...], fname: str, want_max: bool) -> Any:
    items, all_dec = aggregate_items(args, fname)
    best: Any = None
    for x in items:
        if not all_dec and x != x:  # NaN is skipped
            continue
        if best is None or (x > best if want_max else x < best):
            best = x
    return best


@builtin("max", 1, None)
def dp_max(*args: Any) -> Any:
    return _extreme(args, "max", True)


@builtin("min", 1, None)
def dp_min(*args: Any) -> Any:
    return _extreme(args, "min", False)


@builtin("mean", 1, None)
def dp_mean(*args: Any) -> Any:
    items, all_dec = aggregate_items(args, "mean")
    if not items:
        return None
    if all_dec:
        total = items[0]
        for d in items[1:]:
            total = DEC.add(total, d)
        return DEC.divide(total, Decimal(len(items)))
    total = 0.0
    for x in items:
        total += x
    return total / len(items)


@builtin("median", 1, None)
def dp_median(*args: Any) -> Any:
    items, all_dec = aggregate_items(args, "median")
    n = len(items)
    if not n:
        return None
    if not all_dec and any(x != x for x in items):
        return math.nan
    items.sort()
    mid = n // 2
    if n % 2:
        return items[mid]
    a, b = items[mid - 1], items[mid]
    if all_dec:
        return DEC.divide(DEC.add(a, b), Decimal(2))
    return (a + b) / 2.0


# --------------------------------------------------------------------------------------------
# array utilities


def _need_array(v: Any, fname: str) -> list[Any]:
    if type(v) is not list:
        raise DPTypeError(f"{fname} requires an array, got {kind_of(v)}")
    return v


@builtin("length", 1, 1)
def dp_length(x: Any) -> float:
    t = type(x)
    if t is list or t is str:
        return float(len(x))
    raise DPTypeError(f"length requires an array or a string, got {kind_of(x)}")


@builtin("len", 1, 1)
def dp_len(x: Any) -> float:
    return dp_length(x)


@builtin("count", 2, 2)
def dp_count(arr: Any, v: Any) -> float:
    arr = _need_array(arr, "count")
    return float(sum(1 for x in arr if dp_equal(x, v)))


@builtin("concat", 0, None)
def dp_concat(*args: Any) -> list[Any]:
    out: list[Any] = []
    for a in args:
        if type(a) is list:
            out.extend(a)
        else:
            out.append(a)
    return out


@builtin("first", 1, 1)
def dp_first(arr: Any) -> Any:
    arr = _need_array(arr, "first")
    return arr[0] if arr else None


@builtin("last", 1, 1)
def dp_last(arr: Any) -> Any:
    arr = _need_array(arr, "last")
    return arr[-1] if arr else None


@builtin("reverse", 1, 1)
def dp_reverse(arr: Any) -> list[Any]:
    return _need_array(arr, "reverse")[::-1]


def _has_decimal(v: Any) -> bool:
    for x in v:
        t = type(x)
        if t is Decimal or (t is list and _has_decimal(x)):
            return True
    return False


def sort_key(v: Any, exact_decimal: bool = False) -> tuple:
    """Key of the §13.1 total order: null < bool < number/decimal (numeric, NaN last) < string
    < array (lexicographic) < others. With ``exact_decimal`` numbers are compared through their
    shortest decimal text, as §4.4 compares number with decimal."""
    t = type(v)
    if t is float or t is int:
        if v != v:
            return (2, 1)
        if exact_decimal and not math.isinf(v):
            return (2, 0, number_to_decimal(v))
        return (2, 0, v)
    if t is str:
        return (3, v)
    if v is None:
        return (0,)
    if t is bool:
        return (1, v)
    if t is Decimal:
        return (2, 0, v)
    if t is list:
        return (4, tuple(sort_key(x, exact_decimal) for x in v))
    return (5,)


def sorted_values(arr: list[Any], desc: bool = False) -> list[Any]:
    """Stable sort by :func:`sort_key`; ``desc`` sorts descending (still stable: equal values keep
    their input order)."""
    exact = _has_decimal(arr)
    return sorted(arr, key=lambda v: sort_key(v, exact), reverse=bool(desc))


@builtin("sort", 1, 2, keywords=("desc",))
def dp_sort(arr: Any = _NO_ARG, desc: Any = False) -> list[Any]:
    if arr is _NO_ARG:  # sort(desc=true): right count, no array
        raise ArgumentMismatch("sort needs the array as its first argument")
    return sorted_values(_need_array(arr, "sort"), bool(desc))


class _NaNKey:
    """A key equal to nothing (NaN is never equal to anything, §4.4)."""

    __slots__ = ()


def _unique_key(v: Any, exact: bool) -> Any:
    t = type(v)
    if t is float or t is int:
        if v != v:
            return _NaNKey()
        if exact and not math.isinf(v):
            return ("n", number_to_decimal(v))
        return ("n", v)
    if t is str:
        return ("s", v)
    if v is None:
        return ("0",)
    if t is bool:
        return ("b", v)
    if t is Decimal:
        return ("n", v)
    if t is list:
        return ("a", tuple(_unique_key(x, exact) for x in v))
    return ("o", id(v))


@builtin("unique", 1, 1)
def dp_unique(arr: Any) -> list[Any]:
    arr = _need_array(arr, "unique")
    exact = _has_decimal(arr)
    seen: set[Any] = set()
    out: list[Any] = []
    for v in arr:
        k = _unique_key(v, exact)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


@builtin("is_null", 1, 1)
def dp_is_null(v: Any) -> bool:
    return v is None


@builtin("print", 0, None)
def dp_print(*args: Any) -> None:
    sys.stderr.write(" ".join(display(a) for a in args) + "\n")
    sys.stderr.flush()
    return None


# --------------------------------------------------------------------------------------------
# conversions (§13.9; null in -> null out)


@builtin("number", 1, 1)
def dp_number(x: Any) -> Any:
    if x is None:
        return None
    return to_number(x)


@builtin("decimal", 1, 1)
def dp_decimal(x: Any) -> Any:
    if x is None:
        return None
    if type(x) is bool:
        raise DPTypeError("cannot convert to decimal: " + nested_display(x))
    return to_decimal(x)


@builtin("string", 1, 1)
def dp_string(x: Any) -> Any:
    if x is None:
        return None
    return display(x)


TYPE_NAMES = ("number", "decimal", "string", "bool", "null", "array", "lambda", "function")


@builtin("typeis", 2, 2)
def dp_typeis(x: Any, name: Any) -> bool:
    if type(name) is not str or name not in TYPE_NAMES:
        raise DPTypeError(
            f"typeis: unknown type name {nested_display(name)} "
            f"(expected one of {', '.join(TYPE_NAMES)})"
        )
    return kind_of(x) == name


@builtin("exit", 1, 1)
def dp_exit(message: Any) -> None:
    raise ScriptExit(display(message))

