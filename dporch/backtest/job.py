"""`dporch backtest` as a Dask dataframe job: read -> one shuffle by instrument -> per-partition
preparation (times parsed, bars sorted, missing prices handled), kept in memory -> per-partition
signals and simulations, once per run (a sweep runs every parameter combination over the same
prepared partitions) -> portfolio and metrics on the client.

Where it runs (docs/backtest.md, "Execution"): by default Dask's threaded scheduler in this
process, with no cluster to start; ``processes=N`` starts a LocalCluster of N worker processes;
``scheduler=ADDR`` (or DPORCH_SCHEDULER) uses a running scheduler. Each stage is timed.
"""

from __future__ import annotations

import glob
import itertools
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import pandas as pd

from ..lang.program import Program
from .instruments import (BacktestSpec, DataError, PartitionResult, Prepared, PrepareSpec, prepare_partition,
                          run_partition)
from .metrics import drawdown, equity_metrics, trade_metrics
from .results import BacktestResult, SweepResult, refusal_text
from .simulate import Costs
from .timeaxis import Annualisation, TimeError, annualisation, infer_format, years_between

__all__ = ["BacktestOptions", "BacktestResult", "SweepResult", "run_backtest", "run_sweep", "expand_inputs",
           "portfolio_curve", "DataError", "TimeError", "RANK_METRICS", "sweep_grid", "refusal_text"]

#: Metrics a sweep can rank by, and whether higher is better.
RANK_METRICS = {"sharpe": True, "sortino": True, "cagr": True, "total_return": True, "calmar": True,
                "final_equity": True, "win_rate": True, "profit_factor": True, "expectancy": True,
                "max_drawdown": False, "volatility": False}


class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def done(self) -> None: ...


@dataclass
class BacktestOptions:
    key: str | None = "stock_code"
    time: str = "date"
    time_format: str | None = None  # strftime format of the time column; None: inferred
    capital: float = 1e6
    costs: Costs = field(default_factory=Costs)
    periods: float | None = None  # bars per year; None: inferred from the bar spacing
    risk_free: float = 0.0
    scheduler: str | None = None  # address of a running Dask scheduler
    processes: int = 0  # > 0: a LocalCluster of this many worker processes
    threads: int | None = None  # threads of the in-process scheduler (default: the cores)
    partitions: int | None = None
    missing: str = "error"  # error | skip | ffill (docs/backtest.md, "Missing data")
    params: dict[str, Any] = field(default_factory=dict)  # the script's parameters
    chart_instruments: int = 10  # instruments drawn in the report (the rest are counted)

    @property
    def address(self) -> str | None:
        """The scheduler to use: ``scheduler``, else DPORCH_SCHEDULER unless ``processes``."""
        return self.scheduler or (None if self.processes else os.environ.get("DPORCH_SCHEDULER") or None)

    @property
    def mode(self) -> str:
        if self.address:
            return f"scheduler {self.address}"
        if self.processes:
            return f"LocalCluster, {self.processes} worker process(es)"
        return f"threads in this process ({self.threads or os.cpu_count() or 1})"


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


def _is_parquet(paths: list[str]) -> bool:
    return all(p.endswith((".parquet", ".pq")) for p in paths)


def sample_times(paths: list[str], column: str, n: int = 5000) -> list[Any]:
    """The first ``n`` values of the time column of the first file (for the format)."""
    if _is_parquet(paths):
        import pyarrow.parquet as pq

        f = pq.ParquetFile(paths[0])
        if column not in f.schema_arrow.names:
            raise KeyError(column)
        table = f.read_row_group(0, columns=[column]) if f.num_row_groups else None
        return [] if table is None else table.column(column).to_pylist()[:n]
    header = pd.read_csv(paths[0], nrows=0).columns
    if column not in header:
        raise KeyError(column)
    return pd.read_csv(paths[0], usecols=[column], nrows=n, dtype=str, keep_default_na=False)[column].tolist()


def _read(paths: list[str], program: Program, opts: BacktestOptions) -> Any:
    import dask.dataframe as dd

    types = program.input_types
    dtypes = {c: "object" for c, t in types.items() if t in ("string", None)}
    if opts.key:
        dtypes[opts.key] = "object"
    dtypes[opts.time] = "object"
    needed = list(dict.fromkeys(list(types) + [c for c in (opts.key, opts.time, "open", "close") if c]))
    if _is_parquet(paths):
        ddf = dd.read_parquet(paths)
        missing = [c for c in (opts.key, opts.time, "close") if c and c not in ddf.columns]
        if missing:
            raise KeyError(missing[0])
        return ddf[[c for c in needed if c in ddf.columns]]
    header = pd.read_csv(paths[0], nrows=0).columns
    for c in (opts.key, opts.time, "close"):
        if c and c not in header:
            raise KeyError(c)
    usecols = [c for c in needed if c in header]
    return dd.read_csv(paths, dtype={c: d for c, d in dtypes.items() if c in usecols}, usecols=usecols,
                       keep_default_na=False, na_values=["", "null", "NaN", "nan"], blocksize="16MB")


