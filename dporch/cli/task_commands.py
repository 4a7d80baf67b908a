"""Non-interactive API commands: ``dporch tasks ...``, ``push``, ``attach``, ``output``,
``subscribe`` (the actions of docs/api.md). ``--json`` prints machine-readable JSON; tables are
for people. Every failure is one message on stderr and a non-zero exit status, never a traceback:
1 when the server refuses a request, 2 for bad input or a server that cannot be reached."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NoReturn, Optional

import typer

from .help_style import DporchGroup
from .messages import Messages, UserError, current

if TYPE_CHECKING:
    from rich.console import Console

    from ..api.client import Client
    from ..api.results import TaskInfo

# rich, the API client and .present load when a command runs: every `dporch ...` command (a
# one-second `dporch run` included) imports this module to register these commands.

__all__ = ["register", "connect", "api_session", "describe_error", "push_file", "CONNECT_TIMEOUT",
           "HANDSHAKE_TIMEOUT"]

CONNECT_TIMEOUT = 5.0  # seconds to open the connection
HANDSHAKE_TIMEOUT = 3.0  # seconds for the first answer: a data port never answers

ServerOpt = typer.Option(None, "--server", envvar="DPORCH_SERVER", metavar="HOST:PORT",
                         help="API address (default 127.0.0.1:8888).")
TokenOpt = typer.Option(None, "--token", envvar="DPORCH_TOKEN", help="API token, if the server needs one.")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")
TaskArg = typer.Argument(..., metavar="TASK", help="The task id (dporch tasks list shows them).")

_consoles: dict[bool, Console] = {}


def _console(stderr: bool) -> Console:
    """The stdout (``stderr=False``) or stderr console, made once."""
    c = _consoles.get(stderr)
    if c is None:
        from rich.console import Console

        c = _consoles[stderr] = Console(stderr=stderr)
    return c


def _present() -> Any:
    from . import present

    return present


def _print_table(table: Any) -> None:
    _present().print_table(_console(False), table)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _address(server: Optional[str]) -> str:
    from ..api.client import DEFAULT_SERVER

    return server or os.environ.get("DPORCH_SERVER") or DEFAULT_SERVER


def _fail(text: str, code: int) -> NoReturn:
    _console(True).print(f"[red]{escape(current()('error'))}:[/red] {escape(text)}", soft_wrap=True)
    raise typer.Exit(code)


def connect(server: Optional[str], token: Optional[str]) -> Client:
    """A connection to a dporch API that answered a ping, or :class:`UserError` saying why not."""
    from ..api.client import Client, NoAPIError, parse_server

    address = _address(server)
    try:
        host, port = parse_server(server)
    except ValueError as exc:
        raise UserError("bad_address", detail=str(exc)) from None
    try:
        client = Client(host, port, token=token, connect_timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise UserError("cannot_reach", address=address, reason=exc.strerror or str(exc)) from None
    try:
        client.handshake(HANDSHAKE_TIMEOUT)
    except NoAPIError as exc:
        client.close()
        if exc.reply is None:
            raise UserError("no_api", address=address, seconds=HANDSHAKE_TIMEOUT) from None
        raise UserError("not_api", address=address, reply=repr(exc.reply)) from None
    except OSError as exc:
        client.close()
        raise UserError("connection_lost", address=address, reason=str(exc) or type(exc).__name__) from None
    return client


def describe_error(exc: Exception, address: str, msgs: Messages) -> tuple[str, int]:
    """The message and exit status of a failed request (1: refused by the server, 2: no server)."""
    from ..api.client import DporchAPIError, NoAPIError

    if isinstance(exc, UserError):
        return exc.render(msgs), exc.exit_code
    if isinstance(exc, DporchAPIError):
        return f"{msgs.code(exc.code)} ({exc.code}): {exc.message}", 1
    if isinstance(exc, NoAPIError):
        return msgs("not_api", address=address, reply=repr(exc.reply)), 2
    return msgs("connection_lost", address=address, reason=str(exc) or type(exc).__name__), 2


@contextmanager
def api_session(server: Optional[str], token: Optional[str],
                on_config: Callable[[Any], list[str]] | None = None) -> Iterator[Client]:
    """Connect, run the body, and turn every failure into a message and an exit status;
    ``on_config`` formats an invalid_config error (one line per problem)."""
    from ..api.client import DporchAPIError

    msgs = current()
    err = _console(True)
    try:
        with connect(server, token) as client:
            yield client
    except DporchAPIError as exc:
        if exc.code == "invalid_config" and on_config is not None:
            lines = on_config(exc)
            err.print(f"[red]{escape(msgs('error'))}:[/red] {escape(lines[0])}", soft_wrap=True)
            for line in lines[1:]:
                err.print(escape(line), soft_wrap=True)
            raise typer.Exit(1) from None
        _fail(*describe_error(exc, _address(server), msgs))
    except (UserError, OSError) as exc:
        _fail(*describe_error(exc, _address(server), msgs))


@contextmanager
def user_errors() -> Iterator[None]:
    """Local problems (files, arguments) as a message and exit status 2."""
    try:
        yield
    except UserError as exc:
        _fail(exc.render(), exc.exit_code)


def _column_types(info: "TaskInfo") -> dict[str, str | None]:
    """A task's output column types: as the script declares them, else as the input column of
    the same name is typed."""
    cols = info["columns"]
    return {name: kind or cols["input"].get(name) for name, kind in cols["output"].items()}


def _emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
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


def _updates(file: Optional[Path], items: list[str]) -> dict[str, Any]:
    from .present import read_table

    updates: dict[str, Any] = read_table(file) if file is not None else {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError("set_syntax", item=item)
        _set_value(updates, key, value)
    return updates


def push_file(c: Client, task_id: str, file: Path, batch: int, label: str) -> dict[str, Any]:
    """push_data a local file in requests of ``batch`` rows, with a progress bar on stderr."""
    from rich.progress import Progress

    from .present import count_rows, read_rows

    total = count_rows(file)
    accepted, errors = 0, []
    with Progress(console=_console(True), transient=True) as bar:
        job = bar.add_task(label, total=total)
        rows = read_rows(file)
        while chunk := list(islice(rows, batch)):
            data = c.push_data(task_id, chunk)
            accepted += data["accepted_count"]
            errors += data["errors"]
            bar.advance(job, len(chunk))
    return {"accepted_count": accepted, "errors": errors}


def register(app: typer.Typer) -> None:
    tasks = typer.Typer(help="Manage the tasks of a running dporch server.", no_args_is_help=True, cls=DporchGroup)
    app.add_typer(tasks, name="tasks")

    @tasks.command("list")
    def list_(server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """List the tasks with their state, compute pool and rows processed."""
        with api_session(server, token) as c:
            data = c.list_tasks()
        _emit(data, as_json, lambda: _print_table(_present().tasks_table(data["tasks"], current())))

    @tasks.command("show")
    def show(task_id: str = TaskArg, server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt,
             as_json: bool = JsonOpt) -> None:
        """A task's configuration and statistics."""
        with api_session(server, token) as c:
            data = c.get_task(task_id)
        _emit(data, as_json, lambda: _console(False).print(_present().task_panel(data, current())))

    @tasks.command("create")
    def create(file: Path = typer.Argument(..., metavar="FILE", help="A TOML file with one [\\[task]] table, or a JSON object."),
               start: bool = typer.Option(False, "--start", help="Start the task once created."),
               server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Create a task from a file (script and data paths in it are relative to the file)."""
        with user_errors():
            config = _present().read_task_file(file)
        with api_session(server, token, lambda e: _present().config_lines(e, str(file), current())) as c:
            data = c.create_task(config)
            if start:
                c.start_task(data["task_id"])
        key = "created_started" if start else "created"
        _emit(data, as_json, lambda: _console(False).print(escape(current()(key, task_id=data["task_id"]))))

    def simple(name: str, method: str, message: str) -> None:
        def command(task_id: str = TaskArg, server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt,
                    as_json: bool = JsonOpt) -> None:
            with api_session(server, token) as c:
                data = getattr(c, method)(task_id)
            _emit(data, as_json, lambda: _console(False).print(escape(current()(message, task_id=task_id))))
        command.__doc__ = f"{name.capitalize()} a task."
        tasks.command(name)(command)

    @tasks.command("start")
    def start(task_id: str = TaskArg,
              fresh: bool = typer.Option(False, "--fresh", help="Forget the task's checkpoint: empty history, "
                                                                "a file input from its beginning."),
              server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Start a task (it continues from its last checkpoint)."""
        with api_session(server, token) as c:
            data = c.start_task(task_id, fresh=fresh)
        _emit(data, as_json, lambda: _console(False).print(escape(current()("started", task_id=task_id))))

    simple("pause", "pause_task", "paused")
    simple("resume", "resume_task", "resumed")
    simple("stop", "stop_task", "stopped")
    simple("delete", "delete_task", "deleted")
    simple("reset", "reset_task", "reset")

    @tasks.command("update")
    def update(task_id: str = TaskArg,
               set_: list[str] = typer.Option([], "--set", metavar="SECTION.FIELD=VALUE",
                                              help="A change, e.g. compute_pool.max_size=8; repeat for more."),
               file: Optional[Path] = typer.Option(None, "--file", metavar="FILE", help="A TOML or JSON file of changes."),
               server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Change a task's configuration (a running task takes compute_pool.max_size and output.buffer_size)."""
        with user_errors():
            updates = _updates(file, set_)
        with api_session(server, token, lambda e: _present().config_lines(e, task_id, current(), task_id=task_id)) as c:
            data = c.update_task(task_id, updates)
        _emit(data, as_json, lambda: _console(False).print(escape(current()("updated", fields=", ".join(data["applied"])))))

    @app.command()
    def push(task_id: str = TaskArg,
             file: Path = typer.Argument(..., metavar="FILE", help="CSV (header first) or JSON lines."),
             batch: int = typer.Option(1000, "--batch", min=1, help="Rows per push_data request."),
             server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Push the rows of a local file to a running task (push_data)."""
        with user_errors():
            _present().count_rows(file)  # a missing or malformed file fails before anything is sent
        with api_session(server, token) as c:
            result = push_file(c, task_id, file, batch, current()("pushing"))
        n, bad = result["accepted_count"], len(result["errors"])
        text = current()("pushed_errors", count=n, errors=bad) if bad else current()("pushed", count=n)
        _emit(result, as_json, lambda: _console(False).print(escape(text)))

    @app.command()
    def attach(task_id: str = TaskArg,
               file: str = typer.Argument(..., metavar="SERVER_FILE", help="A file on the server, inside its data directories."),
               server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Stream a file on the server through a task (attach_file)."""
        with api_session(server, token) as c:
            data = c.attach_file(task_id, file)
        _emit(data, as_json, lambda: _console(False).print(escape(current()("attached", count=data["processed_count"]))))

    @app.command()
    def output(task_id: str = TaskArg,
               limit: int = typer.Option(10, "--limit", "-n", min=0, help="Rows to fetch."),
               offset: int = typer.Option(0, "--offset", min=0,
                                          help="Rows to skip, counted from the oldest row the output buffer holds."),
               server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
        """Rows from a task's output buffer (fetch_output)."""
        with api_session(server, token) as c:
            data = c.fetch_output(task_id, limit, offset)
        title = current()("output_page", count=len(data["rows"]), total=data["total_count"])
        _emit(data, as_json, lambda: _print_table(_present().rows_table(data["rows"], title)))

    @app.command()
    def subscribe(task_id: str = TaskArg,
                  filter_: list[str] = typer.Option([], "--filter", metavar="COLUMN=VALUE",
                                                    help="Only rows with this value; repeat for more."),
                  count: int = typer.Option(0, "--count", min=0, help="Stop after this many rows (0: until Ctrl-C)."),
                  server: Optional[str] = ServerOpt, token: Optional[str] = TokenOpt) -> None:
        """Print a task's output rows as they are produced (JSON lines)."""
        with api_session(server, token) as c:
            with user_errors():
                filt = _present().parse_filter(filter_, _column_types(c.get_task(task_id)) if filter_ else None)
            try:
                for i, row in enumerate(c.subscribe(task_id, filt), 1):
                    typer.echo(json.dumps(row, ensure_ascii=False))
                    if count and i >= count:
                        break
            except KeyboardInterrupt:
                pass
