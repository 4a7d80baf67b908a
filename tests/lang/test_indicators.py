"""Technical indicators (DPLANG §13.5): row form vs TA-Lib (golden, bit-exact), null skipping,
peek/commit protocol, array form, column form parity, pickling, parameter errors."""

from __future__ import annotations

import math
import pickle
import random
from fractions import Fraction

import numpy as np
import pytest

talib = pytest.importorskip("talib")

from dporch.lang.errors import DPTypeError  # noqa: E402
from dporch.lang.indicators import INDICATORS, IndicatorInfo, column, last_value  # noqa: E402
from dporch.lang.indicators._core import fma, fma_fast, split_const  # noqa: E402

# --------------------------------------------------------------------------- data


def make_market(n: int = 3000, seed: int = 0, scale: float = 100.0, null_frac: float = 0.03,
                decimals: int | None = 2):
    """Seeded random-walk OHLCV (rounded to ``decimals``), with flat stretches, bars with
    H = L = C, and null gaps (isolated and runs, independently per series)."""
    rng = np.random.default_rng(seed)

    def rnd(a):
        return a if decimals is None else np.round(a, decimals)

    c = scale + np.cumsum(rng.normal(scale=scale * 0.01, size=n))
    for s in rng.integers(0, n - 40, size=12):
        c[s:s + rng.integers(3, 35)] = c[s]
    c = rnd(c)
    h = rnd(c + np.abs(rng.normal(scale=scale * 0.005, size=n)))
    lo = rnd(c - np.abs(rng.normal(scale=scale * 0.005, size=n)))
    flat = rng.random(n) < 0.05
    h[flat] = c[flat]
    lo[flat] = c[flat]
    vol = np.round(rng.random(n) * 1e6)
    arrays = {"H": h, "L": lo, "C": c, "V": vol}
    series = {}
    for k, a in arrays.items():
        m = rng.random(n) < null_frac
        for s in rng.integers(0, n - 20, size=3):
            m[s:s + rng.integers(2, 15)] = True
        series[k] = [None if m[i] else float(a[i]) for i in range(n)]
    return series


MARKETS = {
    "cents@100": make_market(seed=0, scale=100.0),
    "cents@0.05": make_market(seed=1, scale=0.05),  # tiny quotes, zeros and sign changes
    "cents@5000": make_market(seed=2, scale=5000.0, null_frac=0.1),
    # a micro-priced instrument at full precision: fixed "is it zero" bands would show here
    "micro": make_market(n=1500, seed=3, scale=2e-6, decimals=None),
}

# name -> (series keys, list of params)
GOLDEN_CASES = {
    "SMA": ("C", [(1,), (2,), (5,), (14,), (30,)]),
    "MA": ("C", [(5,)]),
    "VOLUME_MA": ("V", [(5,), (20,)]),
    "EMA": ("C", [(1,), (2,), (5,), (14,), (30,)]),
    "WMA": ("C", [(1,), (2,), (5,), (14,), (30,)]),
    "RSI": ("C", [(2,), (5,), (14,), (30,)]),
    "MACD": ("C", [(12, 26, 9), (5, 3, 1), (2, 30, 4), (26, 12, 9)]),
    "BOLL": ("C", [(2, 2.0), (5, 1.5), (20, 2.0), (30, 3.0)]),
    "ATR": ("HLC", [(1,), (2,), (5,), (14,), (30,)]),
    "CCI": ("HLC", [(2,), (5,), (14,), (30,)]),
    "OBV": ("CV", [()]),
}


def talib_ref(name: str, arrs: list, params: tuple) -> list:
    """TA-Lib outputs (list of arrays) over compressed, null-free arrays."""
    if name in ("SMA", "MA", "VOLUME_MA"):
        return [talib.SMA(arrs[0], *params)]
    if name == "BOLL":
        n, k = params
        return list(talib.BBANDS(arrs[0], n, k, k, 0))
    out = getattr(talib, name)(*arrs, *params)
    return list(out) if isinstance(out, tuple) else [out]


