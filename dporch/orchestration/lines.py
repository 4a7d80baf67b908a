"""Bytes from an input (a socket, a file, stdin) in, typed chunks of records out.

A record's trouble stays with that record: a line that is not UTF-8, a line longer than
:data:`MAX_LINE` (its bytes are skipped without being held, so a sender that never sends a
newline costs nothing), a quote that does not close, a JSON line nested too deep: each becomes
one bad record (a ``ValueError`` with the reason) at its line number, and the records around it
are read as usual. Work is linear in the input whatever it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..engine.readers import BadLine, _split_quoted, json_loads

__all__ = ["Chunk", "Logged", "LineSplitter", "MAX_LINE", "MAX_QUOTED_LINES"]

MAX_LINE = 1 << 20  # bytes of one line, at most
MAX_QUOTED_LINES = 100  # lines one quoted CSV cell may span


@dataclass
class Chunk:
    header: list[str] | None  # CSV: the columns of the records; JSON: None
    records: list[Any]  # CSV cell lists or JSON objects (or ValueError for a bad record)
    lines: list[int]  # line number of each record in its source
    source: str  # "file:/path", "tcp:host:port", "stdin", "push"
    end: dict[str, Any] | None = None  # where the source is after this chunk (files: offset, line, header)
    stream: str | None = None  # a durable TCP sender's stream name
    count: int = 0  # records of the connection (or its stream) up to this chunk's end
    upstream: list[int] | None = None  # rows of another task: their row numbers there
    # the records as columns, a list per header name: CSV cells of well-formed lines, or the
    # typed values of another task's rows (then ``records`` is empty)
    columns: list[list] | None = None

    @property
    def size(self) -> int:
        return len(self.lines)

    def rows(self) -> list[Any]:
        """The records one by one (rows of cells, objects, or ValueErrors), however held."""
        return [list(r) for r in zip(*self.columns)] if self.columns is not None else self.records


Logged = Callable[[Chunk], None]
_Line = str | ValueError  # a line's text, or why it cannot be read


class LineSplitter:
    """Complete lines of a source; for CSV the first line is the header."""

    def __init__(self, fmt: str, source: str, position: dict[str, Any] | None = None, file: str | None = None):
        self.fmt = fmt
        self.source = source
        self.file = file  # a file input's file: named in positions (an input may span several files)
        self.header: list[str] | None = None
        self.line = 0
        self.offset = 0  # bytes of the source handed out as complete lines
        self._parts: list[bytes] = []  # the start of a line whose newline has not come yet
        self._held = 0  # bytes in _parts
        self._overlong = 0  # > 0: bytes of a line too long to hold, skipped so far
        self._first = True
        if position:  # resume where a checkpoint left the source
            self.offset, self.line = position["offset"], position["line"]
            self.header = position.get("header")
            self._first = self.offset == 0

    @property
    def position(self) -> dict[str, Any]:
        pos = {"offset": self.offset, "line": self.line, "header": self.header}
        return {"file": self.file, **pos} if self.file is not None else pos

    def feed(self, data: bytes, final: bool = False) -> Chunk | None:
        lines = self._complete_lines(data, final)
        if lines is None:
            return None
        if type(lines) is str:  # all readable: try the common case
            text = lines
            if self.fmt == "csv" and self.header is not None and text and "\n\n" not in text \
                    and text[0] != "\n" and not any(c in text for c in '" \t\r'):  # no quotes, blanks or blank lines
                n = text.count("\n") + 1
                cells = text.replace("\n", ",").split(",")
                width = len(self.header)
                if len(cells) == width * n:  # every line has its cells: the columns are slices
                    first = self.line + 1
                    self.line += n
                    return Chunk(self.header, [], list(range(first, self.line + 1)), self.source, self.position,
                                 columns=[cells[j::width] for j in range(width)])
            lines = text.split("\n")
        return self._records(lines, final)

    # -- lines ------------------------------------------------------------------------------------
    def _complete_lines(self, data: bytes, final: bool) -> str | list[_Line] | None:
        """The lines completed by ``data`` (None: none): their text joined by newlines when all
        of them are readable, else one entry per line (a ValueError for a line that cannot be read)."""
        cut = data.rfind(b"\n")
        if cut < 0 and not final:
            self._hold(data)
            return None
        head, tail = (data, b"") if final else (data[:cut], data[cut + 1:])
        if final and not head and not self._parts and not self._overlong:
            return None
        first = head.find(b"\n")
        first_len = len(head) if first < 0 else first
        first_overlong = self._overlong > 0 or self._held + first_len > MAX_LINE
        self.offset += len(data) - len(tail) + self._held + self._overlong
        whole = head if first_overlong or not self._parts else b"".join(self._parts) + head
        self._parts, self._held, self._overlong = [], 0, 0
        self._hold(tail)
        bom, self._first = self._first, False
        if not first_overlong:
            try:
                text = whole.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                if len(whole) <= MAX_LINE or max(map(len, whole.split(b"\n"))) <= MAX_LINE:
                    return text[1:] if bom and text.startswith("\ufeff") else text
        return self._line_by_line(whole.split(b"\n"), first_overlong, bom)

    def _line_by_line(self, raws: list[bytes], first_overlong: bool, bom: bool) -> list[_Line]:
        lines: list[_Line] = []
        for i, raw in enumerate(raws):
            if (i == 0 and first_overlong) or len(raw) > MAX_LINE:
                lines.append(ValueError(f"a line longer than {MAX_LINE // 1024} KiB: skipped"))
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                lines.append(ValueError(f"not UTF-8 text (byte {exc.start + 1} of the line is "
                                        f"0x{raw[exc.start]:02x}); send UTF-8"))
                continue
            lines.append(text[1:] if i == 0 and bom and text.startswith("\ufeff") else text)
        return lines

    def _hold(self, data: bytes) -> None:
        """Keep the start of an unfinished line, or only count it once it is too long."""
        if not data:
            return
        if self._overlong or self._held + len(data) > MAX_LINE:
            self._overlong += self._held + len(data)
            self._parts, self._held = [], 0
        else:
            self._parts.append(data)
            self._held += len(data)

    # -- records ----------------------------------------------------------------------------------
    def _records(self, lines: list[_Line], final: bool) -> Chunk | None:
        records: list[Any] = []
        numbers: list[int] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            self.line += 1
            start = self.line
            if isinstance(line, ValueError):
                if self.fmt == "csv" and self.header is None:
                    continue  # no header yet: the next good line is the header
                records.append(line)
                numbers.append(start)
                continue
            if not line.strip():
                continue
            if self.fmt == "json":
                try:
                    obj = json_loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError("expected one JSON object per line")
                except ValueError as exc:
                    obj = ValueError(str(exc))
                records.append(obj)
                numbers.append(start)
                continue
            cells: list[str] | ValueError | None
            if '"' in line:
                cells, spanned = self._quoted(line, lines, i, final or self._overlong > 0)
                if cells is None:  # its quote closes in data not here yet: read it again then
                    self._hold_again(lines[i - 1:])
                    self.line -= 1
                    break
                i += spanned
                self.line += spanned
            else:
                cells = [c.strip() for c in line.split(",")]
            if self.header is None:
                if not isinstance(cells, ValueError):
                    self.header = cells
                continue
            records.append(cells)
            numbers.append(start)
        if not records:
            return None
        return Chunk(self.header if self.fmt == "csv" else None, records, numbers, self.source, self.position)

    def _quoted(self, line: str, lines: list[_Line], i: int, final: bool) -> tuple[list[str] | ValueError | None, int]:
        """A record with quotes, which may span further lines (a quoted newline): (cells, or the
        reason it is bad, or None when its end is not here yet; lines taken after the first). A
        record that closes only after MAX_QUOTED_LINES lines, or then has the wrong number of
        cells, is one bad line: the lines after it are read again as records of their own."""
        taken = 0
        short = False  # ran out of lines

        def more() -> str | None:
            nonlocal taken, short
            j = i + taken
            if taken >= MAX_QUOTED_LINES or j >= len(lines) or isinstance(lines[j], ValueError):
                short = j >= len(lines) and taken < MAX_QUOTED_LINES
                return None
            taken += 1
            return lines[j] + "\n"  # type: ignore[operator]

        try:
            cells, _ = _split_quoted(line + "\n", self.line, more)
        except BadLine as exc:
            if short and not final:
                return None, 0
            if "unclosed quote" in exc.message:
                return ValueError(f"a quote that does not close within {MAX_QUOTED_LINES} lines"), 0
            return ValueError(exc.message), 0
        if taken and self.header is not None and len(cells) != len(self.header):
            return ValueError(f"a quoted cell runs over {taken + 1} lines and leaves {len(cells)} cells "
                              f"where the header has {len(self.header)}: an unmatched quote?"), 0
        return cells, taken

    def _hold_again(self, lines: list[_Line]) -> None:
        """Give back lines whose record is not complete yet (they are all readable text)."""
        data = "\n".join(lines).encode("utf-8") + b"\n"  # type: ignore[arg-type]
        self.offset -= len(data)
        rest = b"".join(self._parts)
        self._parts, self._held, self._overlong = [], 0, 0
        self._hold(data + rest)
