"""``dporch backtest``: a script's signals over historical data, on Dask, with a report
(docs/backtest.md)."""

from __future__ import annotations

import csv
import sys
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from .lang_commands import SET_HELP, load_program, report, set_values

__all__ = ["register"]

#: ``--market cn-a``: the rules of China's A-share market (docs/backtest.md, "Market rules").
CN_A = {"lot_size": 100, "t_plus_1": True, "stamp_duty": 0.0005, "min_fee": 5.0, "price_limit": None}


class Missing(str, Enum):
    error = "error"
    skip = "skip"
    ffill = "ffill"


class Market(str, Enum):
    none = "none"
    cn_a = "cn-a"


class _Bar:
    """A rich progress bar on stderr that appears only once the run has taken a second."""

    def __init__(self, console: Any):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            TextColumn("{task.completed}/{task.total} tasks"), TimeElapsedColumn(),
                            console=console, transient=True)
        self.task = None
        self.lock = threading.Lock()
        self.shown = False
        self.timer = threading.Timer(1.0, self._show)
        self.timer.daemon = True
        self.timer.start()

    def _show(self) -> None:
        with self.lock:
            if not self.shown and self.timer is not None:
                self.shown = True
                self.bar.start()

    def start(self, label: str, total: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(label, total=max(total, 1))

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, n)

    def done(self) -> None:
        with self.lock:
            self.timer.cancel()
            self.timer = None  # type: ignore[assignment]
            if self.shown:
                self.bar.stop()


