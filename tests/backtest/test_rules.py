"""Market rules, hand-computed: whole lots, the minimum fee, stamp duty on sells only, T+1, price
limits; and the signal values a backtest recognises."""

from __future__ import annotations

import numpy as np
import pytest

from dporch.backtest.simulate import Costs, cn_a_limit, limit_prices, simulate, simulate_all_in


def run(opens, closes, signals, capital, costs, *, sizes=None, days=None, limit=0.0):
    n = len(closes)
    args = (list(range(n)), np.array(opens, float), np.array(closes, float), capital, costs)
    sig = np.array(signals, dtype=np.int8)
    general = simulate(*args, signals=sig, sizes=None if sizes is None else np.array(sizes, float),
                       days=days, limit=limit)
    if sizes is None:  # the all-in fast path must agree bar for bar
        fast = simulate_all_in(*args, sig, days=days, limit=limit)
        for f in ("shares", "cash", "equity", "filled", "fee"):
            assert np.array_equal(getattr(general, f), getattr(fast, f)), f
        assert general.refused == fast.refused
    return general


def test_lot_rounding_keeps_the_fee_inside_the_cash():
    # 10,000 at 9.99 with 0.03 %: 1000.7 shares -> 10 lots = 1,000 shares, 9,990 + 2.997 fee.
    sim = run([9.99, 9.99], [9.99, 9.99], [1, 0], 10_000.0, Costs(fee=0.0003, lot_size=100, next_bar_open=False))
    assert sim.shares[0] == 1000 and sim.cash[0] == pytest.approx(10_000 - 9_990 - 2.997)
    # At 10.00, 999.7 shares round down to 9 lots: 9,000 + 2.70 fee.
    sim = run([10.0], [10.0], [1], 10_000.0, Costs(fee=0.0003, lot_size=100, next_bar_open=False))
    assert sim.shares[0] == 900 and sim.cash[0] == pytest.approx(10_000 - 9_000 - 2.7)
    # Less cash than one lot: the buy is refused.
    sim = run([10.0], [10.0], [1], 900.0, Costs(fee=0.0, lot_size=100, next_bar_open=False))
    assert sim.shares[0] == 0 and sim.cash[0] == 900.0 and sim.refused == {"cash": 1} and not sim.trades


def test_a_partial_sell_is_whole_lots_and_selling_everything_may_be_an_odd_lot():
    costs = Costs(fee=0.0, lot_size=100, next_bar_open=False)
    sim = run([10] * 3, [10] * 3, [1, -1, -1], 9_050.0, costs, sizes=[1.0, 0.5, 1.0])
    assert sim.shares[0] == 900  # 905 shares of cash, 9 lots
    assert sim.shares[1] == 500  # half of 900 is 450: 4 lots sold
    assert sim.shares[2] == 0 and sim.cash[2] == pytest.approx(9_050.0)
    sim = run([10] * 2, [10] * 2, [1, -1], 9_050.0, costs, sizes=[1.0, 0.05])
    assert sim.shares[1] == 900 and sim.refused == {"lot": 1}  # 45 shares is less than a lot


def test_minimum_fee_on_each_side():
    # 0.03 % of 10,000 is 3 < 5: the fee is 5 and it comes out of the money spent.
    costs = Costs(fee=0.0003, min_fee=5.0, next_bar_open=False)
    sim = run([10, 10], [10, 10], [1, -1], 10_000.0, costs)
    assert sim.shares[0] == pytest.approx(999.5) and sim.fee[0] == 5.0 and sim.cash[0] == 0.0
    assert sim.fee[1] == 5.0 and sim.cash[1] == pytest.approx(9_995 - 5)
    lots = run([10, 10], [10, 10], [1, -1], 10_000.0, Costs(fee=0.0003, min_fee=5.0, lot_size=100, next_bar_open=False))
    assert lots.shares[0] == 900 and lots.fee[0] == 5.0 and lots.cash[0] == pytest.approx(10_000 - 9_000 - 5)


def test_stamp_duty_is_charged_on_sells_only():
    sim = run([10, 12], [10, 12], [1, -1], 1_000.0, Costs(fee=0.0, stamp_duty=0.001, next_bar_open=False))
    assert sim.fee[0] == 0.0 and sim.shares[0] == 100 and sim.cash[0] == 0.0
    assert sim.fee[1] == pytest.approx(1.2) and sim.cash[1] == pytest.approx(1_200 - 1.2)
    t = sim.trades[0]
    assert t.fees == pytest.approx(1.2) and t.pnl == pytest.approx(198.8)
    # With a fee too: the sell pays max(fee, minimum) + stamp duty.
    sim = run([10, 12], [10, 12], [1, -1], 1_000.0,
              Costs(fee=0.001, stamp_duty=0.001, min_fee=5.0, next_bar_open=False))
    assert sim.fee[0] == 5.0  # 0.1 % of 995 is 0.995 < 5
    assert sim.fee[1] == pytest.approx(5.0 + 99.5 * 12 * 0.001)


