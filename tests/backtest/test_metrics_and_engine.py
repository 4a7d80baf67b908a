"""Backtest engine and metrics: hand-computed cases, an independent pandas calculation, and
per-instrument independence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dporch.backtest.instruments import run_frame
from dporch.backtest.metrics import drawdown, equity_metrics, trade_metrics
from dporch.backtest.simulate import Costs, signal_code, simulate, simulate_all_in


def test_signal_codes():
    assert [signal_code(v) for v in ["买入", "buy", "卖出", "sell", "BUY", " Sell ", "持有", "hold", 2.0, -0.5, 0.0,
                                     "1", "-2.5", "0", "1x", None, True]] == \
        [1, 1, -1, -1, 1, -1, 0, 0, 1, -1, 0, 1, -1, 0, 0, 0, 0]


def test_equity_metrics_by_hand():
    equity = np.array([110.0, 99.0, 121.0])
    m = equity_metrics(equity, 100.0, periods=252)
    r = np.array([0.1, -0.1, 121 / 99 - 1])
    assert m["total_return"] == pytest.approx(0.21)
    assert m["cagr"] == pytest.approx(1.21 ** (252 / 3) - 1)
    sd = math.sqrt(((r - r.mean()) ** 2).sum() / 2)
    assert m["volatility"] == pytest.approx(sd * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(r.mean() / sd * math.sqrt(252))
    downside = math.sqrt((0.1 ** 2) / 3)
    assert m["sortino"] == pytest.approx(r.mean() / downside * math.sqrt(252))
    assert m["max_drawdown"] == pytest.approx(0.1)  # 110 -> 99
    assert m["max_drawdown_bars"] == 1
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.1)


def test_drawdown_duration_and_flat_curve():
    dd, mx, bars = drawdown(np.array([100.0, 90.0, 95.0, 100.0, 80.0, 85.0]), 100.0)
    assert mx == pytest.approx(0.2) and bars == 2  # 90, 95 under 100; then 80, 85 until the end
    assert list(np.round(dd, 3)) == [0.0, 0.1, 0.05, 0.0, 0.2, 0.15]
    flat = equity_metrics(np.array([100.0, 100.0]), 100.0)
    assert flat["sharpe"] is None and flat["sortino"] is None and flat["calmar"] is None


def test_trade_metrics_by_hand():
    m = trade_metrics(np.array([10.0, -5.0, 20.0, -5.0]), open_trades=1, fees=3.0, shares=np.array([0, 1, 1, 0]))
    assert m == {"trades": 4, "open_trades": 1, "win_rate": 0.5, "profit_factor": 3.0, "expectancy": 5.0,
                 "avg_win": 15.0, "avg_loss": -5.0, "exposure": 0.5, "fees": 3.0}
    empty = trade_metrics(np.array([]))
    assert empty["win_rate"] is None and empty["profit_factor"] is None


def test_fills_next_bar_open_versus_same_bar_close():
    opens = np.array([10.0, 11.0, 12.0, 13.0])
    closes = np.array([10.5, 11.5, 12.5, 13.5])
    sig = np.array([1, 0, -1, 0], dtype=np.int8)
    nb = simulate(list("abcd"), opens, closes, 1000.0, Costs(fee=0.0), signals=sig)
    assert nb.trades[0].entry_price == 11.0 and nb.trades[0].exit_price == 13.0  # filled a bar later
    sb = simulate(list("abcd"), opens, closes, 1000.0, Costs(fee=0.0, next_bar_open=False), signals=sig)
    assert sb.trades[0].entry_price == 10.5 and sb.trades[0].exit_price == 12.5
    assert sb.equity[-1] == pytest.approx(1000 / 10.5 * 12.5)


def test_fees_slippage_and_partial_sizes():
    opens = closes = np.array([10.0, 10.0, 20.0, 20.0])
    sim = simulate(list("abcd"), opens, closes, 1000.0, Costs(fee=0.01, slippage=0.01, next_bar_open=False),
                   signals=np.array([1, 0, -1, 0], dtype=np.int8), sizes=np.array([0.5, 1, 0.5, 1]))
    pb = 10 * 1.01
    qty = 500 / (pb * 1.01)
    assert sim.shares[0] == pytest.approx(qty)
    assert sim.cash[0] == pytest.approx(500.0)
    sold = qty * 0.5
    assert sim.shares[2] == pytest.approx(qty - sold)
    assert sim.cash[2] == pytest.approx(500 + sold * 20 * 0.99 * 0.99)
    assert not sim.trades[0].closed


def test_all_in_fast_path_equals_the_general_loop():
    rng = np.random.default_rng(3)
    for _ in range(100):
        n = int(rng.integers(1, 200))
        closes = np.round(20 + np.cumsum(rng.normal(0, 0.3, n)), 2)
        opens = np.round(closes + rng.normal(0, 0.1, n), 2)
        sig = rng.choice([-1, 0, 0, 0, 1], n).astype(np.int8)
        for costs in (Costs(), Costs(fee=0.001, slippage=0.002, next_bar_open=False)):
            a = simulate(list(range(n)), opens, closes, 1000.0, costs, signals=sig)
            b = simulate_all_in(list(range(n)), opens, closes, 1000.0, costs, sig)
            for f in ("shares", "cash", "equity", "filled", "fee"):
                assert np.array_equal(getattr(a, f), getattr(b, f))
            assert [(t.entry_bar, t.exit_bar, t.pnl) for t in a.trades] == [(t.entry_bar, t.exit_bar, t.pnl) for t in b.trades]


MA_CROSS = """-- INPUT stock_code:string, date:string, close:number --
-- OUTPUT stock_code:string, date:string, signal:string --
fast = MA(close, 3)
slow = MA(close, 8)
signal = fast[-1] <= slow[-1] and fast > slow ? "buy" : fast[-1] >= slow[-1] and fast < slow ? "sell" : "hold"
return [stock_code, date, signal]
"""


def _series(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = np.round(20 + np.cumsum(rng.normal(0, 0.4, n)), 2)
    opn = np.round(close + rng.normal(0, 0.1, n), 2)
    dates = pd.bdate_range("2020-01-01", periods=n).strftime("%Y-%m-%d")
    return pd.DataFrame({"stock_code": f"{seed:06d}", "date": dates, "open": opn, "close": close})


def test_known_strategy_against_an_independent_pandas_calculation():
    df = _series(1)
    fee = 0.001
    result = run_frame(df, MA_CROSS, "ma.dp", capital_each=10_000.0, costs=Costs(fee=fee))
    # The same strategy and accounting, written directly with pandas.
    fast, slow = df.close.rolling(3).mean(), df.close.rolling(8).mean()
    cross_up = (fast.shift(1) <= slow.shift(1)) & (fast > slow)
    cross_dn = (fast.shift(1) >= slow.shift(1)) & (fast < slow)
    cash, shares, equity = 10_000.0, 0.0, []
    pending = 0
    exits = 0
    for t in range(len(df)):
        if pending == 1 and shares == 0:
            px = df.open[t]
            shares = cash / (px * (1 + fee))
            cash = 0.0
        elif pending == -1 and shares > 0:
            cash = shares * df.open[t] * (1 - fee)
            shares = 0.0
            exits += 1
        pending = 1 if cross_up[t] else -1 if cross_dn[t] else 0
        equity.append(cash + shares * df.close[t])
    m = result.instruments.iloc[0]
    assert m["final_equity"] == pytest.approx(equity[-1], rel=1e-9)
    expected = equity_metrics(np.array(equity), 10_000.0)
    assert m["sharpe"] == pytest.approx(expected["sharpe"], rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(expected["max_drawdown"], rel=1e-9)
    assert m["trades"] == exits and exits > 0


def test_multi_instrument_results_equal_single_instrument_runs():
    frames = [_series(s) for s in (1, 2, 3)]
    both = pd.concat(frames).sort_values(["date", "stock_code"], kind="stable")
    together = run_frame(both, MA_CROSS, "ma.dp", capital_each=10_000.0).instruments.set_index("key")
    for f in frames:
        alone = run_frame(f, MA_CROSS, "ma.dp", capital_each=10_000.0).instruments.set_index("key")
        key = alone.index[0]
        for col in ("final_equity", "total_return", "sharpe", "trades", "max_drawdown"):
            assert together.loc[key, col] == alone.loc[key, col]


def test_position_reflects_holdings_in_the_script():
    src = """-- INPUT stock_code:string, date:string, close:number --
-- OUTPUT stock_code, date, signal, held --
held = POSITION()
signal = held == 0 ? "buy" : "sell"
return [stock_code, date, signal, held]
"""
    df = _series(4, 10)
    res = run_frame(df, src, "pos.dp", capital_each=1000.0, costs=Costs(fee=0.0))
    # buy on bar 0 fills at bar 1's open; from bar 1 the script sees the shares and sells.
    trades = res.trades
    assert len(trades) >= 2
    assert trades.iloc[0]["entry_time"] == pd.Timestamp(df.date[1]) and trades.iloc[0]["exit_time"] == pd.Timestamp(df.date[2])
