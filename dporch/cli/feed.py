"""``dporch feed``: replay a CSV or JSON-lines file into a task's TCP input, and make sure the
task read it.

A task's input never writes back, so the sender can tell three things apart: the API answers
every line (a JSON error: wrong port), a paused task stops reading (the send stalls, or the
end of the data is never consumed), and a reading task closes the connection once it has read
everything after our end of data. Before sending, the API (when one answers at ``--server``)
says whether the port is a task's input and whether that task is running, so the common
mistakes fail at once, with nothing sent.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api.client import Client, DporchAPIError, parse_server
from .messages import UserError

__all__ = ["FeedResult", "load_lines", "check_target", "feed"]

_LOOPBACK = ("127.", "::1", "0.0.0.0", "localhost")
_HINTS = {"paused": "feed_hint_paused", "ready": "feed_hint_start", "stopped": "feed_hint_start",
          "created": "feed_hint_start", "error": "feed_hint_reset"}


@dataclass
class FeedResult:
    sent: int
    seconds: float


def load_lines(file: Path) -> tuple[str, list[str]]:
    """(CSV header or "", data lines) of a CSV or JSON-lines file, with precise errors."""
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    except FileNotFoundError:
        raise UserError("file_not_found", path=str(file)) from None
    except UnicodeDecodeError as exc:
        raise UserError("file_not_utf8", path=str(file), byte=exc.start) from None
    except OSError as exc:
        raise UserError("file_unreadable", path=str(file), reason=exc.strerror or str(exc)) from None
    lines = [line if line.endswith("\n") else line + "\n" for line in lines if line.strip()]
    if lines and not lines[0].lstrip().startswith("{"):
        return lines[0], lines[1:]
    return "", lines


# -- asking the API first ------------------------------------------------------------------------------
def _resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def _same_machine(a: str, b: str) -> bool:
    ra, rb = _resolve(a), _resolve(b)
    return ra == rb or (ra.startswith(_LOOPBACK) and rb.startswith(_LOOPBACK))


def _tcp_inputs(c: Client) -> list[tuple[str, int, str]]:
    """(task id, listening port, state) of every task with a TCP input."""
    found = []
    for summary in c.list_tasks()["tasks"]:
        info = c.get_task(summary["id"])
        cfg = info["config"].get("input", {})
        if cfg.get("type") != "tcp":
            continue
        described = str(info["stats"].get("input") or "")  # "tcp HOST:PORT" once listening (port 0 resolved)
        tail = described.rpartition(":")[2]
        port = int(tail) if tail.isdigit() else cfg.get("port")
        if isinstance(port, int):
            found.append((summary["id"], port, info["status"]))
    return found


def _ports_text(inputs: list[tuple[str, int, str]], msgs: Any) -> str:
    if not inputs:
        return msgs("feed_no_task_ports")
    return msgs("feed_task_ports", ports=", ".join(f"{tid} {port} ({state})" for tid, port, state in inputs))


def check_target(host: str, port: int, server: str | None, token: str | None, msgs: Any) -> None:
    """Fail before sending if the API at ``server`` says the target is the API itself or the
    input of a task that is not running. No API there (or a refusal): nothing is checked."""
    try:
        api_host, api_port = parse_server(server)
    except ValueError as exc:
        raise UserError("bad_address", detail=str(exc)) from None
    if not _same_machine(host, api_host):
        return
    try:
        client = Client(api_host, api_port, token=token, connect_timeout=1.0, timeout=5.0)
    except OSError:
        return
    with client:
        try:
            client.handshake(1.0)
            inputs = _tcp_inputs(client)
        except (OSError, DporchAPIError):
            return
    address = f"{host}:{port}"
    if port == api_port:
        raise UserError("feed_is_api", address=address, ports=_ports_text(inputs, msgs))
    for tid, task_port, state in inputs:
        if task_port == port and state != "running":
            hint = msgs(_HINTS.get(state, "feed_hint_start"), task_id=tid)
            raise UserError("feed_task_state", exit_code=1, task_id=tid, address=address,
                            state=msgs(f"status.{state}") if state in _HINTS else state, hint=hint)


# -- sending --------------------------------------------------------------------------------------------
class _Sender:
    """One connection to a task input: rows out, nothing expected back until our end of data."""

    def __init__(self, sock: socket.socket, address: str, total: int, stall: float):
        self.sock, self.address, self.total, self.stall = sock, address, total, stall
        self.sent = 0
        sock.settimeout(stall)

    def send(self, data: bytes, rows: int) -> None:
        self._check_reply()
        try:
            self.sock.sendall(data)
        except TimeoutError:
            self._abort()  # a row cut in the middle must not reach the task as a short row
            raise UserError("feed_stalled", exit_code=1, address=self.address, sent=self.sent, total=self.total,
                            seconds=self.stall) from None
        except KeyboardInterrupt:
            self._abort()
            raise
        except OSError:
            self._closed_by_peer()
        self.sent += rows

    def finish(self) -> None:
        """Signal the end of data and wait until the task has read it all (it closes then)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            data = self.sock.recv(4096)
        except TimeoutError:
            raise UserError("feed_unread", exit_code=1, address=self.address, sent=self.sent,
                            seconds=self.stall) from None
        except OSError:
            self._closed_by_peer()
        if data:
            self._answered(data)

    def _check_reply(self) -> None:
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return
        try:
            data = self.sock.recv(4096)
        except OSError:
            self._closed_by_peer()
        if not data:
            self._closed_by_peer()
        self._answered(data)

    def _answered(self, data: bytes) -> None:
        """Something wrote back: the dporch API (a JSON error per line), or another service."""
        first = data.split(b"\n", 1)[0]
        try:
            msg = json.loads(first)
        except ValueError:
            msg = None
        if isinstance(msg, dict) and "status" in msg:
            raise UserError("feed_answered_api", address=self.address, reply=str(msg.get("message", msg))[:160])
        raise UserError("feed_answered_other", address=self.address, reply=repr(first[:60]))

    def _closed_by_peer(self) -> None:
        raise UserError("feed_closed", exit_code=1, address=self.address, sent=self.sent, total=self.total)

    def _abort(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def feed(host: str, port: int, header: str, rows: list[str], *, rate: float = 0.0, repeat: int = 1,
         stall: float = 10.0) -> FeedResult:
    """Send ``header`` then ``rows`` ``repeat`` times at ``rate`` rows/s (0: at once); raise
    :class:`UserError` unless the task read every row."""
    address = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=stall)
    except OSError as exc:
        raise UserError("feed_cannot_connect", address=address, reason=exc.strerror or str(exc)) from None
    block = 100 if rate <= 0 else max(1, int(rate / 100))
    start = time.monotonic()
    with sock:
        sender = _Sender(sock, address, len(rows) * repeat, stall)
        try:
            if header:
                sender.send(header.encode(), 0)
            for _ in range(repeat):
                for i in range(0, len(rows), block):
                    chunk = rows[i: i + block]
                    sender.send("".join(chunk).encode(), len(chunk))
                    if rate > 0:
                        ahead = sender.sent / rate - (time.monotonic() - start)
                        if ahead > 0:
                            time.sleep(ahead)
            sender.finish()
        except KeyboardInterrupt:
            raise UserError("feed_interrupted", exit_code=130, address=address, sent=sender.sent,
                            total=sender.total) from None
    return FeedResult(sender.sent, time.monotonic() - start)
