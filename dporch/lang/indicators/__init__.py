"""Technical indicators of DPLANG §13.5: SMA (= MA = VOLUME_MA), EMA, WMA, RSI, MACD, BOLL, ATR,
KDJ, CCI, OBV.

Three forms, all computing over V = the series with null positions removed (Decision 3; for
several series a position is removed when any of them is null):

* **Row form** -- one incremental state per call site (``INDICATORS[name].state_class(*params)``)
  with O(1) work per row (CCI: O(n), as TA-Lib):

  - ``peek(*values)`` → the indicator's value at the current row if the row's series value(s)
    are ``values`` (Python floats or None -- convert other numbers first); a float or None, or
    for MACD/BOLL/KDJ a list of 3 (all None during warm-up or on a null row).  Does not change
    the observable state; it caches the would-be new state so that the common
    ``peek(v); commit(v)`` pair (same object ``v``) computes once.
  - ``commit(*values)`` → advance over the row's final value(s); a row with a None value does
    not advance the state.
  - States are plain ``__slots__`` classes: picklable, and a pickled state continues exactly.

* **Array form** -- :func:`last_value` gives the value for the last element of explicit arrays.

* **Column form** -- :func:`column` gives whole output columns for batch execution, bit-identical
  to the row form (TA-Lib where it is identical, else the row form in a loop).

For a null-free series the values equal TA-Lib 0.8 (the ``ta-lib`` Python package with its
bundled C library 0.8.1) **bit for bit** for SMA, EMA, WMA, RSI, MACD, BBANDS (matype 0), ATR,
CCI and OBV at every index where TA-Lib gives a value, and are None exactly where it gives NaN.
The row form replicates TA-Lib's floating-point operation order, including its explicit ``fma``
in EMA/MACD/ATR (see ``_core.fma``), its 1/n scaling in RSI, WMA's and BBANDS's periodic
re-anchoring, and CCI's slot-order sums.  Where TA-Lib rejects a parameter (RSI/CCI/BOLL with
n = 1, MACD with a period of 1, periods > 100000) the same recurrences are simply continued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import DPTypeError
from ._average import EMAState, SMAState, WMAState
from ._core import NOCACHE
from ._oscillators import CCIState, KDJState, MACDState, RSIState
from ._volatility import ATRState, BOLLState, OBVState

__all__ = [
    "IndicatorInfo",
    "INDICATORS",
    "last_value",
    "column",
    "prepare_columns",
    "SMAState",
    "EMAState",
    "WMAState",
    "RSIState",
    "MACDState",
    "BOLLState",
    "ATRState",
    "KDJState",
    "CCIState",
    "OBVState",
    "NOCACHE",
]


@dataclass(frozen=True)
class IndicatorInfo:
    """Registry entry: the state class, how many series (the first call arguments) and which
    numeric parameters (with defaults for the trailing ones) it takes, and 1 or 3 outputs."""

    name: str
    state_class: type
    n_series: int
    param_names: tuple
    defaults: tuple
    n_outputs: int


def _info(name: str, cls: type, n_series: int, params: tuple, defaults: tuple,
          n_outputs: int = 1) -> IndicatorInfo:
    return IndicatorInfo(name, cls, n_series, params, defaults, n_outputs)


INDICATORS: dict[str, IndicatorInfo] = {
    "SMA": _info("SMA", SMAState, 1, ("n",), ()),
    "MA": _info("MA", SMAState, 1, ("n",), ()),
    "VOLUME_MA": _info("VOLUME_MA", SMAState, 1, ("n",), ()),
    "EMA": _info("EMA", EMAState, 1, ("n",), ()),
    "WMA": _info("WMA", WMAState, 1, ("n",), ()),
    "RSI": _info("RSI", RSIState, 1, ("n",), (14,)),
    "MACD": _info("MACD", MACDState, 1, ("fast", "slow", "signal"), (12, 26, 9), 3),
    "BOLL": _info("BOLL", BOLLState, 1, ("n", "k"), (20, 2.0), 3),
    "ATR": _info("ATR", ATRState, 3, ("n",), (14,)),
    "KDJ": _info("KDJ", KDJState, 3, ("n", "m1", "m2"), (9, 3, 3), 3),
    "CCI": _info("CCI", CCIState, 3, ("n",), (14,)),
    "OBV": _info("OBV", OBVState, 2, (), ()),
}

# The implementation each name uses in the column form.
_KIND = {"MA": "SMA", "VOLUME_MA": "SMA"}


def _lookup(name: str) -> IndicatorInfo:
    try:
        return INDICATORS[name]
    except KeyError:
        raise DPTypeError(f"unknown indicator {name}") from None


def _full_params(info: IndicatorInfo, params: tuple) -> tuple:
    params = tuple(params)
    missing = len(info.param_names) - len(params)
    if missing > 0:
        if missing > len(info.defaults):
            raise DPTypeError(f"{info.name} needs parameter(s) "
                              f"{', '.join(info.param_names[len(params):])}")
        params += tuple(info.defaults[len(info.defaults) - missing:])
    elif missing < 0:
        raise DPTypeError(f"{info.name} takes {len(info.param_names)} parameter(s), "
                          f"got {len(params)}")
    return params


def _none_result(info: IndicatorInfo) -> Any:
    return [None, None, None] if info.n_outputs == 3 else None


def last_value(name: str, series: list, params: tuple) -> Any:
    """The indicator's value for the last element of explicit arrays (``MA(close[-19:0], 5)``):
    a fresh state commits every position but the last and peeks the last.  Nulls are skipped
    (so ``SMA([None, None, 10, 11, 12], 5)`` is None).  Empty series → None (``[None]*3``);
    series of unequal length → DPTypeError."""
    info = _lookup(name)
    if len(series) != info.n_series:
        raise DPTypeError(f"{name} takes {info.n_series} series, got {len(series)}")
    lengths = {len(s) for s in series}
    if len(lengths) > 1:
        raise DPTypeError(f"{name}: the series must have equal lengths "
                          f"(got {', '.join(str(len(s)) for s in series)})")
    state = info.state_class(*_full_params(info, params))
    length = lengths.pop() if lengths else 0
    if length == 0:
        return _none_result(info)
    cols = [[None if v is None else float(v) for v in s] for s in series]
    commit = state.commit
    if info.n_series == 1:
        col = cols[0]
        for i in range(length - 1):
            commit(col[i])
        return state.peek(col[-1])
    rows = list(zip(*cols))
    for row in rows[:-1]:
        commit(*row)
    return state.peek(*rows[-1])


def prepare_columns(names: Any, *, without_pandas: bool = False) -> None:
    """Load TA-Lib and check its agreement with the row form (the probes of ``_column``) for
    these indicators ahead of :func:`column` -- the column form does it in a thread while the
    input is read."""
    from . import _column

    _column.load_talib(without_pandas=without_pandas)
    for name in dict.fromkeys(names):
        info = INDICATORS.get(name)
        if info is not None:
            _column.talib_agrees(_KIND.get(name, name), info.state_class, info.n_series, info.n_outputs)


def column(name: str, series: list, present: Any, params: tuple,
           groups: list[tuple[int, int]] | None = None) -> list:
    """Column form for batch execution.

    ``series``: one float64 array per input series (values at non-present rows are ignored);
    ``present``: bool array, True where every input series is non-null; ``groups``: the
    (start, end) slices that are separate streams (default: one stream). Returns one
    ``(values, valid)`` pair of arrays per output (1 or 3): ``valid`` is True exactly where the
    row form (peek/commit over the same series, stream by stream) is non-null, and there
    ``values`` is bit-identical to it; elsewhere ``values`` is NaN.
    """
    import numpy as np  # the column form only: keep start-up free of numpy/talib

    from . import _column

    info = _lookup(name)
    if len(series) != info.n_series:
        raise DPTypeError(f"{name} takes {info.n_series} series, got {len(series)}")
    params = _full_params(info, params)
    info.state_class(*params)  # parameter errors first, even for empty input
    present = np.asarray(present, dtype=bool)
    total = len(present)
    arrs = [np.ascontiguousarray(s, dtype=np.float64) for s in series]
    for a in arrs:
        if a.shape != present.shape:
            raise DPTypeError(f"{name}: series and presence mask must have equal lengths")
    kind = _KIND.get(name, name)
    values = [np.full(total, np.nan) for _ in range(info.n_outputs)]
    valid = [np.zeros(total, dtype=bool) for _ in range(info.n_outputs)]
    for s, e in groups if groups is not None else [(0, total)]:
        if present[s:e].all():
            outs, first = _column.compute(kind, info.state_class, params, info.n_series, info.n_outputs,
                                          [a[s:e] for a in arrs])
            for o, v, ok in zip(outs, values, valid):
                v[s + first:e] = o[first:]
                ok[s + first:e] = True
        else:
            idx = np.flatnonzero(present[s:e]) + s
            outs, first = _column.compute(kind, info.state_class, params, info.n_series, info.n_outputs,
                                          [a[idx] for a in arrs])
            for o, v, ok in zip(outs, values, valid):
                v[idx[first:]] = o[first:]
                ok[idx[first:]] = True
    return list(zip(values, valid))
