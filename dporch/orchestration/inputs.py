"""Input pipelines: stdin, file (streamed, optionally followed), TCP listener.

Each input hands the task *chunks* (lines.py): CSV cell lists (with the connection's or file's
own header) or JSON objects, with their line numbers and source. A paused task
stops reading, which a TCP client feels as backpressure; ``feed`` awaits the task, so a full
compute pool slows the readers down too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from typing import Any, Awaitable, Callable

from .config import InputConfig
from .lines import Chunk, LineSplitter, Logged

__all__ = ["Chunk", "Feed", "Logged", "make_input", "InputPipeline", "LineSplitter"]

log = logging.getLogger("dporch.input")
_READ = 1 << 16


# feed(chunk, logged): returns once the task has taken the chunk in; calls ``logged(chunk)``
# as soon as a durable input has it in its log (before it is processed).
Feed = Callable[[Chunk, Logged | None], Awaitable[None]]


class InputPipeline:
    """Base: ``run(feed)`` reads until closed; ``pause``/``resume`` gate the reading (a paused
    input reads nothing more, so a TCP sender feels backpressure rather than a reset)."""

    def __init__(self, cfg: InputConfig, task_id: str, position: dict[str, Any] | None = None):
        self.cfg = cfg
        self.task_id = task_id
        self.position = position  # where to resume (file inputs)
        self.running = asyncio.Event()
        self.running.set()
        self._closed = False
        self.done = asyncio.Event()  # the input has ended (file end, stdin end)
        self.ready = asyncio.Event()  # reading can begin (a TCP input: it is listening)

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    async def close(self) -> None:
        self._closed = True
        self.running.set()

    async def run(self, feed: Feed) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def _pump(self, read: Callable[[], bytes], source: str, feed: Feed, *, follow: bool = False) -> None:
        """Blocking reads (in a thread) into ``feed`` until the end, or forever with ``follow``."""
        split = LineSplitter(self.cfg.format, source, self.position)
        loop = asyncio.get_running_loop()
        while not self._closed:
            await self.running.wait()
            if self._closed:
                break
            data = await loop.run_in_executor(None, read)
            if not data and follow:
                await asyncio.sleep(0.1)
                continue
            chunk = split.feed(data, final=not data)
            if chunk:
                await feed(chunk, None)
            if not data:
                self.done.set()
                break

    def describe(self) -> str:
        return self.cfg.type


class FileInput(InputPipeline):
    """A file read in blocks (never loaded whole); ``follow`` keeps reading as it grows; a
    restored task resumes at its checkpoint's offset."""

    def describe(self) -> str:
        return f"file {self.cfg.path}"

    async def run(self, feed: Feed) -> None:
        assert self.cfg.path is not None
        path = self.cfg.path
        try:
            st = os.stat(path)
        except OSError as exc:
            raise OSError(f"cannot read {path}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file (a FIFO, device or folder cannot be a file input)")
        offset = self.position["offset"] if self.position else 0
        if offset > st.st_size:
            raise OSError(f"{path} is shorter ({st.st_size} bytes) than the position the task's checkpoint "
                          f"reached ({offset}); the file was replaced: start the task with fresh=true")
        with open(path, "rb") as f:
            f.seek(offset)
            self.ready.set()
            await self._pump(lambda: f.read(_READ * 4), f"file:{path}", feed, follow=self.cfg.follow)


class StdinInput(InputPipeline):
    def describe(self) -> str:
        return "stdin"

    async def run(self, feed: Feed) -> None:
        self.ready.set()
        stream = sys.stdin.buffer
        read = getattr(stream, "read1", stream.read)
        await self._pump(lambda: read(_READ), "stdin", feed)


