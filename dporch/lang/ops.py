"""Operator semantics (docs/language.md §5, §7): arithmetic, comparison and logic with broadcasting,
null propagation and decimals.

Compiled code inlines the float/float fast path and calls these functions for everything else,
so they are written for clarity first. :data:`NORMAL` and :data:`STRICT` are the two operator
sets; STRICT restores the original's null errors (kind NullReference, §7.2's ``strict_null``).
"""

from __future__ import annotations

import math
from decimal import Decimal, DecimalException
from types import SimpleNamespace
from typing import Any, Callable

from .errors import DPTypeError, NullReference, ZeroDivision
from .values import DEC, dp_equal, ieee_fmod, ieee_pow, nested_display, number_to_decimal

__all__ = ["NORMAL", "STRICT", "OpSet"]

OpSet = SimpleNamespace

_ARITH_NAMES = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "%": "take the remainder of",
                "^": "raise"}


def _num_op(op: str, a: float, b: float) -> float:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            raise ZeroDivision("division by zero")
        return a / b
    if op == "%":
        if b == 0:
            raise ZeroDivision("remainder by zero (modulo 0)")
        return ieee_fmod(a, b)
    return ieee_pow(a, b)


def _dec_op(op: str, a: Decimal, b: Decimal) -> Decimal | float:
    try:
        if op == "+":
            return DEC.add(a, b)
        if op == "-":
            return DEC.subtract(a, b)
        if op == "*":
            return DEC.multiply(a, b)
        if op == "/":
            if not b:
                raise ZeroDivision("division by zero")
            return DEC.divide(a, b)
        if op == "%":
            if not b:
                raise ZeroDivision("remainder by zero (modulo 0)")
            return DEC.remainder(a, b)  # truncated: sign of the dividend
    except DecimalException:
        raise DPTypeError(f"decimal result out of range: {nested_display(a)} {op} {nested_display(b)}") from None
    return ieee_pow(float(a), float(b))


