"""Backtest report: trades.csv, equity.csv, instruments.csv, summary.json (and sweep.csv for a
sweep), a printed table and a standalone Bokeh page (report.html): the equity curve, the
drawdown and every instrument's price with its fills on date axes, the per-instrument metrics,
and for a sweep a heatmap of the ranking metric. Metric definitions: docs/backtest.md."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .results import BacktestResult, SweepResult, refusal_text

__all__ = ["write_report", "summary_table", "sweep_table", "page_data"]

_ROWS = [
    ("total_return", "Total return", "pct"), ("cagr", "CAGR", "pct"), ("volatility", "Annualised volatility", "pct"),
    ("sharpe", "Sharpe", "num"), ("sortino", "Sortino", "num"), ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_bars", "Max drawdown duration (bars)", "int"), ("calmar", "Calmar", "num"),
    ("trades", "Closed trades", "int"), ("open_trades", "Open trades (valued at the last close)", "int"),
    ("win_rate", "Win rate", "pct"), ("profit_factor", "Profit factor", "num"),
    ("expectancy", "Expectancy", "money"), ("avg_win", "Average win", "money"), ("avg_loss", "Average loss", "money"),
    ("exposure", "Exposure", "pct"), ("fees", "Fees", "money"), ("buy_and_hold", "Buy and hold (mean)", "pct"),
    ("final_equity", "Final equity", "money"),
]
_INSTRUMENT_COLUMNS = [("key", "Instrument", "text"), ("bars", "Bars", "int"), ("total_return", "Return", "pct"),
                       ("cagr", "CAGR", "pct"), ("volatility", "Volatility", "pct"), ("sharpe", "Sharpe", "num"),
                       ("max_drawdown", "Max DD", "pct"), ("trades", "Trades", "int"), ("open_trades", "Open", "int"),
                       ("win_rate", "Win rate", "pct"), ("fees", "Fees", "money"), ("buy_and_hold", "Buy & hold", "pct"),
                       ("final_equity", "Final equity", "money"), ("missing_bars", "Missing bars", "int"),
                       ("refused_orders", "Refused orders", "int")]
_METRIC_KEYS = {k for k, _, _ in _ROWS} | {"bars", "open_trades", "max_drawdown_bars"}
_MAX_TABLE_ROWS = 2000  # instruments listed on the page (all are in instruments.csv)


def _fmt(v: Any, kind: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if kind == "text":
        return str(v)
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
    cfg = result.summary["config"]
    table = Table(title=f"Backtest: {p['instruments']} instrument(s), {p['bars']} portfolio bars",
                  caption=f"{cfg['annualisation']}; CAGR over {cfg['cagr_basis']}")
    table.add_column("Metric")
    table.add_column("Portfolio", justify="right")
    for key, label, kind in _ROWS:
        table.add_row(label, _fmt(p.get(key), kind))
    if p.get("refused_orders"):
        table.add_row("Refused orders", f"{sum(p['refused_orders'].values()):,}")
    if p.get("missing_bars"):
        table.add_row(f"Bars without a usable price ({cfg['missing']})", f"{p['missing_bars']:,}")
    return table


def sweep_table(sweep: SweepResult, top: int = 10) -> Any:
    from rich.table import Table

    t = Table(title=f"Sweep: {len(sweep.table)} combinations, ranked by {sweep.rank} (top {min(top, len(sweep.table))})")
    t.add_column("Rank", justify="right")
    for n in sweep.names:
        t.add_column(n, justify="right")
    for m in ("sharpe", "cagr", "max_drawdown", "trades"):
        if m != sweep.rank:
            t.add_column(m, justify="right")
    t.add_column(sweep.rank, justify="right", style="bold")
    kinds = {k: kind for k, _, kind in _ROWS}
    for _, row in sweep.table.head(top).iterrows():
        cells = [str(int(row["rank"]))] + [_param(row[n]) for n in sweep.names]
        cells += [_fmt(row[m], kinds.get(m, "num")) for m in ("sharpe", "cagr", "max_drawdown", "trades") if m != sweep.rank]
        cells.append(_fmt(row[sweep.rank], kinds.get(sweep.rank, "num")))
        t.add_row(*cells)
    return t


def _param(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _integral(frame: pd.DataFrame) -> pd.DataFrame:
    """Parameter columns holding whole numbers only, as integers (5, not 5.0)."""
    out = frame.copy()
    for c in out.columns:
        v = out[c]
        if v.dtype.kind == "f" and v.notna().all() and (v == v.round()).all() and c not in ("total_return", "cagr"):
            if c in ("rank",) or c not in _METRIC_KEYS:
                out[c] = v.astype("int64")
    return out


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (pd.Timestamp, np.datetime64)):
        return None if pd.isna(obj) else pd.Timestamp(obj).isoformat()
    if hasattr(obj, "item"):
        return _json_safe(obj.item())
    return obj


def _csv_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Datetime columns as text: a date alone when every time of the column is midnight."""
    out = frame.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            s = out[c]
            valid = s.dropna()
            daily = len(valid) == 0 or bool((valid == valid.dt.normalize()).all())
            out[c] = s.dt.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M:%S")
    return out


