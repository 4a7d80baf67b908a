"""Column-wise input typing (docs/language.md §9.2) shared by the batch kernel and the streaming
executor: blocks of CSV lines split into records, and columns of cell texts or host values typed
by the INPUT annotations with C-level fast paths.

``on_bad(i, text, message)`` decides what a cell that does not fit its declared type becomes:
batch mode warns and uses null; streaming mode marks the row bad (it is then skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..lang.cells import CellError, json_cell, make_converter
from .readers import BadLine, _split_quoted

__all__ = ["BLOCK_LINES", "Block", "read_block", "text_column", "value_column", "value_converter",
           "OnBad", "group_indexes"]

BLOCK_LINES = 2048

OnBad = Callable[[int, str, str], Any]


@dataclass
class Block:
    """Records of a block: cells per record, the line each starts on, and records that could
    not be read (strict mode) with the reason."""

    rows: list[list[str]] = field(default_factory=list)
    lines: list[int] | range = field(default_factory=list)
    bad: dict[int, str] = field(default_factory=dict)
    done: bool = False  # the input ended
    exact: bool = False  # cells are final (quoted ones kept as written): do not trim


def read_block(lines: Iterator[str], line_no: int, n_cells: int, *, strict: bool,
               warn: Callable[[str], None], state: dict, limit: int = BLOCK_LINES,
               line_of: Sequence[int] | None = None) -> tuple[Block, int]:
    """Up to ``limit`` records and the last line number read. Blank lines are skipped; a record
    with the wrong number of cells is padded/truncated (batch, one warning for extra cells) or
    marked bad (strict). ``line_of[n - 1]`` is the input's number of running line n (when the
    lines come from a larger input, as in the parallel daemon)."""
    if line_of is not None:
        block, last = read_block(lines, line_no, n_cells, strict=strict, state=state, limit=limit,
                                 warn=lambda m: warn(_renumber(m, line_of)))
        got = block.lines
        if isinstance(got, range) and got.step == 1:  # every line a record: a slice, not a loop
            block.lines = list(line_of[got.start - 1:got.stop - 1])
        else:
            block.lines = [line_of[n - 1] for n in got]
        return block, last
    block = Block()
    take = getattr(lines, "take", None)  # a LineSource hands over a block at once
    raw = take(limit) if take is not None else list(islice(lines, limit))
    if not raw:
        block.done = True
        return block, line_no
    has_quote = '"' in "".join(raw)
    if not has_quote:
        rows = [line.split(",") for line in raw]
        if set(map(len, rows)) == {n_cells} and (n_cells > 1 or all(line.strip() for line in raw)):
            block.rows = rows  # the common case: no quotes, no blank lines, no ragged rows
            block.lines = range(line_no + 1, line_no + 1 + len(raw))
            return block, line_no + len(raw)
    rows_out: list[list[str]] = []
    starts: list[int] = []
    i = 0
    while i < len(raw):
        line = raw[i]
        i += 1
        line_no += 1
        start = line_no
        if has_quote and '"' in line:
            pending = iter(raw[i:])

            def more() -> str | None:
                nxt = next(pending, None)
                return nxt if nxt is not None else next(lines, None)

            try:
                cells, used = _split_quoted(line, line_no, more)
            except BadLine as exc:
                warn(f"line {exc.line}: {exc.message}; line skipped")
                continue
            consumed = min(used - 1, len(raw) - i)
            i += consumed
            line_no += used - 1
        else:
            if not line.strip():
                continue
            cells = [c.strip() for c in line.split(",")]
        if len(cells) != n_cells:
            if len(cells) == 1 and not cells[0].strip():
                continue
            if strict:
                block.bad[len(rows_out)] = f"expected {n_cells} cells, got {len(cells)}"
                cells = (cells + [""] * n_cells)[:n_cells]
            elif len(cells) > n_cells:
                if not state.get("extra"):
                    state["extra"] = True
                    warn(f"line {start}: {len(cells)} cells but the header has {n_cells}; "
                         "extra cells are ignored")
                cells = cells[:n_cells]
            else:
                cells = cells + [""] * (n_cells - len(cells))
        rows_out.append(cells)
        starts.append(start)
    block.rows, block.lines = rows_out, starts
    block.exact = True
    return block, line_no


def _renumber(message: str, line_of: Sequence[int]) -> str:
    head, sep, rest = message.partition(":")
    if head.startswith("line ") and head[5:].isdigit():
        return f"line {line_of[int(head[5:]) - 1]}{sep}{rest}"
    return message


def text_column(col: Sequence[str], kind: str | None, on_bad: OnBad, *, exact: bool = False) -> list:
    """Type a column of CSV cell texts: raw ones (trimmed here), or ``exact`` ones (already
    trimmed where unquoted; a quoted cell keeps its blanks, so `" 1"` is not a number)."""
    if exact:
        if kind == "number":
            joined = "".join(col)
            # float() agrees with §4.3 on cells without blanks, underscores and non-ASCII
            if joined.isascii() and "_" not in joined and joined.split() == [joined]:
                try:
                    return list(map(float, col))
                except ValueError:
                    pass  # empty or null cells, or bad ones: cell by cell
        elif kind == "string":
            if "" not in col and "null" not in col:
                return list(col)
        conv = make_converter(kind)
        out = []
        for i, c in enumerate(col):
            try:
                out.append(conv(c))
            except CellError as exc:
                out.append(on_bad(i, c, exc.message))
        return out
    if kind == "number":
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
                out.append(_fallback(i, s, kind, on_bad))
        return out
    if kind == "string":
        vals = list(map(str.strip, col))
        if "" in vals or "null" in vals:
            vals = [None if v == "" or v == "null" else v for v in vals]
        return vals
    conv = make_converter(kind)
    out = []
    for i, c in enumerate(col):
        s = c.strip()
        try:
            out.append(conv(s))
        except CellError as exc:
            out.append(on_bad(i, s, exc.message))
    return out


def _fallback(i: int, text: str, kind: str, on_bad: OnBad) -> Any:
    try:
        return make_converter(kind)(text)
    except CellError as exc:
        return on_bad(i, text, exc.message)


def _host(v: Any, nan_is_null: bool) -> Any:
    """A host value (numpy scalar, int, Decimal...) as a JSON-like value."""
    t = type(v)
    if t is float:
        return None if (nan_is_null and v != v) else v
    if v is None or t is str or t is bool or t is list or t is Decimal:
        return v
    if t is int:
        return float(v)
    item = getattr(v, "item", None)
    if item is not None and not isinstance(v, (list, tuple)):
        try:
            return _host(item(), nan_is_null)
        except (TypeError, ValueError):
            pass
    if isinstance(v, (list, tuple)):
        return [_host(x, nan_is_null) for x in v]
    if v.__class__.__name__ in ("NaTType", "NAType"):
        return None
    return str(v)


def value_column(values: Sequence[Any], kind: str | None, on_bad: OnBad, *,
                 nan_is_null: bool = False) -> list:
    """Type a column of host values (JSON objects, DataFrame or Arrow columns): strings in a
    declared column are typed like CSV cells, other values keep their own type (§9.2).
    ``nan_is_null``: pandas marks missing numbers with NaN."""
    kinds = set(map(type, values))
    if kind == "number" and kinds <= {float, type(None)}:
        return [None if v != v else v for v in values] if nan_is_null else list(values)
    if kind == "string" and kinds <= {str, type(None)}:
        return [None if v == "null" or v == "" else v for v in values] if ("" in values or "null" in values) \
            else list(values)
    out = []
    for i, v in enumerate(values):
        v = _host(v, nan_is_null)
        try:
            out.append(json_cell(v, kind))
        except CellError as exc:
            out.append(on_bad(i, str(v), exc.message))
    return out


def value_converter(kind: str | None) -> Callable[[Any], Any]:
    """Per-value form of :func:`value_column` (raises CellError), with the common cases first."""
    def convert(v: Any) -> Any:
        t = type(v)
        if v is None:
            return None
        if t is float and kind in ("number", None):
            return v
        if t is str and kind == "string":
            return None if v == "" or v == "null" else v
        return json_cell(_host(v, False), kind)

    return convert


def group_indexes(values: Iterable[Any]) -> dict[Any, list[int]]:
    """The positions of each distinct value, in order of first appearance (values hashable)."""
    groups: dict[Any, list[int]] = {}
    for i, v in enumerate(values):
        g = groups.get(v)
        if g is None:
            groups[v] = [i]
        else:
            g.append(i)
    return groups
