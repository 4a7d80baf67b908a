"""Non-interactive API commands: ``dporch tasks ...``, ``push``, ``attach``, ``output``,
``subscribe`` (SEED §4). ``--json`` prints machine-readable JSON; tables are for people."""

from __future__ import annotations

import json
import os
import tomllib
from itertools import islice
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import Progress

from ..api.client import Client, DporchAPIError, parse_server
from .present import parse_filter, read_rows, read_task_file, rows_table, task_panel, tasks_table

__all__ = ["register"]

ServerOpt = typer.Option(None, "--server", envvar="DPORCH_SERVER", help="API address host:port (default 127.0.0.1:8888).")
TokenOpt = typer.Option(None, "--token", envvar="DPORCH_TOKEN", help="API token, if the server needs one.")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")

out = Console()
err = Console(stderr=True)


def _client(server: Optional[str], token: Optional[str]) -> Client:
    try:
        host, port = parse_server(server)
        return Client(host, port, token=token)
    except (OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] cannot reach the dporch server at {server or os.environ.get('DPORCH_SERVER') or '127.0.0.1:8888'}: {exc}")
        raise typer.Exit(2) from None


def _call(server: Optional[str], token: Optional[str], fn: Any) -> Any:
    with _client(server, token) as c:
        try:
            return fn(c)
        except DporchAPIError as exc:
            err.print(f"[red]{exc.code}:[/red] {exc.message}")
            raise typer.Exit(1) from None


def _emit(data: Any, as_json: bool, human: Any) -> None:
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        human()


def _set_value(updates: dict[str, Any], dotted: str, value: str) -> None:
    keys = dotted.split(".")
    d = updates
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    try:
        d[keys[-1]] = json.loads(value)
    except ValueError:
        d[keys[-1]] = value


