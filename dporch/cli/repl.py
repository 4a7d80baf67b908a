"""``dporch client``: the interactive client (prompt_toolkit: completion of commands and task
ids, persistent history; rich: coloured states, tables, progress). Messages come from
:mod:`.messages` in one language; a failed command prints one line and the session goes on."""

from __future__ import annotations

import csv
import io
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory
from rich.console import Console
from rich.markup import escape

from ..api.client import Client, DporchAPIError
from .messages import Messages, UserError, current
from .present import config_lines, format_cell, print_table, read_task_file, rows_table, task_panel, tasks_table
from .task_commands import connect, describe_error, push_file

__all__ = ["Repl", "COMMANDS", "USAGE"]

#: Each command's usage; ``help`` prints them with their description from the catalogue.
USAGE = {
    "connect": "connect <host:port>",
    "list": "list",
    "show": "show <task_id>",
    "create": "create <config_file>",
    "start": "start <task_id>",
    "pause": "pause <task_id>",
    "resume": "resume <task_id>",
    "stop": "stop <task_id>",
    "delete": "delete <task_id>",
    "push": "push <task_id> <file>",
    "attach": "attach <task_id> <file>",
    "output": "output <task_id> [limit]",
    "subscribe": "subscribe <task_id>",
    "help": "help",
    "exit": "exit",
}
COMMANDS = tuple(USAGE)


@dataclass
class _Command:
    run: Callable[..., None]
    min_args: int
    max_args: int


