"""``dporch client``: the interactive client of SEED §7.1 (prompt_toolkit: completion of
commands and task ids, persistent history; rich: coloured status, tables, progress)."""

from __future__ import annotations

import shlex
from itertools import islice
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import Progress

from ..api.client import Client, DporchAPIError, parse_server
from .present import read_rows, read_task_file, rows_table, task_panel, tasks_table

__all__ = ["Repl", "COMMANDS"]

COMMANDS = {
    "connect": "connect <host:port>       连接到服务器",
    "list": "list                      列出所有任务",
    "show": "show <task_id>            查看任务详情",
    "create": "create <config_file>      从配置文件创建任务",
    "start": "start <task_id>           启动任务",
    "pause": "pause <task_id>           暂停任务",
    "resume": "resume <task_id>          继续任务",
    "stop": "stop <task_id>            停止任务",
    "delete": "delete <task_id>          删除任务",
    "push": "push <task_id> <file>     推送CSV文件数据",
    "attach": "attach <task_id> <file>   附加文件数据",
    "output": "output <task_id> [limit]  获取输出",
    "subscribe": "subscribe <task_id>       订阅实时输出 (Ctrl-C 返回)",
    "help": "help                      显示帮助",
    "exit": "exit                      退出客户端",
}


class Repl:
    def __init__(self, server: str | None = None, token: str | None = None, console: Console | None = None,
                 history: Path | None = None):
        self.console = console or Console()
        self.token = token
        self.client: Client | None = None
        self.server = server
        self.history = history or Path.home() / ".dporch_history"
        self.task_ids: list[str] = []

    # -- commands -------------------------------------------------------------------------------
    def connect(self, address: str) -> None:
        host, port = parse_server(address)
        if self.client is not None:
            self.client.close()
        self.client = Client(host, port, token=self.token)
        self.client.ping()
        self.server = address
        self.console.print(f"✅ 已连接到 {address}")
        self._refresh_ids()

    def _need(self) -> Client:
        if self.client is None:
            raise RuntimeError("未连接: 先执行 connect <host:port>")
        return self.client

    def _refresh_ids(self) -> None:
        if self.client is not None:
            self.task_ids = [t["id"] for t in self.client.list_tasks()["tasks"]]

    def do_list(self) -> None:
        c = self._need()
        tasks = c.list_tasks()["tasks"]
        self.task_ids = [t["id"] for t in tasks]
        self.console.print(tasks_table(tasks))

    def do_show(self, task_id: str) -> None:
        self.console.print(task_panel(self._need().get_task(task_id)))

    def do_create(self, path: str) -> None:
        data = self._need().create_task(read_task_file(Path(path)))
        self.console.print(f"✅ 任务已创建: {data['task_id']}")
        self._refresh_ids()

    def _action(self, method: str, task_id: str, done: str) -> None:
        getattr(self._need(), method)(task_id)
        self.console.print(done)
        if method == "delete_task":
            self._refresh_ids()

    def do_push(self, task_id: str, path: str) -> None:
        c = self._need()
        total = sum(1 for _ in read_rows(Path(path)))
        self.console.print("📤 正在推送数据...")
        accepted = 0
        with Progress(console=self.console, transient=True) as bar:
            job = bar.add_task("push", total=total)
            rows = read_rows(Path(path))
            while chunk := list(islice(rows, 1000)):
                accepted += c.push_data(task_id, chunk)["accepted_count"]
                bar.advance(job, len(chunk))
        self.console.print(f"✅ 已推送 {accepted:,} 行数据")

    def do_attach(self, task_id: str, path: str) -> None:
        data = self._need().attach_file(task_id, path)
        self.console.print(f"✅ 文件数据已处理: {data['processed_count']:,} 行")

    def do_output(self, task_id: str, limit: str = "10") -> None:
        c = self._need()
        n = int(limit)
        info = c.fetch_output(task_id, 0, 0)
        held = info["total_count"] - info["first_index"]  # rows still in the buffer
        rows = c.fetch_output(task_id, n, max(0, held - n))["rows"]
        self.console.print(rows_table(rows, f"输出结果 (最近{len(rows)}行):"))

    def do_subscribe(self, task_id: str) -> None:
        assert self.server is not None
        host, port = parse_server(self.server)
        self.console.print(f"订阅 {task_id} 的实时输出 (Ctrl-C 返回)")
        with Client(host, port, token=self.token) as sub:
            try:
                for row in sub.subscribe(task_id):
                    self.console.print(row)
            except KeyboardInterrupt:
                self.console.print("已停止订阅")

    def do_help(self) -> None:
        for line in COMMANDS.values():
            self.console.print("  " + line)

    # -- loop -------------------------------------------------------------------------------------
    def execute(self, line: str) -> bool:
        """Run one command line; False means exit."""
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            self.console.print(f"[red]❌ {exc}[/red]")
            return True
        if not parts:
            return True
        cmd, args = parts[0], parts[1:]
        actions: dict[str, tuple[Callable[..., None], int, int]] = {
            "connect": (self.connect, 1, 1), "list": (self.do_list, 0, 0), "show": (self.do_show, 1, 1),
            "create": (self.do_create, 1, 1), "push": (self.do_push, 2, 2), "attach": (self.do_attach, 2, 2),
            "output": (self.do_output, 1, 2), "subscribe": (self.do_subscribe, 1, 1), "help": (self.do_help, 0, 0),
            "start": (lambda t: self._action("start_task", t, "▶ 任务已启动"), 1, 1),
            "pause": (lambda t: self._action("pause_task", t, "⏸ 任务已暂停"), 1, 1),
            "resume": (lambda t: self._action("resume_task", t, "▶ 任务已继续"), 1, 1),
            "stop": (lambda t: self._action("stop_task", t, "⏹ 任务已停止"), 1, 1),
            "delete": (lambda t: self._action("delete_task", t, "🗑 任务已删除"), 1, 1),
        }
        if cmd in ("exit", "quit"):
            self.console.print("👋 再见！")
            return False
        if cmd not in actions:
            self.console.print(f"[red]❌ 未知命令: {cmd}[/red] (help 查看命令)")
            return True
        fn, lo, hi = actions[cmd]
        if not lo <= len(args) <= hi:
            self.console.print(f"[red]❌ 用法: {COMMANDS[cmd].split('  ')[0].strip()}[/red]")
            return True
        try:
            fn(*args)
        except DporchAPIError as exc:
            self.console.print(f"[red]❌ {exc.code}: {exc.message}[/red]")
        except (OSError, ConnectionError, RuntimeError, ValueError) as exc:
            self.console.print(f"[red]❌ {exc}[/red]")
        return True

    def run(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import Completer, Completion
        from prompt_toolkit.history import FileHistory

        repl = self

        class _Complete(Completer):
            def get_completions(self, document: Any, complete_event: Any) -> Any:
                words = document.text_before_cursor.split()
                typing_new = document.text_before_cursor.endswith(" ")
                if not words or (len(words) == 1 and not typing_new):
                    prefix = words[0] if words else ""
                    for c in COMMANDS:
                        if c.startswith(prefix):
                            yield Completion(c, start_position=-len(prefix))
                elif (len(words) == 1 and typing_new) or (len(words) == 2 and not typing_new):
                    prefix = "" if typing_new else words[1]
                    for t in repl.task_ids:
                        if t.startswith(prefix):
                            yield Completion(t, start_position=-len(prefix))

        self.console.print("DPLang 任务编排客户端 v1.0")
        if self.server:
            self.execute(f"connect {self.server}")
        session: PromptSession = PromptSession(history=FileHistory(str(self.history)), completer=_Complete())
        while True:
            try:
                line = session.prompt("> ")
            except KeyboardInterrupt:
                continue
            except EOFError:
                self.console.print("👋 再见！")
                break
            if not self.execute(line):
                break
        if self.client is not None:
            self.client.close()