def register(app: typer.Typer) -> None:
    tasks = typer.Typer(help="Manage the tasks of a running dporch server.", no_args_is_help=True)
    app.add_typer(tasks, name="tasks")

    @tasks.command("list")
    def list_(server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """List the tasks."""
        data = _call(server, token, lambda c: c.list_tasks())
        _emit(data, as_json, lambda: out.print(tasks_table(data["tasks"])))

    @tasks.command("show")
    def show(task_id: str, server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt,
             as_json: bool = JsonOpt) -> None:
        """A task's configuration and statistics."""
        data = _call(server, token, lambda c: c.get_task(task_id))
        _emit(data, as_json, lambda: out.print(task_panel(data)))

    @tasks.command("create")
    def create(file: Path = typer.Argument(..., help="A TOML file with one [[task]] table (or JSON)."),
               start: bool = typer.Option(False, "--start", help="Start the task once created."),
               server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Create a task from a file (paths in it are relative to the file)."""
        try:
            config = read_task_file(file)
        except (OSError, ValueError) as exc:
            err.print(f"[red]error:[/red] {file}: {exc}")
            raise typer.Exit(2) from None

        def go(c: Client) -> Any:
            data = c.create_task(config)
            if start:
                c.start_task(data["task_id"])
            return data
        data = _call(server, token, go)
        _emit(data, as_json, lambda: out.print(f"✅ 任务已创建: {data['task_id']}" + (" (已启动)" if start else "")))

    def simple(name: str, method: str, message: str) -> None:
        def command(task_id: str, server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt,
                    as_json: bool = JsonOpt) -> None:
            data = _call(server, token, lambda c: getattr(c, method)(task_id))
            _emit(data, as_json, lambda: out.print(message.format(task_id=task_id)))
        command.__doc__ = f"{name.capitalize()} a task."
        tasks.command(name)(command)

    simple("start", "start_task", "▶ 任务已启动: {task_id}")
    simple("pause", "pause_task", "⏸ 任务已暂停: {task_id}")
    simple("resume", "resume_task", "▶ 任务已继续: {task_id}")
    simple("stop", "stop_task", "⏹ 任务已停止: {task_id}")
    simple("delete", "delete_task", "🗑 任务已删除: {task_id}")
    simple("reset", "reset_task", "↺ 任务已重置: {task_id}")

    @tasks.command("update")
    def update(task_id: str,
               set_: list[str] = typer.Option([], "--set", help="A change as section.field=value, e.g. compute_pool.max_size=8."),
               file: Optional[Path] = typer.Option(None, "--file", help="A TOML or JSON file of changes."),
               server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Change a task's configuration (a running task takes compute_pool.max_size and output.buffer_size)."""
        updates: dict[str, Any] = {}
        if file is not None:
            text = file.read_text(encoding="utf-8")
            updates = json.loads(text) if file.suffix == ".json" else tomllib.loads(text)
        for item in set_:
            key, sep, value = item.partition("=")
            if not sep:
                err.print(f"[red]error:[/red] --set takes section.field=value, got {item!r}")
                raise typer.Exit(2)
            _set_value(updates, key, value)
        data = _call(server, token, lambda c: c.update_task(task_id, updates))
        _emit(data, as_json, lambda: out.print(f"✅ 任务配置已更新: {', '.join(data['applied'])}"))

    @app.command()
    def push(task_id: str, file: Path = typer.Argument(..., help="CSV (header first) or JSON lines."),
             batch: int = typer.Option(1000, "--batch", min=1, help="Rows per push_data request."),
             server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Push the rows of a local file to a running task (push_data)."""
        total = sum(1 for _ in read_rows(file))
        accepted, errors = 0, []
        with _client(server, token) as c, Progress(console=err, transient=True) as bar:
            job = bar.add_task("📤 正在推送数据...", total=total)
            rows = read_rows(file)
            while chunk := list(islice(rows, batch)):
                try:
                    data = c.push_data(task_id, chunk)
                except DporchAPIError as exc:
                    err.print(f"[red]{exc.code}:[/red] {exc.message}")
                    raise typer.Exit(1) from None
                accepted += data["accepted_count"]
                errors += data["errors"]
                bar.advance(job, len(chunk))
        result = {"accepted_count": accepted, "errors": errors}
        _emit(result, as_json, lambda: out.print(f"✅ 已推送 {accepted:,} 行数据" + (f" ({len(errors)} 行有错误)" if errors else "")))

    @app.command()
    def attach(task_id: str, file: str = typer.Argument(..., help="A file on the server, inside its data directories."),
               server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Stream a file on the server through a task (attach_file)."""
        data = _call(server, token, lambda c: c.attach_file(task_id, file))
        _emit(data, as_json, lambda: out.print(f"✅ 文件数据已处理: {data['processed_count']:,} 行"))

    @app.command()
    def output(task_id: str, limit: int = typer.Option(10, "--limit", "-n"), offset: int = typer.Option(0, "--offset"),
               server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Rows from a task's output buffer (fetch_output)."""
        data = _call(server, token, lambda c: c.fetch_output(task_id, limit, offset))
        _emit(data, as_json, lambda: out.print(rows_table(data["rows"], f"输出结果 ({len(data['rows'])} 行, 共 {data['total_count']:,})")))

    @app.command()
    def subscribe(task_id: str, filter_: list[str] = typer.Option([], "--filter", help="column=value; repeat for more."),
                  count: int = typer.Option(0, "--count", help="Stop after this many rows (0: until Ctrl-C)."),
                  server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt) -> None:
        """Print a task's output rows as they are produced (JSON lines)."""
        try:
            filt = parse_filter(filter_)
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        with _client(server, token) as c:
            try:
                for i, row in enumerate(c.subscribe(task_id, filt), 1):
                    typer.echo(json.dumps(row, ensure_ascii=False))
                    if count and i >= count:
                        break
            except DporchAPIError as exc:
                err.print(f"[red]{exc.code}:[/red] {exc.message}")
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                pass
