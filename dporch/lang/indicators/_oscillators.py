"""Oscillators: RSI, MACD, KDJ, CCI -- incremental states (protocol: see the package docstring)."""

from __future__ import annotations

from collections import deque

from ._core import NOCACHE, StateBase, check_period, fma, seqsum, split_const

__all__ = ["RSIState", "MACDState", "KDJState", "CCIState"]


class RSIState(StateBase):
    """TA-Lib ``RSI`` (Wilder): averages of the first n changes, then
    ``avg = (avg·(n−1) + x)·(1/n)``; RSI = 100·gain/(gain+loss), 0 when the total is 0."""

    __slots__ = ("n", "_inv", "_nm1", "_cnt", "_last", "_g", "_l", "_ready", "_pk", "_cg", "_cl")

    def __init__(self, n: int = 14) -> None:
        n = check_period("RSI", n)
        self.n = n
        self._inv = 1.0 / n
        self._nm1 = float(n - 1)
        self._cnt = 0
        self._last = 0.0
        self._g = 0.0
        self._l = 0.0
        self._ready = False
        self._pk = NOCACHE
        self._cg = self._cl = 0.0

    def peek(self, v: float | None) -> float | None:
        if v is None:
            return None
        if self._ready:
            d = v - self._last
            g = self._g * self._nm1
            l = self._l * self._nm1
            if d > 0.0:
                g += d
            else:
                l -= d
            inv = self._inv
            l *= inv
            g *= inv
            self._pk = v
            self._cg = g
            self._cl = l
            t = g + l
            return 100.0 * (g / t) if t > 0.0 else 0.0
        if self._cnt == self.n:
            d = v - self._last
            g = self._g
            l = self._l
            if d > 0.0:
                g += d
            else:
                l -= d
            inv = self._inv
            l *= inv
            g *= inv
            t = g + l
            return 100.0 * (g / t) if t > 0.0 else 0.0
        return None

    def commit(self, v: float | None) -> None:
        if v is self._pk:
            self._g = self._cg
            self._l = self._cl
            self._last = v
            self._pk = NOCACHE
            return
        self._pk = NOCACHE
        if v is None:
            return
        if self._ready:
            self.peek(v)
            self._g = self._cg
            self._l = self._cl
            self._last = v
            self._pk = NOCACHE
            return
        cnt = self._cnt
        if cnt:
            d = v - self._last
            if d > 0.0:
                self._g += d
            else:
                self._l -= d
            if cnt == self.n:
                self._l *= self._inv
                self._g *= self._inv
                self._ready = True
        self._last = v
        self._cnt = cnt + 1


