"""Line sources for streaming input: lines are handed over as soon as they arrive (a pipe, a
socket file, stdin), in blocks of whatever is available, optionally following a growing file."""

from __future__ import annotations

import os
import select
import signal
import time
from collections import deque
from contextlib import contextmanager
from typing import Any, BinaryIO, Callable, Iterator

__all__ = ["LineSource"]

_CHUNK = 1 << 20


class LineSource:
    """Iterator over decoded lines of a file descriptor. ``wait_lines()`` blocks until at least
    one complete line is buffered (or the input ended) and says how many are ready, so callers
    can process what has arrived without waiting for a fixed block size.

    ``follow``: at end of file keep polling for appended data (``tail -f``) until ``stop()``."""

    def __init__(self, source: int | BinaryIO, *, follow: bool = False, poll: float = 0.1):
        """``source``: a file descriptor, or a binary file object (one without a usable
        descriptor, such as an in-memory stream, is read with ``read1``)."""
        self.fd: int | None = None
        self._file: BinaryIO | None = None
        if isinstance(source, int):
            self.fd = source
        else:
            try:
                self.fd = source.fileno()
            except (OSError, AttributeError, ValueError):
                self._file = source
        self.follow = follow
        self.poll = poll
        self._lines: deque[str] = deque()
        self._partial = b""
        self._eof = False
        self._stopped = False
        self._first = True
        self.waiting = False  # True while blocked waiting for input (signals may interrupt)
        self.lines_read = 0  # complete lines decoded so far (the next one's number is this + 1)
        # ``on_invalid(line_number, message)``: told about a line that is not UTF-8, which is
        # then handed over as a blank line (so later line numbers stay right). Without it such
        # bytes are decoded as U+FFFD.
        self.on_invalid: Callable[[int, str], None] | None = None
        self.invalid_lines: set[int] = set()

    def stop(self) -> None:
        self._stopped = True

    def ready(self) -> int:
        """Complete lines buffered now (no waiting)."""
        return len(self._lines)

    def unread(self, line: str) -> None:
        self._lines.appendleft(line)

    @property
    def ended(self) -> bool:
        return self._eof and not self._lines

    def _fill(self) -> None:
        """Read once (blocking until data, end of input or, when following, the next poll)."""
        self.waiting = True
        try:
            if self._file is not None:
                read = getattr(self._file, "read1", self._file.read)
                data = read(_CHUNK)
            else:
                assert self.fd is not None
                try:
                    readable, _, _ = select.select([self.fd], [], [], self.poll if self.follow else None)
                except (OSError, ValueError):  # not selectable (some files): just read
                    readable = [self.fd]
                if not readable:
                    return
                data = os.read(self.fd, _CHUNK)
        finally:
            self.waiting = False
        if not data:
            if self.follow and not self._stopped:
                time.sleep(self.poll)
                return
            self._eof = True
            if self._partial:
                self._push(self._partial + b"\n")
                self._partial = b""
            return
        self._push(data)

    def _push(self, data: bytes) -> None:
        buf = self._partial + data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._partial = buf
            return
        self._partial = buf[cut + 1:]
        try:
            text = buf[: cut + 1].decode("utf-8", errors="strict" if self.on_invalid else "replace")
        except UnicodeDecodeError:
            text = self._decode_lines(buf[: cut + 1])
        if self._first:
            self._first = False
            if text.startswith("\ufeff"):
                text = text[1:]
        parts = text.split("\n")
        parts.pop()  # text ends with "\n"
        self.lines_read += len(parts)
        self._lines.extend(line + "\n" for line in parts)

    def _decode_lines(self, data: bytes) -> str:
        """Decode line by line: a line that is not UTF-8 is reported and becomes blank."""
        out = []
        for i, raw in enumerate(data.split(b"\n")[:-1]):
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                number = self.lines_read + i + 1
                column = len(raw[:exc.start].decode("utf-8", errors="replace")) + 1
                self.invalid_lines.add(number)
                assert self.on_invalid is not None
                self.on_invalid(number, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {column})")
                out.append("")
        return "\n".join(out) + "\n"

    def wait_lines(self) -> int:
        """Number of complete lines ready (0 only when the input has ended or we stopped)."""
        while not self._lines and not self._eof and not self._stopped:
            self._fill()
        return len(self._lines)

    def __iter__(self) -> Iterator[str]:
        return self

    def take(self, n: int) -> list[str]:
        """The next ``n`` lines (fewer when the input ends): ``list(islice(self, n))`` without a
        call per line."""
        out: list[str] = []
        lines = self._lines
        while len(out) < n:
            if not lines:
                self.wait_lines()
                if not lines:
                    break
            k = min(n - len(out), len(lines))
            if k == len(lines):
                out.extend(lines)
                lines.clear()
            else:
                pop = lines.popleft
                out.extend([pop() for _ in range(k)])
        return out

    def __next__(self) -> str:
        if not self._lines:
            self.wait_lines()
            if not self._lines:
                raise StopIteration
        return self._lines.popleft()


@contextmanager
def stopped_by_signals(source: LineSource) -> Iterator[dict[str, bool]]:
    """SIGINT and SIGTERM stop reading ``source``: the yielded flag's ``"now"`` turns true, and
    a wait for input is interrupted (the KeyboardInterrupt ends the block quietly). The previous
    handlers come back when the block ends."""
    stop = {"now": False}

    def handler(signum: int, frame: Any) -> None:
        stop["now"] = True
        source.stop()
        if source.waiting:
            raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    except KeyboardInterrupt:
        pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
