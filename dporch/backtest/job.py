"""`dporch backtest` as a Dask dataframe job: read -> one shuffle by instrument -> per-partition
signals and simulations -> portfolio and metrics on the client.

Runs on an embedded LocalCluster unless a scheduler address is given. Each stage is persisted
and timed so the report can say where the time went.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..lang.program import Program
from .instruments import BacktestSpec, PartitionResult, run_partition
from .metrics import drawdown, equity_metrics, trade_metrics
from .simulate import Costs

__all__ = ["BacktestOptions", "BacktestResult", "run_backtest", "expand_inputs", "portfolio_curve"]


@dataclass
class BacktestOptions:
    key: str | None = "stock_code"
    time: str = "date"
    capital: float = 1e6
    costs: Costs = field(default_factory=Costs)
    periods: int = 252
    risk_free: float = 0.0
    scheduler: str | None = None
    workers: int = 2
    partitions: int | None = None


@dataclass
class BacktestResult:
    bars: pd.DataFrame  # bars of the charted instruments (those with the most trades)
    trades: pd.DataFrame
    portfolio: pd.DataFrame  # time, equity, drawdown
    summary: dict[str, Any]
    instruments: pd.DataFrame  # one row of metrics per instrument
    timings: dict[str, float]


def expand_inputs(paths: list[str]) -> list[str]:
    """Files from paths and globs, in order; a missing file is an error naming it."""
    out: list[str] = []
    for p in paths:
        matches = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        if not matches:
            raise FileNotFoundError(f"no file matches {p}")
        for m in matches:
            if not os.path.isfile(m):
                raise FileNotFoundError(f"input file not found: {m}")
            out.append(m)
    return out


def _read(paths: list[str], program: Program, opts: BacktestOptions) -> Any:
    import dask.dataframe as dd

    types = program.input_types
    dtypes = {c: "object" for c, t in types.items() if t in ("string", None)}
    if opts.key:
        dtypes[opts.key] = "object"
    dtypes[opts.time] = "object"
    needed = list(dict.fromkeys(list(types) + [c for c in (opts.key, opts.time, "open", "close") if c]))
    if all(p.endswith(".parquet") or p.endswith(".pq") for p in paths):
        ddf = dd.read_parquet(paths)
        return ddf[[c for c in needed if c in ddf.columns]]
    header = pd.read_csv(paths[0], nrows=0).columns
    usecols = [c for c in needed if c in header]
    return dd.read_csv(paths, dtype={c: d for c, d in dtypes.items() if c in usecols}, usecols=usecols,
                       keep_default_na=False, na_values=["", "null"], blocksize="16MB")


def portfolio_curve(parts: list[PartitionResult]) -> tuple[pd.DataFrame, float]:
    """Sum of the partitions' equity curves on the union of their times (each partition's curve
    carried forward, and its capital before its first bar); with the drawdown per bar."""
    curves = [p for p in parts if len(p.curve)]
    if not curves:
        return pd.DataFrame({"time": [], "equity": [], "drawdown": []}), 0.0
    index = pd.Index(sorted(set().union(*(p.curve["time"] for p in curves))))
    total = np.zeros(len(index))
    for p in curves:
        s = pd.Series(p.curve["equity"].to_numpy(), index=p.curve["time"].to_numpy())
        total += s.reindex(index).ffill().fillna(p.capital).to_numpy()
    capital = sum(p.capital for p in curves)
    dd, _, _ = drawdown(total, capital)
    return pd.DataFrame({"time": index.to_numpy(), "equity": total, "drawdown": dd}), capital


def run_backtest(program: Program, paths: list[str], opts: BacktestOptions,
                 progress: Callable[[Any], None] | None = None) -> BacktestResult:
    from dask import delayed
    from dask.distributed import Client, LocalCluster, wait

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if opts.scheduler:
        client = Client(opts.scheduler, direct_to_workers=True)
        cluster = None
    else:
        # Worker processes (the per-instrument work is Python) import the backtest code while
        # they start, in parallel, rather than on their first task.
        cluster = LocalCluster(n_workers=opts.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40,
                               preload=["dporch.backtest.instruments", "dask.dataframe"])
        client = Client(cluster)
    try:
        timings["cluster"] = time.perf_counter() - t0
        t = time.perf_counter()
        ddf = _read(paths, program, opts).persist()
        wait(ddf)
        timings["read"] = time.perf_counter() - t
        n_rows = len(ddf)
        keys = ddf[opts.key].nunique().compute() if opts.key else 1
        t = time.perf_counter()
        nparts = opts.partitions or max(2, 2 * len(client.scheduler_info()["workers"]))
        if opts.key:
            ddf = ddf.shuffle(on=opts.key, npartitions=nparts, shuffle_method="tasks").persist()
            wait(ddf)
        timings["shuffle"] = time.perf_counter() - t
        t = time.perf_counter()
        spec = BacktestSpec(program.script.source, program.file, opts.key, opts.time,
                            opts.capital / max(keys, 1), opts.costs, periods=opts.periods,
                            risk_free=opts.risk_free)
        tasks = [delayed(run_partition)(part, spec) for part in ddf.to_delayed()]
        futures = client.compute(tasks)
        if progress is not None:
            progress(futures)
        results = client.gather(futures)
        timings["compute"] = time.perf_counter() - t
    finally:
        # Shutting the workers down takes ~0.5-1 s: let it overlap with the summary and the
        # report (a non-daemon thread, so the process still waits for it before exiting).
        threading.Thread(target=_close, args=(client, cluster), name="dporch-backtest-close").start()
    t = time.perf_counter()
    result = summarize(results, opts, n_rows)
    result.timings.update(timings)
    result.timings["summarize"] = time.perf_counter() - t
    return result


def _close(client: Any, cluster: Any) -> None:
    client.close()
    if cluster is not None:
        cluster.close()


def summarize(parts: list[PartitionResult], opts: BacktestOptions, n_rows: int) -> BacktestResult:
    """Portfolio metrics from the workers' partition results."""
    instruments = pd.concat([p.instruments for p in parts if len(p.instruments)], ignore_index=True) \
        if any(len(p.instruments) for p in parts) else pd.DataFrame()
    if len(instruments):
        instruments = instruments.sort_values("key", kind="stable").reset_index(drop=True)
    trades = pd.concat([p.trades for p in parts], ignore_index=True)
    port, capital = portfolio_curve(parts)
    em = equity_metrics(port["equity"].to_numpy(), capital or opts.capital, periods=opts.periods,
                        risk_free=opts.risk_free)
    bars = sum(p.bars for p in parts)
    tm = _trade_stats(trades, None, sum(p.fees for p in parts))
    tm["exposure"] = sum(p.bars_long for p in parts) / bars if bars else None
    bh = instruments["buy_and_hold"].dropna() if len(instruments) else pd.Series(dtype=float)
    summary = {
        "portfolio": {**em, **tm, "buy_and_hold": float(bh.mean()) if len(bh) else None,
                      "instruments": int(len(instruments)), "initial_capital": capital},
        "config": {"key": opts.key, "time": opts.time, "capital": opts.capital, "fee": opts.costs.fee,
                   "slippage": opts.costs.slippage,
                   "fill": "next bar open" if opts.costs.next_bar_open else "same bar close",
                   "periods_per_year": opts.periods, "risk_free": opts.risk_free, "rows": n_rows},
    }
    charts = pd.concat([p.chart_bars for p in parts], ignore_index=True)
    return BacktestResult(charts, trades, port, summary, instruments, {})


def _trade_stats(trades: pd.DataFrame, shares: np.ndarray | None, fees: float) -> dict[str, Any]:
    closed = trades["exit_time"].notna() if len(trades) else np.zeros(0, dtype=bool)
    pnl = trades.loc[closed, "pnl"].to_numpy(dtype=float) if len(trades) else np.zeros(0)
    return trade_metrics(pnl, open_trades=int(len(trades) - int(closed.sum())), fees=fees, shares=shares)
