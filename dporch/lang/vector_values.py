"""Columns of DPLang values for the column form, and the vectorised operator rules.

Three column kinds cover what the column form evaluates; anything else is
:class:`Unsupported` and the program runs in the row form instead:

* :class:`Num`  -- float64 values and a null mask;
* :class:`Bool` -- bool values and a null mask;
* :class:`Str`  -- category codes into a small list of strings, and a null mask.

Every rule mirrors :mod:`dporch.lang.ops` exactly (same IEEE operations, same null rules), and
a condition the row form would report as an error (a zero divisor on a row that evaluates the
division, a type error) raises :class:`Unsupported`, so the row form reproduces the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from .values import ieee_pow

__all__ = ["Unsupported", "Num", "Bool", "Str", "Col", "null_num", "const", "truthy", "merge",
           "arith", "compare", "equal", "neg", "str_categories"]


class Unsupported(Exception):
    """The column form cannot evaluate this (the reason is the message)."""


def _or(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a | b


@dataclass
class Num:
    v: np.ndarray
    null: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> "Num":
        return Num(self.v[idx], None if self.null is None else self.null[idx])


@dataclass
class Bool:
    v: np.ndarray
    null: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> "Bool":
        return Bool(self.v[idx], None if self.null is None else self.null[idx])


@dataclass
class Str:
    codes: np.ndarray  # int32 indexes into cats
    cats: list[str]
    null: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> "Str":
        return Str(self.codes[idx], self.cats, None if self.null is None else self.null[idx])


Col = Union[Num, Bool, Str]


def null_num(n: int) -> Num:
    """The null literal: a number column that is null everywhere (it merges with any kind)."""
    return Num(np.zeros(n), np.ones(n, dtype=bool))


def const(value: object, n: int) -> Col:
    if value is None:
        return null_num(n)
    if type(value) is bool:
        return Bool(np.full(n, value, dtype=bool))
    if type(value) is float:
        return Num(np.full(n, value, dtype=np.float64))
    if type(value) is str:
        return Str(np.zeros(n, dtype=np.int32), [value])
    raise Unsupported(f"constant of type {type(value).__name__}")


def is_all_null(c: Col) -> bool:
    return c.null is not None and bool(c.null.all())


def truthy(c: Col) -> np.ndarray:
    """DPLang truthiness (§4.2) per row: null, 0, -0 and "" are false; NaN is true."""
    if isinstance(c, Num):
        t = c.v != 0
    elif isinstance(c, Bool):
        t = c.v.copy()
    else:
        lens = np.array([len(s) > 0 for s in c.cats], dtype=bool)
        t = lens[c.codes] if len(c.cats) else np.zeros(len(c.codes), dtype=bool)
    if c.null is not None:
        t &= ~c.null
    return t


def str_categories(a: Str, b: Str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A shared category list and the codes of a and b in it."""
    if a.cats == b.cats:
        return a.cats, a.codes, b.codes
    cats = list(dict.fromkeys(a.cats + b.cats))
    pos = {s: i for i, s in enumerate(cats)}
    ma = np.array([pos[s] for s in a.cats], dtype=np.int32)
    mb = np.array([pos[s] for s in b.cats], dtype=np.int32)
    return cats, (ma[a.codes] if len(a.cats) else a.codes), (mb[b.codes] if len(b.cats) else b.codes)


def merge(mask: np.ndarray, a: Col, b: Col) -> Col:
    """``a`` where ``mask`` else ``b`` (the branches of a ternary or an if)."""
    if is_all_null(a) and not isinstance(b, Num):
        a = _null_like(b)
    if is_all_null(b) and not isinstance(a, Num):
        b = _null_like(a)
    if isinstance(a, Num) and isinstance(b, Num):
        return Num(np.where(mask, a.v, b.v), _merge_null(mask, a.null, b.null))
    if isinstance(a, Bool) and isinstance(b, Bool):
        return Bool(np.where(mask, a.v, b.v), _merge_null(mask, a.null, b.null))
    if isinstance(a, Str) and isinstance(b, Str):
        cats, ca, cb = str_categories(a, b)
        return Str(np.where(mask, ca, cb).astype(np.int32), cats, _merge_null(mask, a.null, b.null))
    raise Unsupported(f"a value that is sometimes {_kind(a)} and sometimes {_kind(b)}")