def feed(state, cols: list) -> list:
    """Row form over the rows: peek then commit (the engine's per-row protocol)."""
    out = []
    for row in zip(*cols):
        out.append(state.peek(*row))
        state.commit(*row)
    return out


def split_outputs(results: list, n_outputs: int) -> list:
    if n_outputs == 1:
        return [results]
    return [[r[k] for r in results] for k in range(n_outputs)]


def present_mask(cols: list) -> np.ndarray:
    return np.array([all(v is not None for v in row) for row in zip(*cols)], dtype=bool)


def golden_params():
    for market in MARKETS:
        for name, (keys, plist) in GOLDEN_CASES.items():
            for params in plist:
                yield pytest.param(market, name, keys, params, id=f"{market}-{name}{params}")


# --------------------------------------------------------------------------- golden vs TA-Lib


@pytest.mark.parametrize("market,name,keys,params", list(golden_params()))
def test_golden_vs_talib(market, name, keys, params):
    """Row form (null rows skipped) == TA-Lib on the compressed series scattered back: None
    exactly where TA-Lib gives NaN (and on null rows), bit-identical elsewhere."""
    series = MARKETS[market]
    cols = [series[k] for k in keys]
    info = INDICATORS[name]
    got = split_outputs(feed(info.state_class(*params), cols), info.n_outputs)
    present = present_mask(cols)
    idx = np.flatnonzero(present)
    comp = [np.array([c[i] for i in idx], dtype=np.float64) for c in cols]
    ref = talib_ref(name, comp, params)
    for k, (g, r) in enumerate(zip(got, ref)):
        assert all(g[i] is None for i in np.flatnonzero(~present)), "null row must give None"
        for j, i in enumerate(idx):
            if math.isnan(r[j]):
                assert g[i] is None, f"output {k} row {i}: expected None (warm-up), got {g[i]}"
            else:
                assert g[i] is not None, f"output {k} row {i}: expected {r[j]!r}, got None"
                assert g[i] == r[j], f"output {k} row {i}: {g[i]!r} != TA-Lib {r[j]!r}"


def test_golden_null_free_warmup_rows():
    """Warm-up on a null-free history (§13.5 warm-up summary)."""
    c = [float(x) for x in np.round(100 + np.cumsum(np.random.default_rng(4).normal(size=80)), 2)]
    first = {
        ("SMA", (5,)): 4, ("EMA", (12,)): 11, ("WMA", (10,)): 9, ("RSI", (14,)): 14,
        ("MACD", (12, 26, 9)): 33, ("BOLL", (20, 2.0)): 19,
    }
    for (name, params), row in first.items():
        out = feed(INDICATORS[name].state_class(*params), [c])
        vals = [o[0] if isinstance(o, list) else o for o in out]
        assert all(v is None for v in vals[:row]), name
        assert all(v is not None for v in vals[row:]), name
    hlc = [[x + 1 for x in c], [x - 1 for x in c], c]
    assert feed(INDICATORS["ATR"].state_class(14), hlc)[13] is None
    assert feed(INDICATORS["ATR"].state_class(14), hlc)[14] is not None
    assert feed(INDICATORS["CCI"].state_class(14), hlc)[13] is not None
    assert feed(INDICATORS["KDJ"].state_class(9, 3, 3), hlc)[7] == [None, None, None]
    assert None not in feed(INDICATORS["KDJ"].state_class(9, 3, 3), hlc)[8]
    assert feed(INDICATORS["OBV"].state_class(), [c, [5.0] * len(c)])[0] == 5.0


def test_flat_series_conventions():
    flat = [7.0] * 40
    assert feed(INDICATORS["RSI"].state_class(14), [flat])[-1] == 0.0  # TA-Lib: 0, not 100/50
    assert feed(INDICATORS["CCI"].state_class(14), [flat] * 3)[-1] == 0.0
    assert feed(INDICATORS["BOLL"].state_class(20, 2.0), [flat])[-1] == [7.0, 7.0, 7.0]
    assert feed(INDICATORS["KDJ"].state_class(9, 3, 3), [flat] * 3)[-1] == [50.0, 50.0, 50.0]


