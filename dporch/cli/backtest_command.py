"""``dporch backtest``: a script's signals over historical data, on Dask, with a report."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Optional

import typer

from ..lang.errors import DPLangError
from .lang_commands import load_program, report

__all__ = ["register"]


def _progress(console: Any) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    def show(futures: list) -> None:
        with Progress(TextColumn("[bold]backtest"), BarColumn(), TextColumn("{task.completed}/{task.total} partitions"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("run", total=len(futures))
            while True:
                done = sum(f.done() for f in futures)
                bar.update(task, completed=done)
                if done == len(futures):
                    return
                time.sleep(0.05)
    return show


def register(app: typer.Typer) -> None:
    @app.command()
    def backtest(
        script: Path = typer.Argument(..., help="The strategy script: its OUTPUT has a `signal` column (and optionally `size`)."),
        data: list[str] = typer.Argument(..., help="CSV or Parquet files, or globs."),
        key: str = typer.Option("stock_code", "--key", help="Instrument column ('none': one instrument)."),
        time_col: str = typer.Option("date", "--time", help="Bar time column (rows are sorted by it per instrument)."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address; default: an embedded LocalCluster."),
        out: Path = typer.Option(Path("backtest_results"), "--out", help="Report folder."),
        capital: float = typer.Option(1e6, "--capital", help="Initial capital, split equally across instruments."),
        fee: float = typer.Option(0.0003, "--fee", help="Fee as a fraction of the traded value (both sides)."),
        slippage: float = typer.Option(0.0, "--slippage", help="Slippage as a fraction of the price."),
        next_bar: bool = typer.Option(True, "--open-next-bar/--same-bar", help="Fill at the next bar's open (default) or the signal bar's close."),
        risk_free: float = typer.Option(0.0, "--risk-free", help="Annual risk-free rate for Sharpe and Sortino."),
        workers: int = typer.Option(2, "--workers", min=1, help="Worker processes of the embedded cluster."),
        html: bool = typer.Option(True, "--html/--no-html", help="Write report.html (Bokeh)."),
    ) -> None:
        """Backtest SCRIPT over DATA: signals drive long-only positions per instrument."""
        from rich.console import Console

        from ..backtest.job import BacktestOptions, expand_inputs, run_backtest
        from ..backtest.report import summary_table, write_report
        from ..backtest.simulate import Costs

        console = Console(stderr=True)
        program = load_program(script)
        if "signal" not in program.outputs:
            console.print("[red]error:[/red] the script declares no `signal` OUTPUT column; "
                          "return buy/sell strings (BUY(), SELL()) or numbers in a column named signal")
            raise typer.Exit(1)
        try:
            paths = expand_inputs(data)
        except FileNotFoundError as exc:
            console.print(f"[red]InputError:[/red] {exc}")
            raise typer.Exit(2) from None
        opts = BacktestOptions(key=None if key.lower() == "none" else key, time=time_col, capital=capital,
                               costs=Costs(fee=fee, slippage=slippage, next_bar_open=next_bar),
                               risk_free=risk_free, scheduler=scheduler, workers=workers)
        t0 = time.perf_counter()
        # The report's Bokeh import (~0.6 s) overlaps with the cluster's work.
        preload = threading.Thread(target=lambda: __import__("bokeh.plotting"), daemon=True)
        if html:
            preload.start()
        try:
            result = run_backtest(program, paths, opts, progress=_progress(console))
        except DPLangError as exc:
            report(exc)
            raise typer.Exit(1) from None
        except KeyError as exc:
            console.print(f"[red]InputError:[/red] column {exc} is not in the data (see --key, --time)")
            raise typer.Exit(2) from None
        t = time.perf_counter()
        files = write_report(result, out, html=html, timings=lambda: {
            **result.timings, "report": time.perf_counter() - t, "total": time.perf_counter() - t0})
        Console().print(summary_table(result))
        split = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
        console.print(f"time: {split}")
        console.print("wrote " + ", ".join(str(f) for f in files))