def _null_like(c: Col) -> Col:
    n = len(c.codes) if isinstance(c, Str) else len(c.v)
    ones = np.ones(n, dtype=bool)
    if isinstance(c, Bool):
        return Bool(np.zeros(n, dtype=bool), ones)
    return Str(np.zeros(n, dtype=np.int32), list(c.cats), ones)  # type: ignore[union-attr]


def _merge_null(mask: np.ndarray, a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None and b is None:
        return None
    n = len(mask)
    an = a if a is not None else np.zeros(n, dtype=bool)
    bn = b if b is not None else np.zeros(n, dtype=bool)
    return np.where(mask, an, bn)


def _kind(c: Col) -> str:
    return {Num: "a number", Bool: "a bool", Str: "a string"}[type(c)]


def _num(c: Col, what: str) -> Num:
    if isinstance(c, Num):
        return c
    if is_all_null(c):
        return Num(np.zeros(len(c.null)), c.null)  # type: ignore[arg-type]
    raise Unsupported(f"{what} on {_kind(c)}")


def arith(op: str, a: Col, b: Col, active: np.ndarray) -> Col:
    """``a op b`` for + - * / % ^ (§5.2, §7.2); rows outside ``active`` are never checked."""
    if op == "+" and isinstance(a, Str) and isinstance(b, Str):
        raise Unsupported("string concatenation")
    x, y = _num(a, op), _num(b, op)
    null = _or(x.null, y.null)
    with np.errstate(all="ignore"):
        if op in "/%":
            live = active if null is None else active & ~null
            if bool((y.v[live] == 0).any()):
                raise Unsupported("division by zero")
            v = x.v / y.v if op == "/" else np.fmod(x.v, y.v)
        elif op == "+":
            v = x.v + y.v
        elif op == "-":
            v = x.v - y.v
        elif op == "*":
            v = x.v * y.v
        else:
            v = _pow(x.v, y.v)
    return Num(v, null)


_ieee_pow = np.frompyfunc(ieee_pow, 2, 1)


def _pow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x ^ y`` with the row form's libm ``pow`` (numpy's own power can differ in the last
    bit, and for -0 ^ 0.5 and -inf ^ 0.5); squares, by far the common case, are x * x (the
    correctly rounded square, which is what pow gives)."""
    square = y == 2.0
    if square.all():
        return x * x
    out = np.empty(len(x))
    out[square] = x[square] * x[square]
    rest = ~square
    out[rest] = _ieee_pow(x[rest], y[rest]).astype(np.float64)
    return out


def neg(a: Col) -> Col:
    x = _num(a, "negation")
    return Num(-x.v, x.null)


_CMP = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def compare(op: str, a: Col, b: Col) -> Col:
    """Ordering comparison (§5.3): numbers or strings; null if either is null."""
    null = _or(a.null, b.null)
    if isinstance(a, Num) and isinstance(b, Num):
        return Bool(_CMP[op](a.v, b.v), null)
    if isinstance(a, Str) and isinstance(b, Str):
        cats, ca, cb = str_categories(a, b)
        rank = np.empty(len(cats), dtype=np.int64)
        rank[np.argsort(np.array(cats, dtype=object), kind="stable")] = np.arange(len(cats))
        return Bool(_CMP[op](rank[ca], rank[cb]) if len(cats) else np.zeros(len(ca), dtype=bool), null)
    if is_all_null(a) or is_all_null(b):
        n = len(null)  # type: ignore[arg-type]
        return Bool(np.zeros(n, dtype=bool), np.ones(n, dtype=bool))
    raise Unsupported(f"comparing {_kind(a)} with {_kind(b)}")


def equal(a: Col, b: Col) -> np.ndarray:
    """Structural equality (§4.4) per row: never null; different kinds are unequal."""
    an = a.null if a.null is not None else None
    bn = b.null if b.null is not None else None
    n = len(a.codes) if isinstance(a, Str) else len(a.v)
    a_null = an if an is not None else np.zeros(n, dtype=bool)
    b_null = bn if bn is not None else np.zeros(n, dtype=bool)
    both_null = a_null & b_null
    present = ~a_null & ~b_null
    if type(a) is type(b):
        if isinstance(a, Str):
            cats, ca, cb = str_categories(a, b)  # type: ignore[arg-type]
            same = ca == cb
        else:
            same = a.v == b.v  # type: ignore[union-attr]
        return both_null | (present & same)
    return both_null
