"""`dporch backtest` end to end on a real LocalCluster: files, summary, and agreement with a
direct single-process run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dporch.backtest.instruments import run_frame
from dporch.backtest.simulate import Costs
from dporch.cli.app import app

ROOT = Path(__file__).resolve().parents[2]


def test_backtest_command_writes_the_report(tmp_path):
    out = tmp_path / "bt"
    script = ROOT / "workflows" / "ma_cross.dp"
    data = ROOT / "data" / "sample_ticks.csv"
    r = CliRunner().invoke(app, ["backtest", str(script), str(data), "--out", str(out), "--capital", "100000",
                                 "--fee", "0.001", "--no-html"])  # the page: test_sweep.py
    assert r.exit_code == 0, r.output
    for name in ("trades.csv", "equity.csv", "instruments.csv", "summary.json"):
        assert (out / name).exists(), name
    assert not (out / "report.html").exists()
    summary = json.loads((out / "summary.json").read_text())
    port = summary["portfolio"]
    assert port["instruments"] == 5 and port["initial_capital"] == pytest.approx(100000)
    assert set(summary["timings_s"]) >= {"read", "compute", "report", "total"}
    assert "Sharpe" in r.stdout and "Max drawdown" in r.stdout
    trades = pd.read_csv(out / "trades.csv", dtype={"instrument": str})
    assert list(trades.columns)[:6] == ["instrument", "entry_time", "entry_price", "exit_time", "exit_price", "size"]
    # The distributed run agrees with one direct run over all the data.
    df = pd.read_csv(data, dtype={"stock_code": str, "date": str})
    direct = run_frame(df, script.read_text(), str(script), capital_each=20000.0,
                       costs=Costs(fee=0.001)).instruments.set_index("key")
    inst = pd.read_csv(out / "instruments.csv", dtype={"instrument": str}).set_index("instrument")
    for key in direct.index:
        assert inst.loc[key, "final_equity"] == pytest.approx(direct.loc[key, "final_equity"], rel=1e-12)
    equity = pd.read_csv(out / "equity.csv")
    assert equity["equity"].iloc[-1] == pytest.approx(port["final_equity"])


def test_backtest_needs_a_signal_column(tmp_path):
    s = tmp_path / "s.dp"
    s.write_text("-- INPUT close:number --\n-- OUTPUT x --\nreturn [close]\n")
    r = CliRunner().invoke(app, ["backtest", str(s), str(ROOT / "data" / "sample_ticks.csv")])
    assert r.exit_code == 1 and "signal" in r.output


def test_backtest_missing_input(tmp_path):
    r = CliRunner().invoke(app, ["backtest", str(ROOT / "workflows" / "ma_cross.dp"), str(tmp_path / "none*.csv")])
    assert r.exit_code == 2 and "no file matches" in r.output


def test_backtest_task_of_a_tasks_file(tmp_path):
    out = tmp_path / "bt"
    r = CliRunner().invoke(app, ["backtest", str(ROOT / "tasks.toml"), "--task", "backtest-ma-cross", "--out", str(out),
                                 "--no-html"])
    assert r.exit_code == 0, r.output
    script, data = ROOT / "workflows" / "ma_cross.dp", ROOT / "data" / "sample_ticks.csv"
    df = pd.read_csv(data, dtype={"stock_code": str, "date": str})
    direct = run_frame(df, script.read_text(), str(script), capital_each=200000.0,
                       costs=Costs(fee=0.0003)).instruments.set_index("key")
    inst = pd.read_csv(out / "instruments.csv", dtype={"instrument": str}).set_index("instrument")
    assert sorted(inst.index) == sorted(direct.index)
    for key in direct.index:
        assert inst.loc[key, "final_equity"] == pytest.approx(direct.loc[key, "final_equity"], rel=1e-12)


@pytest.mark.parametrize("args, message", [
    (["--task", "nope"], "no valid task 'nope'"),
    (["--task", "history-ma-cross"], "cannot be backtested: a backtest task has one script and a file input"),
])
def test_tasks_that_cannot_be_backtested_are_named(tmp_path, args, message):
    r = CliRunner().invoke(app, ["backtest", str(ROOT / "tasks.toml"), *args, "--out", str(tmp_path)])
    assert r.exit_code == 2 and message in " ".join(r.output.split()), r.output


def test_without_task_the_one_file_task_with_routing_disabled_is_chosen():
    from rich.console import Console

    from dporch.cli.backtest_command import _from_config

    script, data, key, params = _from_config(ROOT / "tasks.toml", None, Console())
    assert script.name == "ma_cross.dp" and data == [str(ROOT / "data" / "sample_ticks.csv")] and key == "stock_code"
    assert params == {}
