"""Output pipelines: stdout, file (merge, or split by a path template), TCP client;
and the bounded in-memory buffer every task keeps for fetch_output / subscribe_output.

Paths are templates: ``{column}`` takes the row's value, ``{task_id}`` the task's id, ``{key}``
the routing key (``./output/{stock_code}.csv``). Rows are buffered ``buffer_size`` at a time;
``auto_flush`` writes every row at once; otherwise a row waits at most 20 ms (the task's
``FLUSH_DELAY``), so an idle stream is not left in a buffer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..engine.writers import LazyFile, RowWriter, SplitWriter, csv_column, safe_file_name
from ..lang.format import csv_header, json_line
from .config import OutputConfig

if TYPE_CHECKING:
    from ..engine.row_blocks import Lines

__all__ = ["OutputPipeline", "make_output", "OutputBuffer", "OutputIOError", "cut_back", "NewFile", "staged",
           "publish_staged", "STAGED_SUFFIX"]

STAGED_SUFFIX = ".dporch-part"


def staged(path: str) -> str:
    """Where a batch task writes ``path`` until it has finished: a hidden file beside it, so
    an interrupted run never leaves a file that looks complete (nor matches ``*.csv``)."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}{STAGED_SUFFIX}")


def final_of(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, tail[1:-len(STAGED_SUFFIX)])


def publish_staged(path: str) -> str:
    """Move a staged file to its final name (replacing what was there); returns that name."""
    final = final_of(path)
    os.replace(path, final)
    return final

NewFile = Callable[[str, int], None]  # (path, its size before the task first wrote to it; -1: none)

log = logging.getLogger("dporch.output")


class OutputIOError(Exception):
    """The output cannot be written (after reconnecting, for TCP)."""


