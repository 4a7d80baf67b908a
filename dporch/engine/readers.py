"""Input readers: CSV (RFC 4180) and JSON lines -> typed rows for a program (docs/language.md §9.2).

A reader turns text into *records* ``(line_number, cells)``; :class:`RowTyper` turns a record
into the program's row layout R (typed by the INPUT annotations) plus the stream key text.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TextIO

from ..lang.cells import CellError, json_cell, json_loads, make_converter
from ..lang.errors import InputError
from ..lang.values import number_text

__all__ = ["open_text", "utf8_error", "CountedLines", "sniff_format", "csv_records", "json_records", "Records", "read_records",
           "RowTyper", "BadLine", "key_text"]


def open_text(path: str | None) -> TextIO:
    """A text stream for a path, or stdin for None / '-' (BOM stripped, newlines kept)."""
    if path is None or path == "-":
        return CountedLines(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline=""))  # type: ignore[return-value]
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot read input {path}: {exc.strerror or exc}", file=path) from None


def sniff_format(first_line: str) -> str:
    """'json' when the first non-blank character is '{' or '[', else 'csv' (§9.2)."""
    s = first_line.lstrip("\ufeff \t\r\n")
    return "json" if s[:1] in ("{", "[") else "csv"


_JSON_FIX = ("JSON input is one flat object per line (JSON lines) or one array of such objects: "
             "fix the JSON, or check that the file is the one meant")


def utf8_error(input: str | None, exc: UnicodeDecodeError, lines_before: int | None = None) -> InputError:
    """The InputError for input that is not UTF-8: for a file, the line and column of its
    first bad byte (found by reading it again); for stdin, the line from ``lines_before`` (the
    lines read before the failing block) when known."""
    byte = exc.object[exc.start] if exc.start < len(exc.object) else None
    what = f"byte 0x{byte:02x}" if byte is not None else exc.reason
    name = "stdin" if input in (None, "-") else input
    fix = (f"convert it to UTF-8 (for example: iconv -f GBK -t UTF-8 {name} > {name}.utf8)"
           if name != "stdin" else "convert the input to UTF-8 (for example with iconv -f GBK -t UTF-8)")
    where: dict[str, Any] = {}
    if name != "stdin":
        found = _first_bad_utf8(name)
        if found is not None:
            where = {"line": found[0], "column": found[1]}
            what = f"byte 0x{found[2]:02x}"
    elif lines_before is not None:
        where = {"line": lines_before + 1 + exc.object[:exc.start].count(b"\n")}
    return InputError(f"the input is not valid UTF-8 ({what}); {fix}", file=name, **where)


def _first_bad_utf8(path: str) -> tuple[int, int, int] | None:
    """(line, column, byte) of the first invalid UTF-8 sequence in a file."""
    try:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    column = len(raw[:exc.start].decode("utf-8", errors="replace")) + 1
                    return n, column, raw[exc.start]
    except OSError:
        return None
    return None


class CountedLines:
    """Lines of a text stream, counted as they are read (for error locations on stdin)."""

    def __init__(self, f: TextIO) -> None:
        self.f = f
        self.count = 0

    def __iter__(self) -> "CountedLines":
        return self

    def __next__(self) -> str:
        line = next(self.f)
        self.count += 1
        return line


class BadLine(ValueError):
    """A line that cannot be read (streaming mode skips it with a report)."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