class MACDState(StateBase):
    """TA-Lib ``MACD`` → ``[DIF, DEA, BAR]``.

    Both price EMAs start at position slow−1 (slow seeded with the mean of values 0…slow−1, fast
    with the mean of values slow−fast…slow−1), DEA is the EMA of DIF seeded at slow+signal−2 with
    the mean of the first ``signal`` DIF values, BAR = DIF − DEA; every EMA step is
    ``fma(x − e, k, e)`` with ``k = 2/(p+1)``; a signal period of 1 makes DEA = DIF.  fast > slow
    are swapped (as TA-Lib does).
    """

    __slots__ = ("fast", "slow", "signal", "_fk", "_fkh", "_fkl", "_sk", "_skh", "_skl",
                 "_gk", "_gkh", "_gkl", "_cnt", "_ts", "_tf", "_gs", "_pf", "_ps", "_sig",
                 "_phase", "_pk", "_cpf", "_cps", "_csig")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        fast = check_period("MACD", fast, "fast period")
        slow = check_period("MACD", slow, "slow period")
        signal = check_period("MACD", signal, "signal period")
        if slow < fast:
            fast, slow = slow, fast
        self.fast, self.slow, self.signal = fast, slow, signal
        self._fk = 2.0 / (fast + 1)
        self._fkh, self._fkl = split_const(self._fk)
        self._sk = 2.0 / (slow + 1)
        self._skh, self._skl = split_const(self._sk)
        self._gk = 2.0 / (signal + 1)
        self._gkh, self._gkl = split_const(self._gk)
        self._cnt = 0
        self._ts = 0.0  # slow seed sum
        self._tf = 0.0  # fast seed sum
        self._gs = 0.0  # signal seed sum
        self._pf = self._ps = self._sig = 0.0
        self._phase = 0  # 0: seeding the price EMAs, 1: seeding DEA, 2: steady
        self._pk = NOCACHE
        self._cpf = self._cps = self._csig = 0.0

    def peek(self, v: float | None) -> list:
        if v is None:
            return [None, None, None]
        if self._phase == 2:
            # Each EMA step is fma(x - e, k, e); the fast path of _core.fma_fast is inlined.
            c = self._pf
            a = v - c
            p = a * self._fk
            s = p + c
            z = s - p
            t = (p - (s - z)) + (c - z)
            z = p * 4.440892098500626e-16
            if s + (t + z) == s and s + (t - z) == s and (a * a > 1e-300 or a == 0.0):
                pf = s
            else:
                pf = fma(a, self._fk, self._fkh, self._fkl, c)
            c = self._ps
            a = v - c
            p = a * self._sk
            s = p + c
            z = s - p
            t = (p - (s - z)) + (c - z)
            z = p * 4.440892098500626e-16
            if s + (t + z) == s and s + (t - z) == s and (a * a > 1e-300 or a == 0.0):
                ps = s
            else:
                ps = fma(a, self._sk, self._skh, self._skl, c)
            m = pf - ps
            if self.signal == 1:
                sig = m
            else:
                c = self._sig
                a = m - c
                p = a * self._gk
                s = p + c
                z = s - p
                t = (p - (s - z)) + (c - z)
                z = p * 4.440892098500626e-16
                if s + (t + z) == s and s + (t - z) == s and (a * a > 1e-300 or a == 0.0):
                    sig = s
                else:
                    sig = fma(a, self._gk, self._gkh, self._gkl, c)
            self._pk = v
            self._cpf = pf
            self._cps = ps
            self._csig = sig
            return [m, sig, m - sig]
        out = self._warmup(v)[-1]
        return out if out is not None else [None, None, None]

    def _warmup(self, v: float) -> tuple:
        """(cnt, ts, tf, gs, pf, ps, sig, phase, output) after ``v`` during the seeding phases."""
        cnt, ts, tf, gs = self._cnt, self._ts, self._tf, self._gs
        pf, ps, sig, phase = self._pf, self._ps, self._sig, self._phase
        fast, slow, signal = self.fast, self.slow, self.signal
        out = None
        if phase == 0:
            ts += v
            if cnt >= slow - fast:
                tf += v
            if cnt == slow - 1:
                ps = ts / slow
                pf = tf / fast
                m = pf - ps
                gs = 0.0
                gs += m
                if signal == 1:
                    sig = gs / signal
                    phase = 2
                    out = [m, sig, m - sig]
                else:
                    phase = 1
        else:  # phase 1: price EMAs advance, DIF values accumulate into the DEA seed
            pf = fma(v - pf, self._fk, self._fkh, self._fkl, pf)
            ps = fma(v - ps, self._sk, self._skh, self._skl, ps)
            m = pf - ps
            gs += m
            if cnt == slow + signal - 2:
                sig = gs / signal
                phase = 2
                out = [m, sig, m - sig]
        return cnt + 1, ts, tf, gs, pf, ps, sig, phase, out

    def commit(self, v: float | None) -> None:
        if v is self._pk:
            self._pf = self._cpf
            self._ps = self._cps
            self._sig = self._csig
            self._pk = NOCACHE
            return
        self._pk = NOCACHE
        if v is None:
            return
        if self._phase == 2:
            self.peek(v)
            self._pf = self._cpf
            self._ps = self._cps
            self._sig = self._csig
            self._pk = NOCACHE
            return
        (self._cnt, self._ts, self._tf, self._gs, self._pf, self._ps, self._sig, self._phase,
         _) = self._warmup(v)


