"""CSV batch kernel: read, type and step blocks of lines column-wise (batch mode).

A block of lines is split once and transposed; each needed column is typed with a C-level
``map`` (see :mod:`.columns`), so a row costs a split, the script's ``step`` and a share of the
column work. Output rows are handed over per block, so the writer can format them column-wise.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from ..lang.program import locate_error
from .columns import read_block, text_column

__all__ = ["run_csv_blocks"]


def run_csv_blocks(lines: Iterator[str], line_no: int, columns: list[str], schema: list[str],
                   types: dict[str, str | None], key: str | None, streams: dict[Any, Any],
                   new_stream: Callable[[Any], Any], step: Callable, emit_block: Callable[[list], None],
                   warn: Callable[[str], None]) -> int:
    """Run ``step`` over every CSV record after the header; returns the number of rows.
    Output rows go to ``emit_block(rows)`` once per block (and before an error is raised).
    A cell that does not fit its declared type becomes null with a warning (§9.2 batch)."""
    index = {c: i for i, c in enumerate(columns)}
    picks = [index.get(c) for c in schema]
    kinds = [types.get(c) for c in schema]
    key_index = index.get(key) if key is not None else None
    state: dict = {}
    row = 0
    while True:
        block, line_no = read_block(lines, line_no, len(columns), strict=False, warn=warn, state=state)
        if block.done:
            return row
        if not block.rows:
            continue
        n = len(block.rows)
        cols = list(zip(*block.rows))
        typed: list[Any] = []
        for j, kind, name in zip(picks, kinds, schema):
            if j is None:
                typed.append([None] * n)
                continue

            def on_bad(i: int, text: str, message: str, _name: str = name) -> None:
                warn(f"line {block.lines[i]}, column {_name}: {message}; using null")

            typed.append(text_column(cols[j], kind, on_bad, exact=block.exact))
        keys = text_column(cols[key_index], "string", _no_bad, exact=block.exact) \
            if key_index is not None else [None] * n
        out: list = []
        get = streams.get
        k = None
        first = row
        try:
            for k, R in zip(keys, zip(*typed) if typed else [()] * n):
                S = get(k)
                if S is None:
                    S = streams[k] = new_stream(k)
                o = step(S, R)
                row += 1
                if o is not None:
                    out.append(o)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a located DPLangError
            emit_block(out)
            raise locate_error(exc, row=row, key=k if key is not None else None,
                               input_line=block.lines[row - first]) from None
        emit_block(out)


def _no_bad(i: int, text: str, message: str) -> None:  # strings never fail
    return None