def _split_quoted(text: str, line_no: int, more: Callable[[], str | None]) -> tuple[list[str], int]:
    """RFC 4180 split of a record that contains quotes, pulling further lines for quoted
    newlines. Unquoted cells are trimmed, quoted ones kept as written. Returns (cells, lines
    consumed)."""
    cells: list[str] = []
    used, i = 1, 0
    while True:
        j = i
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == '"':
            buf: list[str] = []
            j += 1
            while True:
                k = text.find('"', j)
                if k < 0:
                    buf.append(text[j:])
                    nxt = more()
                    if nxt is None:
                        raise BadLine(line_no, "unclosed quote at end of input")
                    text, j, used = nxt, 0, used + 1
                    continue
                buf.append(text[j:k])
                if text.startswith('"', k + 1):
                    buf.append('"')
                    j = k + 2
                    continue
                j = k + 1
                break
            cells.append("".join(buf))
            while j < len(text) and text[j] in " \t":
                j += 1
            if j >= len(text) or text[j] in "\r\n":
                return cells, used
            if text[j] != ",":
                raise BadLine(line_no, "unexpected text after a closing quote")
            i = j + 1
        else:
            k = text.find(",", i)
            if k < 0:
                cells.append(text[i:].strip())
                return cells, used
            cells.append(text[i:k].strip())
            i = k + 1


def csv_records(f: Iterable[str], start_line: int = 1) -> Iterator[tuple[int, list[str]]]:
    """Records of a CSV text stream: (1-based line number, cells). Blank lines are skipped."""
    it = iter(f)
    line_no = start_line - 1
    for line in it:
        line_no += 1
        if '"' not in line:
            body = line.rstrip("\r\n")
            if not body.strip():
                continue
            yield line_no, [c.strip() for c in body.split(",")]
            continue
        cells, used = _split_quoted(line, line_no, lambda: next(it, None))
        start = line_no
        line_no += used - 1
        yield start, cells


def key_text(v: Any) -> str | None:
    """A JSON value's key text (§8.7): a string's text or a number's JSON text."""
    if v is None:
        return None
    if type(v) is str:
        return v.strip()
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is Decimal:
        return str(v)
    if type(v) is float:  # host data (a DataFrame): 600001.0 is the key 600001
        return number_text(v)
    return str(v)


def json_records(f: Iterable[str], start_line: int = 1) -> Iterator[tuple[int, dict]]:
    """Records of JSON lines (or one JSON array of objects): (line number, object)."""
    it = iter(f)
    line_no = start_line - 1
    first = True
    for line in it:
        line_no += 1
        s = line.strip()
        if not s:
            continue
        opens_array = first and s.startswith("[")
        first = False
        if opens_array:  # the whole input is one array: unreadable if any of it is (§9.2)
            text = s + "".join(it)
            try:
                data = json_loads(text)
            except ValueError as exc:
                where = {"line": line_no}
                if isinstance(exc, json.JSONDecodeError):
                    where = {"line": line_no + exc.lineno - 1, "column": exc.colno}
                raise InputError(f"invalid JSON array: {getattr(exc, 'msg', exc)}; {_JSON_FIX}",
                                 **where) from None
            if not isinstance(data, list) or not all(isinstance(obj, dict) for obj in data):
                raise InputError(f"expected a JSON array of objects; {_JSON_FIX}", line=line_no)
            for obj in data:
                yield line_no, obj
            return
        try:
            obj = json_loads(s)
        except ValueError as exc:
            yield line_no, BadLine(line_no, f"invalid JSON: {exc}")  # type: ignore[misc]
            continue
        if not isinstance(obj, dict):
            yield line_no, BadLine(line_no, "expected one JSON object per line")  # type: ignore[misc]
            continue
        yield line_no, obj


@dataclass
class Records:
    """An opened input: its format, columns (CSV header or the first object's keys) and the
    remaining records."""

    format: str
    columns: list[str]
    records: Iterator[tuple[int, Any]]
    empty: bool  # no header line at all
    lines: Iterator[str] | None = None  # CSV: the raw lines after the header (same stream)
    line_no: int = 0  # CSV: line number of the header
    tabular: bool = False  # the columns are a real header (a DataFrame's), not the first object's keys


