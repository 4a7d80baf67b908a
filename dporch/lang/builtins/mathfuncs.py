"""Math builtins (docs/language.md §13.9): abs, sqrt, exp, log, log10, pow, floor, ceil, int, round.

All propagate null (null in -> null out). Inputs must be numbers or decimals (bools, strings and
other kinds are TypeErrors). Decimals are converted to number except by ``abs``, ``floor``,
``ceil``, ``int`` and ``round``, which return a decimal for a decimal input. ``pow`` follows the
``^`` operator: null -> null, decimals converted to number, IEEE ``pow``, and element-wise
broadcasting over arrays (§5.5).
"""

from __future__ import annotations

import math
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_UP,
    Context,
    Decimal,
    InvalidOperation,
)
from typing import Any

from ..errors import DPTypeError
from ..values import ieee_pow, kind_of, nested_display
from .registry import builtin

#: Context for rounding: half away from zero, wide enough that quantize never overflows.
_ROUND_CTX = Context(prec=2000, rounding=ROUND_HALF_UP, Emax=MAX_EMAX, Emin=MIN_EMIN)


def _num(x: Any, fname: str) -> float:
    """A number argument as float (decimal converted); TypeError for non-numeric kinds."""
    t = type(x)
    if t is float:
        return x
    if t is Decimal:
        return float(x)
    if t is int:
        return float(x)
    raise DPTypeError(f"{fname} requires a number, got {kind_of(x)} {nested_display(x)}")


@builtin("abs", 1, 1)
def dp_abs(x: Any) -> Any:
    if x is None:
        return None
    if type(x) is Decimal:
        return x.copy_abs()
    return abs(_num(x, "abs"))


@builtin("sqrt", 1, 1)
def dp_sqrt(x: Any) -> Any:
    if x is None:
        return None
    v = _num(x, "sqrt")
    if v < 0:
        return math.nan
    return math.sqrt(v)


@builtin("exp", 1, 1)
def dp_exp(x: Any) -> Any:
    if x is None:
        return None
    v = _num(x, "exp")
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _log(x: Any, fname: str, fn: Any) -> Any:
    if x is None:
        return None
    v = _num(x, fname)
    if v == 0:
        return -math.inf
    if v < 0:
        return math.nan
    return fn(v)


@builtin("log", 1, 1)
def dp_log(x: Any) -> Any:
    return _log(x, "log", math.log)


@builtin("log10", 1, 1)
def dp_log10(x: Any) -> Any:
    return _log(x, "log10", math.log10)


def pow_values(x: Any, y: Any) -> Any:
    """``x ^ y`` with the operator's rules (null, decimal -> number, array broadcasting)."""
    if x is None or y is None:
        return None
    tx, ty = type(x), type(y)
    if tx is list:
        if ty is list:
            if len(x) != len(y):
                raise DPTypeError(f"array length mismatch: {len(x)} vs {len(y)}")
            return [pow_values(a, b) for a, b in zip(x, y)]
        return [pow_values(a, y) for a in x]
    if ty is list:
        return [pow_values(x, b) for b in y]
    if (tx is float or tx is Decimal or tx is int) and (ty is float or ty is Decimal or ty is int):
        return ieee_pow(float(x), float(y))
    raise DPTypeError(f"cannot raise: {nested_display(x)} ^ {nested_display(y)}")


@builtin("pow", 2, 2)
def dp_pow(x: Any, y: Any) -> Any:
    return pow_values(x, y)


def _integral(x: Any, fname: str, fn: Any, rounding: str) -> Any:
    if x is None:
        return None
    if type(x) is Decimal:
        return x.to_integral_value(rounding=rounding)
    v = _num(x, fname)
    if math.isnan(v) or math.isinf(v):
        return v
    r = float(fn(v))
    if r == 0.0:
        return math.copysign(0.0, v)  # IEEE: floor(-0) = -0, ceil(-0.5) = -0, trunc(-0.5) = -0
    return r


@builtin("floor", 1, 1)
def dp_floor(x: Any) -> Any:
    return _integral(x, "floor", math.floor, ROUND_FLOOR)


@builtin("ceil", 1, 1)
def dp_ceil(x: Any) -> Any:
    return _integral(x, "ceil", math.ceil, ROUND_CEILING)


@builtin("int", 1, 1)
def dp_int(x: Any) -> Any:
    return _integral(x, "int", math.trunc, ROUND_DOWN)


def round_decimal(d: Decimal, digits: int) -> Decimal:
    """Round half away from zero to ``digits`` fractional digits (negative: tens, hundreds, …).
    A value that already has no more than ``digits`` fractional digits is returned unchanged (no
    zero padding)."""
    if not d.is_finite() or d.as_tuple().exponent >= -digits:
        return d
    try:
        return d.quantize(Decimal(1).scaleb(-digits), context=_ROUND_CTX)
    except InvalidOperation:
        return d


@builtin("round", 1, 2)
def dp_round(x: Any, digits: Any = 0.0) -> Any:
    """Half away from zero, computed on the shortest decimal text of a number
    (``round(2.675, 2)`` = 2.68); decimal in -> decimal out."""
    if x is None or digits is None:
        return None
    nd = _num(digits, "round")
    if math.isnan(nd) or math.isinf(nd):
        raise DPTypeError(f"round's digits must be finite, got {nested_display(digits)}")
    n = int(nd)
    n = max(-100_000, min(100_000, n))
    if type(x) is Decimal:
        return round_decimal(x, n)
    v = _num(x, "round")
    if math.isnan(v) or math.isinf(v):
        return v
    r = float(round_decimal(Decimal(repr(v)), n))
    if r == 0.0:
        return math.copysign(0.0, v)
    return r
