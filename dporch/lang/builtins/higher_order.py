"""Higher-order builtins and array constructors (docs/language.md §13.2): map, filter, reduce, Array,
Range.

A lambda with the wrong number of parameters *for the builtin* is a value error (TypeError, §13);
the lambda's own arity check (``Lambda.call``) still raises ArgumentMismatch if reached.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import DPTypeError
from ..values import Lambda, kind_of, nested_display, number_text, to_number
from .registry import builtin

#: Largest array Array()/Range() will build; beyond this the call is a TypeError rather than an
#: attempt to allocate unbounded memory.
MAX_GENERATED = 50_000_000


def _array_arg(v: Any, fname: str) -> list[Any]:
    if type(v) is not list:
        raise DPTypeError(f"{fname}'s first argument must be an array, got {kind_of(v)}")
    return v


def _lambda_arg(f: Any, fname: str, which: str = "second") -> Lambda:
    if type(f) is not Lambda:
        raise DPTypeError(f"{fname}'s {which} argument must be a lambda, got {kind_of(f)}")
    return f


def _one_or_two(f: Lambda, fname: str) -> int:
    n = f.arity
    if n not in (1, 2):
        raise DPTypeError(
            f"{fname}'s lambda must take 1 parameter (item) or 2 (item, index), it takes {n}"
        )
    return n


@builtin("map", 2, 2)
def dp_map(arr: Any, f: Any) -> list[Any]:
    arr = _array_arg(arr, "map")
    f = _lambda_arg(f, "map")
    fn = f.fn
    if _one_or_two(f, "map") == 1:
        return [fn(x) for x in arr]
    return [fn(x, float(i)) for i, x in enumerate(arr)]


@builtin("filter", 2, 2)
def dp_filter(arr: Any, f: Any) -> list[Any]:
    arr = _array_arg(arr, "filter")
    f = _lambda_arg(f, "filter")
    fn = f.fn
    if _one_or_two(f, "filter") == 1:
        return [x for x in arr if fn(x)]
    return [x for i, x in enumerate(arr) if fn(x, float(i))]


_NO_INIT = object()


@builtin("reduce", 2, 3)
def dp_reduce(arr: Any, f: Any, init: Any = _NO_INIT) -> Any:
    """``reduce(arr, f)``, ``reduce(arr, f, init)`` or ``reduce(arr, init, f)``: when three
    arguments are given, whichever of the last two is a lambda is the function (the second one
    if both are)."""
    arr = _array_arg(arr, "reduce")
    if init is not _NO_INIT and type(f) is not Lambda and type(init) is Lambda:
        f, init = init, f
    if type(f) is not Lambda:
        raise DPTypeError(f"reduce requires a lambda (acc, item) -> …, got {kind_of(f)}")
    if f.arity != 2:
        raise DPTypeError(
            f"reduce's lambda must take exactly 2 parameters (acc, item), it takes {f.arity}"
        )
    fn = f.fn
    if init is _NO_INIT:
        if not arr:
            raise DPTypeError("reduce on an empty array needs an initial value")
        acc = arr[0]
        rest = arr[1:]
    else:
        acc = init
        rest = arr
    for x in rest:
        acc = fn(acc, x)
    return acc


def _count(n: Any, fname: str) -> int:
    x = to_number(n)
    if x != x or x <= 0:
        return 0
    if math.isinf(x) or x > MAX_GENERATED:
        raise DPTypeError(f"{fname} size too large: {nested_display(n)}")
    return int(x)


@builtin("Array", 2, 2)
def dp_array(n: Any, v: Any) -> list[Any]:
    count = _count(n, "Array")
    if type(v) is Lambda:
        if v.arity != 1:
            raise DPTypeError(
                f"Array's lambda must take exactly 1 parameter (index), it takes {v.arity}"
            )
        fn = v.fn
        return [fn(float(i)) for i in range(count)]
    return [v] * count


@builtin("Range", 2, 3)
def dp_range(start: Any, end: Any, step: Any = 1.0) -> list[float]:
    """Inclusive of ``end``; values accumulate by repeated addition (float drift is kept)."""
    a = to_number(start)
    b = to_number(end)
    s = to_number(step)
    if s == 0:
        raise DPTypeError("Range step cannot be 0")
    if a != a or b != b or s != s:
        return []
    if s > 0:
        if a > b:
            return []
    elif a < b:
        return []
    if math.isinf(a) or math.isinf(b) or (b - a) / s > MAX_GENERATED:
        raise DPTypeError(
            f"Range too large: Range({number_text(a)}, {number_text(b)}, {number_text(s)})"
        )
    out: list[float] = []
    x = a
    if s > 0:
        while x <= b:
            out.append(x)
            nxt = x + s
            if nxt == x:
                raise DPTypeError("Range step too small to make progress")
            x = nxt
    else:
        while x >= b:
            out.append(x)
            nxt = x + s
            if nxt == x:
                raise DPTypeError("Range step too small to make progress")
            x = nxt
    return out
