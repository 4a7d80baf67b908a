"""Parameter sweeps (a best combination known by construction), script parameters of a backtest
(--set, a task's params), the report's contents, and the same numbers on every scheduler."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dporch.backtest.job import sweep_grid
from dporch.cli.app import app

ROOT = Path(__file__).resolve().parents[2]

ENTRY_EXIT = """\
-- INPUT stock_code:string, date:string, close:number --
-- PARAMS entry:number = 0, exit:number = 3 --
-- OUTPUT stock_code:string, date:string, signal:string --
signal = _index == entry ? "buy" : _index == exit ? "sell" : "hold"
return [stock_code, date, signal]
"""

CLOSES = [10, 8, 12, 15, 11, 20]
DATA = "date,stock_code,close\n" + "".join(f"2024-01-0{i + 2},A,{c}\n" for i, c in enumerate(CLOSES))


def test_sweep_ranks_every_combination_and_finds_the_best_by_construction(backtest):
    # Buying at bar e and selling at bar x (same-bar closes, no fee) returns close[x] / close[e] - 1:
    # the best pair is the lowest close (8, bar 1) and the highest after it (20, bar 5).
    r = backtest(DATA, "--same-bar", "--fee", "0", "--capital", "1000", "--sweep", "entry=0:2:1",
                 "--sweep", "exit=3,4,5", "--rank", "total_return", script=ENTRY_EXIT, html=True)
    assert r.code == 0, r.output
    table = r.csv("sweep.csv")
    assert len(table) == 9 and list(table.columns[:2]) == ["entry", "exit"]
    expected = {(e, x): CLOSES[x] / CLOSES[e] - 1 for e in (0, 1, 2) for x in (3, 4, 5)}
    for row in table.itertuples():
        assert row.total_return == pytest.approx(expected[(row.entry, row.exit)])
    assert (table.loc[0, "entry"], table.loc[0, "exit"], table.loc[0, "rank"]) == (1, 5, 1)
    assert (table.loc[1, "entry"], table.loc[1, "exit"]) == (0, 5)  # 20 / 10
    assert list(table["rank"]) == sorted(table["rank"])
    # The report is the best combination's full backtest, with the heatmap.
    assert r.summary["config"]["params"] == {"entry": 1, "exit": 5}
    assert r.summary["config"]["sweep"] == {"combinations": 9, "rank": "total_return", "best": {"entry": 1, "exit": 5}}
    assert r.portfolio["final_equity"] == pytest.approx(2500)
    page = (r.out / "report.html").read_text(encoding="utf-8")
    assert "total_return by entry and exit" in page and "Sweep: 9 combinations ranked by total_return" in page
    assert "Sweep: 9 combinations, ranked by total_return" in r.output


def test_a_lower_is_better_rank_and_one_swept_parameter(backtest):
    r = backtest(DATA, "--same-bar", "--fee", "0", "--sweep", "exit=3:5", "--set", "entry=1",
                 "--rank", "max_drawdown", script=ENTRY_EXIT)
    assert r.code == 0, r.output
    table = r.csv("sweep.csv")
    # Held from 8: selling at 15 (bar 3) never saw a drawdown; holding to bar 4 or 5 saw 15 -> 11.
    assert list(table["exit"]) == [3, 4, 5] and table.loc[0, "max_drawdown"] == 0
    assert table.loc[1, "max_drawdown"] == pytest.approx(4 / 15)


@pytest.mark.parametrize("args, message", [
    (["--sweep", "nope=1,2"], "the script has no parameter nope"),
    (["--sweep", "entry=1:0"], "--sweep entry=1:0: the range is empty"),
    (["--sweep", "entry=a,b"], "parameter entry expects a number (5, -0.5, 1e3): not a number: 'a'"),
    (["--sweep", "entry"], "--sweep expects NAME=START:STOP:STEP or NAME=V1,V2,..., got 'entry'"),
    (["--set", "exit=x"], "parameter exit expects a number"),
    (["--sweep", "entry=1,2", "--rank", "luck"], "--rank luck: choose one of sharpe, sortino"),
])
def test_bad_sweeps_and_values_are_usage_errors(backtest, args, message):
    r = backtest(DATA, *args, script=ENTRY_EXIT)
    assert r.code == 2 and message in r.output, r.output


def test_sweep_grid():
    assert sweep_grid(["a=1:2:0.5", "b=x,y"]) == (["a", "b"], [
        {"a": 1.0, "b": "x"}, {"a": 1.0, "b": "y"}, {"a": 1.5, "b": "x"}, {"a": 1.5, "b": "y"},
        {"a": 2.0, "b": "x"}, {"a": 2.0, "b": "y"}])
    assert sweep_grid(["fast=5:30:5"])[1][-1] == {"fast": 30.0} and len(sweep_grid(["fast=5:30:5"])[1]) == 6


def test_set_and_a_tasks_params_reach_the_backtest(backtest, tmp_path):
    r = backtest(DATA, "--same-bar", "--fee", "0", "--capital", "1000", "--set", "entry=1", "--set", "exit=5",
                 script=ENTRY_EXIT)
    assert r.code == 0 and r.portfolio["final_equity"] == pytest.approx(2500)
    (tmp_path / "ee.dp").write_text(ENTRY_EXIT)
    (tmp_path / "d.csv").write_text(DATA)
    (tmp_path / "tasks.toml").write_text('[[task]]\nid = "bt"\nscripts = ["ee.dp"]\nparams = { entry = 2, exit = 3 }\n'
                                         '[task.input]\ntype = "file"\npath = "d.csv"\n'
                                         '[task.routing]\nenabled = false\nkey_column = "stock_code"\n')
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["backtest", str(tmp_path / "tasks.toml"), "--out", str(out), "--same-bar",
                                   "--fee", "0", "--capital", "1000", "--no-html", "--set", "exit=4"])
    assert res.exit_code == 0, res.output
    summary = pd.read_json(out / "summary.json", typ="series")
    assert summary["config"]["params"] == {"entry": 2, "exit": 4}  # --set overrides the task's value
    assert summary["portfolio"]["final_equity"] == pytest.approx(1000 * 11 / 12)


def test_the_report_shows_every_instrument_on_date_axes_and_lists_open_trades_last(tmp_path):
    out = tmp_path / "bt"
    script = ROOT / "workflows" / "ma_cross.dp"
    data = ROOT / "data" / "sample_ticks.csv"
    r = CliRunner().invoke(app, ["backtest", str(script), str(data), "--out", str(out)])
    assert r.exit_code == 0, r.output
    page = (out / "report.html").read_text(encoding="utf-8")
    keys = sorted(pd.read_csv(data, dtype={"stock_code": str})["stock_code"].unique())
    for k in keys:  # a price panel each, trades or not, and a row in the instruments table
        assert f"{k}: price and fills" in page and f"&lt;td class=''&gt;{k}&lt;/td&gt;" in page
    assert "DatetimeAxis" in page and "NumeralTickFormatter" in page and "&lt;h3&gt;Instruments&lt;/h3&gt;" in page
    assert "252 periods per year (inferred from the bar spacing: daily)" in page
    trades = pd.read_csv(out / "trades.csv", dtype={"instrument": str})
    status = list(trades["status"])
    assert status == sorted(status)  # closed, then open
    assert trades.loc[trades["status"] == "open", "exit_time"].isna().all()
    assert "Open trades (valued at the last close)" in r.stdout
    assert f"{status.count('open')} open trade(s) at the end, valued at the last close" in " ".join(r.output.split())
    # With more instruments than panels, the page says so (checked on the page's data: no drawing).
    from dporch.backtest.job import BacktestOptions, run_backtest
    from dporch.backtest.report import page_data
    from dporch.lang.program import compile_program

    few = run_backtest(compile_program(script.read_text(), str(script)), [str(data)],
                       BacktestOptions(chart_instruments=2))
    shown = page_data(few)
    assert len(shown["charts"]) == 2 and "Price and fills of 2 of 5 instruments" in shown["note"]


def test_the_same_numbers_on_a_running_scheduler_and_in_threads(backtest, scheduler):
    data = (ROOT / "data" / "sample_ticks.csv").read_text()
    script = (ROOT / "workflows" / "ma_cross.dp").read_text()
    threads = backtest(data, "--fee", "0.001", "--same-bar", script=script)
    remote = backtest(data, "--fee", "0.001", "--same-bar", "--scheduler", scheduler, "--partitions", "3", script=script)
    assert threads.code == 0 and remote.code == 0, remote.output
    assert "scheduler tcp://" in remote.output
    a, b = threads.csv("instruments.csv"), remote.csv("instruments.csv")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(threads.csv("trades.csv"), remote.csv("trades.csv"))
    sweep = backtest(data, "--sweep", "fast=3,5", "--sweep", "slow=10,20", "--scheduler", scheduler, script=script)
    local = backtest(data, "--sweep", "fast=3,5", "--sweep", "slow=10,20", script=script)
    pd.testing.assert_frame_equal(sweep.csv("sweep.csv"), local.csv("sweep.csv"))


def test_a_failed_graph_is_reported_as_itself_never_as_lost_dependencies(scheduler, monkeypatch):
    """A graph the scheduler cannot deserialize once (the reported flake) must fail the run with
    that error: the old job waited on the failed persist without noticing and submitted the next
    graph, which the scheduler cancelled for "lost dependencies"."""
    import distributed.scheduler

    from dporch.backtest.job import BacktestOptions, run_backtest
    from dporch.lang.program import compile_program

    real = distributed.scheduler.deserialize
    calls = {"n": 0}

    def once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ImportError("simulated: a graph that does not deserialize")
        return real(*args, **kwargs)

    monkeypatch.setattr(distributed.scheduler, "deserialize", once)
    script = ROOT / "workflows" / "ma_cross.dp"
    program = compile_program(script.read_text(), str(script))
    with pytest.raises(Exception) as e:
        run_backtest(program, [str(ROOT / "data" / "sample_ticks.csv")], BacktestOptions(scheduler=scheduler))
    assert "deserialization" in str(e.value) and "lost dependencies" not in str(e.value)
    monkeypatch.setattr(distributed.scheduler, "deserialize", real)
    result = run_backtest(program, [str(ROOT / "data" / "sample_ticks.csv")], BacktestOptions(scheduler=scheduler))
    assert result.summary["portfolio"]["instruments"] == 5