def test_decay_to_zero_matches_talib():
    """Averages decaying into the subnormal range exercise the exact fallback of the FMA."""
    x = np.array([1.0, 3.0, 2.0, 5.0, 4.0] + [0.0] * 3000)

    def subnormal_seen(values):
        return any(0.0 < abs(v) < 2.2250738585072014e-308 for v in values)

    for n in (2, 3, 5):
        got = feed(INDICATORS["EMA"].state_class(n), [x.tolist()])
        assert got[n - 1:] == talib.EMA(x, n)[n - 1:].tolist()
        assert subnormal_seen(got[n - 1:])
    h, lo = x + 1.0, x - 1.0
    h[5:] = lo[5:] = 0.0
    got = feed(INDICATORS["ATR"].state_class(3), [h.tolist(), lo.tolist(), x.tolist()])
    assert got[3:] == talib.ATR(h, lo, x, 3)[3:].tolist()
    assert subnormal_seen(got[3:])
    got = feed(INDICATORS["MACD"].state_class(3, 6, 2), [x.tolist()])
    ref = talib.MACD(x, 3, 6, 2)
    for k in range(3):
        assert [g[k] for g in got[6:]] == ref[k][6:].tolist()
    assert subnormal_seen([g[0] for g in got[6:]])


def test_macd_fast_slow_swap():
    c = MARKETS["cents@100"]["C"]
    a = feed(INDICATORS["MACD"].state_class(12, 26, 9), [c])
    b = feed(INDICATORS["MACD"].state_class(26, 12, 9), [c])
    assert a == b


# --------------------------------------------------------------------------- KDJ


def kdj_reference(h, lo, c, n, m1, m2):
    """Direct transcription of §13.5 (O(n) windows), same operation order."""
    k_prev, d_prev = 50.0, 50.0
    hv, lv = [], []
    out = []
    for hh, ll, cc in zip(h, lo, c):
        if hh is None or ll is None or cc is None:
            out.append([None, None, None])
            continue
        hv.append(hh)
        lv.append(ll)
        if len(hv) < n:
            out.append([None, None, None])
            continue
        hn, ln = max(hv[-n:]), min(lv[-n:])
        rsv = 50.0 if hn == ln else (cc - ln) / (hn - ln) * 100.0
        k_prev = ((m1 - 1) * k_prev + rsv) / m1
        d_prev = ((m2 - 1) * d_prev + k_prev) / m2
        out.append([k_prev, d_prev, 3 * k_prev - 2 * d_prev])
    return out


@pytest.mark.parametrize("params", [(9, 3, 3), (1, 1, 1), (5, 2, 4), (30, 3, 3)])
@pytest.mark.parametrize("market", list(MARKETS))
def test_kdj_golden(market, params):
    s = MARKETS[market]
    cols = [s["H"], s["L"], s["C"]]
    assert feed(INDICATORS["KDJ"].state_class(*params), cols) == kdj_reference(*cols, *params)


def test_kdj_small_example():
    h = [10.0, 12.0, None, 11.0, 13.0]
    lo = [8.0, 9.0, 1.0, 9.5, 10.0]
    c = [9.0, 11.0, 5.0, 10.0, 12.5]
    out = feed(INDICATORS["KDJ"].state_class(3, 3, 3), [h, lo, c])
    assert out[:3] == [[None, None, None]] * 3
    rsv = (10.0 - 8.0) / (12.0 - 8.0) * 100.0  # window rows 0, 1, 3
    k = (2 * 50.0 + rsv) / 3
    d = (2 * 50.0 + k) / 3
    assert out[3] == [k, d, 3 * k - 2 * d]
    rsv2 = (12.5 - 9.0) / (13.0 - 9.0) * 100.0  # rows 1, 3, 4
    k2 = (2 * k + rsv2) / 3
    d2 = (2 * d + k2) / 3
    assert out[4] == [k2, d2, 3 * k2 - 2 * d2]


# --------------------------------------------------------------------------- protocol

