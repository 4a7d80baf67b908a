"""Output writers: CSV (header in OUTPUT order, §9.4) or JSON lines, buffered.

CSV rows handed over in blocks (:meth:`RowWriter.write_rows`) are formatted column by column:
a column of plain strings is used as is, a column of numbers goes through ``repr`` in one
C-level ``map``; only unusual cells (quoting, exponents, NaN, mixed types) take the per-cell
path. The text is identical to formatting each cell with :func:`~dporch.lang.format.csv_cell`.
"""

from __future__ import annotations

from typing import Any, Sequence, TextIO

from ..lang.format import csv_cell, csv_header, json_line

__all__ = ["RowWriter", "csv_column"]

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


def _float_texts(col: Sequence[float | None]) -> list[str]:
    """Texts of a column of floats and nulls. Large columns use Arrow's shortest round-trip
    formatting (the same digits as Python's ``repr``, about 4x faster); exponents and NaN are
    then rewritten by :func:`csv_cell`, which never uses an exponent."""
    if len(col) >= _ARROW_MIN:
        import pyarrow as pa
        import pyarrow.compute as pc

        texts = pc.fill_null(pc.cast(pa.array(col, pa.float64()), pa.string()), "").to_pylist()
    else:
        texts = [t[:-2] if t[-2:] == ".0" else t for t in map(repr, col)]
        texts = ["" if t == "None" else t for t in texts] if None in col else texts
    joined = "".join(texts)
    if "e" in joined or "n" in joined:  # exponents, nan (inf is written as is)
        texts = [csv_cell(v) if ("e" in t or "nan" in t) else t for t, v in zip(texts, col)]
    return texts


class RowWriter:
    """Writes output rows to a text stream. Rows are joined into large writes; ``flush()``
    pushes them out (call it before reporting an error, so the rows written so far are
    complete, §9.5)."""

    def __init__(self, out: TextIO, columns: list[str], fmt: str = "csv", *, buffer_rows: int = 4096,
                 header: bool = True):
        if fmt not in ("csv", "json"):
            raise ValueError(f"unknown output format {fmt!r} (use csv or json)")
        self.out = out
        self.columns = columns
        self.fmt = fmt
        self.buffer_rows = max(1, buffer_rows)
        self._buf: list[str] = []
        self._pending = 0
        self.count = 0
        if fmt == "csv" and header:
            out.write(csv_header(columns))

    def write(self, row: list[Any]) -> None:
        if self.fmt == "csv":
            self._buf.append(",".join(map(csv_cell, row)))
        else:
            self._buf.append(json_line(self.columns, row)[:-1])
        self._added(1)

    def write_rows(self, rows: list[list[Any]]) -> None:
        """A block of rows (formatted column-wise for CSV)."""
        if not rows:
            return
        if self.fmt != "csv" or not self.columns:
            for r in rows:
                self.write(r)
            return
        texts = [csv_column(c) for c in zip(*rows)]
        self._buf.append("\n".join(map(",".join, zip(*texts))))
        self._added(len(rows))

    def _added(self, n: int) -> None:
        self.count += n
        self._pending += n
        if self._pending >= self.buffer_rows:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self.out.write("\n".join(self._buf) + "\n")
            self._buf.clear()
            self._pending = 0
        self.out.flush()
