"""Output writers: CSV (header in OUTPUT order, §9.4) or JSON lines, buffered.

CSV rows handed over in blocks (:meth:`RowWriter.write_rows`) are formatted column by column:
a column of plain strings is used as is, a column of numbers goes through ``repr`` in one
C-level ``map``; only unusual cells (quoting, exponents, NaN, mixed types) take the per-cell
path. The text is identical to formatting each cell with :func:`~dporch.lang.format.csv_cell`.
"""

from __future__ import annotations

import hashlib
import os
import string
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

from ..lang.format import csv_cell, csv_header, json_line
from .columns import group_indexes

if TYPE_CHECKING:
    from .row_blocks import Lines

__all__ = ["RowWriter", "SplitWriter", "LazyFile", "csv_column", "safe_file_name"]

_NONE_FLOAT = {float, type(None)}


def csv_column(col: Sequence[Any]) -> list[str]:
    """CSV cell texts of one column (same result as ``map(csv_cell, col)``)."""
    kinds = set(map(type, col))
    if kinds == {str}:
        joined = "".join(col)
        if '"' not in joined and "," not in joined and "\n" not in joined and "\r" not in joined:
            return list(col)
        return list(map(csv_cell, col))
    if kinds <= _NONE_FLOAT:
        return _float_texts(col)
    return list(map(csv_cell, col))


_ARROW_MIN = 256  # below this many cells, repr() beats the cost of an Arrow round trip
# Importing numpy and pyarrow takes ~0.1 s, which Arrow's formatting (~100-250 ns a cell faster
# than repr) earns back only after some 400k cells: a process formats its first cells with
# repr() and turns to Arrow once this many went through repr (or when Arrow is loaded anyway),
# so a small `dporch run` never pays for the import and a large one loses at most ~0.1 s.
_REPR_BUDGET = 300_000
_repr_cells = 0


def _use_arrow(n: int, cells: int | None = None) -> bool:
    """Whether to format ``n`` values (of ``cells`` cells) through Arrow now."""
    global _repr_cells
    if n < _ARROW_MIN:
        return False
    if "pyarrow.compute" in sys.modules:
        return True
    _repr_cells += n if cells is None else cells
    return _repr_cells > _REPR_BUDGET


def expect_many_rows() -> None:
    """A long-running writer (the daemon): use Arrow from the first large block on."""
    global _repr_cells
    _repr_cells = _REPR_BUDGET


def _float_texts(col: Sequence[float | None]) -> list[str]:
    """Texts of a column of floats and nulls. Large columns use Arrow's shortest round-trip
    formatting (the same digits as Python's ``repr``, about 2-4x faster); exponents and NaN are
    then rewritten by :func:`csv_cell`, which never uses an exponent."""
    if _use_arrow(len(col)):
        texts = _arrow_texts(col)
    else:
        texts = [t[:-2] if t[-2:] == ".0" else t for t in map(repr, col)]
        texts = ["" if t == "None" else t for t in texts] if None in col else texts
    joined = "".join(texts)
    if "e" in joined or "n" in joined:  # exponents, nan (inf is written as is)
        texts = [csv_cell(v) if ("e" in t or "nan" in t) else t for t, v in zip(texts, col)]
    return texts


def _arrow_texts(col: Sequence[float | None]) -> list[str]:
    # Built from raw buffers: pa.array() and pc.fill_null() would import pandas (~100 MB).
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(col)
    if None in col:
        present = np.fromiter((v is not None for v in col), dtype=bool, count=n)
        values = np.fromiter((0.0 if v is None else v for v in col), dtype=np.float64, count=n)
        validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    else:
        values = np.array(col, dtype=np.float64)
        validity = None
    arr = pa.Array.from_buffers(pa.float64(), n, [validity, pa.py_buffer(values)])
    texts = pc.cast(arr, pa.string()).to_pylist()
    return ["" if t is None else t for t in texts] if validity is not None else texts