def portfolio_curve(parts: Sequence[PartitionResult]) -> tuple[pd.DataFrame, float]:
    """Sum of the partitions' equity curves on the union of their times (each partition's curve
    carried forward, and its capital before its first bar); with the drawdown per bar."""
    curves = [p for p in parts if len(p.curve_times)]
    if not curves:
        return pd.DataFrame({"time": pd.Series(dtype="datetime64[ns]"), "equity": [], "drawdown": []}), 0.0
    index = np.unique(np.concatenate([p.curve_times for p in curves]))
    total = np.zeros(len(index))
    for p in curves:
        pos = np.searchsorted(p.curve_times, index, side="right") - 1
        total += np.where(pos >= 0, p.curve_equity[np.clip(pos, 0, None)], p.capital)
    capital = sum(p.capital for p in curves)
    dd, _, _ = drawdown(total, capital)
    return pd.DataFrame({"time": index, "equity": total, "drawdown": dd}), capital


# -- where the tasks run ---------------------------------------------------------------------------


class _Session:
    """The scheduler of one command: threads in this process, a LocalCluster, or a client of
    a running scheduler; computes lists of Dask delayed objects with progress."""

    def __init__(self, opts: BacktestOptions, progress: Progress | None):
        self.opts = opts
        self.progress = progress
        self.client = self.cluster = None
        self.keep: list[Any] = []  # persisted collections: referenced until the job ends
        address = opts.address
        if address or opts.processes:
            from dask.distributed import Client, LocalCluster

            if address:
                self.client = Client(address, direct_to_workers=True, set_as_default=False)
            else:
                import dask

                # Dask starts workers with MALLOC_TRIM_THRESHOLD_ set, which fixes glibc's mmap
                # threshold: every array over 128 kB is then mapped and unmapped, zeroed page by
                # page, and this job (whole columns, again and again) ran 1.5-2x slower in a
                # worker than in this process. Its workers live as long as the command.
                environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
                           if k != "MALLOC_TRIM_THRESHOLD_"}
                with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                    self.cluster = LocalCluster(n_workers=opts.processes, threads_per_worker=1, processes=True,
                                                dashboard_address=None, silence_logs=40,
                                                preload=["dporch.backtest.instruments", "dask.dataframe"])
                self.client = Client(self.cluster, set_as_default=False)
        self.threads = opts.threads or os.cpu_count() or 1

    @property
    def workers(self) -> int:
        if self.client is None:
            return self.threads
        return max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))

    def _start(self, label: str, total: int) -> None:
        if self.progress is not None:
            self.progress.start(label, total)

    def compute(self, items: list[Any], label: str, persist: bool = False) -> list[Any]:
        """Compute (or with ``persist`` keep in memory, returning delayed handles) ``items``."""
        import dask

        if self.client is None:
            from dask.callbacks import Callback

            progress = self.progress
            session = self

            class _Count(Callback):
                def _start_state(self, dsk: Any, state: Any) -> None:
                    session._start(label, len(state["ready"]) + len(state["waiting"]) + len(state["running"]))

                def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
                    if progress is not None:
                        progress.advance(1)

            from dask.threaded import get as threaded_get

            with _Count():
                fn = dask.persist if persist else dask.compute
                # The scheduler function itself: the name "threads" makes dask import distributed.
                out = list(fn(*items, scheduler=threaded_get, num_workers=self.threads))
            if persist:
                self.keep.append(out)
            return out
        from distributed import futures_of

        client = self.client
        if persist:
            handles = client.persist(items, optimize_graph=False)
            futures = [f for h in handles for f in futures_of(h)]
        else:
            futures = client.compute(items)
        self._start(label, len(futures))
        done = 0
        while True:
            now = sum(f.done() for f in futures)
            if self.progress is not None and now > done:
                self.progress.advance(now - done)
            done = now
            if done == len(futures):
                break
            time.sleep(0.05)
        # A failed task raises here, with its own error: never silently continue with a key
        # the scheduler does not hold (that is how a later graph ends in "lost dependencies").
        bad = [f for f in futures if f.status != "finished"]
        if bad:
            bad[0].result()
        if persist:
            self.keep.append(handles)
            return handles
        return client.gather(futures)

    def close(self) -> None:
        self.keep.clear()
        if self.client is not None:
            client, cluster = self.client, self.cluster
            # Shutting workers down takes ~0.5-1 s: let it overlap with the summary and the
            # report (a non-daemon thread, so the process still waits for it before exiting).
            threading.Thread(target=_close, args=(client, cluster), name="dporch-backtest-close").start()


