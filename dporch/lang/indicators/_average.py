"""Moving averages: SMA (= MA = VOLUME_MA), EMA, WMA -- incremental, TA-Lib bit-exact.

Every state follows the protocol of the package docstring: ``peek(v)`` gives the value the
current row would have if the series' current value were ``v`` (no observable mutation),
``commit(v)`` advances over the row's final value; ``None`` rows are skipped (DPLANG §13.5
Decision 3).  The operation order mirrors TA-Lib's C loops so that results are bit-identical.
"""

from __future__ import annotations

from ._core import NOCACHE, StateBase, check_period, fma, split_const

__all__ = ["SMAState", "EMAState", "WMAState"]


class SMAState(StateBase):
    """TA-Lib ``SMA``: running total; output = (total + v) / n, then the oldest value leaves."""

    __slots__ = ("n", "_nf", "_m", "_cnt", "_total", "_buf", "_pos")

    def __init__(self, n: int) -> None:
        n = check_period("SMA", n)
        self.n = n
        self._nf = float(n)
        self._m = n - 1  # previous values kept (ring of the last n-1)
        self._cnt = 0
        self._total = 0.0
        self._buf: list[float] = []
        self._pos = 0  # ring slot of the oldest kept value once the ring is full

    def peek(self, v: float | None) -> float | None:
        if v is None or self._cnt < self._m:
            return None
        return (self._total + v) / self._nf

    def commit(self, v: float | None) -> None:
        if v is None:
            return
        t = self._total + v
        cnt = self._cnt
        m = self._m
        if cnt >= m:
            if m:
                buf = self._buf
                pos = self._pos
                self._total = t - buf[pos]
                buf[pos] = v
                pos += 1
                self._pos = pos if pos < m else 0
            else:
                self._total = t - v
        else:
            self._total = t
            self._buf.append(v)
        self._cnt = cnt + 1


class EMAState(StateBase):
    """TA-Lib ``EMA``: seeded with the mean of the first n values, then
    ``e = fma(v - e, k, e)`` with ``k = 2/(n+1)``; period 1 copies the input."""

    __slots__ = ("n", "_nf", "_k", "_kh", "_kl", "_cnt", "_sum", "_prev", "_ready", "_pk", "_pr")

    def __init__(self, n: int) -> None:
        n = check_period("EMA", n)
        self.n = n
        self._nf = float(n)
        k = 2.0 / (n + 1)
        self._k = k
        self._kh, self._kl = split_const(k)
        self._cnt = 0
        self._sum = 0.0
        self._prev = 0.0
        self._ready = False
        self._pk = NOCACHE
        self._pr = 0.0

    def peek(self, v: float | None) -> float | None:
        if v is None:
            return None
        if self._ready:
            c = self._prev
            a = v - c
            K = self._k
            # r = fma(a, K, c): the fast path of _core.fma_fast, inlined
            p = a * K
            s = p + c
            z = s - p
            t = (p - (s - z)) + (c - z)
            z = p * 4.440892098500626e-16
            if s + (t + z) == s and s + (t - z) == s and (a * a > 1e-300 or a == 0.0):
                r = s
            else:
                r = fma(a, K, self._kh, self._kl, c)
            self._pk = v
            self._pr = r
            return r
        if self._cnt == self.n - 1:
            return v if self.n == 1 else (self._sum + v) / self._nf
        return None

    def commit(self, v: float | None) -> None:
        if v is self._pk:
            self._prev = self._pr
            self._pk = NOCACHE
            return
        self._pk = NOCACHE
        if v is None:
            return
        if self._ready:
            self.peek(v)
            self._prev = self._pr
            self._pk = NOCACHE
            return
        if self.n == 1:  # copy mode: nothing to remember
            return
        s = self._sum + v
        cnt = self._cnt + 1
        self._sum = s
        self._cnt = cnt
        if cnt == self.n:
            self._prev = s / self._nf
            self._ready = True


class WMAState(StateBase):
    """TA-Lib ``WMA``: the periodSum/periodSub recurrence, re-anchored from the window every
    8·n bars (TA-Lib 0.8 #255); period 1 copies the input."""

    __slots__ = ("n", "_nf", "_div", "_cnt", "_psum", "_psub", "_trail", "_bars", "_buf",
                 "_pk", "_cpsum", "_cpsub", "_ctrail", "_cbars")

    def __init__(self, n: int) -> None:
        n = check_period("WMA", n)
        self.n = n
        self._nf = float(n)
        self._div = float(n) * (n + 1) / 2.0
        self._cnt = 0
        self._psum = 0.0
        self._psub = 0.0
        self._trail = 0.0
        self._bars = 8 * n
        self._buf: list[float] = []  # the last n values; x[i] lives in slot i % n
        self._pk = NOCACHE
        self._cpsum = self._cpsub = self._ctrail = 0.0
        self._cbars = 0

    def peek(self, v: float | None) -> float | None:
        if v is None:
            return None
        n = self.n
        cnt = self._cnt
        if cnt < n - 1:
            return None
        if n == 1:
            return v
        buf = self._buf
        psub = self._psub + v
        psub -= self._trail
        psum = self._psum + v * self._nf
        bars = self._bars - 1
        if bars <= 0:
            bars = 8 * n
            psub = 0.0
            psum = 0.0
            rw = 1.0
            for j in range(1, n):
                x = buf[(cnt + j) % n]
                psub += x
                psum += x * rw
                rw += 1.0
            psub += v
            psum += v * rw
        trail = buf[(cnt + 1) % n]
        out = psum / self._div
        self._pk = v
        self._cpsub = psub
        self._cpsum = psum - psub
        self._cbars = bars
        self._ctrail = trail
        return out

    def commit(self, v: float | None) -> None:
        if v is None:
            self._pk = NOCACHE
            return
        n = self.n
        cnt = self._cnt
        if cnt >= n - 1:
            if n == 1:
                return
            if v is not self._pk:
                self.peek(v)
            self._pk = NOCACHE
            self._psub = self._cpsub
            self._psum = self._cpsum
            self._bars = self._cbars
            self._trail = self._ctrail
            buf = self._buf
            if len(buf) == n:
                buf[cnt % n] = v
            else:
                buf.append(v)
        else:
            self._pk = NOCACHE
            self._psub += v
            self._psum += v * float(cnt + 1)
            self._buf.append(v)
        self._cnt = cnt + 1
