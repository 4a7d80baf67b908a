"""Per-partition work of a backtest (runs on a Dask worker or a thread): prepare the bars, then
compute signals, simulations and metrics for the instruments of the partition.

:func:`prepare_partition` parses the time column, sorts each instrument's bars by time, and
applies the missing-price policy (docs/backtest.md, "Missing data"). :func:`run_partition` runs
the script in the column form for all instruments of the partition at once, then each
instrument's signals drive its own book. A script that calls POSITION() reads the holdings, so
it runs in the row form bar by bar, interleaved with the book (docs/language.md §13.6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from .timeaxis import TimeError, parse_times, spacing_stats, years_between

__all__ = ["BacktestSpec", "PrepareSpec", "Prepared", "PartitionResult", "DataError", "prepare_partition",
           "run_partition", "run_frame", "program_for", "uses_position", "MISSING_POLICIES"]

MISSING_POLICIES = ("error", "skip", "ffill")
_SIGNAL_SAMPLES = 20  # distinct signal values kept for the "no recognised signal" warning


class DataError(ValueError):
    """Data the backtest cannot use as it is: a missing price, a duplicate bar, a row without
    an instrument. Picklable (it crosses from workers)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class PrepareSpec:
    key: str | None
    time: str
    time_format: str
    missing: str = "error"  # error | skip | ffill
    price_cols: tuple[str, ...] = ("close",)  # prices the engine uses: they must be usable


@dataclass
class Prepared:
    """One partition's bars, sorted by instrument and time, with the missing-price policy
    applied; kept in memory (or on a worker) for every run over the same data."""

    frame: pd.DataFrame  # the data columns, sorted by instrument and time
    times: np.ndarray  # datetime64[ns] of each row
    keys: np.ndarray  # the instrument (text) of each instrument, in order
    starts: np.ndarray  # first row of each instrument
    ends: np.ndarray
    rows_read: int
    missing: dict[str, int] = field(default_factory=dict)  # instrument -> bars the policy touched
    stats: list = field(default_factory=list)  # spacing_stats per instrument
    columns: dict = field(default_factory=dict, repr=False)  # (name, type) -> column-form input, made once


@dataclass(frozen=True)
class BacktestSpec:
    """Everything a worker needs to run a script over a prepared partition (picklable)."""

    source: str
    file: str
    capital_each: float
    costs: Costs
    params: tuple = ()  # (name, value) pairs for the script's -- PARAMS --
    open_col: str = "open"
    close_col: str = "close"
    periods: float = 252
    risk_free: float = 0.0
    chart_instruments: int = 10  # instruments whose bars come back for the report's charts
    light: bool = False  # a sweep: only what the portfolio metrics need


@dataclass
class PartitionResult:
    """What a worker sends back: small, whatever the number of bars."""

    instruments: pd.DataFrame  # metrics per instrument
    trades: pd.DataFrame
    curve_times: np.ndarray  # datetime64: the union of this partition's bar times
    curve_equity: np.ndarray  # summed equity of this partition's instruments (carried forward)
    capital: float  # initial capital of this partition's instruments
    bars_long: int  # bars with a position, for the exposure
    bars: int
    fees: float
    chart_bars: pd.DataFrame  # bars of the instruments with the most trades
    refused: dict[str, int] = field(default_factory=dict)
    signal_values: list[str] = field(default_factory=list)  # distinct values of the signal column (a sample)
    recognised: int = 0  # bars whose signal is a buy or a sell
    pnls: np.ndarray = field(default_factory=lambda: np.zeros(0))  # closed trades' P&L
    open_trades: int = 0


# -- preparing ---------------------------------------------------------------------------------


def _fmt_time(t: Any) -> str:
    ts = pd.Timestamp(t)
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else str(ts)