def write_report(result: BacktestResult, out: Path, *, html_page: bool = True,
                 timings: Callable[[], dict[str, float]] | None = None, sweep: SweepResult | None = None,
                 helper: Any = None) -> list[Path]:
    """Write the report files; summary.json goes last, with ``timings()`` (the time split,
    measured up to that moment) when given. ``helper``: a started
    :class:`~dporch.backtest.page_process.PageProcess` that draws report.html meanwhile."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    page = out / "report.html"
    sent = html_page and helper is not None and helper.send(page_data(result, sweep), page)
    if helper is not None and not sent:
        helper.cancel()
    trades = out / "trades.csv"
    _csv_times(result.trades.rename(columns={"key": "instrument"})).to_csv(trades, index=False)
    equity = out / "equity.csv"
    _csv_times(result.portfolio).to_csv(equity, index=False)
    instruments = out / "instruments.csv"
    _csv_times(result.instruments.rename(columns={"key": "instrument"})).to_csv(instruments, index=False)
    if sweep is not None:
        table = out / "sweep.csv"
        _integral(sweep.table).to_csv(table, index=False)
        files.append(table)
    if html_page:
        if not (sent and helper.wait()):
            from .page import draw

            draw(page_data(result, sweep), page)
        files.append(page)
    if timings is not None:
        result.timings = timings()
    summary = out / "summary.json"
    payload = {**result.summary, "warnings": result.warnings,
               "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
               "instruments": result.instruments.to_dict("records")}
    summary.write_text(json.dumps(_json_safe(payload), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files += [trades, equity, instruments, summary]
    return files



# -- the page data (drawn by page.py) -------------------------------------------------------------


def page_data(result: BacktestResult, sweep: SweepResult | None = None) -> dict[str, Any]:
    """Everything report.html shows, as text and numpy arrays (no pandas: the page's helper
    process does not import it)."""
    port = result.portfolio
    data: dict[str, Any] = {
        "header": _header_html(result), "instruments": _instruments_html(result),
        "time": pd.to_datetime(port["time"]).to_numpy(dtype="datetime64[ns]"),
        "equity": port["equity"].to_numpy(dtype=float), "drawdown": (-port["drawdown"] * 100).to_numpy(dtype=float),
        "charts": [], "note": "", "sweep": _sweep_data(sweep) if sweep is not None else None,
    }
    bars = result.bars
    shown = list(dict.fromkeys(bars["key"])) if len(bars) else []
    total = int(result.summary["portfolio"]["instruments"])
    if total > len(shown):
        data["note"] = (f"<p class='dp'><b>Price and fills of {len(shown)} of {total} instruments</b> (those with the "
                        "most trades; --charts sets how many); every instrument is in the table below and in "
                        "instruments.csv.</p>")
    for key in shown:
        g = bars[bars["key"] == key]
        t = pd.to_datetime(g["time"]).to_numpy(dtype="datetime64[ns]")
        filled = g["filled"].to_numpy()
        price = g["fill_price"].to_numpy(dtype=float)
        data["charts"].append({"key": str(key), "time": t, "close": g["close"].to_numpy(dtype=float),
                               "buy_time": t[filled > 0], "buy_price": price[filled > 0],
                               "sell_time": t[filled < 0], "sell_price": price[filled < 0]})
    return data


_STYLE = ("<style>table.dp{border-collapse:collapse;font:13px sans-serif}table.dp td,table.dp th{padding:2px 8px;"
          "border-bottom:1px solid #ddd}table.dp td.n{text-align:right}p.dp{font:13px sans-serif;margin:2px 0}</style>")


def _header_html(result: BacktestResult) -> str:
    p = result.summary["portfolio"]
    cfg = result.summary["config"]
    rows = "".join(f"<tr><td>{label}</td><td class='n'>{_fmt(p.get(k), kind)}</td></tr>" for k, label, kind in _ROWS)
    lines = [f"{p['instruments']} instrument(s), {cfg['rows']:,} rows, {p['bars']:,} portfolio bars",
             f"Annualisation: {cfg['annualisation']}", f"CAGR over {cfg['cagr_basis']}",
             f"Fills: {cfg['fill']}; fee {cfg['fee']:g}, slippage {cfg['slippage']:g}, minimum fee {cfg['min_fee']:g}, "
             f"stamp duty on sells {cfg['stamp_duty']:g}; lot size {cfg['lot_size'] or 'fractional shares'}; "
             f"T+1 {'on' if cfg['t_plus_1'] else 'off'}; price limit {cfg['price_limit'] or 'none'}",
             f"Missing prices: --missing {cfg['missing']} ({p.get('missing_bars', 0):,} bar(s) affected)"]
    if cfg.get("params"):
        lines.append("Parameters: " + ", ".join(f"{k} = {_param(v)}" for k, v in cfg["params"].items()))
    if p.get("refused_orders"):
        lines.append("Refused orders: " + refusal_text(p["refused_orders"]))
    notes = [f"<p class='dp'>{html.escape(x)}</p>" for x in lines]
    notes += [f"<p class='dp'><b>Warning:</b> {html.escape(w)}</p>" for w in result.warnings]
    notes.append("<p class='dp'>Metric definitions (formulas, annualisation, a worked example): docs/backtest.md "
                 "in dporch.</p>")
    return f"{_STYLE}<h2>dporch backtest</h2>{''.join(notes)}<table class='dp'>{rows}</table>"


def _instruments_html(result: BacktestResult) -> str:
    inst = result.instruments
    if not len(inst):
        return "<p class='dp'>No instrument had bars.</p>"
    head = "".join(f"<th>{label}</th>" for _, label, _ in _INSTRUMENT_COLUMNS)
    body = []
    for rec in inst.head(_MAX_TABLE_ROWS).to_dict("records"):
        cells = "".join(f"<td class='{'' if kind == 'text' else 'n'}'>{html.escape(_fmt(rec.get(k), kind))}</td>"
                        for k, _, kind in _INSTRUMENT_COLUMNS)
        body.append(f"<tr>{cells}</tr>")
    note = (f"<p class='dp'>The first {_MAX_TABLE_ROWS} of {len(inst)} instruments; all are in instruments.csv.</p>"
            if len(inst) > _MAX_TABLE_ROWS else "")
    return f"<h3>Instruments</h3>{note}<table class='dp'><tr>{head}</tr>{''.join(body)}</table>"


def _sweep_data(sweep: SweepResult) -> dict[str, Any]:
    table, rank, names = sweep.table, sweep.rank, sweep.names
    best = ", ".join(f"{n} = {_param(table.loc[0, n])}" for n in names)
    values = table[rank].astype(float)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    out: dict[str, Any] = {
        "intro": (f"<h3>Sweep: {len(table)} combinations ranked by {html.escape(rank)}</h3><p class='dp'>Best: "
                  f"{html.escape(best)} ({html.escape(rank)} {_fmt(table.loc[0, rank], 'num')}); the sections below are "
                  "its full backtest. Every combination is in sweep.csv.</p>"),
        "rank": rank, "low": low, "high": high if high > low else low + 1e-9, "names": list(names[:2])}
    if len(names) >= 2:
        a, b = names[0], names[1]
        grid = table
        note = ""
        if len(names) > 2:  # the best value over the other parameters, for each pair
            grid = grid.sort_values("rank", kind="stable").drop_duplicates([a, b])
            note = f" (the best over {', '.join(names[2:])} for each pair)"
        out.update(title=f"{rank} by {a} and {b}{note}",
                   x=[_param(v) for v in grid[a]], y=[_param(v) for v in grid[b]],
                   x_range=[_param(v) for v in sorted(grid[a].unique(), key=_sort_key)],
                   y_range=[_param(v) for v in sorted(grid[b].unique(), key=_sort_key)],
                   v=grid[rank].astype(float).to_numpy())
    else:
        a = names[0]
        g = table.sort_values(a, key=lambda s: s.map(_sort_key))
        out.update(title=f"{rank} by {a}", x=[_param(v) for v in g[a]], v=g[rank].astype(float).to_numpy())
    return out


def _sort_key(v: Any) -> tuple:
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))