ALL_CASES = [
    ("SMA", "C", (5,)), ("SMA", "C", (1,)), ("MA", "C", (20,)), ("VOLUME_MA", "V", (3,)),
    ("EMA", "C", (12,)), ("EMA", "C", (1,)), ("WMA", "C", (10,)), ("WMA", "C", (1,)),
    ("RSI", "C", (14,)), ("RSI", "C", (1,)), ("MACD", "C", (12, 26, 9)),
    ("MACD", "C", (1, 4, 1)), ("BOLL", "C", (20, 2.0)), ("BOLL", "C", (1, 2.0)),
    ("ATR", "HLC", (14,)), ("ATR", "HLC", (1,)), ("KDJ", "HLC", (9, 3, 3)),
    ("KDJ", "HLC", (1, 1, 1)), ("CCI", "HLC", (14,)), ("CCI", "HLC", (1,)), ("OBV", "CV", ()),
]
CASE_IDS = [f"{n}{p}" for n, _, p in ALL_CASES]


def case_cols(keys, length=600, market="cents@100"):
    s = MARKETS[market]
    return [s[k][:length] for k in keys]


@pytest.mark.parametrize("name,keys,params", ALL_CASES, ids=CASE_IDS)
def test_peek_other_values_then_commit_final(name, keys, params):
    """Peeks with other values (or None) before the final commit leave no trace; a commit with an
    equal value that is a different object, or a commit without a final peek, is the same."""
    cols = case_cols(keys)
    info = INDICATORS[name]
    ref = feed(info.state_class(*params), cols)
    rng = random.Random(11)
    st = info.state_class(*params)
    got = []
    for i, row in enumerate(zip(*cols)):
        for _ in range(rng.randrange(3)):
            other = tuple(None if rng.random() < 0.2 else
                          (v if v is not None else 100.0) * (1 + rng.uniform(-0.1, 0.1))
                          for v in row)
            st.peek(*other)
        mode = i % 3
        if mode == 0:
            got.append(st.peek(*row))
            st.commit(*row)
        elif mode == 1:  # equal value, different float objects
            got.append(st.peek(*row))
            st.commit(*(None if v is None else v + 0.0 for v in row))
        else:  # no final peek: the value is read back after the commit by a twin state
            twin = pickle.loads(pickle.dumps(st))
            got.append(twin.peek(*row))
            st.commit(*row)
    assert got == ref


@pytest.mark.parametrize("name,keys,params", ALL_CASES, ids=CASE_IDS)
def test_peek_is_pure_and_null_rows_do_not_advance(name, keys, params):
    cols = case_cols(keys, 200)
    info = INDICATORS[name]
    a = info.state_class(*params)
    b = info.state_class(*params)
    none_row = (None,) * info.n_series
    empty = [None, None, None] if info.n_outputs == 3 else None
    for row in zip(*cols):
        first = a.peek(*row)
        assert a.peek(*row) == first
        assert a.peek(*none_row) == empty
        a.commit(*none_row)  # a null row in between: skipped
        assert a.peek(*row) == first
        a.commit(*row)
        b.peek(*row)
        b.commit(*row)
    assert a.peek(*next(zip(*cols))) == b.peek(*next(zip(*cols)))


@pytest.mark.parametrize("name,keys,params", ALL_CASES, ids=CASE_IDS)
def test_pickle_round_trip_mid_stream(name, keys, params):
    cols = case_cols(keys, 800)
    rows = list(zip(*cols))
    info = INDICATORS[name]
    st = info.state_class(*params)
    for cut in (0, 1, 7, 35, 400):
        st = info.state_class(*params)
        feed(st, [c[:cut] for c in cols])
        if cut:
            st.peek(*rows[cut])  # a cached peek is part of the pickled state
        rest = [c[cut:] for c in cols]
        clones = [pickle.loads(pickle.dumps(st, protocol=p)) for p in (0, pickle.HIGHEST_PROTOCOL)]
        expected = feed(st, rest)
        for clone in clones:
            assert feed(clone, rest) == expected


# --------------------------------------------------------------------------- array form