def _close(client: Any, cluster: Any) -> None:
    client.close()
    if cluster is not None:
        cluster.close()


def _info(prep: Prepared) -> tuple[int, int, dict[str, int], list, int]:
    return len(prep.starts), prep.rows_read, prep.missing, prep.stats, len(prep.frame)


@dataclass
class _Data:
    """The prepared partitions of one read, and what they say about the data."""

    parts: list[Any]  # delayed handles of Prepared partitions
    instruments: int
    rows: int
    bars: int
    missing: dict[str, int]
    annual: Annualisation
    time_format: str


def _prepare(session: _Session, program: Program, paths: list[str], opts: BacktestOptions) -> tuple[_Data, dict]:
    from dask import delayed

    timings: dict[str, float] = {}
    t = time.perf_counter()
    fmt = infer_format(sample_times(paths, opts.time), opts.time_format)
    ddf = _read(paths, program, opts)
    nparts = opts.partitions or max(1, 2 * session.workers)
    if opts.key and ddf.npartitions > 1 and nparts > 1:
        ddf = ddf.shuffle(on=opts.key, npartitions=nparts, shuffle_method="tasks")
    c = opts.costs
    price_cols = ("close", "open") if c.next_bar_open else ("close",)
    pspec = PrepareSpec(opts.key, opts.time, fmt, opts.missing, price_cols)
    preps = [delayed(prepare_partition)(p, pspec) for p in ddf.to_delayed(optimize_graph=True)]
    parts = session.compute(preps, "reading", persist=True)
    timings["read"] = time.perf_counter() - t
    infos = session.compute([delayed(_info)(p) for p in parts], "reading")
    missing: dict[str, int] = {}
    stats: list = []
    for _, _, m, s, _ in infos:
        missing.update(m)
        stats += s
    annual = annualisation(stats, opts.periods)
    data = _Data(parts, sum(i[0] for i in infos), sum(i[1] for i in infos), sum(i[4] for i in infos), missing,
                 annual, fmt)
    return data, timings


def _spec(program: Program, opts: BacktestOptions, data: _Data, params: dict[str, Any], light: bool) -> BacktestSpec:
    return BacktestSpec(program.script.source, program.file, opts.capital / max(data.instruments, 1), opts.costs,
                        tuple(sorted(params.items())), periods=data.annual.periods, risk_free=opts.risk_free,
                        chart_instruments=opts.chart_instruments, light=light)


@contextmanager
def _prepared(program: Program, paths: list[str], opts: BacktestOptions, progress: Progress | None,
              on_prepared: Callable[[int], None] | None) -> Iterator[tuple[_Session, _Data, dict[str, float]]]:
    """A Dask session with the data read and prepared, and the timings so far; the session
    closes on leaving. ``on_prepared(instruments)`` is called once the data is prepared."""
    t0 = time.perf_counter()
    session = _Session(opts, progress)
    try:
        timings = {"start": time.perf_counter() - t0}
        data, more = _prepare(session, program, paths, opts)
        timings.update(more)
        if on_prepared is not None:
            on_prepared(data.instruments)
        yield session, data, timings
    finally:
        session.close()


def run_backtest(program: Program, paths: list[str], opts: BacktestOptions, progress: Progress | None = None,
                 on_prepared: Callable[[int], None] | None = None) -> BacktestResult:
    """The backtest of ``program`` over the files ``paths``. ``on_prepared(instruments)`` is
    called once the data is prepared."""
    with _prepared(program, paths, opts, progress, on_prepared) as (session, data, timings):
        t = time.perf_counter()
        from dask import delayed

        spec = _spec(program, opts, data, program.params, light=False)
        results = session.compute([delayed(run_partition)(p, spec) for p in data.parts], "backtest")
        timings["compute"] = time.perf_counter() - t
    t = time.perf_counter()
    result = summarize(results, opts, data, program)
    result.timings.update(timings)
    result.timings["summarize"] = time.perf_counter() - t
    return result


