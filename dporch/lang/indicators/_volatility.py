"""Volatility and volume: BOLL, ATR, OBV -- incremental states (protocol: see the package
docstring)."""

from __future__ import annotations

import math

from ._core import NAN, NOCACHE, StateBase, check_period, fma, seqsum, split_const

__all__ = ["BOLLState", "ATRState", "OBVState"]

class BOLLState(StateBase):
    """TA-Lib ``BBANDS`` (matype 0, nbdevup = nbdevdn = k) → ``[upper, middle, lower]``.

    Middle = the SMA running total; σ is TA-Lib 0.8's cancellation-free shifted-data variance
    (running sums of x − shift and its square, re-anchored from the window every 32·n bars or
    when cancellation is detected; variance floored to 0 at re-anchoring), population σ.
    """

    __slots__ = ("n", "k", "_nf", "_inv", "_cnt", "_ma", "_shift", "_v1", "_v2", "_bars",
                 "_buf", "_pk", "_cma", "_cshift", "_cv1", "_cv2", "_cbars")

    def __init__(self, n: int = 20, k: float = 2.0) -> None:
        self.n = check_period("BOLL", n)
        self.k = float(k)
        self._nf = float(self.n)
        self._inv = 1.0 / self.n
        self._cnt = 0
        self._ma = 0.0
        self._shift = 0.0
        self._v1 = 0.0
        self._v2 = 0.0
        self._bars = 32 * self.n
        self._buf: list[float] = []  # the last n values; x[i] lives in slot i % n
        self._pk = NOCACHE
        self._cma = self._cshift = self._cv1 = self._cv2 = 0.0
        self._cbars = 0

    def peek(self, v: float | None) -> list:
        if v is None:
            return [None, None, None]
        cnt = self._cnt
        n = self.n
        if cnt < n - 1:
            return [None, None, None]
        shift = v if cnt == 0 else self._shift
        buf = self._buf
        inv = self._inv
        ma = self._ma + v
        t = v - shift
        v1 = self._v1 + t
        t *= t
        v2 = self._v2 + t
        m1 = v1 * inv
        var = v2 * inv - m1 * m1
        mid = ma / self._nf
        x = buf[(cnt + 1) % n] if n > 1 else v  # the oldest value of the window leaves
        ma -= x
        t = x - shift
        v1 -= t
        t *= t
        v2 -= t
        bars = self._bars - 1
        if var < 0.000001 * (v2 * inv) or t > 1000000.0 * v2 or bars <= 0:
            bars = 32 * n
            win = [buf[(cnt + j) % n] for j in range(1, n)]
            win.append(v)
            shift = seqsum(win) * inv
            v1 = 0.0
            v2 = 0.0
            for x in win:
                t = x - shift
                v1 += t
                t *= t
                v2 += t
            m1 = v1 * inv
            var = v2 * inv - m1 * m1
            if var < 0.000000000001 * (v2 * inv):
                var = 0.0
            t = win[0] - shift
            v1 -= t
            t *= t
            v2 -= t
        if var > 0.0:
            sd = math.sqrt(var)
        elif var == 0.0:
            sd = 0.0
        else:  # negative or nan: C's sqrt gives nan
            sd = NAN
        self._pk = v
        self._cma = ma
        self._cshift = shift
        self._cv1 = v1
        self._cv2 = v2
        self._cbars = bars
        tk = sd * self.k
        return [mid + tk, mid, mid - tk]

    def commit(self, v: float | None) -> None:
        if v is None:
            self._pk = NOCACHE
            return
        cnt = self._cnt
        n = self.n
        buf = self._buf
        if cnt >= n - 1:
            if v is not self._pk:
                self.peek(v)
            self._pk = NOCACHE
            self._ma = self._cma
            self._shift = self._cshift
            self._v1 = self._cv1
            self._v2 = self._cv2
            self._bars = self._cbars
            if len(buf) == n:
                buf[cnt % n] = v
            else:
                buf.append(v)
        else:
            self._pk = NOCACHE
            if cnt == 0:
                self._shift = v
            self._ma += v
            t = v - self._shift
            self._v1 += t
            t *= t
            self._v2 += t
            buf.append(v)
        self._cnt = cnt + 1