def prepare_partition(part: pd.DataFrame, spec: PrepareSpec) -> Prepared:
    """Parse, sort, check and clean one partition (raises DataError or TimeError)."""
    n = len(part)
    empty = np.zeros(0, dtype=np.int64)
    if n == 0:
        return Prepared(part, np.zeros(0, dtype="datetime64[ns]"), np.zeros(0, dtype=object), empty, empty, 0)
    if spec.key:
        raw = part[spec.key]
        if raw.isna().any():
            i = int(np.flatnonzero(raw.isna().to_numpy())[0])
            raise DataError(f"a row has no value in the instrument column {spec.key!r} "
                            f"(its {spec.time} is {part[spec.time].iloc[i]!r})")
        keys = raw.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(keys, skipna=False) != "string":
            keys = raw.astype(str).to_numpy(dtype=object)  # codes read as numbers (Parquet)
    else:
        keys = np.full(n, "", dtype=object)
    try:
        times = parse_times(part[spec.time], spec.time_format, column=f"time column {spec.time!r}:")
    except TimeError as exc:
        where = part[spec.time].astype(str).to_numpy() == str(exc.value)
        key = keys[np.flatnonzero(where)[0]] if where.any() else None
        if spec.key and key is not None:
            exc.key = key
            exc.where.append(f"instrument {key}")
        raise
    codes, _ = pd.factorize(keys, sort=True)
    order = np.lexsort((times.astype(np.int64), codes))
    frame = part.take(order).reset_index(drop=True)
    keys, times, codes = keys[order], times[order], codes[order]
    same = (codes[1:] == codes[:-1]) & (times[1:] == times[:-1])
    if same.any():
        i = int(np.flatnonzero(same)[0])
        what = f"instrument {keys[i]} has" if spec.key else "the data has"
        raise DataError(f"{what} two bars at {_fmt_time(times[i])} ({int(same.sum())} duplicate bar(s)); "
                        f"each instrument needs one bar per time (see --key and --time)")
    group_start = np.concatenate(([0], np.flatnonzero(codes[1:] != codes[:-1]) + 1))
    bad_any = np.zeros(n, dtype=bool)
    drop = np.zeros(n, dtype=bool)
    for col in spec.price_cols:
        if col not in frame:
            continue
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(values) & (values > 0))
        if not bad.any():
            frame[col] = values
            continue
        if spec.missing == "error":
            i = int(np.flatnonzero(bad)[0])
            cell = frame[col].iloc[i]
            shown = "no value" if pd.isna(cell) or str(cell).strip() == "" else f"{cell!r}, not a usable price"
            who = f"instrument {keys[i]}" if spec.key else "the data"
            raise DataError(f"{who} has {shown} in column {col!r} at {_fmt_time(times[i])} "
                            f"({int(bad.sum())} bar(s) without a usable {col} in this part of the data); "
                            "choose a policy for such bars: --missing skip or --missing ffill")
        bad_any |= bad
        if spec.missing == "skip":
            drop |= bad
        else:  # ffill: the instrument's last usable value of the column
            row_group_start = group_start[np.searchsorted(group_start, np.arange(n), side="right") - 1]
            last = np.maximum.accumulate(np.where(bad, -1, np.arange(n)))
            none_before = last < row_group_start
            drop |= bad & none_before
            values = np.where(bad & ~none_before, values[np.maximum(last, 0)], values)
        frame[col] = values
    missing: dict[str, int] = {}
    if bad_any.any():
        ks, counts = np.unique(keys[bad_any], return_counts=True)
        missing = {str(k): int(c) for k, c in zip(ks, counts)}
    if drop.any():
        keep = ~drop
        frame = frame[keep].reset_index(drop=True)
        keys, times, codes = keys[keep], times[keep], codes[keep]
    m = len(frame)
    if m == 0:
        return Prepared(frame, times, np.zeros(0, dtype=object), empty, empty, n, missing)
    bounds = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate(([0], bounds)).astype(np.int64)
    ends = np.concatenate((bounds, [m])).astype(np.int64)
    stats = [spacing_stats(times[s:e]) for s, e in zip(starts, ends)]
    return Prepared(frame, times, keys[starts], starts, ends, n, missing, stats)