class OutputBuffer:
    """The last ``maxlen`` output rows of a task, with a running total and subscribers.

    A ring: once more than ``maxlen`` rows were produced, the oldest are gone and offsets in
    fetch_output count from the oldest row still held (``first_index`` says which overall row
    number that is). Rows are kept as the column blocks the units returned (adding a batch is
    O(1)) and become objects only when read. A subscriber gets a bounded queue; when it is
    full, new events for that subscriber are dropped and counted instead of buffered without
    bound."""

    def __init__(self, columns: list[str], maxlen: int = 10000):
        self.columns = columns
        self.maxlen = maxlen
        self.blocks: deque[list[list[Any]]] = deque()  # column blocks, oldest first
        self.skip = 0  # rows at the start of the oldest block that are gone (not copied away)
        self.held = 0
        self.total = 0
        self.subscribers: list["Subscription"] = []

    @property
    def first_index(self) -> int:
        return self.total - self.held

    def add(self, columns: list[list[Any]]) -> None:
        n = len(columns[0]) if columns else 0
        if not n:
            return
        self.blocks.append(columns)
        self.held += n
        self.total += n
        while self.held > self.maxlen:  # drop the oldest rows beyond maxlen
            excess, size = self.held - self.maxlen, len(self.blocks[0][0]) - self.skip
            if size <= excess:
                self.blocks.popleft()
                self.skip = 0
                self.held -= size
            else:
                self.skip += excess
                self.held -= excess
        for sub in list(self.subscribers):
            sub.offer(columns)

    def page(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """Rows ``offset .. offset + limit`` of those held, as objects."""
        out: list[dict[str, Any]] = []
        names = self.columns
        offset += self.skip
        for block in self.blocks:
            size = len(block[0])
            if offset >= size:
                offset -= size
                continue
            for row in zip(*(c[offset:offset + limit - len(out)] for c in block)):
                out.append(dict(zip(names, row)))
            offset = 0
            if len(out) >= limit:
                break
        return out

    def subscribe(self, filt: dict[str, Any] | None = None, maxsize: int = 1000) -> "Subscription":
        sub = Subscription(self, filt or {}, maxsize)
        self.subscribers.append(sub)
        return sub


class Subscription:
    def __init__(self, buffer: OutputBuffer, filt: dict[str, Any], maxsize: int):
        self.buffer = buffer
        self.filter = filt
        index = {c: i for i, c in enumerate(buffer.columns)}
        # a filter on a column the output does not have matches nothing
        self._match = [(index.get(k), v) for k, v in filt.items()]
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def offer(self, columns: list[list[Any]]) -> None:
        match, cols = self._match, self.buffer.columns
        for r in zip(*columns):
            if match and any(i is None or r[i] != v for i, v in match):
                continue
            try:
                self.queue.put_nowait(dict(zip(cols, r)))
            except asyncio.QueueFull:
                self.dropped += 1

    def close(self) -> None:
        if self in self.buffer.subscribers:
            self.buffer.subscribers.remove(self)


class OutputPipeline:
    """Where a task's output rows go: ``write(columns, keys)`` (buffered), then ``aflush()``
    and finally ``aclose()``; both raise OutputIOError when the output cannot be written."""

    def __init__(self, cfg: OutputConfig, columns: list[str], task_id: str):
        self.cfg = cfg
        self.columns = columns
        self.task_id = task_id
        self.pending_since: float | None = None

    #: whether :meth:`write` uses the rows' CSV lines (then the units make them)
    wants_lines = False

    def write(self, columns: list[list], keys: list[Any], lines: Lines | None = None) -> None:
        """A block of output rows as columns, with each row's key; ``lines``: their CSV lines,
        made by the compute unit, or None."""
        raise NotImplementedError  # pragma: no cover - interface

    async def aflush(self) -> None:
        raise NotImplementedError  # pragma: no cover - interface

    async def aclose(self) -> None:
        raise NotImplementedError  # pragma: no cover - interface

    def set_buffer_size(self, n: int) -> None:
        self.cfg.buffer_size = n

    def positions(self) -> dict[str, int]:
        """Size of each file written so far (after a flush); empty for streams and sockets."""
        return {}

    def publish(self) -> list[str]:
        """A staged output after its task finished: move every file to its final name (one
        rename each); returns the final names. Unstaged outputs have nothing to do."""
        return []

    def describe(self) -> str:
        return self.cfg.type


class _WriterOutput(OutputPipeline):
    """stdout and file outputs, through the engine's CSV / JSON-lines writers."""

    def __init__(self, cfg: OutputConfig, columns: list[str], task_id: str, on_new: NewFile | None = None,
                 stage: bool = False):
        super().__init__(cfg, columns, task_id)
        self.writer: RowWriter | SplitWriter
        self.path: str | None = None  # the merge file
        self.staged = stage
        fields = {"task_id": safe_file_name(task_id)}
        if cfg.type == "stdout":
            self.writer = RowWriter(sys.stdout, columns, cfg.format, buffer_rows=cfg.buffer_size)
        elif cfg.mode == "split":
            assert cfg.path is not None
            if cfg.format != "csv":
                raise OutputIOError("split file outputs are CSV (set output.format = \"csv\")")
            self.writer = SplitWriter(cfg.path, columns, buffer_rows=cfg.buffer_size, fields=fields, on_new=on_new,
                                      stage=staged if stage else None)
        else:
            assert cfg.path is not None
            final = cfg.path.format_map({**fields, "key": "all"})
            path = Path(staged(final) if stage else final)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.path = str(path)
            if on_new is not None:
                on_new(self.path, path.stat().st_size if path.exists() else -1)
            exists = path.exists() and path.stat().st_size > 0
            if exists and cfg.format == "csv":
                with open(path, encoding="utf-8", newline="") as f:
                    first = f.readline()
                if first != csv_header(columns):
                    raise OutputIOError(f"{path} already exists with a different header; "
                                        "move it away or change output.path")
            self.writer = RowWriter(LazyFile(path, append=True), columns, cfg.format,
                                    buffer_rows=cfg.buffer_size, header=not exists, owns=True)

    def describe(self) -> str:
        return f"{self.cfg.type} {self.cfg.mode} {self.cfg.path or ''}".strip()

    @property
    def wants_lines(self) -> bool:  # type: ignore[override]
        return self.cfg.format == "csv" and bool(self.columns)

    def write(self, columns: list[list], keys: list[Any], lines: Lines | None = None) -> None:
        if not keys:
            return
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        try:
            self.writer.write_columns(columns, keys, lines)
            if self.cfg.auto_flush:
                self._flush()
        except (OSError, ValueError) as exc:  # ValueError: an existing file with another header
            raise OutputIOError(f"writing {self.describe()} failed: {exc}") from None

    def _flush(self) -> None:
        self.writer.flush()
        self.pending_since = None

    async def aflush(self) -> None:
        try:
            self._flush()
        except (OSError, ValueError) as exc:  # ValueError: an existing file with another header
            raise OutputIOError(f"writing {self.describe()} failed: {exc}") from None

    async def aclose(self) -> None:
        try:
            if self.cfg.type == "stdout":
                self.writer.flush()
            else:
                self.writer.close()
        except (OSError, ValueError) as exc:  # ValueError: an existing file with another header
            raise OutputIOError(f"writing {self.describe()} failed: {exc}") from None

    def set_buffer_size(self, n: int) -> None:
        super().set_buffer_size(n)
        self.writer.buffer_rows = max(1, n)

    def _paths(self) -> list[str]:
        return list(self.writer.touched) if isinstance(self.writer, SplitWriter) else [self.path] if self.path else []

    def positions(self) -> dict[str, int]:
        return {p: os.path.getsize(p) for p in self._paths() if os.path.exists(p)}

    def publish(self) -> list[str]:
        if not self.staged:
            return []
        return sorted(publish_staged(p) for p in self._paths() if os.path.exists(p))


class TcpOutput(OutputPipeline):
    """Connects to host:port and sends the header, then rows. A broken connection is retried
    with backoff (0.5 s doubling, ``attempts`` times); when that fails the task pauses."""

    attempts = 5

    def __init__(self, cfg: OutputConfig, columns: list[str], task_id: str):
        super().__init__(cfg, columns, task_id)
        self.writer: asyncio.StreamWriter | None = None
        self.lines: list[str] = []
        self.lock = asyncio.Lock()

    def describe(self) -> str:
        return f"tcp {self.cfg.host}:{self.cfg.port}"

    def write(self, columns: list[list], keys: list[Any], lines: Lines | None = None) -> None:
        if not keys:
            return
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        if self.cfg.format == "json":
            self.lines += [json_line(self.columns, list(r)) for r in zip(*columns)]
        else:
            texts = [csv_column(c) for c in columns]
            self.lines += [",".join(t) + "\n" for t in zip(*texts)]

    async def _connect(self) -> None:
        delay = 0.5
        last: Exception | None = None
        for _ in range(self.attempts):
            try:
                _, self.writer = await asyncio.open_connection(self.cfg.host, self.cfg.port)
                if self.cfg.format == "csv":
                    self.writer.write(csv_header(self.columns).encode())
                return
            except OSError as exc:
                last = exc
                await asyncio.sleep(delay)
                delay *= 2
        raise OutputIOError(f"cannot connect to {self.cfg.host}:{self.cfg.port}: {last}")

    async def aflush(self) -> None:
        async with self.lock:
            if not self.lines:
                self.pending_since = None
                return
            data = "".join(self.lines).encode()
            for attempt in range(2):
                try:
                    if self.writer is None or self.writer.is_closing():
                        await self._connect()
                    assert self.writer is not None
                    self.writer.write(data)
                    await self.writer.drain()
                    self.lines.clear()
                    self.pending_since = None
                    return
                except (OSError, ConnectionError) as exc:
                    self.writer = None
                    if attempt == 1:
                        raise OutputIOError(f"sending to {self.cfg.host}:{self.cfg.port} failed: {exc}") from None
                except OutputIOError:
                    raise

    async def aclose(self) -> None:
        await self.aflush()
        if self.writer is not None:
            self.writer.close()


class NoOutput(OutputPipeline):
    """``type = "none"``: rows go only to the task's buffer, subscribers and downstream tasks."""

    def write(self, columns: list[list], keys: list[Any], lines: Lines | None = None) -> None:
        pass

    async def aflush(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def make_output(cfg: OutputConfig, columns: list[str], task_id: str, on_new: NewFile | None = None,
                stage: bool = False) -> OutputPipeline:
    """``stage``: write files under staged names until :meth:`OutputPipeline.publish`."""
    if cfg.type == "tcp":
        return TcpOutput(cfg, columns, task_id)
    if cfg.type == "none":
        return NoOutput(cfg, columns, task_id)
    return _WriterOutput(cfg, columns, task_id, on_new, stage and cfg.type == "file")


def cut_back(sizes: dict[str, int]) -> list[str]:
    """Cut files back to the given sizes (-1: remove the file); returns the files changed.
    A file already shorter is left alone (it was not written past that point)."""
    changed = []
    for path, size in sizes.items():
        try:
            now = os.path.getsize(path)
        except OSError:
            continue
        if size < 0:
            os.remove(path)
            changed.append(path)
        elif now > size:
            os.truncate(path, size)
            changed.append(path)
    return changed