def _parse_range(name: str, text: str) -> list[Any]:
    """``5:30:5`` (start:stop:step, stop included) or ``20,40,60`` (numbers or texts)."""
    if ":" in text and "," not in text:
        parts = text.split(":")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"--sweep {name}={text}: a range is START:STOP[:STEP] with numbers") from None
        if len(nums) not in (2, 3) or (len(nums) == 3 and nums[2] <= 0):
            raise ValueError(f"--sweep {name}={text}: a range is START:STOP[:STEP] with a positive STEP")
        start, stop, step = nums[0], nums[1], nums[2] if len(nums) == 3 else 1.0
        count = int(np.floor((stop - start) / step + 1e-9)) + 1
        if count < 1:
            raise ValueError(f"--sweep {name}={text}: the range is empty")
        return [float(round(start + i * step, 12)) for i in range(count)]
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise ValueError(f"--sweep {name}={text}: no values")
    return values


def sweep_grid(items: Sequence[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """``["fast=5:30:5", "slow=20,40,60"]`` -> (names, every combination as a dict)."""
    names: list[str] = []
    axes: list[list[Any]] = []
    for item in items:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or not name or not text.strip():
            raise ValueError(f"--sweep expects NAME=START:STOP:STEP or NAME=V1,V2,..., got {item!r}")
        if name in names:
            raise ValueError(f"--sweep {name} is given twice")
        names.append(name)
        axes.append(_parse_range(name, text.strip()))
    return names, [dict(zip(names, combo)) for combo in itertools.product(*axes)]


def _sweep_metrics(parts: list[PartitionResult], capital: float, annual: Annualisation, risk_free: float) -> dict[str, Any]:
    port, cap = portfolio_curve(parts)
    years = years_between(port["time"].iloc[0], port["time"].iloc[-1]) if len(port) else None
    em = equity_metrics(port["equity"].to_numpy(), cap or capital, periods=annual.periods, risk_free=risk_free,
                        years=years)
    pnls = np.concatenate([p.pnls for p in parts]) if parts else np.zeros(0)
    tm = trade_metrics(pnls, open_trades=sum(p.open_trades for p in parts), fees=sum(p.fees for p in parts))
    bars = sum(p.bars for p in parts)
    tm["exposure"] = sum(p.bars_long for p in parts) / bars if bars else None
    return {**em, **tm}


def run_sweep(program: Program, paths: list[str], opts: BacktestOptions, names: list[str],
              combos: list[dict[str, Any]], rank: str = "sharpe", progress: Progress | None = None,
              compile_with: Callable[[dict[str, Any]], Program] | None = None,
              on_prepared: Callable[[int], None] | None = None) -> SweepResult:
    """Every combination of parameter values as Dask tasks over one shared read of the data,
    ranked by ``rank``; then the full run of the best combination (for the report)."""
    from dask import delayed

    with _prepared(program, paths, opts, progress, on_prepared) as (session, data, timings):
        t = time.perf_counter()
        tasks = []
        for combo in combos:
            spec = _spec(program, opts, data, {**program.params, **combo}, light=True)
            tasks += [delayed(run_partition)(p, spec) for p in data.parts]
        flat = session.compute(tasks, f"sweep ({len(combos)} combinations)")
        k = len(data.parts)
        rows = []
        for i, combo in enumerate(combos):
            rows.append({**combo, **_sweep_metrics(flat[i * k:(i + 1) * k], opts.capital, data.annual, opts.risk_free)})
        timings["sweep"] = time.perf_counter() - t
        table = pd.DataFrame(rows)
        higher = RANK_METRICS[rank]
        order = table[rank].astype(float)
        table["rank"] = (-order if higher else order).rank(method="min", na_option="bottom").astype(int)
        table = table.sort_values(["rank"] + names, kind="stable").reset_index(drop=True)
        best = {n: table.loc[0, n] for n in names}
        t = time.perf_counter()
        best_program = compile_with(best) if compile_with else program
        spec = _spec(best_program, opts, data, best_program.params, light=False)
        results = session.compute([delayed(run_partition)(p, spec) for p in data.parts], "best combination")
        timings["best"] = time.perf_counter() - t
    result = summarize(results, opts, data, best_program)
    result.summary["config"]["sweep"] = {"combinations": len(combos), "rank": rank,
                                         "best": {n: _plain(v) for n, v in best.items()}}
    return SweepResult(table, rank, names, result, timings)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def summarize(parts: list[PartitionResult], opts: BacktestOptions, data: _Data, program: Program) -> BacktestResult:
    """Portfolio metrics from the workers' partition results."""
    frames = [p.instruments for p in parts if len(p.instruments)]
    instruments = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(instruments):
        instruments = instruments.sort_values("key", kind="stable").reset_index(drop=True)
    trades = pd.concat([p.trades for p in parts if len(p.trades)] or [parts[0].trades if parts else pd.DataFrame()],
                       ignore_index=True)
    if len(trades):
        is_open = trades["status"] == "open"
        trades = pd.concat([trades[~is_open].sort_values(["entry_time", "key"], kind="stable"),
                            trades[is_open].sort_values(["entry_time", "key"], kind="stable")], ignore_index=True)
    port, capital = portfolio_curve(parts)
    years = years_between(port["time"].iloc[0], port["time"].iloc[-1]) if len(port) > 1 else None
    em = equity_metrics(port["equity"].to_numpy(), capital or opts.capital, periods=data.annual.periods,
                        risk_free=opts.risk_free, years=years)
    bars = sum(p.bars for p in parts)
    closed = trades["status"] == "closed" if len(trades) else pd.Series(dtype=bool)
    tm = trade_metrics(trades.loc[closed, "pnl"].to_numpy(dtype=float) if len(trades) else np.zeros(0),
                       open_trades=int(len(trades) - int(closed.sum())) if len(trades) else 0,
                       fees=sum(p.fees for p in parts))
    tm["exposure"] = sum(p.bars_long for p in parts) / bars if bars else None
    bh = instruments["buy_and_hold"].dropna() if len(instruments) else pd.Series(dtype=float)
    refused: dict[str, int] = {}
    for p in parts:
        for why, k in p.refused.items():
            refused[why] = refused.get(why, 0) + k
    warnings: list[str] = []
    recognised = sum(p.recognised for p in parts)
    seen = sorted({v for p in parts for v in p.signal_values})
    if recognised == 0 and bars:
        shown = ", ".join(repr(v) for v in seen[:20]) or "none (no row was output)"
        warnings.append("the script produced no buy or sell signal, so there are no trades. The signal column held: "
                        f"{shown}. A buy is buy or 买入 (any case) or a number > 0; a sell is sell or 卖出 "
                        "or a number < 0; anything else holds.")
    missing_total = sum(data.missing.values())
    if missing_total:
        what = {"skip": "left out", "ffill": "filled from the previous bar"}.get(opts.missing, "")
        warnings.append(f"{missing_total} bar(s) of {len(data.missing)} instrument(s) had no usable price: {what} "
                        f"(--missing {opts.missing})")
    c = opts.costs
    first = port["time"].iloc[0] if len(port) else None
    last = port["time"].iloc[-1] if len(port) else None
    summary = {
        "portfolio": {**em, **tm, "buy_and_hold": float(bh.mean()) if len(bh) else None,
                      "instruments": int(len(instruments)), "initial_capital": capital,
                      "refused_orders": refused, "missing_bars": missing_total},
        "config": {"key": opts.key, "time": opts.time, "time_format": data.time_format, "capital": opts.capital,
                   "fee": c.fee, "slippage": c.slippage,
                   "fill": "next bar open" if c.next_bar_open else "same bar close",
                   "min_fee": c.min_fee, "stamp_duty": c.stamp_duty, "lot_size": c.lot_size, "t_plus_1": c.t_plus_1,
                   "price_limit": "by board (10 %, 20 % for 300/301/688/689, 30 % for Beijing)" if c.board_limits
                   else c.price_limit,
                   "periods_per_year": data.annual.periods, "annualisation": data.annual.describe(),
                   "cagr_basis": (f"calendar time from {_day(first)} to {_day(last)}: {years:.3f} years"
                                  if years else f"{em['bars']} bars / {data.annual.periods:g} per year"),
                   "risk_free": opts.risk_free, "rows": data.rows, "missing": opts.missing,
                   "params": {k: _plain(v) for k, v in program.params.items()}, "execution": opts.mode},
    }
    charts = pd.concat([p.chart_bars for p in parts if len(p.chart_bars)] or [parts[0].chart_bars] if parts else [],
                       ignore_index=True) if parts else pd.DataFrame()
    if len(charts):
        counts = trades.groupby("key").size() if len(trades) else pd.Series(dtype=int)
        keys = sorted(charts["key"].unique(), key=lambda k: (-int(counts.get(k, 0)), str(k)))[:opts.chart_instruments]
        charts = charts[charts["key"].isin(keys)].reset_index(drop=True)
    return BacktestResult(charts, trades, port, summary, instruments, {}, warnings)


def _day(t: Any) -> str:
    ts = pd.Timestamp(t)
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")


