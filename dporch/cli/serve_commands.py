"""``dporch serve`` (alias ``orchestrate``) and ``dporch feed`` (replay a CSV into a TCP input)."""

from __future__ import annotations

import asyncio
import socket
import time
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
        state_dir: Path = typer.Option(Path(".dporch"), "--state-dir", help="Registry (SQLite) and error logs."),
        token: Optional[str] = typer.Option(None, "--token", envvar="DPORCH_TOKEN", help="Requests must carry this token."),
        dashboard: str = typer.Option(":8787", "--dashboard", help="Dask dashboard address of the local cluster."),
        restore_running: bool = typer.Option(True, "--restore-running/--no-restore-running", help="Restart API tasks that were running when the server stopped."),
        data_dir: list[str] = typer.Option([], "--data-dir", help="Folders attach_file may read (default: ./data)."),
        verbose: bool = typer.Option(False, "--verbose", "-v"),
    ) -> None:
        """Run the task orchestrator: Dask cluster, tasks from the config, the JSON-lines API."""
        from ..api.app import ServeOptions, configure_logging, serve as run

        configure_logging(verbose)
        opts = ServeOptions(config=config, host=host, port=port, scheduler=scheduler, workers=workers,
                            state_dir=state_dir, token=token, dashboard=dashboard,
                            restore_running=restore_running, data_dirs=list(data_dir))
        try:
            asyncio.run(run(opts))
        except OSError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    app.command("serve")(serve)
    app.command("orchestrate", help="Alias of serve (SEED §9.2.2).")(serve)

    @app.command()
    def feed(
        file: Path = typer.Argument(..., help="CSV file (header first) or JSON lines."),
        port: int = typer.Option(9001, "--port", help="The task's TCP input port."),
        host: str = typer.Option("127.0.0.1", "--host"),
        rate: float = typer.Option(0.0, "--rate", help="Rows per second (0: as fast as possible)."),
        repeat: int = typer.Option(1, "--repeat", min=1, help="Send the rows this many times."),
    ) -> None:
        """Replay FILE into a task's TCP input at a given rate."""
        try:
            lines = file.read_text(encoding="utf-8-sig").splitlines(keepends=True)
        except OSError as exc:
            typer.echo(f"InputError: cannot read {file}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        header, rows = (lines[0], lines[1:]) if lines and not lines[0].lstrip().startswith("{") else ("", lines)
        try:
            sock = socket.create_connection((host, port), timeout=10)
        except OSError as exc:
            typer.echo(f"error: cannot connect to {host}:{port}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        sent = 0
        start = time.monotonic()
        with sock:
            if header:
                sock.sendall(header.encode())
            for _ in range(repeat):
                for i in range(0, len(rows), 100 if rate <= 0 else max(1, int(rate / 100))):
                    block = rows[i: i + (100 if rate <= 0 else max(1, int(rate / 100)))]
                    sock.sendall("".join(block).encode())
                    sent += len(block)
                    if rate > 0:
                        ahead = sent / rate - (time.monotonic() - start)
                        if ahead > 0:
                            time.sleep(ahead)
        elapsed = time.monotonic() - start
        typer.echo(f"sent {sent} rows in {elapsed:.2f} s ({sent / elapsed if elapsed else 0:,.0f} rows/s)", err=True)