def _make(strict: bool) -> OpSet:
    def null_operand(what: str, a: Any, b: Any) -> None:
        if strict:
            raise NullReference(f"null operand: cannot {what} {nested_display(a)} and {nested_display(b)}")
        return None

    def arith(op: str, a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if ta is float and tb is float:
            return _num_op(op, a, b)
        if a is None or b is None:
            return null_operand(_ARITH_NAMES[op], a, b)
        if ta is list or tb is list:
            if ta is list and tb is list:
                if len(a) != len(b):
                    raise DPTypeError(f"array length mismatch: {len(a)} vs {len(b)}")
                return [arith(op, x, y) for x, y in zip(a, b)]
            if ta is list:
                return [arith(op, x, b) for x in a]
            return [arith(op, a, y) for y in b]
        if ta is int or tb is int:  # host-provided ints
            if ta in (int, float) and tb in (int, float) and ta is not bool and tb is not bool:
                return _num_op(op, float(a), float(b))
        if ta is Decimal or tb is Decimal:
            if ta is Decimal and tb is Decimal:
                return _dec_op(op, a, b)
            if ta is float and not (math.isnan(a) or math.isinf(a)):
                return _dec_op(op, number_to_decimal(a), b)
            if tb is float and not (math.isnan(b) or math.isinf(b)):
                return _dec_op(op, a, number_to_decimal(b))
            if op == "^" and (ta is float or tb is float):
                return ieee_pow(float(a), float(b))
        if op == "+" and ta is str and tb is str:
            return a + b
        verb = _ARITH_NAMES[op]
        raise DPTypeError(f"cannot {verb}: {nested_display(a)} {op} {nested_display(b)}")

    def neg(a: Any) -> Any:
        ta = type(a)
        if ta is float:
            return -a
        if ta is Decimal:
            return DEC.minus(a) if a else -a
        if ta is list:
            return [neg(x) for x in a]
        if a is None:
            if strict:
                raise NullReference("cannot negate null")
            return None
        raise DPTypeError(f"cannot negate {nested_display(a)}")

    def compare(op: str, a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if (ta is float and tb is float) or (ta is str and tb is str) or (ta is Decimal and tb is Decimal):
            return _cmp(op, a, b)
        if a is None or b is None:
            if strict:
                raise NullReference(f"cannot compare {nested_display(a)} {op} {nested_display(b)}")
            return None
        if ta is list or tb is list:
            if ta is list and tb is list:
                if len(a) != len(b):
                    raise DPTypeError(f"array length mismatch: {len(a)} vs {len(b)}")
                return [compare(op, x, y) for x, y in zip(a, b)]
            if ta is list:
                return [compare(op, x, b) for x in a]
            return [compare(op, a, y) for y in b]
        if ta is Decimal and tb is float:
            return _cmp(op, float(a), b) if math.isnan(b) or math.isinf(b) else _cmp(op, a, number_to_decimal(b))
        if ta is float and tb is Decimal:
            return _cmp(op, a, float(b)) if math.isnan(a) or math.isinf(a) else _cmp(op, number_to_decimal(a), b)
        if ta is int and tb is float or ta is float and tb is int:
            return _cmp(op, float(a), float(b))
        raise DPTypeError(f"cannot compare: {nested_display(a)} {op} {nested_display(b)}")

    return SimpleNamespace(
        strict=strict,
        add=lambda a, b: arith("+", a, b),
        sub=lambda a, b: arith("-", a, b),
        mul=lambda a, b: arith("*", a, b),
        div=lambda a, b: arith("/", a, b),
        mod=lambda a, b: arith("%", a, b),
        pow=lambda a, b: arith("^", a, b),
        neg=neg,
        lt=lambda a, b: compare("<", a, b),
        le=lambda a, b: compare("<=", a, b),
        gt=lambda a, b: compare(">", a, b),
        ge=lambda a, b: compare(">=", a, b),
        arith=arith,
        compare=compare,
    )


def _cmp(op: str, a: Any, b: Any) -> bool:
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def eq(a: Any, b: Any) -> bool:
    return dp_equal(a, b)


def ne(a: Any, b: Any) -> bool:
    return not dp_equal(a, b)


def truth_each(v: Any) -> Any:
    """Truthiness, element-wise for arrays (the right side of and/or after a scalar left)."""
    if type(v) is list:
        return [truth_each(x) for x in v]
    return bool(v)


def not_(v: Any) -> Any:
    if type(v) is list:
        return [not_(x) for x in v]
    return not v


def _logic_arrays(op: str, a: Any, b: Any) -> Any:
    ta, tb = type(a) is list, type(b) is list
    if ta and tb:
        if len(a) != len(b):
            raise DPTypeError(f"array length mismatch: {len(a)} vs {len(b)}")
        return [_logic_arrays(op, x, y) for x, y in zip(a, b)]
    if ta:
        return [_logic_arrays(op, x, b) for x in a]
    if tb:
        return [_logic_arrays(op, a, y) for y in b]
    return (bool(a) and bool(b)) if op == "and" else (bool(a) or bool(b))


def and_arrays(a: list, b: Any) -> Any:
    """``a and b`` when the left operand is an array: element-wise, both evaluated."""
    return _logic_arrays("and", a, b)


def or_arrays(a: list, b: Any) -> Any:
    return _logic_arrays("or", a, b)


NORMAL = _make(strict=False)
STRICT = _make(strict=True)
for _ns in (NORMAL, STRICT):
    _ns.eq = eq
    _ns.ne = ne
    _ns.not_ = not_
    _ns.truth_each = truth_each
    _ns.and_arrays = and_arrays
    _ns.or_arrays = or_arrays

# Used by builtins that take the `^` semantics (pow()).
power: Callable[[Any, Any], Any] = NORMAL.pow