class RowWriter:
    """Writes output rows to a text stream. Rows are joined into large writes; ``flush()``
    pushes them out (call it before reporting an error, so the rows written so far are
    complete, §9.5)."""

    def __init__(self, out: TextIO, columns: list[str], fmt: str = "csv", *, buffer_rows: int = 4096,
                 header: bool = True, owns: bool = False):
        if fmt not in ("csv", "json"):
            raise ValueError(f"unknown output format {fmt!r} (use csv or json)")
        self.out = out
        self.columns = columns
        self.fmt = fmt
        self.buffer_rows = max(1, buffer_rows)
        self.owns = owns  # close() closes ``out``
        self._buf: list[str] = []
        self._pending = 0
        self.count = 0
        # The header goes out with the first flush: an error found before any row is processed
        # (a bad --key, unreadable input) leaves no output at all (§9.5).
        self._header = csv_header(columns) if fmt == "csv" and header else ""

    def write(self, row: list[Any]) -> None:
        if self.fmt == "csv":
            self._buf.append(",".join(map(csv_cell, row)))
        else:
            self._buf.append(json_line(self.columns, row)[:-1])
        self._added(1)

    def write_rows(self, rows: list[list[Any]], keys: list[Any] | None = None) -> None:
        """A block of rows (formatted column-wise for CSV); ``keys`` are not needed here."""
        if rows:
            self.write_columns([list(c) for c in zip(*rows)] if self.columns else [], len(rows))

    def write_columns(self, columns: list[list[Any]], keys: list[Any] | int, lines: Lines | None = None) -> None:
        """A block of rows given as columns (OUTPUT order); ``keys``: the rows' keys, or their count;
        ``lines``: their CSV lines, made already (by a compute unit)."""
        n = keys if isinstance(keys, int) else len(keys)
        if not n:
            return
        if self.fmt != "csv" or not self.columns:
            for r in zip(*columns) if self.columns else ([] for _ in range(n)):
                self.write(list(r))
            return
        if lines is not None or _use_arrow(n, n * len(self.columns)):
            from .row_blocks import block_text

            self._buf.append(block_text(columns, lines)[:-1])
        else:
            texts = [csv_column(c) for c in columns]
            self._buf.append("\n".join(map(",".join, zip(*texts))))
        self._added(n)

    def _added(self, n: int) -> None:
        self.count += n
        self._pending += n
        if self._pending >= self.buffer_rows:
            self.flush()

    def flush(self) -> None:
        if self._header:
            self.out.write(self._header)
            self._header = ""
        if self._buf:
            self.out.write("\n".join(self._buf) + "\n")
            self._buf.clear()
            self._pending = 0
        self.out.flush()

    def close(self) -> None:
        self.flush()
        if self.owns:
            self.out.close()


class LazyFile:
    """A file opened for writing on the first write (so that an early error creates no
    file); UTF-8 text, or bytes with ``binary=True``."""

    def __init__(self, path: str | os.PathLike, *, binary: bool = False, append: bool = False):
        self.path = path
        self.binary = binary
        self.append = append
        self._f: Any = None

    def _open(self) -> Any:
        if self._f is None:
            mode = ("a" if self.append else "w") + ("b" if self.binary else "")
            self._f = open(self.path, mode) if self.binary else \
                open(self.path, mode, encoding="utf-8", newline="")
        return self._f

    def write(self, data: Any) -> int:
        return self._open().write(data)

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


_UNSAFE = set('/\\:*?"<>|%') | {chr(i) for i in range(32)} | {"\x7f"}
_MAX_NAME = 120  # bytes of a file name part; longer ones end in a hash of the whole


def safe_file_name(value: Any) -> str:
    """A value as one file name part, different for different values: separators, control
    characters, ``%`` and the names ``.``/``..`` are %-escaped (so nothing leaves its folder;
    ``_`` alone stands for no key),
    and a name longer than 120 bytes is cut, ending in a hash of the whole value."""
    if value is None or value == "":
        return "_"  # no key
    text = str(value)
    out = "".join(f"%{ord(c):02X}" if c in _UNSAFE else f"%u{ord(c):04X}" if "\ud800" <= c <= "\udfff" else c
                  for c in text)
    if out in (".", "..", "_"):
        out = out.replace(".", "%2E").replace("_", "%5F")
    raw = out.encode("utf-8")
    if len(raw) > _MAX_NAME:
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        out = raw[:_MAX_NAME - 17].decode("utf-8", "ignore") + "~" + digest
    return out


_PLAIN_IDENTS = ({str}, {str, type(None)}, {type(None)}, {int})


def _ident_values(values: list[Any]) -> list[Any]:
    """Values that stand for themselves in a file's identity: text and integers as they are;
    anything else as (type, repr), so that ``True``, ``1`` and ``1.0``, or ``0.0`` and ``-0.0``,
    which compare equal but name different files, stay apart, NaNs go together, and lists
    (unhashable) can be told apart."""
    if set(map(type, values)) in _PLAIN_IDENTS:
        return values
    return [(type(v), repr(v)) for v in values]


