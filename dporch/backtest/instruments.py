"""Signals and simulations for the instruments of one partition (runs on a Dask worker).

The script runs in the column form for all instruments of the partition at once, then each
instrument's signals drive its own book. A script that calls POSITION() reads the holdings, so
it runs in the row form bar by bar, interleaved with the book (§13.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..lang import ast as A
from ..lang.cells import json_cell
from ..lang.program import Program, compile_program, locate_error
from ..lang.vector_values import Bool, Col, Num, Str, Unsupported
from .metrics import equity_metrics, trade_metrics
from .simulate import Costs, Simulation, signal_code, simulate, simulate_all_in

__all__ = ["BacktestSpec", "PartitionResult", "run_partition", "program_for", "uses_position"]


@dataclass(frozen=True)
class BacktestSpec:
    """Everything a worker needs (picklable)."""

    source: str
    file: str
    key: str | None
    time: str
    capital_each: float
    costs: Costs
    open_col: str = "open"
    close_col: str = "close"
    periods: int = 252
    risk_free: float = 0.0
    chart_instruments: int = 5  # instruments whose bars come back for the report's charts


@dataclass
class PartitionResult:
    """What a worker sends back: small, whatever the number of bars."""

    instruments: pd.DataFrame  # metrics per instrument
    trades: pd.DataFrame
    curve: pd.DataFrame  # time -> summed equity of this partition's instruments (ffilled)
    capital: float  # initial capital of this partition's instruments
    bars_long: int  # bars with a position, for the exposure
    bars: int
    fees: float
    chart_bars: pd.DataFrame  # bars of the instruments with the most trades


@lru_cache(maxsize=8)
def program_for(source: str, file: str) -> Program:
    return compile_program(source, file)


def uses_position(program: Program) -> bool:
    for st in program.script.body + (program.script.error_block or []):
        for node in A.walk(st):
            if isinstance(node, A.Call) and node.name == "POSITION" and node.pkg is None:
                return True
    return False


def _col_from_series(s: pd.Series, kind: str | None) -> Col:
    """A pandas column as a column-form value (NaN in a number column is null)."""
    if kind == "number":
        v = pd.to_numeric(s, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        null = np.isnan(v)
        return Num(np.where(null, 0.0, v), null if null.any() else None)
    if kind == "bool":
        raise Unsupported("bool inputs in backtests")
    codes, cats = pd.factorize(s.astype("object"), use_na_sentinel=True)
    null = codes < 0
    return Str(np.where(null, 0, codes).astype(np.int32), [str(c) for c in cats], null if null.any() else None)


def _signal_column(program: Program, outs: list[Col], name: str) -> np.ndarray | None:
    if name not in program.outputs:
        return None
    col = outs[program.outputs.index(name)]
    n = len(col.codes) if isinstance(col, Str) else len(col.v)
    if isinstance(col, Str):
        table = np.array([signal_code(c) for c in col.cats] or [0], dtype=np.int8)
        codes = table[col.codes]
    elif isinstance(col, Num):
        codes = np.sign(col.v).astype(np.int8)
    else:
        codes = np.zeros(n, dtype=np.int8)
    if col.null is not None:
        codes = np.where(col.null, 0, codes).astype(np.int8)
    return codes


def _column_signals(program: Program, part: pd.DataFrame, key_codes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    from ..engine.columnar import evaluate

    types = program.input_types
    inputs = {name: _col_from_series(part[name], types.get(name)) if name in part else
              Num(np.zeros(len(part)), np.ones(len(part), dtype=bool)) for name in program.inputs}
    emitted, outs, _ = evaluate(program, inputs, key_codes, len(part))
    n = len(part)
    codes = np.zeros(n, dtype=np.int8)
    sig = _signal_column(program, outs, "signal")
    if sig is not None:
        codes[emitted] = sig
    sizes = None
    if "size" in program.outputs:
        col = outs[program.outputs.index("size")]
        if not isinstance(col, Num):
            raise Unsupported("a non-number size column")
        sizes = np.ones(n)
        sizes[emitted] = np.where(col.null, 1.0, col.v) if col.null is not None else col.v
    return codes, sizes


def _row_strategy(program: Program, part: pd.DataFrame, key: Any) -> Any:
    """A strategy callback running the row form bar by bar (POSITION() sees the book)."""
    columns = list(part.columns)
    bound = program.bind(columns)
    types = program.input_types
    records = part.to_dict("records")
    rows = []
    for rec in records:
        rows.append([json_cell(None if isinstance(v, float) and v != v else v, types.get(c))
                     for c, v in ((c, rec.get(c)) for c in bound.schema)])
    held = {"shares": 0.0}
    S = bound.new_stream(key, total=len(rows), rows=rows, position=lambda: held["shares"])
    outputs = program.outputs
    si = outputs.index("signal") if "signal" in outputs else None
    zi = outputs.index("size") if "size" in outputs else None

    def strategy(t: int, shares: float) -> tuple[int, float]:
        held["shares"] = shares
        try:
            out = bound.step(S, rows[t])
        except Exception as exc:  # noqa: BLE001 - reported with its row and key
            raise locate_error(exc, row=t, key=key) from None
        if out is None or si is None:
            return 0, 1.0
        size = out[zi] if zi is not None else 1.0
        return signal_code(out[si]), float(size) if isinstance(size, float) else 1.0
    return strategy


def run_partition(part: pd.DataFrame, spec: BacktestSpec) -> PartitionResult:
    """Signals, simulations and metrics of every instrument in ``part``."""
    program = program_for(spec.source, spec.file)
    if len(part) == 0:
        return PartitionResult(pd.DataFrame(), _empty_trades(), pd.DataFrame({"time": [], "equity": []}),
                               0.0, 0, 0, 0.0, _empty_bars())
    keys = part[spec.key].astype(str) if spec.key else pd.Series("", index=part.index)
    part = part.assign(_k=keys.to_numpy()).sort_values(["_k", spec.time], kind="stable")
    keys_sorted = part["_k"].to_numpy()
    bounds = np.flatnonzero(keys_sorted[1:] != keys_sorted[:-1]) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(part)]))
    position = uses_position(program)
    codes = sizes = None
    if not position:
        key_codes = pd.factorize(keys_sorted)[0].astype(np.int64)
        try:
            codes, sizes = _column_signals(program, part.drop(columns="_k"), key_codes)
        except Unsupported:
            codes = sizes = None
    opens = part[spec.open_col].to_numpy(dtype=np.float64) if spec.open_col in part else \
        part[spec.close_col].to_numpy(dtype=np.float64)
    closes = part[spec.close_col].to_numpy(dtype=np.float64)
    times = part[spec.time].astype(str).to_numpy()
    time_codes, time_values = pd.factorize(times, sort=True)  # ints: fast union and lookups
    metrics, trades, curves, charts = [], [], [], []  # trades: plain dicts, one frame at the end
    bars_long = 0
    fees = 0.0
    for s, e in zip(starts, ends):
        key = keys_sorted[s]
        sub = slice(s, e)
        if codes is not None and sizes is None:
            sim = simulate_all_in(times[sub], opens[sub], closes[sub], spec.capital_each, spec.costs, codes[sub])
        elif codes is not None:
            sim = simulate(times[sub], opens[sub], closes[sub], spec.capital_each, spec.costs,
                           signals=codes[sub], sizes=sizes[sub])
        else:
            strategy = _row_strategy(program, part.iloc[s:e].drop(columns="_k"), key)
            sim = simulate(times[sub], opens[sub], closes[sub], spec.capital_each, spec.costs,
                           strategy=strategy)
        c = closes[sub]
        closed = [t.pnl for t in sim.trades if t.closed]
        fee_sum = float(sim.fee.sum())
        metrics.append({"key": key,
                        **equity_metrics(sim.equity, spec.capital_each, periods=spec.periods,
                                         risk_free=spec.risk_free),
                        **trade_metrics(np.array(closed), open_trades=len(sim.trades) - len(closed),
                                        fees=fee_sum, shares=sim.shares),
                        "buy_and_hold": float(c[-1] / c[0] - 1) if len(c) and c[0] else None})
        trades += _trade_rows(key, sim)
        curves.append((time_codes[sub], sim.equity))
        charts.append((len(sim.trades), key, times[sub], c, sim))
        bars_long += int((sim.shares > 0).sum())
        fees += fee_sum
    charts.sort(key=lambda x: -x[0])
    chart_bars = pd.concat([_bars_frame(k, t, c, sim) for _, k, t, c, sim in charts[: spec.chart_instruments]],
                           ignore_index=True) if charts else _empty_bars()
    union = np.arange(len(time_values))
    total = np.zeros(len(union))
    for t, eq in curves:
        total += _carry(union, t, eq, spec.capital_each)
    curve = pd.DataFrame({"time": np.asarray(time_values, dtype=object), "equity": total})
    trade_frame = pd.DataFrame(trades, columns=list(_empty_trades().columns)) if trades else _empty_trades()
    return PartitionResult(pd.DataFrame(metrics), trade_frame, curve,
                           spec.capital_each * len(curves), bars_long, len(part), fees, chart_bars)


def _carry(union: np.ndarray, times: np.ndarray, values: np.ndarray, before: float) -> np.ndarray:
    """``values`` (at sorted ``times``) on the ``union`` of times: carried forward, ``before``
    until the first time."""
    pos = np.searchsorted(times, union, side="right") - 1
    out = values[np.clip(pos, 0, None)] if len(values) else np.zeros(len(union))
    return np.where(pos >= 0, out, before)


def _bars_frame(key: Any, times: np.ndarray, closes: np.ndarray, sim: Simulation) -> pd.DataFrame:
    return pd.DataFrame({"key": key, "time": times, "close": closes, "shares": sim.shares,
                         "cash": sim.cash, "equity": sim.equity, "filled": sim.filled,
                         "fill_price": sim.fill_price, "fee": sim.fee})


def _trade_rows(key: Any, sim: Simulation) -> list[dict[str, Any]]:
    return [{"key": key, "entry_time": t.entry_time, "entry_price": t.entry_price, "exit_time": t.exit_time,
             "exit_price": t.exit_price, "size": t.shares, "cost": t.cost, "proceeds": t.proceeds,
             "fees": t.fees, "pnl": t.pnl if t.closed else None, "return": t.ret if t.closed else None,
             "bars_held": t.bars_held} for t in sim.trades]


def _empty_bars() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in [
        ("key", "object"), ("time", "object"), ("close", "float64"), ("shares", "float64"),
        ("cash", "float64"), ("equity", "float64"), ("filled", "float64"), ("fill_price", "float64"),
        ("fee", "float64")]})


def _empty_trades() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in [
        ("key", "object"), ("entry_time", "object"), ("entry_price", "float64"), ("exit_time", "object"),
        ("exit_price", "float64"), ("size", "float64"), ("cost", "float64"), ("proceeds", "float64"),
        ("fees", "float64"), ("pnl", "float64"), ("return", "float64"), ("bars_held", "float64")]})