class ATRState(StateBase):
    """TA-Lib ``ATR``: TR from the second position on; first ATR (position n) = mean of the first
    n TRs; then Wilder's ``atr = fma((n−1)/n, atr, (1 − (n−1)/n)·TR)`` (TA-Lib 0.8 #338)."""

    __slots__ = ("n", "_nf", "_wa", "_wb", "_wbh", "_wbl", "_cnt", "_pc", "_tot", "_prev",
                 "_ready", "_pk0", "_pk1", "_pk2", "_cprev")

    def __init__(self, n: int = 14) -> None:
        self.n = check_period("ATR", n)
        self._nf = float(self.n)
        wb = float(self.n - 1) / float(self.n)
        self._wb = wb
        self._wa = 1.0 - wb
        self._wbh, self._wbl = split_const(wb)
        self._cnt = 0
        self._pc = 0.0
        self._tot = 0.0
        self._prev = 0.0
        self._ready = False
        self._pk0 = self._pk1 = self._pk2 = NOCACHE
        self._cprev = 0.0

    def peek(self, h: float | None, l: float | None, c: float | None) -> float | None:
        if h is None or l is None or c is None:
            return None
        if self._ready:
            pc = self._pc
            g = h - l
            x = abs(pc - h)
            if x > g:
                g = x
            x = abs(pc - l)
            if x > g:
                g = x
            cc = self._wa * g
            # Wilder step fma((n-1)/n, atr, cc): p = atr*(n-1)/n and cc are of similar size,
            # so the fast exit of fma_fast would rarely apply; use the full emulation.
            r = fma(self._prev, self._wb, self._wbh, self._wbl, cc)
            self._pk0 = h
            self._pk1 = l
            self._pk2 = c
            self._cprev = r
            return r
        if self._cnt == self.n:
            pc = self._pc
            g = h - l
            x = abs(pc - h)
            if x > g:
                g = x
            x = abs(pc - l)
            if x > g:
                g = x
            return (self._tot + g) / self._nf
        return None

    def commit(self, h: float | None, l: float | None, c: float | None) -> None:
        if h is self._pk0 and l is self._pk1 and c is self._pk2:
            self._prev = self._cprev
            self._pc = c
            self._pk0 = NOCACHE
            return
        self._pk0 = NOCACHE
        if h is None or l is None or c is None:
            return
        if self._ready:
            self.peek(h, l, c)
            self._prev = self._cprev
            self._pc = c
            self._pk0 = NOCACHE
            return
        cnt = self._cnt
        if cnt:
            pc = self._pc
            g = h - l
            x = abs(pc - h)
            if x > g:
                g = x
            x = abs(pc - l)
            if x > g:
                g = x
            tot = self._tot + g
            self._tot = tot
            if cnt == self.n:
                self._prev = tot / self._nf
                self._ready = True
        self._pc = c
        self._cnt = cnt + 1


class OBVState(StateBase):
    """TA-Lib ``OBV``: OBV_0 = Vol_0, then ± Vol by the direction of the close."""

    __slots__ = ("_started", "_pc", "_obv")

    def __init__(self) -> None:
        self._started = False
        self._pc = 0.0
        self._obv = 0.0

    def peek(self, c: float | None, vol: float | None) -> float | None:
        if c is None or vol is None:
            return None
        if not self._started:
            return vol
        pc = self._pc
        if c > pc:
            return self._obv + vol
        if c < pc:
            return self._obv - vol
        return self._obv

    def commit(self, c: float | None, vol: float | None) -> None:
        if c is None or vol is None:
            return
        if self._started:
            pc = self._pc
            if c > pc:
                self._obv += vol
            elif c < pc:
                self._obv -= vol
        else:
            self._obv = vol
            self._started = True
        self._pc = c