class KDJState(StateBase):
    """KDJ (A-share convention, DPLANG §13.5): RSV over the last n valid positions,
    K = ((m1−1)·K + RSV)/m1, D = ((m2−1)·D + K)/m2 from K = D = 50, J = 3K − 2D → ``[K, D, J]``.
    Rolling max/min use monotonic deques (amortised O(1))."""

    __slots__ = ("n", "m1", "m2", "_a1", "_b1", "_a2", "_b2", "_cnt", "_hq", "_lq", "_k", "_d",
                 "_pk0", "_pk1", "_pk2", "_ckd")

    def __init__(self, n: int = 9, m1: int = 3, m2: int = 3) -> None:
        self.n = check_period("KDJ", n)
        self.m1 = check_period("KDJ", m1, "m1 period")
        self.m2 = check_period("KDJ", m2, "m2 period")
        self._a1, self._b1 = float(self.m1 - 1), float(self.m1)
        self._a2, self._b2 = float(self.m2 - 1), float(self.m2)
        self._cnt = 0
        self._hq: deque = deque()  # (index, high), highs strictly decreasing
        self._lq: deque = deque()  # (index, low), lows strictly increasing
        self._k = 50.0
        self._d = 50.0
        self._pk0 = self._pk1 = self._pk2 = NOCACHE
        self._ckd = None

    def _kd(self, h: float, l: float, c: float) -> tuple | None:
        cnt = self._cnt
        n = self.n
        if cnt < n - 1:
            return None
        old = cnt - n  # index leaving the window
        hq = self._hq
        hn = h
        if hq:
            i, x = hq[0]
            if i == old:
                x = hq[1][1] if len(hq) > 1 else h
            if x > hn:
                hn = x
        lq = self._lq
        ln = l
        if lq:
            i, x = lq[0]
            if i == old:
                x = lq[1][1] if len(lq) > 1 else l
            if x < ln:
                ln = x
        rsv = 50.0 if hn == ln else (c - ln) / (hn - ln) * 100.0
        k = (self._a1 * self._k + rsv) / self._b1
        d = (self._a2 * self._d + k) / self._b2
        return k, d

    def peek(self, h: float | None, l: float | None, c: float | None) -> list:
        if h is None or l is None or c is None:
            return [None, None, None]
        kd = self._kd(h, l, c)
        self._pk0 = h
        self._pk1 = l
        self._pk2 = c
        self._ckd = kd
        if kd is None:
            return [None, None, None]
        k, d = kd
        return [k, d, 3.0 * k - 2.0 * d]

    def commit(self, h: float | None, l: float | None, c: float | None) -> None:
        if h is self._pk0 and l is self._pk1 and c is self._pk2:
            kd = self._ckd
        elif h is None or l is None or c is None:
            self._pk0 = NOCACHE
            return
        else:
            kd = self._kd(h, l, c)
        self._pk0 = NOCACHE
        if kd is not None:
            self._k, self._d = kd
        cnt = self._cnt
        old = cnt - self.n
        hq = self._hq
        while hq and hq[-1][1] <= h:
            hq.pop()
        hq.append((cnt, h))
        if hq[0][0] == old:
            hq.popleft()
        lq = self._lq
        while lq and lq[-1][1] >= l:
            lq.pop()
        lq.append((cnt, l))
        if lq[0][0] == old:
            lq.popleft()
        self._cnt = cnt + 1


class CCIState(StateBase):
    """TA-Lib ``CCI``: TP = (H+L+C)/3 in a circular buffer (slot = position mod n, summed in slot
    order like TA-Lib), SMA and mean deviation over it; (TP − SMA)/(0.015·MD), 0 when either
    difference is within 1e-14 of |SMA| (TA-Lib 0.8's scaled flatness test).  O(n) per row, as in
    TA-Lib."""

    __slots__ = ("n", "_nf", "_cnt", "_buf")

    def __init__(self, n: int = 14) -> None:
        self.n = check_period("CCI", n)
        self._nf = float(self.n)
        self._cnt = 0
        self._buf: list[float] = []

    def _value(self, buf: list, lv: float) -> float:
        nf = self._nf
        avg = seqsum(buf) / nf
        md = seqsum(map(abs, map(avg.__rsub__, buf))) / nf
        t = lv - avg
        s = abs(avg) * 1e-14
        if abs(t) <= s or abs(md) <= s:
            return 0.0
        den = 0.015 * md
        if den == 0.0:  # md underflowed: C divides by zero
            return t * float("inf") if t == t else t
        return t / den

    def peek(self, h: float | None, l: float | None, c: float | None) -> float | None:
        if h is None or l is None or c is None:
            return None
        cnt = self._cnt
        n = self.n
        if cnt < n - 1:
            return None
        lv = (h + l + c) / 3.0
        buf = self._buf
        if len(buf) == n:
            slot = cnt % n
            old = buf[slot]
            buf[slot] = lv
            try:
                return self._value(buf, lv)
            finally:
                buf[slot] = old
        buf.append(lv)
        try:
            return self._value(buf, lv)
        finally:
            buf.pop()

    def commit(self, h: float | None, l: float | None, c: float | None) -> None:
        if h is None or l is None or c is None:
            return
        lv = (h + l + c) / 3.0
        buf = self._buf
        cnt = self._cnt
        if len(buf) == self.n:
            buf[cnt % self.n] = lv
        else:
            buf.append(lv)
        self._cnt = cnt + 1