class TcpInput(InputPipeline):
    """Listens on host:port; every connection sends a CSV header line, then rows (or JSON
    lines). Many clients at once; a paused or stopped task stops reading from all of them, so
    senders feel backpressure and are never reset mid-row.

    A durable input tells each sender what it has safely logged, with a line ``ack N`` after
    each chunk: N records of the connection (or of its stream) can no longer be lost. A sender
    that wants exactly-once delivery across broken connections and server restarts names its
    stream in a first line ``#stream NAME``; the server answers ``resume N`` (the records of
    that stream it already has), and the sender goes on with a header and record N + 1."""

    def __init__(self, cfg: InputConfig, task_id: str, position: dict[str, Any] | None = None,
                 streams: dict[str, int] | None = None):
        super().__init__(cfg, task_id)
        self.server: asyncio.base_events.Server | None = None
        self.connections = 0
        self.port: int | None = None
        self.streams = streams if streams is not None else {}  # stream -> records logged (the task's)
        self._live_streams: set[str] = set()
        self._handlers: set[asyncio.Task] = set()
        self._shut = asyncio.Event()

    def describe(self) -> str:
        return f"tcp {self.cfg.host}:{self.port or self.cfg.port}"

    async def _stream_name(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[str | None, bytes]:
        """A durable connection may open with ``#stream NAME``: (the name, bytes read past it)."""
        first = await reader.read(_READ)
        if not first.startswith(b"#stream "):
            return None, first
        while b"\n" not in first and len(first) < 4096:
            more = await reader.read(_READ)
            if not more:
                break
            first += more
        line, _, rest = first.partition(b"\n")
        name = line[len(b"#stream "):].decode("utf-8", "replace").strip()
        if not name or len(name) > 200:
            raise ValueError("a stream name is 1 to 200 characters: #stream NAME")
        if name in self._live_streams:
            raise ValueError(f"stream {name!r} is already connected")
        self._live_streams.add(name)
        writer.write(f"resume {self.streams.get(name, 0)}\n".encode())
        return name, rest

    async def run(self, feed: Feed) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")
            source = f"tcp:{peer[0]}:{peer[1]}" if peer else "tcp"
            stream: str | None = None
            self.connections += 1
            task = asyncio.current_task()
            if task:
                self._handlers.add(task)
            try:
                await self.running.wait()
                data = b""
                if self.cfg.durable:
                    stream, data = await self._stream_name(reader, writer)
                if not data:
                    data = await reader.read(_READ)
                split = LineSplitter(self.cfg.format, source)
                count = self.streams.get(stream, 0) if stream else 0

                def logged(chunk: Chunk) -> None:
                    if not writer.is_closing():
                        writer.write(f"ack {chunk.count}\n".encode())

                acks = logged if self.cfg.durable else None
                while True:
                    chunk = split.feed(data, final=not data)
                    if chunk:
                        count += len(chunk.records)
                        chunk.stream, chunk.count = stream, count
                        await feed(chunk, acks)
                    if not data or self._closed:
                        break
                    await self.running.wait()
                    if self._closed:
                        break
                    data = await reader.read(_READ)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            except ValueError as exc:
                writer.write(f"error {exc}\n".encode())
            except asyncio.CancelledError:
                # The input is closing. Ending normally: asyncio's server callback asks a
                # cancelled connection task for its exception, which raises (Python 3.11).
                pass
            except Exception:  # noqa: BLE001 - one connection's failure must not pass silently
                log.exception("task %s: connection %s failed", self.task_id, peer)
            finally:
                self.connections -= 1
                if stream is not None:
                    self._live_streams.discard(stream)
                if task:
                    self._handlers.discard(task)
                writer.close()

        self.server = await asyncio.start_server(handle, self.cfg.host, self.cfg.port, limit=_READ * 4)
        sock = self.server.sockets[0] if self.server.sockets else None
        self.port = sock.getsockname()[1] if sock else self.cfg.port
        log.info("task %s listens on %s:%s", self.task_id, self.cfg.host, self.port)
        self.ready.set()
        async with self.server:
            await self._shut.wait()

    async def close(self) -> None:
        await super().close()
        self._shut.set()
        if self.server is not None:
            self.server.close()
        for t in list(self._handlers):
            t.cancel()


def make_input(cfg: InputConfig, task_id: str, position: dict[str, Any] | None = None,
               streams: dict[str, int] | None = None) -> InputPipeline:
    if cfg.type == "tcp":
        return TcpInput(cfg, task_id, streams=streams)
    return {"file": FileInput, "stdin": StdinInput}[cfg.type](cfg, task_id, position)

