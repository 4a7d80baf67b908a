"""CSV batch kernel: parse, type and step blocks of lines column-wise.

The generic path (reader -> typer -> step -> writer) costs several Python calls per cell. Here a
block of lines without quotes is split once, transposed, and each needed column is typed with a
C-level ``map`` (``float`` for numbers, ``str.strip`` for strings); the per-cell Python path runs
only for cells the fast path rejects (which then get the exact §9.2 treatment, with warnings).
Blocks that contain a quote go through the RFC-4180 line parser. Output rows are handed over per
block, so a writer can format them column-wise too.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Callable, Iterator

from ..lang.cells import CellError, make_converter
from ..lang.program import locate_error
from .readers import BadLine, _split_quoted

__all__ = ["run_csv_blocks", "BLOCK_LINES"]

BLOCK_LINES = 2048


def _number_column(col: tuple[str, ...], slow: Callable[[int, str], Any]) -> list:
    """Type a column of raw cells as numbers; cells the fast path rejects go to ``slow``."""
    joined = "".join(col)
    if "_" not in joined and joined.isascii():
        try:
            return list(map(float, col))
        except ValueError:
            pass
    out = []
    for i, c in enumerate(col):
        s = c.strip()
        if not s or s == "null":
            out.append(None)
            continue
        try:
            if "_" in s or not s.isascii():
                raise ValueError
            out.append(float(s))
        except ValueError:
            out.append(slow(i, s))
    return out


def _string_column(col: tuple[str, ...]) -> list:
    vals = list(map(str.strip, col))
    if "" in vals or "null" in vals:
        vals = [None if v == "" or v == "null" else v for v in vals]
    return vals


def _generic_column(col: tuple[str, ...], conv: Callable[[str], Any], slow: Callable[[int, str], Any]) -> list:
    out = []
    for i, c in enumerate(col):
        s = c.strip()
        try:
            out.append(conv(s))
        except CellError:
            out.append(slow(i, s))
    return out


class _Block:
    """A block of records: cells split per line plus their first line numbers."""

    __slots__ = ("rows", "lines")

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.lines: list[int] | range = []


def _read_block(lines: Iterator[str], line_no: int, n_cells: int,
                warn: Callable[[str], None], state: dict) -> tuple[_Block, int, bool]:
    """Up to BLOCK_LINES records, the last line number read, and whether the input ended.
    Quoted lines are parsed one by one."""
    block = _Block()
    raw = list(islice(lines, BLOCK_LINES))
    if not raw:
        return block, line_no, True
    text_has_quote = any('"' in line for line in raw)
    if not text_has_quote:
        rows = [line.split(",") for line in raw]
        if set(map(len, rows)) == {n_cells} and (n_cells > 1 or all(line.strip() for line in raw)):
            block.rows = rows  # the common case: no quotes, no blank lines, no ragged rows
            block.lines = range(line_no + 1, line_no + 1 + len(raw))  # type: ignore[assignment]
            return block, line_no + len(raw), False
    i = 0
    while i < len(raw):
        line = raw[i]
        i += 1
        line_no += 1
        if text_has_quote and '"' in line:
            pending = raw[i:]
            raw_iter = iter(pending)

            def more() -> str | None:
                nxt = next(raw_iter, None)
                return nxt if nxt is not None else next(lines, None)

            try:
                cells, used = _split_quoted(line, line_no, more)
            except BadLine as exc:
                warn(f"line {exc.line}: {exc.message}; line skipped")
                break
            consumed = min(used - 1, len(pending))
            i += consumed
            start = line_no
            line_no += used - 1
        else:
            cells = line.split(",")
            start = line_no
            if len(cells) == 1 and not line.strip():
                continue
        if len(cells) != n_cells:
            if len(cells) == 1 and not cells[0].strip():
                continue
            if len(cells) > n_cells:
                if not state.get("extra"):
                    state["extra"] = True
                    warn(f"line {start}: {len(cells)} cells but the header has {n_cells}; "
                         "extra cells are ignored")
                cells = cells[:n_cells]
            else:
                cells = cells + [""] * (n_cells - len(cells))
        block.rows.append(cells)
        block.lines.append(start)
    return block, line_no, False


def run_csv_blocks(lines: Iterator[str], line_no: int, columns: list[str], schema: list[str],
                   types: dict[str, str | None], key: str | None, streams: dict[Any, Any],
                   new_stream: Callable[[Any], Any], step: Callable, emit_block: Callable[[list], None],
                   warn: Callable[[str], None]) -> int:
    """Run ``step`` over every CSV record after the header; returns the number of rows.
    Output rows go to ``emit_block(rows)`` once per block (and before an error is raised)."""
    index = {c: i for i, c in enumerate(columns)}
    picks = [index.get(c) for c in schema]
    kinds = [types.get(c) for c in schema]
    convs = [make_converter(t) for t in kinds]
    key_index = index.get(key) if key is not None else None
    n_cells = len(columns)
    state: dict = {}
    row = 0
    while True:
        block, line_no, done = _read_block(lines, line_no, n_cells, warn, state)
        if done:
            return row
        if not block.rows:
            continue
        cols = list(zip(*block.rows))
        typed: list[Any] = []
        for j, kind, conv, name in zip(picks, kinds, convs, schema):
            if j is None:
                typed.append([None] * len(block.rows))
                continue

            def slow(i: int, text: str, _name: str = name, _conv: Callable = conv) -> Any:
                try:
                    return _conv(text)
                except CellError as exc:
                    warn(f"line {block.lines[i]}, column {_name}: {exc.message}; using null")
                    return None

            if kind == "number":
                typed.append(_number_column(cols[j], slow))
            elif kind == "string":
                typed.append(_string_column(cols[j]))
            else:
                typed.append(_generic_column(cols[j], conv, slow))
        keys = _string_column(cols[key_index]) if key_index is not None else [None] * len(block.rows)
        out: list = []
        get = streams.get
        try:
            for k, R in zip(keys, zip(*typed) if typed else [()] * len(keys)):
                S = get(k)
                if S is None:
                    S = streams[k] = new_stream(k)
                o = step(S, R)
                row += 1
                if o is not None:
                    out.append(o)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a located DPLangError
            emit_block(out)
            raise locate_error(exc, row=row, key=k if key is not None else None) from None
        emit_block(out)