def test_last_value_spec_examples():
    assert last_value("SMA", [[None, None, 10.0, 11.0, 12.0]], (5,)) is None
    assert last_value("SMA", [[None, None, 10.0, 11.0, 12.0]], (3,)) == 11.0
    assert last_value("MA", [[10.0, 11.0, None]], (2,)) is None  # the last entry is null
    assert last_value("EMA", [[]], (3,)) is None
    assert last_value("MACD", [[]], (12, 26, 9)) == [None, None, None]
    assert last_value("OBV", [[1.0, 2.0], [5.0, 6.0]], ()) == 11.0
    assert last_value("RSI", [[1.0] * 20], ()) == 0.0  # default period 14 filled in
    with pytest.raises(DPTypeError):
        last_value("ATR", [[1.0], [1.0, 2.0], [1.0]], (14,))
    with pytest.raises(DPTypeError):
        last_value("SMA", [[1.0, 2.0]], (0,))


@pytest.mark.parametrize("name,keys,params", ALL_CASES, ids=CASE_IDS)
def test_last_value_equals_row_form(name, keys, params):
    info = INDICATORS[name]
    for length in (1, 3, 40, 300):
        cols = case_cols(keys, length, market="cents@5000")
        assert last_value(name, cols, params) == feed(info.state_class(*params), cols)[-1]


# --------------------------------------------------------------------------- column form


def check_column(name, cols, params):
    info = INDICATORS[name]
    present = present_mask(cols)
    arrs = [np.array([np.nan if v is None else v for v in c], dtype=np.float64) for c in cols]
    res = column(name, arrs, present, params)
    assert len(res) == info.n_outputs
    ref = split_outputs(feed(info.state_class(*params), cols), info.n_outputs)
    for (values, valid), r in zip(res, ref):
        assert valid.dtype == bool and len(valid) == len(r)
        assert valid.tolist() == [x is not None for x in r]
        rv = np.array([np.nan if x is None else x for x in r])
        assert np.array_equal(values[valid], rv[valid], equal_nan=True)


@pytest.mark.parametrize("name,keys,params", ALL_CASES, ids=CASE_IDS)
@pytest.mark.parametrize("market", list(MARKETS))
def test_column_bit_identical_to_row_form(market, name, keys, params):
    s = MARKETS[market]
    check_column(name, [s[k] for k in keys], params)


def test_column_fallbacks_and_edges():
    c = case_cols("C", 300)[0]
    weird = list(c)
    weird[5] = float("nan")  # a NaN value (not a null): TA-Lib's wrapper would shift alignment
    weird[150] = float("inf")
    for name, params in [("SMA", (5,)), ("EMA", (4,)), ("MACD", (3, 6, 2)), ("BOLL", (5, 2.0)),
                         ("RSI", (3,)), ("WMA", (4,))]:
        check_column(name, [weird], params)
    check_column("KDJ", [weird, weird, weird], (3, 3, 3))
    assert [r[0].tolist() for r in column("SMA", [np.empty(0)], np.empty(0, bool), (5,))] == [[]]
    (v, ok), = column("EMA", [np.array([1.0, 2.0])], np.array([True, True]), (5,))
    assert not ok.any()
    with pytest.raises(DPTypeError):
        column("SMA", [np.array([1.0])], np.array([True]), (0,))
    # all rows null
    (v, ok), = column("SMA", [np.array([1.0, 2.0, 3.0])], np.zeros(3, bool), (1,))
    assert not ok.any()


def test_column_groups_are_separate_streams():
    c = case_cols("C", 300)[0]
    arr = np.array([np.nan if v is None else v for v in c], dtype=np.float64)
    present = np.array([v is not None for v in c])
    groups = [(0, 40), (40, 41), (41, 41), (41, 300)]  # an empty group and a one-row group
    for name, params in [("EMA", (5,)), ("MACD", (3, 6, 2)), ("RSI", (3,))]:
        together = column(name, [arr], present, params, groups)
        for s, e in groups:
            alone = column(name, [arr[s:e]], present[s:e], params)
            for (v, ok), (va, oka) in zip(together, alone):
                assert ok[s:e].tolist() == oka.tolist()
                assert np.array_equal(v[s:e], va, equal_nan=True)


# --------------------------------------------------------------------------- registry, errors


