"""Backtest report: trades.csv, equity.csv, instruments.csv, summary.json, a printed table and a
standalone Bokeh page (report.html) with the equity curve, the drawdown and trade markers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .job import BacktestResult

__all__ = ["write_report", "summary_table"]

_ROWS = [
    ("total_return", "Total return", "pct"), ("cagr", "CAGR", "pct"), ("volatility", "Annualised volatility", "pct"),
    ("sharpe", "Sharpe", "num"), ("sortino", "Sortino", "num"), ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_bars", "Max drawdown duration (bars)", "int"), ("calmar", "Calmar", "num"),
    ("trades", "Trades", "int"), ("win_rate", "Win rate", "pct"), ("profit_factor", "Profit factor", "num"),
    ("expectancy", "Expectancy", "money"), ("avg_win", "Average win", "money"), ("avg_loss", "Average loss", "money"),
    ("exposure", "Exposure", "pct"), ("fees", "Fees", "money"), ("buy_and_hold", "Buy and hold (mean)", "pct"),
    ("final_equity", "Final equity", "money"),
]


def _fmt(v: Any, kind: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if kind == "pct":
        return f"{v * 100:.2f}%"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "money":
        return f"{v:,.2f}"
    return f"{v:.3f}"


def summary_table(result: BacktestResult) -> Any:
    from rich.table import Table

    p = result.summary["portfolio"]
    table = Table(title=f"Backtest: {p['instruments']} instrument(s), {p['bars']} portfolio bars")
    table.add_column("Metric")
    table.add_column("Portfolio", justify="right")
    for key, label, kind in _ROWS:
        table.add_row(label, _fmt(p.get(key), kind))
    return table


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item"):
        return _json_safe(obj.item())
    return obj


def write_report(result: BacktestResult, out: Path, *, html: bool = True,
                 timings: Callable[[], dict[str, float]] | None = None) -> list[Path]:
    """Write the report files; summary.json goes last, with ``timings()`` (the time split,
    measured up to that moment) when given."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    trades = out / "trades.csv"
    result.trades.rename(columns={"key": "instrument"}).to_csv(trades, index=False)
    equity = out / "equity.csv"
    result.portfolio.to_csv(equity, index=False)
    instruments = out / "instruments.csv"
    result.instruments.rename(columns={"key": "instrument"}).to_csv(instruments, index=False)
    if html:
        page = out / "report.html"
        _bokeh_page(result, page)
        files.append(page)
    if timings is not None:
        result.timings = timings()
    summary = out / "summary.json"
    payload = {**result.summary, "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
               "instruments": result.instruments.to_dict("records")}
    summary.write_text(json.dumps(_json_safe(payload), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files += [trades, equity, instruments, summary]
    return files


def _bokeh_page(result: BacktestResult, path: Path, max_instruments: int = 5) -> None:
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, Div
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    port = result.portfolio
    x = list(range(len(port)))
    labels = [str(t) for t in port["time"]]
    src = ColumnDataSource({"x": x, "time": labels, "equity": port["equity"].tolist(),
                            "drawdown": (-port["drawdown"] * 100).tolist()})
    eq = figure(title="Portfolio equity", height=300, sizing_mode="stretch_width",
                tooltips=[("time", "@time"), ("equity", "@equity{0,0.00}")])
    eq.line("x", "equity", source=src, line_width=2)
    dd = figure(title="Drawdown (%)", height=180, sizing_mode="stretch_width", x_range=eq.x_range,
                tooltips=[("time", "@time"), ("drawdown", "@drawdown{0.00}%")])
    dd.varea("x", 0, "drawdown", source=src, fill_alpha=0.4, fill_color="firebrick")
    parts: list[Any] = [Div(text=_summary_html(result)), eq, dd]
    counts = result.trades.groupby("key").size().sort_values(ascending=False) if len(result.trades) else pd.Series(dtype=int)
    for key in list(counts.index[:max_instruments]):
        g = result.bars[result.bars["key"] == key].reset_index(drop=True)
        bx = list(range(len(g)))
        fig = figure(title=f"{key}: price and fills", height=250, sizing_mode="stretch_width",
                     tooltips=[("time", "@time"), ("price", "@y{0.00}")])
        fig.line(bx, g["close"].tolist(), color="gray")
        buys = g[g["filled"] > 0]
        sells = g[g["filled"] < 0]
        fig.scatter(buys.index.tolist(), buys["fill_price"].tolist(), marker="triangle", size=9,
                    color="green", legend_label="buy")
        fig.scatter(sells.index.tolist(), sells["fill_price"].tolist(), marker="inverted_triangle", size=9,
                    color="red", legend_label="sell")
        parts.append(fig)
    path.write_text(file_html(column(*parts, sizing_mode="stretch_width"), INLINE, "dporch backtest"),
                    encoding="utf-8")


def _summary_html(result: BacktestResult) -> str:
    p = result.summary["portfolio"]
    rows = "".join(f"<tr><td>{label}</td><td style='text-align:right'>{_fmt(p.get(k), kind)}</td></tr>"
                   for k, label, kind in _ROWS)
    return f"<h2>dporch backtest</h2><table>{rows}</table>"
