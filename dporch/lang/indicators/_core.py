"""Shared pieces of the indicator states: period checks, the "no cached peek" marker, sequential
summation and a correctly rounded fused multiply-add.

Why an FMA: the TA-Lib build the indicators are specified against (ta-lib 0.8.x, C library 0.8.1)
advances its EMA (``EMA``, the three averages inside ``MACD``) and its Wilder ATR average with the
C library's ``fma()`` -- explicitly, so the result is the same on every CPU.  Python 3.11 has no
``math.fma``, so :func:`fma` below computes ``RN(a*K + c)`` with error-free transformations
(Dekker's product, Knuth's two-sum) and falls back to exact rational arithmetic in the rare cases
the fast path cannot decide.  The EMA/MACD hot paths inline the cheap exit of :func:`fma_fast`
(which decides ~99% of steps on price data) and call :func:`fma` for the rest.  Where Python
provides ``math.fma`` (3.13+) it is used instead of the emulation.
"""

from __future__ import annotations

import math
from fractions import Fraction

from ..errors import DPTypeError

__all__ = [
    "NOCACHE",
    "StateBase",
    "check_period",
    "split_const",
    "fma",
    "fma_exact",
    "fma_fast",
    "seqsum",
    "NAN",
]

NAN = float("nan")

SPLIT = 134217729.0  # 2**27 + 1: Veltkamp splitter for doubles
POW2_SPLIT = 4503599627370497.0  # 2**52 + 1: rounds to one significant bit (power-of-two test)


class _NoCache:
    """Marker stored in a state's peek cache when nothing is cached (never a series value)."""

    __slots__ = ()

    def __reduce__(self) -> str:  # pickles as a reference to the module-level singleton
        return "NOCACHE"

    def __repr__(self) -> str:
        return "<no cached peek>"


NOCACHE = _NoCache()


class StateBase:
    """Base of the state classes: explicit pickling support over ``__slots__`` (so every pickle
    protocol works, not only 2+)."""

    __slots__ = ()

    def __getstate__(self) -> dict:
        return {name: getattr(self, name)
                for cls in type(self).__mro__ for name in getattr(cls, "__slots__", ())}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)


def check_period(name: str, value: object, label: str = "period") -> int:
    """An integer period ≥ 1, else ``DPTypeError("<name> <label> must be ≥ 1")`` (every label
    ends in "period", so the message always contains "period must be ≥ 1")."""
    n = int(value)  # type: ignore[call-overload]
    if n < 1:
        raise DPTypeError(f"{name} {label} must be ≥ 1, got {n}")
    return n


def split_const(k: float) -> tuple[float, float]:
    """Veltkamp split of a constant multiplier: ``k == hi + lo`` with 26-bit halves."""
    t = SPLIT * k
    hi = t - (t - k)
    return hi, k - hi


def fma_exact(a: float, b: float, c: float) -> float:
    """``a*b + c`` rounded once (exact rational arithmetic; IEEE semantics for inf/nan)."""
    if math.isfinite(a) and math.isfinite(b) and math.isfinite(c):
        q = Fraction(a) * Fraction(b) + Fraction(c)
        try:
            return float(q)
        except OverflowError:
            return math.inf if q > 0 else -math.inf
    return a * b + c


def fma(a: float, K: float, Kh: float, Kl: float, c: float) -> float:
    """Correctly rounded ``a*K + c`` where ``(Kh, Kl) = split_const(K)``.

    p + e = a*K exactly (Dekker), s + t = p + c exactly (two-sum), u = RN(t + e), r = RN(s + u).
    r is the correctly rounded result unless s + u falls exactly on a rounding midpoint while
    u was inexact; then the rounding error w of s + u is a power of two (or zero), which is
    tested cheaply, and the undecided case goes to :func:`fma_exact`.  Non-finite intermediate
    values (inf/nan inputs, overflow) and tiny multiplicands (0 < |a| < 1e-270, i.e. a*K near
    underflow for any K ≥ 1e-9, where Dekker's product is no longer exact) also go to
    :func:`fma_exact`.
    """
    p = a * K
    t = a * 134217729.0
    ah = t - (t - a)
    al = a - ah
    e = ((ah * Kh - p) + ah * Kl + al * Kh) + al * Kl
    s = p + c
    z = s - p
    t = (p - (s - z)) + (c - z)
    u = t + e
    r = s + u
    w = u - (r - s)
    z = w * 4503599627370497.0
    if z - (z - w) == w:
        z = u - t
        if (t - (u - z)) + (e - z) != 0.0:
            return fma_exact(a, K, c)
    elif w != w:
        return fma_exact(a, K, c)
    if -1e-270 < a < 1e-270 and a != 0.0:  # a*K near underflow
        return fma_exact(a, K, c)
    return r


def fma_fast(a: float, K: float, Kh: float, Kl: float, c: float) -> float:
    """:func:`fma` with a cheap exit for the common case where the fused and the unfused results
    agree (inlined in the EMA/MACD hot paths).

    With p = RN(a*K), s = RN(p + c) and t = (p + c) − s (two-sum), the exact a*K + c is
    s + t + e with |e| ≤ 2⁻⁵³|p|, and |t| ≤ |p|.  With E = 2⁻⁵¹·p, fl(t − |E|) ≤ t + e ≤
    fl(t + |E|), so if s + fl(t ± E) both round back to s, RN(a*K + c) = s by monotonicity of
    rounding.  Tiny nonzero a (|a| ≤ 1e-150) skips the exit: there E may underflow.
    """
    p = a * K
    s = p + c
    z = s - p
    t = (p - (s - z)) + (c - z)
    z = p * 4.440892098500626e-16  # 2**-51
    if s + (t + z) == s and s + (t - z) == s and (a * a > 1e-300 or a == 0.0):
        return s
    return fma(a, K, Kh, Kl, c)


if hasattr(math, "fma"):  # pragma: no cover - Python ≥ 3.13
    _math_fma = math.fma

    def fma(a: float, K: float, Kh: float, Kl: float, c: float) -> float:  # noqa: F811
        """Correctly rounded ``a*K + c`` (``math.fma``; IEEE semantics for inf/nan)."""
        try:
            return _math_fma(a, K, c)
        except (ValueError, OverflowError):
            return fma_exact(a, K, c)


def _loop_sum(values) -> float:
    total = 0.0
    for v in values:
        total += v
    return total


# CPython ≤ 3.11 adds floats left to right in plain double arithmetic (what TA-Lib's C loops do);
# 3.12+ uses compensated summation, which would not be bit-identical.  Pick at import time.
seqsum = sum if sum([1e16, 1.0, -1e16]) == 0.0 else _loop_sum