def test_registry():
    assert set(INDICATORS) == {"SMA", "MA", "VOLUME_MA", "EMA", "WMA", "RSI", "MACD", "BOLL",
                               "ATR", "KDJ", "CCI", "OBV"}
    shape = {name: (i.n_series, i.param_names, i.defaults, i.n_outputs)
             for name, i in INDICATORS.items()}
    assert shape["SMA"] == shape["MA"] == shape["VOLUME_MA"] == (1, ("n",), (), 1)
    assert shape["EMA"] == shape["WMA"] == (1, ("n",), (), 1)
    assert shape["RSI"] == (1, ("n",), (14,), 1)
    assert shape["MACD"] == (1, ("fast", "slow", "signal"), (12, 26, 9), 3)
    assert shape["BOLL"] == (1, ("n", "k"), (20, 2.0), 3)
    assert shape["ATR"] == shape["CCI"] == (3, ("n",), (14,), 1)
    assert shape["KDJ"] == (3, ("n", "m1", "m2"), (9, 3, 3), 3)
    assert shape["OBV"] == (2, (), (), 1)
    info = INDICATORS["SMA"]
    assert isinstance(info, IndicatorInfo)
    with pytest.raises(Exception):
        info.name = "X"  # frozen
    for name, i in INDICATORS.items():
        assert i.name == name
        params = i.defaults if len(i.defaults) == len(i.param_names) else (5,)
        i.state_class(*params)  # defaults are valid parameters


@pytest.mark.parametrize("name", list(INDICATORS))
def test_period_below_one_is_a_type_error(name):
    info = INDICATORS[name]
    base = list(info.defaults) if len(info.defaults) == len(info.param_names) else [5]
    for pos, pname in enumerate(info.param_names):
        if pname == "k":
            continue
        for bad in (0, -3):
            params = list(base)
            params[pos] = bad
            with pytest.raises(DPTypeError, match="period must be ≥ 1"):
                info.state_class(*params)


# --------------------------------------------------------------------------- the FMA helper


def _exact(a, b, c):
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def test_emulated_fma_is_correctly_rounded():
    rng = random.Random(3)
    for K in (2 / 13, 2 / 27, 2 / 3, 0.5, 1.0, 13 / 14, 0.0, 2 / 100001):
        kh, kl = split_const(K)
        for i in range(6000):
            kind = i % 6
            if kind == 0:
                a, c = rng.uniform(-5, 5), rng.uniform(50, 150)
            elif kind == 1:
                a, c = round(rng.uniform(-5, 5), 2), round(rng.uniform(-5, 5), 2)
            elif kind == 2:  # massive cancellation
                a = rng.uniform(-1, 1)
                c = -a * K * (1 + rng.uniform(-1e-15, 1e-15))
            elif kind == 3:  # subnormal range
                a = rng.uniform(-1, 1) * 2.0 ** rng.randint(-1074, -900)
                c = rng.uniform(-1, 1) * 2.0 ** rng.randint(-1074, -900)
            elif kind == 4:  # short significands: exact ties in p + c
                c = float(rng.randint(1, 2 ** 20)) * 2.0 ** rng.randint(-10, 10)
                a = (rng.randint(-2 ** 12, 2 ** 12) + 0.5) * 2.0 ** rng.randint(-60, -20)
            else:
                a = rng.uniform(-1, 1) * 10.0 ** rng.randint(-300, 300)
                c = rng.uniform(-1, 1) * 10.0 ** rng.randint(-300, 300)
            want = _exact(a, K, c)
            assert fma(a, K, kh, kl, c) == want, (a, K, c)
            assert fma_fast(a, K, kh, kl, c) == want, (a, K, c)
    # double-rounding traps: p + c an exact tie while the product error is tiny
    K = 1.0 + 2.0 ** -52
    kh, kl = split_const(K)
    for a, c in [(1.0 + 2.0 ** -52, 2.0 ** -53), (2.0 ** 53 + 2.0, -(2.0 ** 53)),
                 (3.0, 2.0 ** -51)]:
        assert fma(a, K, kh, kl, c) == _exact(a, K, c)
    assert math.isinf(fma(1e308, 1.0, *split_const(1.0), 1e308))
    assert math.isnan(fma(math.inf, 0.5, *split_const(0.5), -math.inf))