class Repl:
    def __init__(self, server: str | None = None, token: str | None = None, console: Console | None = None,
                 history: Path | None = None, msgs: Messages | None = None):
        self.console = console or Console()
        self.msgs = msgs or current()
        self.token = token
        self.client: Client | None = None
        self.server = server
        self.history = history or Path.home() / ".dporch_history"
        self.task_ids: list[str] = []
        self.commands: dict[str, _Command] = {
            "connect": _Command(self.connect, 1, 1), "list": _Command(self.do_list, 0, 0),
            "show": _Command(self.do_show, 1, 1), "create": _Command(self.do_create, 1, 1),
            "push": _Command(self.do_push, 2, 2), "attach": _Command(self.do_attach, 2, 2),
            "output": _Command(self.do_output, 1, 2), "subscribe": _Command(self.do_subscribe, 1, 1),
            "help": _Command(self.do_help, 0, 0),
            **{verb: _Command(self._action(verb), 1, 1) for verb in ("start", "pause", "resume", "stop", "delete")},
        }

    # -- output -----------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """Plain text (never rich markup: `[limit]` stays visible); the terminal wraps it."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def fail(self, text: str) -> None:
        self.console.print(f"[red]❌ {escape(text)}[/red]", highlight=False, soft_wrap=True)

    # -- commands -------------------------------------------------------------------------------
    def connect(self, address: str) -> None:
        """Open the new connection first: if it fails, an existing one stays in use."""
        try:
            client = connect(address, self.token)
        except UserError as exc:
            self.fail(exc.render(self.msgs))
            if self.client is not None:
                self.say(self.msgs("still_connected", address=self.server))
            return
        if self.client is not None:
            self.client.close()
        self.client, self.server = client, address
        self.say(self.msgs("connected", address=address))
        self._refresh_ids()

    def _need(self) -> Client:
        if self.client is None:
            raise UserError("not_connected")
        return self.client

    def _refresh_ids(self) -> None:
        if self.client is not None:
            self.task_ids = [t["id"] for t in self.client.list_tasks()["tasks"]]

    def do_list(self) -> None:
        tasks = self._need().list_tasks()["tasks"]
        self.task_ids = [t["id"] for t in tasks]
        print_table(self.console, tasks_table(tasks, self.msgs))

    def do_show(self, task_id: str) -> None:
        self.console.print(task_panel(self._need().get_task(task_id), self.msgs))

    def do_create(self, path: str) -> None:
        c = self._need()
        config = read_task_file(Path(path))
        try:
            data = c.create_task(config)
        except DporchAPIError as exc:
            if exc.code != "invalid_config":
                raise
            lines = config_lines(exc, path, self.msgs)
            self.fail(lines[0])
            for line in lines[1:]:
                self.say(line)
            return
        self.say(self.msgs("created", task_id=data["task_id"]))
        self._refresh_ids()

    def _action(self, verb: str) -> Callable[[str], None]:
        done = {"start": "started", "pause": "paused", "resume": "resumed", "stop": "stopped", "delete": "deleted"}[verb]

        def run(task_id: str) -> None:
            getattr(self._need(), f"{verb}_task")(task_id)
            self.say(self.msgs(done, task_id=task_id))
            if verb == "delete":
                self._refresh_ids()
        return run

    def do_push(self, task_id: str, path: str) -> None:
        c = self._need()
        result = push_file(c, task_id, Path(path), 1000, self.msgs("pushing"))
        n, bad = result["accepted_count"], len(result["errors"])
        self.say(self.msgs("pushed_errors", count=n, errors=bad) if bad else self.msgs("pushed", count=n))

    def do_attach(self, task_id: str, path: str) -> None:
        data = self._need().attach_file(task_id, path)
        self.say(self.msgs("attached", count=data["processed_count"]))

    def do_output(self, task_id: str, limit: str = "10") -> None:
        """The last ``limit`` rows the task's output buffer holds."""
        if not limit.isdigit() or int(limit) < 1:
            raise UserError("bad_limit", value=limit, usage=USAGE["output"])
        c, n = self._need(), int(limit)
        info = c.fetch_output(task_id, 0, 0)
        held = info["total_count"] - info["first_index"]
        rows = c.fetch_output(task_id, n, max(0, held - n))["rows"]
        print_table(self.console, rows_table(rows, self.msgs("output_recent", count=len(rows))))

    def do_subscribe(self, task_id: str) -> None:
        """Rows as they come, one CSV line each (a header line first), until Ctrl-C."""
        self._need()
        assert self.server is not None
        with connect(self.server, self.token) as sub:
            rows = sub.subscribe(task_id)
            self.say(self.msgs("subscribing", task_id=task_id))
            columns: list[str] | None = None
            try:
                for row in rows:
                    if list(row) != columns:
                        columns = list(row)
                        self.console.print(escape(_csv_line(columns)), style="bold", highlight=False)
                    self.say(_csv_line([format_cell(v) for v in row.values()]))
            except KeyboardInterrupt:
                self.say(self.msgs("unsubscribed"))

    def do_help(self) -> None:
        for name, usage in USAGE.items():
            self.say(f"  {usage:<26}{self.msgs('help.' + name)}")

    # -- loop -------------------------------------------------------------------------------------
    def execute(self, line: str) -> bool:
        """Run one command line; False means exit. Failures print one message and return True."""
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            self.fail(self.msgs("bad_quotes", reason=str(exc)))
            return True
        if not parts:
            return True
        cmd, args = parts[0], parts[1:]
        if cmd in ("exit", "quit"):
            self.say(self.msgs("bye"))
            return False
        command = self.commands.get(cmd)
        if command is None:
            self.fail(self.msgs("unknown_command", command=cmd))
        elif not command.min_args <= len(args) <= command.max_args:
            self.fail(self.msgs("usage", usage=USAGE[cmd]))
        else:
            self._guarded(command.run, args)
        return True

    def _guarded(self, fn: Callable[..., None], args: list[str]) -> None:
        try:
            fn(*args)
        except KeyboardInterrupt:
            self.fail(self.msgs("interrupted"))
        except (UserError, DporchAPIError) as exc:
            self.fail(describe_error(exc, self.server or "", self.msgs)[0])
        except OSError as exc:  # the connection broke: say so, and that connect is needed
            self.fail(describe_error(exc, self.server or "", self.msgs)[0])
            if self.client is not None:
                self.client.close()
                self.client = None
                self.say(self.msgs("disconnected"))

    def run(self) -> None:
        self.say(self.msgs("banner"))
        if self.server:
            self._guarded(self.connect, [self.server])
        session: PromptSession = PromptSession(history=FileHistory(str(self.history)), completer=_Completer(self))
        while True:
            try:
                line = session.prompt("> ")
            except KeyboardInterrupt:
                continue
            except EOFError:
                self.say(self.msgs("bye"))
                break
            if not self.execute(line):
                break
        if self.client is not None:
            self.client.close()


def _csv_line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


class _Completer(Completer):
    """Command names first, then the task ids the client last saw."""

    def __init__(self, repl: Repl):
        self.repl = repl

    def get_completions(self, document: Any, complete_event: Any) -> Iterator[Completion]:
        words = document.text_before_cursor.split()
        typing_new = document.text_before_cursor.endswith(" ")
        if not words or (len(words) == 1 and not typing_new):
            prefix, candidates = (words[0] if words else ""), list(COMMANDS)
        elif (len(words) == 1 and typing_new) or (len(words) == 2 and not typing_new):
            prefix, candidates = ("" if typing_new else words[1]), self.repl.task_ids
        else:
            return
        for c in candidates:
            if c.startswith(prefix):
                yield Completion(c, start_position=-len(prefix))
