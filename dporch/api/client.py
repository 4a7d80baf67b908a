"""Python clients of the dporch API: :class:`Client` (blocking) and :class:`AsyncClient`.

One method per action; an error response raises :class:`DporchAPIError` with its ``code``.

    with Client("127.0.0.1", 8888) as c:
        c.create_task({...})
        c.start_task("task-001")
        c.push_data("task-001", [{"stock_code": "000001", "close": 15.32}])
        rows = c.fetch_output("task-001", limit=10)["rows"]
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator

from .protocol import MAX_LINE, encode
from .results import (AttachResult, ErrorList, OutputPage, Pong, PushResult, ServerInfo, TaskCreated, TaskGraph,
                      TaskInfo, TaskList, TaskStatus, TaskUpdated)

__all__ = ["Client", "AsyncClient", "DporchAPIError", "ConfigProblem", "NoAPIError", "parse_server",
           "DEFAULT_SERVER"]

DEFAULT_SERVER = "127.0.0.1:8888"


@dataclass(frozen=True)
class ConfigProblem:
    """One problem of an ``invalid_config`` error: the field (``routing.key_column``) and why;
    ``file`` is None for a task that came through the API rather than from a tasks file."""

    field: str
    message: str
    task: str | None = None
    file: str | None = None


class DporchAPIError(Exception):
    """An error response of the server; ``issues`` lists the problems of an invalid_config."""

    def __init__(self, code: str, message: str, issues: list[ConfigProblem] | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.issues = issues or []


class NoAPIError(ConnectionError):
    """The address accepts connections but no dporch API answers there: ``reply`` is what came
    back instead (None: nothing at all, as from a task's data port)."""

    def __init__(self, message: str, reply: bytes | None = None):
        super().__init__(message)
        self.reply = reply


def _problems_of(resp: dict[str, Any]) -> list[ConfigProblem] | None:
    """The issues of an invalid_config answer (``issues``: [{file, task, field, message}])."""
    raw = resp.get("issues")
    if not isinstance(raw, list):
        return None
    return [ConfigProblem(str(i.get("field", "")), str(i.get("message", "")), i.get("task"), i.get("file"))
            for i in raw if isinstance(i, dict)]


def parse_server(text: str | None) -> tuple[str, int]:
    """``host:port`` (default: $DPORCH_SERVER or 127.0.0.1:8888)."""
    text = text or os.environ.get("DPORCH_SERVER") or DEFAULT_SERVER
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"server address must be host:port, got {text!r}")
    return host, int(port)


class _Methods:
    """The actions, shared by both clients: each calls ``self._call(action, params)``. The
    annotations give the result of :class:`Client`; :class:`AsyncClient` returns the same,
    awaited."""

    def _call(self, action: str, params: dict[str, Any]) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def ping(self) -> Pong:
        return self._call("ping", {})

    def server_info(self) -> ServerInfo:
        return self._call("server_info", {})

    def create_task(self, config: dict[str, Any]) -> TaskCreated:
        return self._call("create_task", config)

    def delete_task(self, task_id: str) -> None:
        return self._call("delete_task", {"task_id": task_id})

    def update_task(self, task_id: str, updates: dict[str, Any]) -> TaskUpdated:
        return self._call("update_task", {"task_id": task_id, "updates": updates})

    def list_tasks(self) -> TaskList:
        return self._call("list_tasks", {})

    def get_task(self, task_id: str) -> TaskInfo:
        return self._call("get_task", {"task_id": task_id})

    def start_task(self, task_id: str, *, fresh: bool = False) -> TaskStatus:
        """Start (continuing from the task's last checkpoint; ``fresh``: with empty history)."""
        return self._call("start_task", {"task_id": task_id, **({"fresh": True} if fresh else {})})

    def pause_task(self, task_id: str) -> TaskStatus:
        return self._call("pause_task", {"task_id": task_id})

    def resume_task(self, task_id: str) -> TaskStatus:
        return self._call("resume_task", {"task_id": task_id})

    def stop_task(self, task_id: str) -> TaskStatus:
        return self._call("stop_task", {"task_id": task_id})

    def reset_task(self, task_id: str) -> TaskStatus:
        return self._call("reset_task", {"task_id": task_id})

    def push_data(self, task_id: str, rows: list[dict[str, Any]]) -> PushResult:
        return self._call("push_data", {"task_id": task_id, "data": rows})

    def attach_file(self, task_id: str, file_path: str) -> AttachResult:
        return self._call("attach_file", {"task_id": task_id, "file_path": file_path})

    def fetch_output(self, task_id: str, limit: int = 100, offset: int = 0) -> OutputPage:
        return self._call("fetch_output", {"task_id": task_id, "limit": limit, "offset": offset})

    def get_errors(self, task_id: str, limit: int = 100) -> ErrorList:
        return self._call("get_errors", {"task_id": task_id, "limit": limit})

    def get_graph(self) -> TaskGraph:
        """The tasks as a graph laid out to draw, each node with its task's status."""
        return self._call("get_graph", {})


def _result(resp: dict[str, Any]) -> Any:
    if resp.get("status") != "ok":
        raise DporchAPIError(resp.get("code", "internal"), resp.get("message", ""), _problems_of(resp))
    return resp.get("data")