def _from_config(path: Path, task_id: str | None, console: Any) -> tuple[Path, list[str], str | None, dict[str, Any]]:
    """(script, data, key column, parameters) of a backtest task in a tasks file: one script,
    file input."""
    from ..orchestration.config import ConfigError, load_config

    try:
        loaded = load_config(path)
    except ConfigError as exc:
        console.print(f"[red]ConfigError:[/red] {exc}")
        raise typer.Exit(2) from None
    candidates = [t for t in loaded.tasks if t.input.type == "file"]
    if task_id is None:
        fit = [t for t in candidates if not t.routing.enabled]
        if len(fit) != 1:
            names = ", ".join(t.id for t in candidates) or "none"
            console.print(f"[red]error:[/red] name the task with --task (file-input tasks in {path}: {names})")
            raise typer.Exit(2)
        task = fit[0]
    else:
        found = [t for t in loaded.tasks if t.id == task_id]
        if not found:
            problems = "; ".join(str(i) for i in loaded.issues if i.task == task_id)
            console.print(f"[red]error:[/red] no valid task {task_id!r} in {path}" + (f": {problems}" if problems else ""))
            raise typer.Exit(2)
        task = found[0]
    if len(task.scripts) != 1 or task.input.type != "file" or not task.input.path:
        console.print(f"[red]error:[/red] task {task.id!r} cannot be backtested: a backtest task has one script "
                      f"and a file input (it has {len(task.scripts)} script(s) and {task.input.type} input)")
        raise typer.Exit(2)
    from ..orchestration.inputs import pattern_glob

    # a task's input pattern ({stock_code} wildcards) reads as the glob of the files it matches
    return Path(task.scripts[0]), [pattern_glob(task.input.path)], task.routing.key_column, dict(task.params)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _locate(paths: list[str], column: str, value: Any) -> str:
    """``file line N`` of the first CSV row whose ``column`` holds ``value`` (an error path)."""
    if value is None:
        return ""
    want = str(value).strip()
    for p in paths:
        if p.endswith((".parquet", ".pq")):
            continue
        try:
            with open(p, newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                header = next(reader, [])
                if column not in header:
                    continue
                i = header.index(column)
                for line, row in enumerate(reader, start=2):
                    if i < len(row) and row[i].strip() == want:
                        return f"{p} line {line}"
        except OSError:
            continue
    return ""


def _costs(fee: float, slippage: float, next_bar: bool, market: Market, lot_size: Optional[int],
           t_plus_1: Optional[bool], stamp_duty: Optional[float], min_fee: Optional[float],
           price_limit: Optional[float]) -> Any:
    from ..backtest.simulate import Costs

    preset: dict[str, Any] = dict(CN_A) if market is Market.cn_a else {}
    given = {"lot_size": lot_size, "t_plus_1": t_plus_1, "stamp_duty": stamp_duty, "min_fee": min_fee,
             "price_limit": price_limit}
    rules = {**preset, **{k: v for k, v in given.items() if v is not None}}
    board = market is Market.cn_a and price_limit is None
    return Costs(fee=fee, slippage=slippage, next_bar_open=next_bar, min_fee=rules.get("min_fee") or 0.0,
                 stamp_duty=rules.get("stamp_duty") or 0.0, lot_size=rules.get("lot_size") or 0,
                 t_plus_1=bool(rules.get("t_plus_1")), price_limit=rules.get("price_limit") or (0.10 if board else 0.0),
                 board_limits=board)


def register(app: typer.Typer) -> None:
    @app.command()
    def backtest(
        target: Path = typer.Argument(..., metavar="SCRIPT_OR_CONFIG", help="The strategy script (its OUTPUT has a `signal` column, optionally `size`), or a tasks file (.toml) holding a backtest task."),
        data: list[str] = typer.Argument(None, help="CSV or Parquet files, or globs (default for a task: its input file)."),
        task_id: Optional[str] = typer.Option(None, "--task", help="The task of a tasks file (default: its one file-input task with routing disabled)."),
        key: Optional[str] = typer.Option(None, "--key", help="Instrument column ('none': one instrument). Default: the task's routing.key_column, else stock_code."),
        time_col: str = typer.Option("date", "--time", help="Bar time column: parsed as dates or datetimes, and each instrument's bars sorted by it."),
        time_format: Optional[str] = typer.Option(None, "--time-format", metavar="FORMAT", help="strftime format of the time column (e.g. '%d/%m/%Y %H:%M'); default: ISO 8601 or a common format, inferred."),
        out: Path = typer.Option(Path("backtest_results"), "--out", help="Report folder."),
        capital: float = typer.Option(1e6, "--capital", help="Initial capital, split equally across instruments."),
        fee: float = typer.Option(0.0003, "--fee", help="Fee (commission) as a fraction of the traded value, both sides."),
        slippage: float = typer.Option(0.0, "--slippage", help="Slippage as a fraction of the price."),
        next_bar: bool = typer.Option(True, "--open-next-bar/--same-bar", help="Fill at the next bar's open (default) or the signal bar's close."),
        market: Market = typer.Option(Market.none, "--market", case_sensitive=False, help="Market rules preset: cn-a is lot 100, T+1, stamp duty 0.0005 on sells, minimum fee 5, price limits by board (10 %, 20 % for 300/301/688/689). The options below override it."),
        lot_size: Optional[int] = typer.Option(None, "--lot-size", min=0, help="Buy whole lots of this many shares (1: whole shares; 0: fractional, the default)."),
        t_plus_1: Optional[bool] = typer.Option(None, "--t-plus-1/--no-t-plus-1", help="Shares bought on a trading day cannot be sold that day."),
        stamp_duty: Optional[float] = typer.Option(None, "--stamp-duty", min=0, help="Tax on sells only, as a fraction of the sold value."),
        min_fee: Optional[float] = typer.Option(None, "--min-fee", min=0, help="Minimum fee (commission) per order, in money."),
        price_limit: Optional[float] = typer.Option(None, "--price-limit", min=0, help="Daily price limit as a fraction of the previous close: a buy at limit-up (a sell at limit-down) does not fill."),
        missing: Missing = typer.Option(Missing.error, "--missing", case_sensitive=False, help="A bar without a usable price (close, and open for next-bar fills): error (default) names it; skip leaves such bars out; ffill carries the previous price forward."),
        periods: Optional[float] = typer.Option(None, "--periods-per-year", min=0.0001, help="Bars per year for volatility and ratios (default: inferred from the bar spacing, e.g. 252 for daily bars)."),
        risk_free: float = typer.Option(0.0, "--risk-free", help="Annual risk-free rate for Sharpe and Sortino."),
        set_: Optional[list[str]] = typer.Option(None, "--set", metavar="NAME=VALUE", help=SET_HELP),
        sweep: Optional[list[str]] = typer.Option(None, "--sweep", metavar="NAME=RANGE", help="Run every combination of parameter values: NAME=START:STOP:STEP (stop included) or NAME=V1,V2,...; repeat for several parameters. Writes sweep.csv and a heatmap."),
        rank: str = typer.Option("sharpe", "--rank", help="The metric that ranks sweep combinations: sharpe, sortino, cagr, total_return, calmar, final_equity, win_rate, profit_factor, expectancy, max_drawdown or volatility (lowest first)."),
        processes: int = typer.Option(0, "--processes", min=0, help="Run on a LocalCluster of N worker processes (default: threads in this process, nothing to start)."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, hidden=True, help="Old name of --processes."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads of the in-process scheduler (default: the number of cores)."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Address of a running Dask scheduler (e.g. make serve's tcp://127.0.0.1:8786); default: $DPORCH_SCHEDULER unless --processes is given."),
        partitions: Optional[int] = typer.Option(None, "--partitions", min=1, help="Partitions of the data after the shuffle by instrument (default: 2 per worker thread or process)."),
        html: bool = typer.Option(True, "--html/--no-html", help="Write report.html (Bokeh)."),
        charts: int = typer.Option(10, "--charts", min=0, help="Instruments drawn in report.html (those with the most trades; all are in the tables)."),
    ) -> None:
        """Backtest a script over DATA (or a backtest task of a tasks file): signals drive long-only
        positions per instrument. Metric definitions and every rule: docs/backtest.md."""
        args = dict(locals())
        from rich.console import Console

        console = Console(stderr=True)
        t0 = time.perf_counter()
        helper = None
        if html and "bokeh" not in sys.modules:  # a fresh process: import Bokeh on another core meanwhile
            from ..backtest.page_process import PageProcess

            helper = PageProcess()
        try:
            _backtest(**args, helper=helper, console=console, t0=t0)
        finally:
            if helper is not None:
                helper.cancel()  # nothing to draw (an error), or done already


def _backtest(target: Path, data: list[str] | None, task_id: str | None, key: str | None, time_col: str,
              time_format: str | None, out: Path, capital: float, fee: float, slippage: float, next_bar: bool,
              market: Market, lot_size: int | None, t_plus_1: bool | None, stamp_duty: float | None,
              min_fee: float | None, price_limit: float | None, missing: Missing, periods: float | None,
              risk_free: float, set_: list[str] | None, sweep: list[str] | None, rank: str, processes: int,
              workers: int | None, threads: int | None, scheduler: str | None, partitions: int | None,
              html: bool, charts: int,
              helper: Any, console: Any, t0: float) -> None:
    """The command, with its options (see :func:`register`)."""
    from ..lang.errors import DPLangError

    from rich.console import Console

    script, task_key, task_params = target, None, {}
    if target.suffix == ".toml":
        script, task_data, task_key, task_params = _from_config(target, task_id, console)
        data = data or task_data
    elif task_id is not None:
        console.print("[red]error:[/red] --task needs a tasks file (.toml) as the first argument")
        raise typer.Exit(2)
    if not data:
        console.print("[red]error:[/red] give the data files (CSV or Parquet, globs allowed)")
        raise typer.Exit(2)
    from ..backtest.job import RANK_METRICS, sweep_grid

    if rank not in RANK_METRICS:
        console.print(f"[red]error:[/red] --rank {rank}: choose one of {', '.join(RANK_METRICS)}")
        raise typer.Exit(2)
    key = key or task_key or "stock_code"
    params = {**task_params, **set_values(set_)}
    program = load_program(script, params=params)
    if "signal" not in program.outputs:
        console.print("[red]error:[/red] the script declares no `signal` OUTPUT column; "
                      "return buy/sell strings (BUY(), SELL()) or numbers in a column named signal")
        raise typer.Exit(1)
    names: list[str] = []
    combos: list[dict[str, Any]] = []
    if sweep:
        names, combos = _sweep_combos(program, sweep, console, sweep_grid)
    from ..backtest.job import BacktestOptions, DataError, TimeError, expand_inputs

    try:
        paths = expand_inputs(data)
    except FileNotFoundError as exc:
        console.print(f"[red]InputError:[/red] {exc}")
        raise typer.Exit(2) from None
    opts = BacktestOptions(key=None if key.lower() == "none" else key, time=time_col, time_format=time_format,
                           capital=capital, costs=_costs(fee, slippage, next_bar, market, lot_size, t_plus_1,
                                                         stamp_duty, min_fee, price_limit),
                           periods=periods, risk_free=risk_free, scheduler=scheduler,
                           processes=processes or workers or 0, threads=threads, missing=missing.value,
                           params=params, chart_instruments=charts, partitions=partitions)
    bar = _Bar(console)
    sweep_result = None

    def panels(instruments: int) -> None:  # the helper builds the page's panels meanwhile
        if helper is not None:
            helper.panels(min(charts, instruments))
    try:
        if combos:
            from ..backtest.job import run_sweep

            sweep_result = run_sweep(program, paths, opts, names, combos, rank, progress=bar,
                                     compile_with=lambda p: load_program(script, params={**params, **p}),
                                     on_prepared=panels)
            result = sweep_result.best
            result.timings.update(sweep_result.timings)
        else:
            from ..backtest.job import run_backtest

            result = run_backtest(program, paths, opts, progress=bar, on_prepared=panels)
    except DPLangError as exc:
        bar.done()
        report(exc)
        raise typer.Exit(1) from None
    except (DataError, TimeError) as exc:
        bar.done()
        if isinstance(exc, TimeError):
            where = _locate(paths, time_col, exc.value)
            if where:
                exc.where.append(where)
        console.print("[red]InputError:[/red] " + _escape(str(exc)), highlight=False)
        raise typer.Exit(2) from None
    except KeyError as exc:
        bar.done()
        console.print(f"[red]InputError:[/red] column {exc} is not in the data (see --key, --time)")
        raise typer.Exit(2) from None
    bar.done()
    t = time.perf_counter()
    files = _write(result, out, html, t, t0, sweep_result, helper)
    out_console = Console()
    if sweep_result is not None:
        from ..backtest.report import sweep_table

        out_console.print(sweep_table(sweep_result))
    from ..backtest.report import summary_table

    out_console.print(summary_table(result))
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
    n_open = result.summary["portfolio"].get("open_trades") or 0
    if n_open:
        console.print(f"{n_open} open trade(s) at the end, valued at the last close (listed last in trades.csv)")
    split = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    console.print(f"time: {split} ({opts.mode})")
    console.print("wrote " + ", ".join(str(f) for f in files))


def _write(result: Any, out: Path, html: bool, t: float, t0: float, sweep_result: Any, helper: Any) -> list[Path]:
    from ..backtest.report import write_report

    return write_report(result, out, html_page=html, sweep=sweep_result, helper=helper, timings=lambda: {
        **result.timings, "report": time.perf_counter() - t, "total": time.perf_counter() - t0})


def _sweep_combos(program: Any, items: list[str], console: Any, grid: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """The swept parameters and every combination, each value converted to the parameter's
    type (a usage error, exit 2, names what is wrong)."""
    from ..lang.errors import ParamError
    from ..lang.params import resolve_params

    try:
        names, combos = grid(items)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    typed: dict[tuple[str, str], Any] = {}
    try:
        for combo in combos:
            for n, v in combo.items():
                if (n, repr(v)) not in typed:
                    typed[(n, repr(v))] = resolve_params(program.script, {n: v}, file=program.file)[n]
    except ParamError as exc:
        report(exc)
        raise typer.Exit(2) from None
    return names, [{n: typed[(n, repr(v))] for n, v in c.items()} for c in combos]
