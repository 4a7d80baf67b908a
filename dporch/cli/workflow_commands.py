"""``dporch workflow dag`` and ``dporch workflow run``: the tasks file as a Snakemake-style
workflow (docs/orchestration.md, "Workflows")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .help_style import DporchGroup

__all__ = ["register"]

workflow = typer.Typer(help="Tasks that feed tasks: show the graph, run what is out of date.", no_args_is_help=True,
                       cls=DporchGroup)

ConfigArg = typer.Argument(..., metavar="TASKS_FILE", help="The tasks file (TOML).")
StateOpt = typer.Option(Path(".dporch"), "--state-dir", help="Where runs are recorded (the same as dporch serve's).")
AllowOpt = typer.Option([], "--allow-path", metavar="FOLDER", help="Another folder tasks may read and write.")


def register(app: typer.Typer) -> None:
    app.add_typer(workflow, name="workflow")


def _fail(issues: list) -> None:
    for issue in issues:
        typer.echo(f"config: {issue}", err=True)
    raise typer.Exit(2)


@workflow.command("dag")
def dag(config: Path = ConfigArg,
        fmt: str = typer.Option("text", "--format", metavar="text|dot", help="text, or Graphviz dot."),
        allow_path: list[str] = AllowOpt) -> None:
    """Print the graph of the tasks: who reads whose rows (task) or files (file)."""
    from ..api.app import read_config
    from ..orchestration.config import ConfigError
    from ..orchestration.manager import TaskManager
    from ..orchestration.workflow import build_graph, render_dot, render_text

    if fmt not in ("text", "dot"):
        typer.echo("error: --format is text or dot", err=True)
        raise typer.Exit(2)
    try:
        loaded = read_config(config)
    except ConfigError as exc:
        _fail(exc.issues)
    manager = TaskManager(None)
    issues = manager.load(loaded)
    graph, more = build_graph([t.config for t in manager.tasks.values()])
    if issues or more:
        _fail(issues + more)
    typer.echo(render_dot(graph) if fmt == "dot" else render_text(graph))


@workflow.command("run")
def run(config: Path = ConfigArg,
        targets: list[str] = typer.Argument(None, metavar="TASK", help="Tasks to bring up to date, with what "
                                                                           "they need (default: every batch task)."),
        dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Say what would run and why; run nothing."),
        force: list[str] = typer.Option([], "--force", metavar="TASK", help="Run this task even if up to date."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", envvar="DPORCH_SCHEDULER",
                                                help="Run on this Dask scheduler (default: a local cluster)."),
        workers: int = typer.Option(2, "--workers", min=1, help="Worker processes of the local cluster."),
        state_dir: Path = StateOpt, allow_path: list[str] = AllowOpt) -> None:
    """Run the batch tasks that are out of date, in dependency order, on Dask."""
    import asyncio

    from ..api.app import ServeOptions, configure_logging
    from ..orchestration.config import ConfigError

    configure_logging(False)
    opts = ServeOptions(config=config, scheduler=scheduler, workers=workers, state_dir=state_dir,
                        dashboard=":0", allow_paths=list(allow_path))
    try:
        ok = asyncio.run(_run(opts, list(targets or []), set(force), dry_run))
    except ConfigError as exc:
        _fail(exc.issues)
    raise typer.Exit(0 if ok else 1)


async def _run(opts, targets: list[str], force: set[str], dry_run: bool) -> bool:  # type: ignore[no-untyped-def]
    import logging

    from rich.console import Console

    from ..api.app import connect, open_manager
    from ..orchestration.runner import execute, plan

    logging.getLogger("dporch").setLevel(logging.WARNING)
    console = Console(stderr=True, highlight=False)
    if dry_run:  # no cluster needed to say what would run
        manager, _ = open_manager(opts, None, strict=True)
        steps = plan(manager, targets or None, force=force)
        _show_plan(console, steps)
        manager.store.close()
        return True
    client, cluster = await connect(opts)
    try:
        manager, _ = open_manager(opts, client, strict=True)
        the_plan = plan(manager, targets or None, force=force)
        _show_plan(console, the_plan)
        if not the_plan.runs:
            return True

        def changed(step, what: str) -> None:  # type: ignore[no-untyped-def]
            style = {"started": "cyan", "done": "green", "failed": "red", "skipped": "yellow"}[what]
            detail = f": {step.result}" if what in ("failed", "skipped") else ""
            console.print(f"[{style}]{what:8s}[/] {step.task}{detail}")

        ok = await execute(manager, the_plan, on_change=changed)
        await manager.shutdown()
        return ok
    finally:
        await client.close()
        if cluster is not None:
            await cluster.close()


def _show_plan(console, the_plan) -> None:  # type: ignore[no-untyped-def]
    runs = the_plan.runs
    for step in the_plan.steps:
        if step.reasons:
            console.print(f"[bold]run     [/] {step.task}  ({', '.join(step.reasons)})")
        else:
            console.print(f"[dim]skip     {step.task}  (up to date)[/]")
    console.print(f"{len(runs)} of {len(the_plan.steps)} task(s) to run", style="bold" if runs else "dim")
    sys.stderr.flush()