def test_t_plus_1_refuses_a_sell_on_the_day_of_the_buy():
    # Hourly bars: buy at the first bar's close, a sell the same day is refused, the next day it fills.
    days = [0, 0, 0, 1]
    costs = Costs(fee=0.0, t_plus_1=True, next_bar_open=False)
    sim = run([10, 11, 12, 13], [10, 11, 12, 13], [1, -1, 0, -1], 1_000.0, costs, days=days)
    assert sim.refused == {"t_plus_1": 1}
    assert list(sim.shares) == [100, 100, 100, 0] and sim.cash[-1] == pytest.approx(1_300)
    assert sim.trades[0].exit_bar == 3
    # Without T+1 the same-day sell fills.
    free = run([10, 11, 12, 13], [10, 11, 12, 13], [1, -1, 0, -1], 1_000.0, Costs(fee=0.0, next_bar_open=False),
               days=days)
    assert free.trades[0].exit_bar == 1 and free.cash[-1] == pytest.approx(1_100)
    # Shares bought earlier remain sellable on a day with a new buy: only today's are locked.
    sim = run([10] * 4, [10] * 4, [1, -1, 1, -1], 1_000.0, costs, sizes=[0.5, 1, 1, 1], days=[0, 1, 1, 1])
    assert sim.shares[1] == 0 and sim.shares[2] == 100 and sim.refused == {"t_plus_1": 1}


def test_price_limits_refuse_a_buy_at_limit_up_and_a_sell_at_limit_down():
    assert limit_prices(10.0, 0.10) == (9.0, 11.0)
    assert limit_prices(12.34, 0.10) == (11.11, 13.57)  # 11.106 and 13.574, to the cent
    costs = Costs(fee=0.0)  # next-bar-open fills: the open is compared with the previous close
    up = run([10, 11.0, 11.5], [10, 11.2, 11.6], [1, 0, 0], 1_000.0, costs, limit=0.10)
    assert up.refused == {"limit_up": 1} and not up.trades and up.equity[-1] == 1_000.0
    ok = run([10, 10.99, 11.5], [10, 11.2, 11.6], [1, 0, 0], 1_000.0, costs, limit=0.10)
    assert ok.trades[0].entry_price == 10.99 and not ok.refused
    down = run([10, 10, 9.0, 9.5], [10, 10, 9.2, 9.5], [1, -1, 0, 0], 1_000.0, costs, limit=0.10)
    assert down.refused == {"limit_down": 1} and down.shares[-1] == 100  # the sell at 9.00 did not fill
    assert cn_a_limit("600519") == 0.10 and cn_a_limit("000001") == 0.10 and cn_a_limit("300750") == 0.20
    assert cn_a_limit("688981.SH") == 0.20 and cn_a_limit("830799") == 0.30 and cn_a_limit("AAPL", 0.1) == 0.1


def test_default_costs_keep_the_plain_arithmetic():
    # No rules: fractional shares, proportional fees (the values of the original engine).
    sim = run([10, 20], [10, 20], [1, -1], 1_000.0, Costs(fee=0.01, next_bar_open=False))
    qty = 1_000 / (10 * 1.01)
    assert sim.shares[0] == pytest.approx(qty) and sim.cash[1] == pytest.approx(qty * 20 * 0.99)


def test_random_signals_agree_between_the_fast_path_and_the_loop_under_every_rule():
    rng = np.random.default_rng(7)
    rules = [Costs(lot_size=100, min_fee=5.0, stamp_duty=0.0005, t_plus_1=True),
             Costs(lot_size=1, next_bar_open=False, t_plus_1=True, slippage=0.001),
             Costs(min_fee=5.0, fee=0.001)]
    for _ in range(60):
        n = int(rng.integers(2, 120))
        closes = np.round(20 + np.cumsum(rng.normal(0, 0.6, n)), 2).clip(1)
        opens = np.round(closes * (1 + rng.normal(0, 0.03, n)), 2).clip(1)
        sig = rng.choice([-1, 0, 0, 1], n)
        days = np.cumsum(rng.integers(0, 2, n))
        for costs in rules:
            run(opens, closes, sig, 10_000.0, costs, days=days, limit=0.05)