def read_records(f: TextIO) -> Records:
    """Sniff the format and read the header of an input stream."""
    first = ""
    line_no = 0
    for line in f:
        line_no += 1
        if line.strip():
            first = line
            break
    if not first:
        return Records("csv", [], iter(()), empty=True)
    fmt = sniff_format(first)
    if fmt == "json":
        records = json_records(_chain(first, f), start_line=line_no)
        head = next(records, None)
        if head is None:
            return Records("json", [], iter(()), empty=False)
        if isinstance(head[1], BadLine):
            raise InputError(f"{head[1].message}; {_JSON_FIX}", line=head[0])
        columns = list(head[1].keys())
        return Records("json", columns, _chain(head, records), empty=False)
    lines = _chain(first, f)
    header_iter = csv_records(lines, start_line=line_no)
    try:
        _, header = next(header_iter)
    except BadLine as exc:
        raise InputError(f"bad CSV header: {exc}") from None
    return Records("csv", header, header_iter, empty=False, lines=lines, line_no=line_no)


def _chain(first: Any, rest: Iterable[Any]) -> Iterator[Any]:
    yield first
    yield from rest


class RowTyper:
    """Types records into a program's row layout ``R`` and extracts the key text.

    ``strict`` (streaming mode): a declared-type cell that does not parse or a wrong cell count
    raises :class:`BadLine`. Otherwise (batch mode) the cell becomes null and ``on_warning`` is
    told; extra cells are ignored with one warning, missing cells are null."""

    def __init__(self, columns: list[str], schema: list[str], types: dict[str, str | None],
                 key: str | None, *, fmt: str = "csv", strict: bool = False,
                 on_warning: Callable[[str], None] | None = None):
        self.columns = columns
        self.schema = schema
        self.fmt = fmt
        self.strict = strict
        self.on_warning = on_warning or (lambda msg: None)
        index = {c: i for i, c in enumerate(columns)}
        self.picks = [index.get(c) for c in schema]
        self.types = [types.get(c) for c in schema]
        self.convs = [make_converter(t) for t in self.types]
        self.key = key
        self.key_index = index.get(key) if key is not None else None
        self.n = len(columns)
        self._warned_extra = False

    def row(self, line_no: int, rec: Any) -> tuple[Any, list]:
        """(key text or None, R) for one record."""
        if self.fmt == "json":
            return self._json_row(line_no, rec)
        cells: list[str] = rec
        if len(cells) != self.n:
            if self.strict:
                raise BadLine(line_no, f"expected {self.n} cells, got {len(cells)}")
            if len(cells) > self.n and not self._warned_extra:
                self._warned_extra = True
                self.on_warning(f"line {line_no}: {len(cells)} cells but the header has {self.n}; "
                                "extra cells are ignored")
        R: list[Any] = []
        for j, conv in zip(self.picks, self.convs):
            if j is None or j >= len(cells):
                R.append(None)
                continue
            text = cells[j]
            try:
                R.append(conv(text))
            except CellError as exc:
                self._bad_cell(line_no, self.schema[len(R)], exc)
                R.append(None)
        key = None
        if self.key_index is not None and self.key_index < len(cells):
            key = cells[self.key_index] or None
        return key, R

    def _json_row(self, line_no: int, rec: Any) -> tuple[Any, list]:
        if isinstance(rec, BadLine):
            if self.strict:
                raise rec
            self.on_warning(f"line {line_no}: {rec.message}; line skipped")
            raise rec
        R = []
        for name, t in zip(self.schema, self.types):
            try:
                R.append(json_cell(rec.get(name), t))
            except CellError as exc:
                self._bad_cell(line_no, name, exc)
                R.append(None)
        key = key_text(rec.get(self.key)) if self.key is not None else None
        return (key or None), R

    def _bad_cell(self, line_no: int, column: str, exc: CellError) -> None:
        if self.strict:
            raise BadLine(line_no, f"column {column}: {exc.message}")
        self.on_warning(f"line {line_no}, column {column}: {exc.message}; using null")


def read_path(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8")