# -- signals -----------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def program_for(source: str, file: str, params: tuple = ()) -> Program:
    return compile_program(source, file, params=dict(params) if params else None)


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


def _signal_column(program: Program, outs: list[Col], name: str) -> tuple[np.ndarray | None, list[str]]:
    """(codes, a sample of the distinct values) of the output column ``name``."""
    if name not in program.outputs:
        return None, []
    col = outs[program.outputs.index(name)]
    valid = None if col.null is None else ~col.null
    if isinstance(col, Str):
        table = np.array([signal_code(c) for c in col.cats] or [0], dtype=np.int8)
        codes = table[col.codes]
        used = np.unique(col.codes if valid is None else col.codes[valid])
        seen = [col.cats[i] for i in used[:_SIGNAL_SAMPLES]]
    elif isinstance(col, Num):
        codes = np.sign(col.v).astype(np.int8)
        seen = [_num_text(x) for x in np.unique(col.v if valid is None else col.v[valid])[:_SIGNAL_SAMPLES]]
    else:
        codes = np.zeros(len(col.v), dtype=np.int8)
        v = col.v if valid is None else col.v[valid]
        seen = [("true" if x else "false") for x in np.unique(v)] if isinstance(col, Bool) else []
    if col.null is not None:
        codes = np.where(col.null, 0, codes).astype(np.int8)
        if col.null.any():
            seen.append("null")
    return codes, seen


