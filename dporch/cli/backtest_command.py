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


def _from_config(path: Path, task_id: str | None, console: Any) -> tuple[Path, list[str], str | None]:
    """(script, data, key column) of a backtest task in a tasks file: one script, file input."""
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
    return Path(task.scripts[0]), [task.input.path], task.routing.key_column


def register(app: typer.Typer) -> None:
    @app.command()
    def backtest(
        target: Path = typer.Argument(..., metavar="SCRIPT_OR_CONFIG", help="The strategy script (its OUTPUT has a `signal` column, optionally `size`), or a tasks file (.toml) holding a backtest task."),
        data: list[str] = typer.Argument(None, help="CSV or Parquet files, or globs (default for a task: its input file)."),
        task_id: Optional[str] = typer.Option(None, "--task", help="The task of a tasks file (default: its one file-input task with routing disabled)."),
        key: Optional[str] = typer.Option(None, "--key", help="Instrument column ('none': one instrument). Default: the task's routing.key_column, else stock_code."),
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
        """Backtest a script over DATA (or a backtest task of a tasks file): signals drive long-only
        positions per instrument."""
        from rich.console import Console

        from ..backtest.job import BacktestOptions, expand_inputs, run_backtest
        from ..backtest.report import summary_table, write_report
        from ..backtest.simulate import Costs

        console = Console(stderr=True)
        script, task_key = target, None
        if target.suffix == ".toml":
            script, task_data, task_key = _from_config(target, task_id, console)
            data = data or task_data
        elif task_id is not None:
            console.print("[red]error:[/red] --task needs a tasks file (.toml) as the first argument")
            raise typer.Exit(2)
        if not data:
            console.print("[red]error:[/red] give the data files (CSV or Parquet, globs allowed)")
            raise typer.Exit(2)
        key = key or task_key or "stock_code"
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
