"""``dporch feed``: replay a CSV or JSON-lines file into a task's TCP input, and make sure the
task read it.

A task's input writes back nothing but ``ack N`` lines (a durable input: N records are logged),
so the sender can tell things apart: the API answers every line (a JSON error: wrong port), a
paused task stops reading (the send stalls, or the end of the data is never consumed), and a
reading task closes the connection once it has read everything after our end of data. Before
sending, the API (when one answers at ``--server``) says whether the port is a task's input and
whether that task is running, so the common mistakes fail at once, with nothing sent.

With ``--stream NAME`` (a durable input) the feed is exactly once: the connection opens with
``#stream NAME``, the input answers ``resume N`` (records of that stream it already has), and
the feed goes on from record N + 1; a connection that breaks (the server restarted) is opened
again the same way, until every record is acknowledged.
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
from .messages import UserError, file_errors

__all__ = ["FeedResult", "load_lines", "check_target", "feed"]

_LOOPBACK = ("127.", "::1", "0.0.0.0", "localhost")
_HINTS = {"paused": "feed_hint_paused", "ready": "feed_hint_start", "stopped": "feed_hint_start",
          "created": "feed_hint_start", "error": "feed_hint_reset"}


@dataclass
class FeedResult:
    sent: int
    seconds: float
    reconnects: int = 0


def load_lines(file: Path) -> tuple[str, list[str]]:
    """(CSV header or "", data lines) of a CSV or JSON-lines file, with precise errors."""
    with file_errors(file):
        lines = file.read_text(encoding="utf-8-sig").splitlines(keepends=True)
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
class _Broken(Exception):
    """The connection broke while sending (a stream reconnects)."""


class _Sender:
    """One connection to a task input: rows out; back, only acknowledgements of a durable input."""

    def __init__(self, sock: socket.socket, address: str, total: int, stall: float):
        self.sock, self.address, self.total, self.stall = sock, address, total, stall
        self.sent = 0
        self.acked = 0  # records a durable input has logged (0: none said, or not durable)
        self._pending = b""
        sock.settimeout(stall)

    def open_stream(self, name: str) -> int:
        """``#stream NAME`` -> the records of that stream the input already has."""
        self.sock.sendall(f"#stream {name}\n".encode())
        self.sock.settimeout(min(self.stall, 5.0))
        try:
            while b"\n" not in self._pending:
                data = self.sock.recv(4096)
                if not data:
                    break
                self._pending += data
        except TimeoutError:
            raise UserError("feed_not_durable", address=self.address) from None
        finally:
            self.sock.settimeout(self.stall)
        line, _, self._pending = self._pending.partition(b"\n")
        if not line.startswith(b"resume "):
            self._answered(line + b"\n" + self._pending)
        self.acked = int(line.split()[1])
        return self.acked

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
            raise _Broken() from None
        self.sent += rows

    def finish(self) -> None:
        """Signal the end of data and wait until the task has read it all (it closes then)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            while True:
                data = self.sock.recv(4096)
                if not data:
                    return
                self._replies(data)
        except TimeoutError:
            raise UserError("feed_unread", exit_code=1, address=self.address, sent=self.sent,
                            seconds=self.stall) from None
        except OSError:
            raise _Broken() from None

    def _check_reply(self) -> None:
        while select.select([self.sock], [], [], 0)[0]:
            try:
                data = self.sock.recv(4096)
            except OSError:
                raise _Broken() from None
            if not data:
                raise _Broken()
            self._replies(data)

    def _replies(self, data: bytes) -> None:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            if line.startswith(b"ack ") and line[4:].isdigit():
                self.acked = int(line[4:])
            else:
                self._answered(line)

    def _answered(self, data: bytes) -> None:
        """Something else wrote back: the dporch API (a JSON error per line), or another service."""
        first = data.split(b"\n", 1)[0]
        if first.startswith(b"error "):
            raise UserError("feed_refused", address=self.address, reply=first[6:].decode("utf-8", "replace"))
        try:
            msg = json.loads(first)
        except ValueError:
            msg = None
        if isinstance(msg, dict) and "status" in msg:
            raise UserError("feed_answered_api", address=self.address, reply=str(msg.get("message", msg))[:160])
        raise UserError("feed_answered_other", address=self.address, reply=repr(first[:60]))

    def _abort(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _connect(address: tuple[str, int], stall: float, retry_for: float) -> socket.socket:
    """A connection, retried for ``retry_for`` seconds (a restarting server)."""
    end = time.monotonic() + retry_for
    while True:
        try:
            return socket.create_connection(address, timeout=stall)
        except OSError as exc:
            if time.monotonic() >= end:
                raise UserError("feed_cannot_connect", address=f"{address[0]}:{address[1]}",
                                reason=exc.strerror or str(exc)) from None
            time.sleep(0.2)


def feed(host: str, port: int, header: str, rows: list[str], *, rate: float = 0.0, repeat: int = 1,
         stall: float = 10.0, stream: str | None = None) -> FeedResult:
    """Send ``header`` then ``rows`` ``repeat`` times at ``rate`` rows/s (0: at once); raise
    :class:`UserError` unless the task read every row. With ``stream``: resume where the
    durable input says, reconnecting after a broken connection, until every row is acknowledged."""
    address = f"{host}:{port}"
    total = len(rows) * repeat
    block = 100 if rate <= 0 else max(1, int(rate / 100))
    start = time.monotonic()
    done = 0  # records the task has (a stream), or that were sent
    reconnects = 0
    while True:
        sock = _connect((host, port), stall, stall if stream and reconnects else 0)
        with sock:
            sender = _Sender(sock, address, total, stall)
            try:
                done = sender.open_stream(stream) if stream else 0
                sender.sent = done
                if header:
                    sender.send(header.encode(), 0)
                i = done
                while i < total:
                    n = min(block, total - i, len(rows) - i % len(rows))
                    sender.send("".join(rows[i % len(rows): i % len(rows) + n]).encode(), n)
                    i += n
                    if rate > 0:
                        ahead = (sender.sent - done) / rate - (time.monotonic() - start)
                        if ahead > 0:
                            time.sleep(ahead)
                sender.finish()
            except _Broken:
                if not stream:
                    raise UserError("feed_closed", exit_code=1, address=address, sent=sender.sent,
                                    total=total) from None
                reconnects += 1
                continue
            except KeyboardInterrupt:
                raise UserError("feed_interrupted", exit_code=130, address=address, sent=sender.sent,
                                total=total) from None
        if stream and sender.acked < total:
            reconnects += 1  # closed before the last acknowledgement: ask where it stands
            continue
        return FeedResult(total if stream else sender.sent, time.monotonic() - start, reconnects)
