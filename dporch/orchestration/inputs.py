"""Input pipelines: stdin, file (streamed, optionally followed), TCP listener.

Each input hands the task *chunks* (lines.py): CSV cell lists (with the connection's or file's
own header) or JSON objects, with their line numbers and source. A paused task
stops reading, which a TCP client feels as backpressure; ``feed`` awaits the task, so a full
compute pool slows the readers down too.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import re
import stat
import sys
from typing import Any, Awaitable, Callable

from .config import InputConfig
from .lines import Chunk, LineSplitter, Logged

__all__ = ["Chunk", "Feed", "Logged", "make_input", "InputPipeline", "LineSplitter", "TaskInput", "input_files",
           "is_pattern", "pattern_glob"]

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

    async def _pump(self, read: Callable[[], bytes], split: LineSplitter, feed: Feed, *, follow: bool = False) -> None:
        """Blocking reads (in a thread) into ``feed`` until the end, or forever with ``follow``."""
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
                break

    def describe(self) -> str:
        return self.cfg.type


def is_pattern(path: str) -> bool:
    return any(c in path for c in "{*?[")


def pattern_glob(path: str) -> str:
    """A path pattern as a glob: each ``{field}`` stands for one file-name part (``*``)."""
    return re.sub(r"\{[^{}]*\}", "*", path)


def input_files(path: str) -> list[str]:
    """The files a file input reads, in the order it reads them: the path itself, or every
    file its pattern (``{field}`` wildcards, ``*``, ``?``, ``[...]``) matches, sorted."""
    if not is_pattern(path):
        return [path]
    return sorted(p for p in glob.glob(pattern_glob(path)) if os.path.isfile(p))


class FileInput(InputPipeline):
    """A file read in blocks (never loaded whole), or every file a path pattern matches, one
    after the other; ``follow`` keeps reading one file as it grows; a restored task resumes at
    its checkpoint's file and offset."""

    def describe(self) -> str:
        return f"file {self.cfg.path}"

    async def run(self, feed: Feed) -> None:
        assert self.cfg.path is not None
        files = input_files(self.cfg.path)
        if not files:
            raise OSError(f"no file matches {self.cfg.path}")
        pos = self.position or {}
        if pos.get("file") in files:
            files = files[files.index(pos["file"]):]
        elif pos.get("file") is not None or (pos and is_pattern(self.cfg.path)):
            raise OSError(f"{pos.get('file')}, where the task's checkpoint stands, is gone: "
                          "start the task with fresh=true")
        for n, path in enumerate(files):
            await self._read(path, feed, pos if n == 0 and pos else None)
            if self._closed:
                return
        self.done.set()

    async def _read(self, path: str, feed: Feed, pos: dict[str, Any] | None) -> None:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise OSError(f"cannot read {path}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file (a FIFO, device or folder cannot be a file input)")
        offset = pos["offset"] if pos else 0
        if offset > st.st_size:
            raise OSError(f"{path} is shorter ({st.st_size} bytes) than the position the task's checkpoint "
                          f"reached ({offset}); the file was replaced: start the task with fresh=true")
        with open(path, "rb") as f:
            f.seek(offset)
            self.ready.set()
            split = LineSplitter(self.cfg.format, f"file:{path}", pos, file=path)
            await self._pump(lambda: f.read(_READ * 4), split, feed, follow=self.cfg.follow)


class StdinInput(InputPipeline):
    def describe(self) -> str:
        return "stdin"

    async def run(self, feed: Feed) -> None:
        self.ready.set()
        stream = sys.stdin.buffer
        read = getattr(stream, "read1", stream.read)
        await self._pump(lambda: read(_READ), LineSplitter(self.cfg.format, "stdin"), feed)
        if not self._closed:
            self.done.set()


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
                        count += chunk.size
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


class TaskInput(InputPipeline):
    """The output rows of another task in the same server, handed over in process: the
    producer awaits this task taking each batch, so backpressure crosses the edge (a paused or
    stopped consumer holds its producer up). The input ends when the producer's input does."""

    def __init__(self, cfg: InputConfig, task_id: str, position: dict[str, Any] | None = None):
        super().__init__(cfg, task_id)
        self.feed: Feed | None = None
        self.on_committed: Callable[[int], None] = lambda next_seq: None  # the producer committed a checkpoint
        self._ended = asyncio.Event()
        self._match = sorted((cfg.filter or {}).items())

    def describe(self) -> str:
        return f"task {self.cfg.task}"

    async def run(self, feed: Feed) -> None:
        self.feed = feed
        self.ready.set()
        await self._ended.wait()
        if not self._closed:
            self.done.set()

    async def deliver(self, names: list[str], columns: list[list], seqs: list[int]) -> None:
        """Rows of the producer's output (as columns) with their row numbers there."""
        if self._match:
            index = {c: i for i, c in enumerate(names)}
            want = [(index.get(k), v) for k, v in self._match]
            if any(j is None for j, _ in want):
                return  # a filter on a column the producer does not have matches nothing
            keep = [i for i in range(len(seqs)) if all(columns[j][i] == v for j, v in want)]  # type: ignore[index]
            columns, seqs = [[c[i] for i in keep] for c in columns], [seqs[i] for i in keep]
        if not seqs or self._closed:
            return
        await self.running.wait()
        assert self.feed is not None
        await self.feed(Chunk(names, [], [s + 1 for s in seqs], f"task:{self.cfg.task}", upstream=seqs,
                              columns=columns), None)

    def finish(self) -> None:
        """The producer's input has ended: so has this one."""
        self._ended.set()

    async def close(self) -> None:
        await super().close()
        self._ended.set()


def make_input(cfg: InputConfig, task_id: str, position: dict[str, Any] | None = None,
               streams: dict[str, int] | None = None) -> InputPipeline:
    if cfg.type == "tcp":
        return TcpInput(cfg, task_id, streams=streams)
    return {"file": FileInput, "stdin": StdinInput, "task": TaskInput}[cfg.type](cfg, task_id, position)