class SplitWriter:
    """One CSV file per stream key, from a path template with ``{key}`` (``DIR/{key}.csv``).

    Files are opened for appending: an existing file keeps its rows and gets no second header
    (a different header is refused rather than mixed in). Rows are buffered and written in
    arrival order; at most ``max_open`` files stay open at once."""

    def __init__(self, template: str, columns: list[str], *, buffer_rows: int = 1000, max_open: int = 256,
                 fields: dict[str, Any] | None = None, on_new: Callable[[str, int], None] | None = None,
                 stage: Callable[[str], str] | None = None):
        self.template = template
        self.on_new = on_new  # told (path, size before this writer's first write; -1: no file)
        self.stage = stage  # a file's path -> where to write it until it is published
        self.touched: set[str] = set()
        self.columns = columns
        self.header = csv_header(columns)
        self.buffer_rows = max(1, buffer_rows)
        self.max_open = max_open
        self.fields = fields or {}
        self._pending: dict[str, list[str]] = {}
        self._n_pending = 0
        self._open: dict[str, TextIO] = {}
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        # the row columns a path depends on (a column named like a task field wins over it)
        self._used = [i for i, c in enumerate(columns) if c in names and c != "key"]
        self._paths: dict[Any, str] = {}  # (key, used row values) -> path
        self.count = 0

    def path_for(self, key: Any, row: dict[str, Any] | None = None) -> str:
        values = {k: safe_file_name(v) for k, v in {**self.fields, **(row or {})}.items()}
        values["key"] = safe_file_name(key)
        path = self.template.format_map(_Defaults(values))
        return self.stage(path) if self.stage is not None else path

    def write_rows(self, rows: list[list[Any]], keys: list[Any]) -> None:
        if rows:
            self.write_columns([list(c) for c in zip(*rows)] if self.columns else [], keys)

    def write_columns(self, columns: list[list[Any]], keys: list[Any], lines: Lines | None = None) -> None:
        """A block of rows given as columns (OUTPUT order), with each row's key; ``lines``: their
        CSV lines, made already (by a compute unit)."""
        n = len(keys)
        if not n:
            return
        groups = self._groups(columns, keys)
        pending = self._pending
        if self.columns and (lines is not None or _use_arrow(n, n * len(self.columns))):
            # the block's text at once (Arrow), each file's lines as one slice of it
            from .row_blocks import grouped_text

            for path, text in grouped_text(columns, groups, lines).items():
                bucket = pending.get(path)
                if bucket is None:
                    pending[path] = [text[:-1]]
                else:
                    bucket.append(text[:-1])
        else:
            lines = list(map(",".join, zip(*[csv_column(c) for c in columns]))) if self.columns else [""] * n
            for path, rows_of in groups.items():
                bucket = pending.get(path)
                if bucket is None:
                    bucket = pending[path] = []
                bucket += lines if len(rows_of) == n else [lines[i] for i in rows_of]
        self.count += n
        self._n_pending += n
        if self._n_pending >= self.buffer_rows:
            self.flush()

    def _groups(self, columns: list[list[Any]], keys: list[Any]) -> dict[str, list[int]]:
        """The rows of a block by file: path -> row indexes, in arrival order."""
        used = self._used
        # what a row's file depends on: its key, and the values of the path's columns
        parts = [_ident_values(p) for p in (keys, *[columns[i] for i in used])]
        idents: list[Any] = parts[0] if not used else list(zip(*parts))
        by_ident = group_indexes(idents)
        paths = self._paths
        groups: dict[str, list[int]] = {}
        shared: set[str] = set()
        for ident, rows_of in by_ident.items():
            path = paths.get(ident)
            if path is None:
                if len(paths) >= 65536:  # e.g. {date} in the template: keep the cache bounded
                    paths.clear()
                first = rows_of[0]  # the path is made from the values themselves
                path = paths[ident] = self.path_for(keys[first], {self.columns[i]: columns[i][first] for i in used})
            g = groups.get(path)
            if g is None:
                groups[path] = rows_of
            else:  # rows of several keys share a file (its path does not name the key)
                g += rows_of
                shared.add(path)
        for path in shared:  # they keep their arrival order
            groups[path].sort()
        return groups

    def _handle(self, path: str) -> TextIO:
        f = self._open.get(path)
        if f is not None:
            return f
        if len(self._open) >= self.max_open:
            oldest = next(iter(self._open))
            self._open.pop(oldest).close()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if path not in self.touched:
            self.touched.add(path)
            if self.on_new is not None:
                self.on_new(path, os.path.getsize(path) if os.path.exists(path) else -1)
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        if not new:
            with open(path, encoding="utf-8", newline="") as existing:
                first = existing.readline()
            if first != self.header:
                raise ValueError(f"{path} already exists with a different header "
                                 f"({first.strip()!r}); move it away or choose another output")
        f = open(path, "a", encoding="utf-8", newline="")
        if new:
            f.write(self.header)
        self._open[path] = f
        return f

    def flush(self) -> None:
        for path, lines in self._pending.items():
            f = self._handle(path)
            f.write("\n".join(lines) + "\n")
            f.flush()
        self._pending.clear()
        self._n_pending = 0

    def close(self) -> None:
        self.flush()
        for f in self._open.values():
            f.close()
        self._open.clear()


class _Defaults(dict):
    """Template fields missing from a row are written as '_' instead of failing."""

    def __missing__(self, name: str) -> str:
        return "_"
