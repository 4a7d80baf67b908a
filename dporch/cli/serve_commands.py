"""``dporch serve`` (alias ``orchestrate``) and ``dporch feed`` (replay a CSV into a TCP input)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    def serve(
        config: Optional[Path] = typer.Option(Path("tasks.toml"), "--config", "-c", help="Task definitions (TOML)."),
        host: str = typer.Option("127.0.0.1", "--host", help="API address (0.0.0.0 needs --token)."),
        port: int = typer.Option(8888, "--port", help="API port (JSON lines over TCP)."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Join this Dask scheduler (tcp://host:8786) instead of starting a local cluster."),
        workers: int = typer.Option(2, "--workers", min=1, help="Worker processes of the local cluster."),
        state_dir: Path = typer.Option(Path(".dporch"), "--state-dir",
                                       help="Registry, checkpoints, durable input logs and error logs."),
        token: Optional[str] = typer.Option(None, "--token", envvar="DPORCH_TOKEN", help="Requests must carry this token."),
        dashboard: str = typer.Option(":8787", "--dashboard", help="Dask dashboard address of the local cluster."),
        restore_running: bool = typer.Option(True, "--restore-running/--no-restore-running", help="Restart tasks that were running or paused when the server stopped (else they come back stopped)."),
        data_dir: list[str] = typer.Option([], "--data-dir", help="Folders API tasks and attach_file may read (default: ./data)."),
        output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Folder API tasks may write (default: ./output)."),
        allow_path: list[str] = typer.Option([], "--allow-path", metavar="FOLDER", help="Another folder every task may read and write; repeat for more."),
        web: str = typer.Option("127.0.0.1:8080", "--web", metavar="HOST:PORT",
                                help="The web console and /metrics (a port in use: another one, printed at start)."),
        no_web: bool = typer.Option(False, "--no-web", help="No web console and no /metrics."),
        dashboard_page: bool = typer.Option(True, "--dashboard-page/--no-dashboard-page",
                                            help="Add the dporch page to the local cluster's Dask dashboard."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages (tasks, API, checkpoints)."),
    ) -> None:
        """Run the task orchestrator: Dask cluster, tasks from the config, the JSON-lines API, the web console."""
        import asyncio

        from ..api.app import ServeOptions, configure_logging, serve as run
        from ..orchestration.config import ConfigError

        configure_logging(verbose)
        opts = ServeOptions(config=config, host=host, port=port, scheduler=scheduler, workers=workers,
                            state_dir=state_dir, token=token, dashboard=dashboard,
                            restore_running=restore_running, data_dirs=list(data_dir), output_dir=output_dir,
                            allow_paths=list(allow_path), web=None if no_web else web,
                            dashboard_page=dashboard_page)
        try:
            asyncio.run(run(opts))
        except ConfigError as exc:
            for issue in exc.issues:
                typer.echo(f"config: {issue}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    app.command("serve")(serve)
    app.command("orchestrate", help="Alias of serve.")(serve)

    @app.command()
    def feed(
        file: Path = typer.Argument(..., help="CSV file (header first) or JSON lines."),
        port: int = typer.Option(9001, "--port", min=1, max=65535, help="The task's TCP input port."),
        host: str = typer.Option("127.0.0.1", "--host", help="The host the task's TCP input listens on."),
        rate: float = typer.Option(0.0, "--rate", min=0.0, help="Rows per second (0: as fast as possible)."),
        repeat: int = typer.Option(1, "--repeat", min=1, help="Send the rows this many times."),
        timeout: float = typer.Option(10.0, "--timeout", min=0.1,
                                      help="Give up when the task reads nothing for this many seconds."),
        server: Optional[str] = typer.Option(None, "--server", envvar="DPORCH_SERVER", metavar="HOST:PORT",
                                             help="The dporch API, asked first whether PORT is a running task's "
                                                  "input (skipped when no API answers; default 127.0.0.1:8888)."),
        token: Optional[str] = typer.Option(None, "--token", envvar="DPORCH_TOKEN",
                                            help="API token, if the server needs one."),
        stream: Optional[str] = typer.Option(None, "--stream", metavar="NAME",
                                             help="Exactly once into a durable input: resume where the task stands, "
                                                  "reconnect when the connection breaks."),
    ) -> None:
        """Replay FILE into a task's TCP input at a given rate, and check that the task read it all
        (exit 1 if it does not read, e.g. when paused; exit 2 if PORT is not a task's input)."""
        from .feed import check_target, feed as send, load_lines
        from .messages import UserError, current

        msgs = current()
        try:
            header, rows = load_lines(file)
            check_target(host, port, server, token, msgs)
            result = send(host, port, header, rows, rate=rate, repeat=repeat, stall=timeout, stream=stream)
        except UserError as exc:
            typer.echo(f"{msgs('error')}: {exc.render(msgs)}", err=True)
            raise typer.Exit(exc.exit_code) from None
        rate_done = result.sent / result.seconds if result.seconds else 0.0
        typer.echo(msgs("feed_done", sent=result.sent, seconds=result.seconds, rate=rate_done), err=True)
        if result.reconnects:
            typer.echo(msgs("feed_reconnected", count=result.reconnects), err=True)