class Client(_Methods):
    """Blocking client over one TCP connection. ``timeout`` bounds each wait for an answer;
    ``connect_timeout`` (default: ``timeout``) bounds opening the connection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8888, *, token: str | None = None,
                 timeout: float | None = 60.0, connect_timeout: float | None = None):
        self.host, self.port, self.token = host, port, token or os.environ.get("DPORCH_TOKEN")
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=connect_timeout or timeout)
        self.sock.settimeout(timeout)
        self.file = self.sock.makefile("rb")
        self._ids = itertools.count(1)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def handshake(self, timeout: float = 3.0) -> Pong:
        """Ping with a short timeout, so that a port where no dporch API listens (a task's data
        port, another service) fails at once with :class:`NoAPIError` instead of hanging."""
        self.sock.settimeout(timeout)
        try:
            return self.ping()
        except TimeoutError:
            raise NoAPIError(f"no dporch API answered at {self.address} within {timeout:g} s") from None
        finally:
            if self.sock.fileno() != -1:  # still open: the caller may keep using the client
                self.sock.settimeout(self.timeout)

    @classmethod
    def connect(cls, server: str | None = None, **kw: Any) -> "Client":
        host, port = parse_server(server)
        return cls(host, port, **kw)

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one request; returns the raw final response (progress events are skipped)."""
        rid = next(self._ids)
        msg: dict[str, Any] = {"action": action, "params": params, "id": rid}
        if self.token:
            msg["token"] = self.token
        self.sock.sendall(encode(msg))
        while True:
            resp = self._read()
            if resp.get("event") is None and resp.get("id", rid) == rid:
                return resp

    def _read(self) -> dict[str, Any]:
        try:
            line = self.file.readline(MAX_LINE + 2)
        except TimeoutError:
            raise TimeoutError(f"{self.address} did not answer within {self.sock.gettimeout():g} s") from None
        if not line:
            raise ConnectionError("the server closed the connection")
        try:
            msg = json.loads(line)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            raise NoAPIError(f"{self.address} answered {line[:80]!r}, which is not a dporch API response", line[:80])
        return msg

    def _call(self, action: str, params: dict[str, Any]) -> Any:
        return _result(self.request(action, params))

    def subscribe(self, task_id: str, filt: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Yield output rows as they are produced; close the client (or break) to stop. A quiet
        task is no error: the wait for the next row has no timeout."""
        _result(self.request("subscribe_output", {"task_id": task_id, "filter": filt or {}}))
        self.sock.settimeout(None)
        try:
            while True:
                msg = self._read()
                if msg.get("event") == "output":
                    yield msg["data"]
        finally:
            if self.sock.fileno() != -1:  # still open: the caller may keep using the client
                self.sock.settimeout(self.timeout)

    def subscribe_stats(self, task_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield the live figures once a second (docs/api.md, subscribe_stats): each event's
        data, ``{"time", "tasks": [...], "removed": [...]}``; close the client (or break) to stop."""
        _result(self.request("subscribe_stats", {"task_id": task_id} if task_id is not None else {}))
        self.sock.settimeout(None)
        try:
            while True:
                msg = self._read()
                if msg.get("event") == "stats":
                    yield msg["data"]
        finally:
            if self.sock.fileno() != -1:
                self.sock.settimeout(self.timeout)

    def unsubscribe(self) -> Any:
        return self._call("unsubscribe", {})


class AsyncClient(_Methods):
    """asyncio client; requests are pipelined: many may be in flight on the connection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8888, *, token: str | None = None):
        self.host, self.port, self.token = host, port, token or os.environ.get("DPORCH_TOKEN")
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader_task: asyncio.Task | None = None

    async def connect(self) -> "AsyncClient":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=MAX_LINE + 2)
        self._reader_task = asyncio.create_task(self._read_loop())
        return self

    async def __aenter__(self) -> "AsyncClient":
        return await self.connect()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self._reader_task:
            self._reader_task.cancel()
        if self.writer:
            self.writer.close()

    async def _read_loop(self) -> None:
        assert self.reader is not None
        while True:
            line = await self.reader.readline()
            if not line:
                for f in self._waiting.values():
                    if not f.done():
                        f.set_exception(ConnectionError("the server closed the connection"))
                return
            msg = json.loads(line)
            if msg.get("event"):
                await self._events.put(msg)
                continue
            fut = self._waiting.pop(msg.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def request(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.writer is not None, "call connect() first"
        rid = next(self._ids)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        msg: dict[str, Any] = {"action": action, "params": params, "id": rid}
        if self.token:
            msg["token"] = self.token
        self.writer.write(encode(msg))
        await self.writer.drain()
        return await fut

    async def _call(self, action: str, params: dict[str, Any]) -> Any:  # type: ignore[override]
        return _result(await self.request(action, params))

    async def subscribe(self, task_id: str, filt: dict[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        await self._call("subscribe_output", {"task_id": task_id, "filter": filt or {}})
        while True:
            msg = await self._events.get()
            if msg.get("event") == "output":
                yield msg["data"]

    async def subscribe_stats(self, task_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """The live figures once a second: each stats event's data."""
        await self._call("subscribe_stats", {"task_id": task_id} if task_id is not None else {})
        while True:
            msg = await self._events.get()
            if msg.get("event") == "stats":
                yield msg["data"]
