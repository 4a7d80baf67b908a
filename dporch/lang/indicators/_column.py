"""Column (vectorised) form for batch execution.

``compute(info, params, comp)`` works on the *compressed* series (null rows already removed) and
returns ``(outputs, first_valid)``: one float64 array per output and the index of the first
position the row form gives a value for (every later position has one).  TA-Lib is used where it
is bit-identical to the row form; this is verified once per indicator at first use against the
row form on a probe series (a different TA-Lib build would fail the probe and fall back).  The
fallback, also used for parameters TA-Lib rejects and for non-finite inputs (TA-Lib's wrapper
skips leading NaNs, which would shift the alignment), feeds the row-form state.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

import numpy as np

__all__ = ["compute", "row_loop", "talib_agrees", "load_talib"]

_talib: Any = None  # the talib module once load_talib() ran (None: not installed or failed)
_talib_tried = False
_talib_lock = threading.Lock()


def load_talib(*, without_pandas: bool = False) -> Any:
    """Import TA-Lib once (None when it cannot be imported).

    TA-Lib probes for pandas and polars at import to wrap its functions for their Series; we pass
    numpy arrays only. ``without_pandas`` (used by `dporch run`, a process of its own) hides
    pandas and polars from that probe when nothing has imported them yet: importing pandas would
    add ~0.2 s and ~60 MB to the run. TA-Lib then returns arrays for any input, as it does in a
    process without pandas installed."""
    global _talib, _talib_tried
    if _talib_tried:
        return _talib
    with _talib_lock:
        if _talib_tried:
            return _talib
        hidden = [m for m in ("pandas", "polars") if m not in sys.modules] if without_pandas else []
        for m in hidden:
            sys.modules[m] = None  # type: ignore[assignment]  # "import pandas" -> ModuleNotFoundError
        try:
            import talib
            _talib = talib
        except Exception:  # noqa: BLE001  # pragma: no cover - exercised only without ta-lib
            _talib = None
        finally:
            for m in hidden:
                if sys.modules.get(m, 0) is None:
                    del sys.modules[m]
        _talib_tried = True
    return _talib

_TALIB_MAX_PERIOD = 100000


def row_loop(state: Any, n_outputs: int, comp: list) -> tuple[list, int]:
    """Feed ``state`` position by position (peek then commit); returns arrays + first valid."""
    cols = [c.tolist() for c in comp]
    peek = state.peek
    commit = state.commit
    nan = float("nan")
    first = None
    if n_outputs == 1:
        out = []
        append = out.append
        for i, row in enumerate(zip(*cols)):
            r = peek(*row)
            commit(*row)
            if r is None:
                append(nan)
            else:
                if first is None:
                    first = i
                append(r)
        outs = [np.array(out, dtype=np.float64)]
    else:
        o0: list = []
        o1: list = []
        o2: list = []
        for i, row in enumerate(zip(*cols)):
            r = peek(*row)
            commit(*row)
            if r[0] is None:
                o0.append(nan)
                o1.append(nan)
                o2.append(nan)
            else:
                if first is None:
                    first = i
                o0.append(r[0])
                o1.append(r[1])
                o2.append(r[2])
        outs = [np.array(o, dtype=np.float64) for o in (o0, o1, o2)]
    m = len(cols[0]) if cols else 0
    return outs, (m if first is None else first)


# --- TA-Lib backed implementations: (state, comp) -> (outputs, first_valid) or None (unusable)


def _ok(*periods: int) -> bool:
    return all(p <= _TALIB_MAX_PERIOD for p in periods)


def _t_sma(st, comp):
    return ([_talib.SMA(comp[0], st.n)], st.n - 1) if _ok(st.n) else None


def _t_ema(st, comp):
    return ([_talib.EMA(comp[0], st.n)], st.n - 1) if _ok(st.n) else None


def _t_wma(st, comp):
    return ([_talib.WMA(comp[0], st.n)], st.n - 1) if _ok(st.n) else None


def _t_rsi(st, comp):
    if st.n < 2 or not _ok(st.n):
        return None
    return [_talib.RSI(comp[0], st.n)], st.n


def _t_macd(st, comp):
    if st.fast < 2 or not _ok(st.slow, st.signal):
        return None
    return list(_talib.MACD(comp[0], st.fast, st.slow, st.signal)), st.slow + st.signal - 2


def _t_boll(st, comp):
    if st.n < 2 or not _ok(st.n) or not abs(st.k) <= 3e37:
        return None
    return list(_talib.BBANDS(comp[0], st.n, st.k, st.k, 0)), st.n - 1


def _t_atr(st, comp):
    return ([_talib.ATR(comp[0], comp[1], comp[2], st.n)], st.n) if _ok(st.n) else None


def _t_cci(st, comp):
    if st.n < 2 or not _ok(st.n):
        return None
    return [_talib.CCI(comp[0], comp[1], comp[2], st.n)], st.n - 1


def _t_obv(st, comp):
    return [_talib.OBV(comp[0], comp[1])], 0


def _kdj(st, comp):
    """Rolling max/min (exact in any order) vectorised, then the K/D recurrence in a loop."""
    h, l, c = comp
    n = st.n
    m = len(c)
    if m < n:
        return [np.full(m, np.nan) for _ in range(3)], m
    if n == 1:
        hn, ln = h, l
    elif _talib is not None and n <= _TALIB_MAX_PERIOD:
        hn = _talib.MAX(h, n)[n - 1:]
        ln = _talib.MIN(l, n)[n - 1:]
    else:
        from numpy.lib.stride_tricks import sliding_window_view

        hn = sliding_window_view(h, n).max(axis=1)
        ln = sliding_window_view(l, n).min(axis=1)
    cc = c[n - 1:]
    with np.errstate(all="ignore"):
        rsv = np.where(hn == ln, 50.0, (cc - ln) / (hn - ln) * 100.0)
    a1, b1, a2, b2 = st._a1, st._b1, st._a2, st._b2
    k = st._k
    d = st._d
    ks = []
    ds = []
    for r in rsv.tolist():
        k = (a1 * k + r) / b1
        d = (a2 * d + k) / b2
        ks.append(k)
        ds.append(d)
    pad = np.full(n - 1, np.nan)
    kk = np.concatenate([pad, np.array(ks, dtype=np.float64)])
    dd = np.concatenate([pad, np.array(ds, dtype=np.float64)])
    return [kk, dd, 3.0 * kk - 2.0 * dd], n - 1


_TALIB_FUNCS: dict[str, Callable] = {
    "SMA": _t_sma,
    "EMA": _t_ema,
    "WMA": _t_wma,
    "RSI": _t_rsi,
    "MACD": _t_macd,
    "BOLL": _t_boll,
    "ATR": _t_atr,
    "CCI": _t_cci,
    "OBV": _t_obv,
}

_PROBE_PARAMS: dict[str, list[tuple]] = {
    "SMA": [(5,), (14,)],
    "EMA": [(5,), (12,)],
    "WMA": [(3,), (10,)],
    "RSI": [(2,), (14,)],
    "MACD": [(12, 26, 9), (5, 35, 1)],
    "BOLL": [(20, 2.0), (5, 1.5)],
    "ATR": [(1,), (14,)],
    "CCI": [(3,), (14,)],
    "OBV": [()],
    "KDJ": [(9, 3, 3), (1, 2, 5)],
}

_AGREES: dict[str, bool] = {}


def _probe_series(n_series: int) -> list:
    """Deterministic probe data: full-precision and cent-rounded random walks at several price
    levels (down to micro quotes), flat stretches and bars with H = L = C (exercises the
    zero-variance/zero-change paths and, with full 53-bit mantissas, any difference in rounding
    order)."""
    rng = np.random.default_rng(20240611)
    m = 600
    parts = [
        50.0 + np.cumsum(rng.normal(scale=0.6, size=m)),
        np.round(80.0 + np.cumsum(rng.normal(scale=0.5, size=m)), 2),
        0.02 + np.cumsum(rng.normal(scale=0.0004, size=m)),
        2e-6 + np.cumsum(rng.normal(scale=2e-8, size=m)),  # micro quotes: no absolute bands
    ]
    c = np.concatenate(parts)
    c[300:340] = c[300]  # flat, full-precision value: sums of it leave rounding residue
    c[700:740] = c[700]
    n = len(c)
    h = c + np.abs(rng.normal(scale=0.3, size=n)) * np.abs(c) / 50.0
    lo = c - np.abs(rng.normal(scale=0.3, size=n)) * np.abs(c) / 50.0
    h[300:335] = lo[300:335] = c[300:335]
    h[720:730] = lo[720:730] = c[720:730]
    vol = np.round(rng.random(n) * 1e5)
    if n_series == 1:
        return [c]
    if n_series == 2:
        return [c, vol]
    return [h, lo, c]


def talib_agrees(name: str, state_class: type, n_series: int, n_outputs: int) -> bool:
    """Whether the vectorised implementation of ``name`` is bit-identical to the row form on the
    probe series (cached)."""
    got = _AGREES.get(name)
    if got is not None:
        return got
    ok = True
    try:
        comp = _probe_series(n_series)
        for params in _PROBE_PARAMS[name]:
            st = state_class(*params)
            fast = _vector(name, st, comp)
            ref_outs, ref_first = row_loop(state_class(*params), n_outputs, comp)
            if fast is None:
                continue
            outs, first = fast
            if first != ref_first:
                ok = False
                break
            for a, b in zip(outs, ref_outs):
                if not np.array_equal(a[first:], b[first:], equal_nan=True):
                    ok = False
                    break
            if not ok:
                break
    except Exception:  # noqa: BLE001 - any failure means "do not use the fast path"
        ok = False
    _AGREES[name] = ok
    return ok


def _vector(name: str, st: Any, comp: list):
    load_talib()
    if name == "KDJ":
        return _kdj(st, comp)
    if _talib is None:
        return None
    return _TALIB_FUNCS[name](st, comp)


def compute(name: str, state_class: type, params: tuple, n_series: int, n_outputs: int,
            comp: list) -> tuple[list, int]:
    """Outputs over compressed, null-free series ``comp`` (float64 arrays of equal length)."""
    st = state_class(*params)
    m = len(comp[0])
    if m == 0:
        return [np.empty(0) for _ in range(n_outputs)], 0
    finite = all(np.isfinite(a).all() for a in comp)
    if finite and talib_agrees(name, state_class, n_series, n_outputs):
        fast = _vector(name, st, comp)
        if fast is not None:
            outs, first = fast
            return [np.asarray(o, dtype=np.float64) for o in outs], min(first, m)
    return row_loop(st, n_outputs, comp)
