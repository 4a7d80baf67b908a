"""Bar times and dirty data, hand-computed: dates parsed and sorted as time (ISO, US and custom
formats), annualisation inferred from the bar spacing (weekly, hourly) or given, CAGR over the
calendar time, every missing-price policy, and the signal values recognised."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dporch.backtest.metrics import equity_metrics
from dporch.backtest.timeaxis import TimeError, annualisation, infer_format, parse_times, spacing_stats

WEEKLY = """
date,stock_code,close,sig
2024-01-05,A,100,buy
2024-01-12,A,110,hold
2024-01-19,A,99,hold
2024-01-26,A,121,hold
2024-02-02,A,132,hold
"""


def test_weekly_bars_are_annualised_with_52_and_cagr_uses_calendar_time(backtest):
    r = backtest(WEEKLY, "--same-bar", "--fee", "0", "--capital", "1000")
    assert r.code == 0, r.output
    p, cfg = r.portfolio, r.summary["config"]
    # Bought 10 shares at the first close: equity 1000, 1100, 990, 1210, 1320.
    returns = np.array([0.0, 0.1, -0.1, 121 / 99 - 1, 132 / 121 - 1])
    sd = returns.std(ddof=1)
    assert cfg["periods_per_year"] == 52 and "weekly" in cfg["annualisation"]
    assert p["final_equity"] == pytest.approx(1320)
    assert p["volatility"] == pytest.approx(sd * math.sqrt(52))
    assert p["sharpe"] == pytest.approx(returns.mean() / sd * math.sqrt(52))
    assert p["cagr"] == pytest.approx(1.32 ** (365.25 / 28) - 1)  # 28 days from the first bar to the last
    downside = math.sqrt(0.1 ** 2 / 5)
    assert p["sortino"] == pytest.approx(returns.mean() / downside * math.sqrt(52))
    assert p["max_drawdown"] == pytest.approx(0.1) and p["max_drawdown_bars"] == 1
    assert p["calmar"] == pytest.approx(p["cagr"] / 0.1)
    assert p["trades"] == 0 and p["open_trades"] == 1 and p["win_rate"] is None
    # The numbers docs/backtest.md's worked example states.
    assert (round(p["cagr"] * 100, 2), round(p["volatility"] * 100, 2), round(p["sharpe"], 3),
            round(p["sortino"], 3), round(p["calmar"], 2)) == (3639.76, 86.86, 3.749, 10.098, 363.98)
    assert cfg["cagr_basis"] == "calendar time from 2024-01-05 to 2024-02-02: 0.077 years"
    assert list(r.csv("equity.csv")["time"]) == ["2024-01-05", "2024-01-12", "2024-01-19", "2024-01-26", "2024-02-02"]


def test_hourly_bars_are_bars_per_trading_day_times_252(backtest):
    rows = ["date,stock_code,close,sig"]
    closes = [10.0, 10.1, 10.2, 10.0, 10.3, 10.4, 10.2, 10.5]
    for i, c in enumerate(closes):
        day = "2024-01-08" if i < 4 else "2024-01-09"
        rows.append(f"{day} {['10:30', '11:30', '14:00', '15:00'][i % 4]}:00,A,{c},{'buy' if i == 0 else 'hold'}")
    r = backtest("\n".join(rows) + "\n", "--same-bar", "--fee", "0", "--capital", "1000")
    assert r.code == 0, r.output
    p, cfg = r.portfolio, r.summary["config"]
    assert cfg["periods_per_year"] == 4 * 252
    assert cfg["annualisation"] == ("1008 periods per year (inferred from the bar spacing: intraday, 4 bars per "
                                    "trading day x 252 days)")
    equity = 100 * np.array(closes)
    returns = np.concatenate(([0.0], equity[1:] / equity[:-1] - 1))
    assert p["volatility"] == pytest.approx(returns.std(ddof=1) * math.sqrt(1008))
    years = (1 + 4.5 / 24) / 365.25  # 2024-01-08 10:30 to 2024-01-09 15:00
    assert p["cagr"] == pytest.approx(1.05 ** (1 / years) - 1)
    assert list(r.csv("equity.csv")["time"])[:2] == ["2024-01-08 10:30:00", "2024-01-08 11:30:00"]


def test_periods_per_year_can_be_given(backtest):
    r = backtest(WEEKLY, "--same-bar", "--fee", "0", "--capital", "1000", "--periods-per-year", "250")
    returns = np.array([0.0, 0.1, -0.1, 121 / 99 - 1, 132 / 121 - 1])
    assert r.summary["config"]["periods_per_year"] == 250
    assert r.summary["config"]["annualisation"] == "250 periods per year (--periods-per-year)"
    assert r.portfolio["volatility"] == pytest.approx(returns.std(ddof=1) * math.sqrt(250))


def test_annualisation_by_spacing():
    def stats(freq: str, n: int = 60) -> tuple:
        import pandas as pd

        return spacing_stats(pd.date_range("2024-01-01", periods=n, freq=freq).to_numpy())
    assert annualisation([stats("B")]).periods == 252
    assert annualisation([stats("D")]).periods == 365  # weekends have bars: a 365-day calendar
    assert annualisation([stats("W-FRI")]).periods == 52
    assert annualisation([stats("MS")]).periods == 12
    assert annualisation([stats("QS")]).periods == 4
    assert annualisation([stats("YS", 10)]).periods == 1
    assert annualisation([stats("h", 24 * 20)]).periods == 24 * 365
    assert annualisation([], None).periods == 252
    assert annualisation([stats("B")], 12).periods == 12


def test_dates_in_other_formats_are_parsed_and_sorted_as_time(backtest):
    # As text, 1/10/2024 sorts before 1/8/2024; as dates it is two days later.
    data = """
    date,stock_code,close,sig
    1/10/2024,A,12,hold
    1/8/2024,A,10,buy
    1/9/2024,A,11,hold
    1/11/2024,A,9,sell
    """
    r = backtest(data, "--same-bar", "--fee", "0", "--capital", "1000")
    assert r.code == 0, r.output
    assert r.summary["config"]["time_format"] == "%m/%d/%Y"
    assert list(r.csv("equity.csv")["equity"]) == pytest.approx([1000, 1100, 1200, 900])
    trades = r.csv("trades.csv")
    assert list(trades[["entry_time", "exit_time"]].iloc[0]) == ["2024-01-08", "2024-01-11"]
    day_first = backtest(data.replace("1/10/2024", "13/1/2024").replace("1/8/2024", "8/1/2024")
                         .replace("1/9/2024", "9/1/2024").replace("1/11/2024", "14/1/2024"),
                         "--same-bar", "--fee", "0")
    assert day_first.summary["config"]["time_format"] == "%d/%m/%Y"
    custom = backtest(data.replace("/", "."), "--same-bar", "--fee", "0", "--capital", "1000",
                      "--time-format", "%m.%d.%Y")
    assert custom.code == 0 and list(custom.csv("equity.csv")["equity"]) == pytest.approx([1000, 1100, 1200, 900])


def test_an_unparsable_time_names_the_value_and_its_line(backtest, monkeypatch):
    data = """
    date,stock_code,close,sig
    2024-01-08,A,10,buy
    2024-01-09,A,11,hold
    2024-13-45,A,12,hold
    """
    r = backtest(data)
    assert r.code == 2
    assert "time value '2024-13-45' is not a date or time this program reads" in r.output
    assert "d0.csv line 4); give its format with --time-format, e.g. --time-format '%d/%m/%Y'" in r.output
    r = backtest(data, "--time-format", "%Y-%m-%d")
    assert r.code == 2 and "time value '2024-13-45' does not match --time-format '%Y-%m-%d'" in r.output
    # Beyond the sample the format is inferred from, each partition reports the value and its instrument.
    import dporch.backtest.job as job

    monkeypatch.setattr(job, "sample_times", lambda paths, column: ["2024-01-08"])
    r = backtest(data)
    assert r.code == 2
    assert "time column 'date': '2024-13-45' is not a time in the format ISO 8601 (instrument A, " in r.output
    assert "d2.csv line 4); give the format with --time-format" in r.output
    with pytest.raises(TimeError, match="'someday' is not a date or time"):
        infer_format(["2024-01-08", "someday"])
    assert infer_format(["20240108", "20240109"]) == "ISO8601"
    fmt = infer_format(["2024/1/8 9:30", "2024/1/8 10:30"])
    assert parse_times(["2024/1/8 9:30"], fmt)[0] == np.datetime64("2024-01-08T09:30")
    assert infer_format(["08.01.2024", "13.01.2024"]) == "%d.%m.%Y"
    assert parse_times(["2024-01-08 09:30:00+08:00"], "ISO8601")[0] == np.datetime64("2024-01-08T09:30")


def test_duplicate_bars_are_refused(backtest):
    r = backtest("date,stock_code,close,sig\n2024-01-08,A,10,buy\n2024-01-08,A,11,hold\n")
    assert r.code == 2 and "instrument A has two bars at 2024-01-08" in r.output


MISSING = """
date,stock_code,open,close,sig
2024-01-02,A,10,10,buy
2024-01-03,A,11,11,sell
2024-01-04,A,,,hold
2024-01-05,A,12,12,hold
2024-01-08,A,13,13,hold
2024-01-02,B,20,20,hold
2024-01-03,B,20,20,hold
2024-01-04,B,20,20,hold
2024-01-05,B,20,20,hold
2024-01-08,B,20,20,hold
"""


def test_missing_price_is_an_error_by_default(backtest):
    r = backtest(MISSING, "--fee", "0")
    assert r.code == 2
    assert ("instrument A has no value in column 'close' at 2024-01-04 (1 bar(s) without a usable close in this part "
            "of the data); choose a policy for such bars: --missing skip or --missing ffill") in r.output


def test_missing_skip_leaves_the_bar_out_and_the_order_fills_at_the_next_one(backtest):
    r = backtest(MISSING, "--fee", "0", "--capital", "2000", "--missing", "skip")
    assert r.code == 0, r.output
    inst = r.csv("instruments.csv").set_index("instrument")
    # Bought at 01-03's open (11), the sell fills at 01-05's open (12): 01-04 is gone.
    assert inst.loc["A", "final_equity"] == pytest.approx(1000 / 11 * 12)
    assert inst.loc["A", "bars"] == 4 and inst.loc["A", "missing_bars"] == 1 and inst.loc["B", "missing_bars"] == 0
    assert r.portfolio["missing_bars"] == 1
    assert "1 bar(s) of 1 instrument(s) had no usable price: left out (--missing skip)" in r.summary["warnings"]


def test_missing_ffill_carries_the_previous_price(backtest):
    r = backtest(MISSING, "--fee", "0", "--capital", "2000", "--missing", "ffill")
    assert r.code == 0, r.output
    inst = r.csv("instruments.csv").set_index("instrument")
    # The sell fills at 01-04's open, carried from 01-03: 11, so A ends where it started.
    assert inst.loc["A", "final_equity"] == pytest.approx(1000)
    assert inst.loc["A", "bars"] == 5 and r.portfolio["missing_bars"] == 1
    lead = backtest("date,stock_code,close,sig\n2024-01-02,A,,buy\n2024-01-03,A,10,buy\n2024-01-04,A,11,hold\n",
                    "--same-bar", "--fee", "0", "--capital", "1000", "--missing", "ffill")
    # A first bar with nothing before it to carry is left out.
    assert lead.portfolio["bars"] == 2 and lead.portfolio["final_equity"] == pytest.approx(1100)


def test_metrics_use_valid_values_only():
    clean = equity_metrics(np.array([110.0, 99.0, 121.0]), 100.0, years=1.0)
    holed = equity_metrics(np.array([110.0, np.nan, 99.0, 121.0, np.nan]), 100.0, years=1.0)
    for k in ("final_equity", "total_return", "cagr", "sharpe", "max_drawdown", "volatility"):
        assert holed[k] == pytest.approx(clean[k]), k
    assert clean["max_drawdown"] == pytest.approx(0.1) and clean["sharpe"] > 0 and clean["cagr"] == pytest.approx(0.21)


def test_upper_case_and_chinese_signals_trade(backtest):
    data = """
    date,stock_code,close,sig
    2024-01-02,A,10,BUY
    2024-01-03,A,11,hold
    2024-01-04,A,12,SELL
    2024-01-05,A,12,买入
    2024-01-08,A,15,卖出
    """
    r = backtest(data, "--same-bar", "--fee", "0", "--capital", "1000")
    assert r.code == 0 and r.portfolio["trades"] == 2
    assert r.portfolio["final_equity"] == pytest.approx(1000 * 1.2 * 1.25)


def test_no_recognised_signal_warns_with_the_values_seen(backtest):
    data = "date,stock_code,close,sig\n2024-01-02,A,10,Long\n2024-01-03,A,11,hold\n2024-01-04,A,12,Short\n"
    r = backtest(data, "--same-bar")
    assert r.code == 0 and r.portfolio["trades"] == 0
    assert ("warning: the script produced no buy or sell signal, so there are no trades. The signal column held: "
            "'Long', 'Short', 'hold'.") in r.output