def _num_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _column_signals(program: Program, part: pd.DataFrame, key_codes: np.ndarray | None,
                    cache: dict | None = None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    from ..engine.columnar import evaluate

    types = program.input_types
    cache = {} if cache is None else cache
    inputs = {}
    for name in program.inputs:
        col = cache.get((name, types.get(name)))
        if col is None:  # the same for every run over this partition (a sweep's runs)
            col = cache[(name, types.get(name))] = _col_from_series(part[name], types.get(name)) if name in part \
                else Num(np.zeros(len(part)), np.ones(len(part), dtype=bool))
        inputs[name] = col
    emitted, outs, _ = evaluate(program, inputs, key_codes, len(part))
    n = len(part)
    codes = np.zeros(n, dtype=np.int8)
    sig, seen = _signal_column(program, outs, "signal")
    if sig is not None:
        codes[emitted] = sig
    sizes = None
    if "size" in program.outputs:
        col = outs[program.outputs.index("size")]
        if not isinstance(col, Num):
            raise Unsupported("a non-number size column")
        sizes = np.ones(n)
        sizes[emitted] = np.where(col.null, 1.0, col.v) if col.null is not None else col.v
    return codes, sizes, seen


def _row_strategy(program: Program, part: pd.DataFrame, key: Any, seen: set[str], tally: list[int]) -> Any:
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
        value = out[si]
        if len(seen) < _SIGNAL_SAMPLES:
            seen.add("null" if value is None else _num_text(value) if isinstance(value, float) else str(value))
        size = out[zi] if zi is not None else 1.0
        code = signal_code(value)
        if code:
            tally[0] += 1
        return code, float(size) if isinstance(size, float) else 1.0
    return strategy


# -- running -----------------------------------------------------------------------------------


def run_partition(prep: Prepared, spec: BacktestSpec) -> PartitionResult:
    """Signals, simulations and metrics of every instrument of a prepared partition."""
    program = program_for(spec.source, spec.file, spec.params)
    part = prep.frame
    if len(part) == 0:
        return PartitionResult(pd.DataFrame(), _empty_trades(), np.zeros(0, dtype="datetime64[ns]"), np.zeros(0),
                               0.0, 0, 0, 0.0, _empty_bars())
    starts, ends = prep.starts, prep.ends
    position = uses_position(program)
    data = part
    codes = sizes = None  # signal codes and sizes of every row, when the column form runs
    seen_values: set[str] = set()
    if not position:
        key_codes = np.repeat(np.arange(len(starts), dtype=np.int64), ends - starts)
        try:
            codes, sizes, seen = _column_signals(program, data, key_codes, prep.columns)
            seen_values.update(seen)
        except Unsupported:
            codes = sizes = None
    c = spec.costs
    closes = pd.to_numeric(part[spec.close_col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    opens = pd.to_numeric(part[spec.open_col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) \
        if spec.open_col in part else closes
    times = prep.times
    days = times.astype("datetime64[D]").astype(np.int64) if c.t_plus_1 else None
    if "_times" not in prep.columns:  # ints: fast union and lookups
        prep.columns["_times"] = pd.factorize(times, sort=True)
    time_codes, time_values = prep.columns["_times"]
    metrics, trades, curves, charts = [], [], [], []  # trades: tuples, one frame at the end
    pnls: list[float] = []
    refused: dict[str, int] = {}
    bars_long = open_trades = 0
    fees = 0.0
    recognised = int(np.count_nonzero(codes)) if codes is not None else 0
    for key, s, e in zip(prep.keys, starts, ends):
        sub = slice(s, e)
        limit = c.limit_for(key)
        d = days[sub] if days is not None else None
        if codes is not None and sizes is None:
            sim = simulate_all_in(times[sub], opens[sub], closes[sub], spec.capital_each, c, codes[sub],
                                  days=d, limit=limit)
        elif codes is not None:
            sim = simulate(times[sub], opens[sub], closes[sub], spec.capital_each, c,
                           signals=codes[sub], sizes=sizes[sub], days=d, limit=limit)
        else:
            seen: set[str] = set()
            tally = [0]
            strategy = _row_strategy(program, data.iloc[s:e], key, seen, tally)
            sim = simulate(times[sub], opens[sub], closes[sub], spec.capital_each, c,
                           strategy=strategy, days=d, limit=limit)
            recognised += tally[0]
            if len(seen_values) < _SIGNAL_SAMPLES:
                seen_values.update(seen)
        closed = [t.pnl for t in sim.trades if t.closed]
        n_open = len(sim.trades) - len(closed)
        pnls += closed
        open_trades += n_open
        fee_sum = float(sim.fee.sum())
        for why, k in sim.refused.items():
            refused[why] = refused.get(why, 0) + k
        # The partition's curve: each instrument's equity changes at its own bar times (from its
        # capital), summed on the union of times and accumulated (carried forward in between).
        curves.append((time_codes[sub], np.diff(sim.equity, prepend=spec.capital_each)))
        bars_long += int((sim.shares > 0).sum())
        fees += fee_sum
        if spec.light:
            continue
        cl = closes[sub]
        metrics.append({"key": key, "first": times[s], "last": times[e - 1],
                        **equity_metrics(sim.equity, spec.capital_each, periods=spec.periods,
                                         risk_free=spec.risk_free, years=years_between(times[s], times[e - 1])),
                        **trade_metrics(np.array(closed), open_trades=n_open, fees=fee_sum, shares=sim.shares),
                        "buy_and_hold": float(cl[-1] / cl[0] - 1) if len(cl) and cl[0] else None,
                        "missing_bars": prep.missing.get(str(key), 0),
                        "refused_orders": sum(sim.refused.values())})
        trades += _trade_rows(key, sim)
        charts.append((len(sim.trades), key, s, e, sim))
        if len(charts) > 4 * spec.chart_instruments + 16:  # keep the bars of the candidates only
            charts.sort(key=lambda x: (-x[0], str(x[1])))
            del charts[spec.chart_instruments:]
    chart_bars = _empty_bars()
    if charts:
        charts.sort(key=lambda x: (-x[0], str(x[1])))
        chart_bars = pd.concat([_bars_frame(k, times[s:e], closes[s:e], sim)
                                for _, k, s, e, sim in charts[: spec.chart_instruments]], ignore_index=True)
    total = spec.capital_each * len(curves) + np.cumsum(np.bincount(
        np.concatenate([c for c, _ in curves]), weights=np.concatenate([d for _, d in curves]),
        minlength=len(time_values))) if curves else np.zeros(len(time_values))
    trade_frame = _trade_frame(trades)
    return PartitionResult(pd.DataFrame(metrics), trade_frame, np.asarray(time_values, dtype="datetime64[ns]"),
                           total, spec.capital_each * len(curves), bars_long, len(part), fees, chart_bars,
                           refused, sorted(seen_values)[:_SIGNAL_SAMPLES], recognised, np.asarray(pnls, dtype=float),
                           open_trades)


def _bars_frame(key: Any, times: np.ndarray, closes: np.ndarray, sim: Simulation) -> pd.DataFrame:
    return pd.DataFrame({"key": key, "time": times, "close": closes, "shares": sim.shares,
                         "cash": sim.cash, "equity": sim.equity, "filled": sim.filled,
                         "fill_price": sim.fill_price, "fee": sim.fee})


_TRADE_COLUMNS = ("key", "entry_time", "entry_price", "exit_time", "exit_price", "size", "cost", "proceeds", "fees",
                  "pnl", "return", "bars_held", "status")


def _trade_rows(key: Any, sim: Simulation) -> list[tuple]:
    """One tuple per trade, in :data:`_TRADE_COLUMNS` order."""
    return [(key, t.entry_time, t.entry_price, t.exit_time, t.exit_price, t.shares, t.cost, t.proceeds, t.fees,
             t.pnl if t.closed else None, t.ret if t.closed else None, t.bars_held,
             "closed" if t.closed else "open") for t in sim.trades]


def _trade_frame(rows: list[tuple]) -> pd.DataFrame:
    if not rows:
        return _empty_trades()
    cols = list(zip(*rows))
    frame = pd.DataFrame({name: np.asarray(col, dtype=object) if name in ("key", "status") else col
                          for name, col in zip(_TRADE_COLUMNS, cols)})
    for name in ("entry_time", "exit_time"):
        frame[name] = pd.to_datetime(frame[name])
    for name in ("entry_price", "exit_price", "size", "cost", "proceeds", "fees", "pnl", "return", "bars_held"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


def _empty_bars() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in [
        ("key", "object"), ("time", "datetime64[ns]"), ("close", "float64"), ("shares", "float64"),
        ("cash", "float64"), ("equity", "float64"), ("filled", "float64"), ("fill_price", "float64"),
        ("fee", "float64")]})


def _empty_trades() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in [
        ("key", "object"), ("entry_time", "datetime64[ns]"), ("entry_price", "float64"),
        ("exit_time", "datetime64[ns]"), ("exit_price", "float64"), ("size", "float64"), ("cost", "float64"),
        ("proceeds", "float64"), ("fees", "float64"), ("pnl", "float64"), ("return", "float64"),
        ("bars_held", "float64"), ("status", "object")]})


def run_frame(df: pd.DataFrame, source: str, file: str = "<script>", *, key: str | None = "stock_code",
              time: str = "date", capital_each: float = 1e6, costs: Costs | None = None, time_format: str | None = None,
              missing: str = "error", periods: float = 252, risk_free: float = 0.0, params: dict | None = None
              ) -> PartitionResult:
    """One process, no Dask: prepare ``df`` as one partition and run ``source`` over it (the
    same functions a backtest runs per partition; for tests and notebooks)."""
    from .timeaxis import infer_format

    costs = costs or Costs()
    fmt = infer_format(df[time].head(5000).tolist(), time_format)
    prep = prepare_partition(df, PrepareSpec(key, time, fmt, missing,
                                             ("close", "open") if costs.next_bar_open else ("close",)))
    return run_partition(prep, BacktestSpec(source, file, capital_each, costs, tuple(sorted((params or {}).items())),
                                            periods=periods, risk_free=risk_free))
