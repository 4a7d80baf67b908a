"""CSV text of a block of output rows through Arrow, for the row form's and the daemon's writers.

Each column is formatted at once (numbers by Arrow's shortest round-trip digits, other columns by
:func:`~dporch.engine.writers.csv_column`) and the lines are joined in one Arrow pass; split
output takes each file's lines as one slice of the block's text. No Python string is made per
cell or per line: with several numeric columns this is 2-3x cheaper than formatting in Python.
The text is identical to ``csv_cell`` per value (§9.4).
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..lang.vector_values import Num
from . import arrow_io

__all__ = ["block_lines", "block_text", "grouped_text", "line_buffers", "Lines"]

#: A block's CSV lines made elsewhere (by a compute unit): int32 offsets of the n + 1 line
#: boundaries from 0, and the UTF-8 text of the lines, each ending in a newline.
Lines = tuple[bytes, bytes]

_NONE = type(None)


def _texts(col: Sequence[Any], end: str) -> pa.Array:
    """A column's cell texts, each followed by ``end``; nulls are null cells when ``end`` is
    empty (the join writes them as empty)."""
    kinds = set(map(type, col))
    if float in kinds and kinds <= {float, _NONE}:
        values = np.array(col, dtype=np.float64)  # None -> NaN
        null = None
        if _NONE in kinds:  # None or a NaN result: only those cells are looked at
            null = np.isnan(values)
            for i in np.flatnonzero(null).tolist():
                if col[i] is not None:
                    null[i] = False
        return arrow_io.format_column(Num(values, null), end)
    from .writers import csv_column  # (writers imports this module lazily)

    return arrow_io.string_array(csv_column(col), end)


def block_lines(columns: Sequence[Sequence[Any]]) -> pa.Array:
    """The CSV line (``\\n``-terminated) of each row of ``columns`` (one sequence per column)."""
    last = len(columns) - 1
    texts = [_texts(c, "\n" if i == last else "") for i, c in enumerate(columns)]
    if len(texts) == 1:
        return texts[0]
    return pc.binary_join_element_wise(*texts, arrow_io._scalar(","), null_handling="replace",
                                       null_replacement="")


def _data(lines: pa.Array) -> tuple[np.ndarray, memoryview]:
    bufs = lines.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=len(lines) + 1 + lines.offset)[lines.offset:]
    return offsets, memoryview(bufs[2])


def line_buffers(columns: Sequence[Sequence[Any]]) -> Lines:
    """A block's CSV lines as plain buffers to send: a compute unit makes them, so that the
    orchestrator writes its rows without formatting a cell."""
    if len(columns[0]) < 64:  # a small block (a quiet feed): Arrow's fixed cost per column outweighs its speed
        from .writers import csv_column

        arr = arrow_io.string_array([",".join(r) + "\n" for r in zip(*[csv_column(c) for c in columns])])
    else:
        arr = block_lines(columns)
    offsets, data = _data(arr)
    start = int(offsets[0])
    return (offsets - start).astype(np.int32).tobytes(), bytes(data[start:int(offsets[-1])])


def _lines_array(lines: Lines) -> pa.Array:
    offsets, data = lines
    return pa.Array.from_buffers(pa.string(), len(offsets) // 4 - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def block_text(columns: Sequence[Sequence[Any]], lines: Lines | None = None) -> str:
    """The CSV lines of a block of rows as one string (``lines``: made already)."""
    if lines is not None:
        return str(lines[1], "utf-8")
    offsets, data = _data(block_lines(columns))
    return str(data[int(offsets[0]):int(offsets[-1])], "utf-8")


def grouped_text(columns: Sequence[Sequence[Any]], groups: dict[Any, list[int]],
                 lines: Lines | None = None) -> dict[Any, str]:
    """The CSV lines of each group's rows (``groups``: row indexes in input order per group, every
    row in one group), as one string per group (``lines``: the block's lines, made already)."""
    arr = _lines_array(lines) if lines is not None else block_lines(columns)
    n = len(arr)
    if len(groups) > 1:
        order = np.fromiter(chain.from_iterable(groups.values()), dtype=np.int64, count=n)
        arr = arr.take(pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(order)]))
    offsets, data = _data(arr)
    start = int(offsets[0])
    text = str(data[start:int(offsets[-1])], "utf-8")
    ascii_ = len(text) == int(offsets[-1]) - start  # then byte offsets are character offsets
    out: dict[Any, str] = {}
    row = 0
    for name, rows in groups.items():
        a, b = int(offsets[row]) - start, int(offsets[row + len(rows)]) - start
        out[name] = text[a:b] if ascii_ else str(data[a + start:b + start], "utf-8")
        row += len(rows)
    return out
