"""Batch execution of the row form (docs/language.md §8.7 batch mode, §9.5).

Rows are processed in input order; each key value is its own stream. The input is streamed
(memory flat in the number of rows) unless the script needs the whole stream first: look-ahead
(``close[1]``) or ``_total``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..lang.errors import InputError
from ..lang.program import Program, locate_error
from .kernel import run_csv_blocks
from .readers import BadLine, Records, RowTyper

__all__ = ["HeaderError", "KeyColumnError", "MissingColumnsError", "check_columns", "resolve_key", "run_batch", "BatchStats", "AUTO_KEY"]

AUTO_KEY = object()  # "no --key given": partition by stock_code when the input has it


class HeaderError(InputError):
    """The input's header does not fit the run (a usage error, exit 2): found before any row,
    so no output is written."""


class KeyColumnError(HeaderError):
    """--key names a column the input does not have."""


class MissingColumnsError(HeaderError):
    """The input has none of the script's INPUT columns (the wrong file, or a header typo)."""


def check_columns(program: Program, columns: list[str], warn: Callable[[str], None] | None) -> None:
    """§9.1: a declared INPUT column the input lacks reads as null (with a warning); an input
    with none of them is refused rather than run into all-null rows."""
    if not program.script.declared_input or not columns:
        return
    missing = [c for c in program.inputs if c not in columns]
    if not missing:
        return
    if len(missing) == len(program.inputs):
        raise MissingColumnsError(
            f"the input has none of the INPUT columns ({', '.join(missing)}); its columns are "
            f"{', '.join(columns)}. Fix the input's header or the -- INPUT -- declaration")
    if warn is not None:
        warn(f"the input has no column {', '.join(missing)} (declared in -- INPUT --); "
             "it reads as null")


def resolve_key(key: Any, columns: list[str], note: Callable[[str], None] | None = None) -> str | None:
    """The partition column for ``--key`` (§8.7): 'none' -> one stream; not given ->
    stock_code when present (with a note); a missing column -> KeyColumnError."""
    if key is AUTO_KEY:
        if "stock_code" in columns:
            if note:
                note("partitioning streams by column stock_code (use --key none for one stream)")
            return "stock_code"
        return None
    if key is None or (isinstance(key, str) and key.lower() == "none"):
        return None
    if key not in columns:
        raise KeyColumnError(f"--key column '{key}' is not in the input (columns: {', '.join(columns) or 'none'})")
    return key


@dataclass
class BatchStats:
    rows_in: int = 0
    rows_out: int = 0
    streams: int = 0


def run_batch(program: Program, records: Records, write: Callable[[list], None], *,
              key: Any = AUTO_KEY, note: Callable[[str], None] | None = None,
              warn: Callable[[str], None] | None = None,
              position: Callable[[Any], Callable[[], float] | None] | None = None,
              write_block: Callable[[list], None] | None = None) -> BatchStats:
    """Run ``program`` over ``records`` calling ``write(out_row)`` for each emitted row, in
    input order. A runtime error aborts with a located DPLangError after the rows of earlier
    input rows were written (§9.5)."""
    stats = BatchStats()
    if records.empty:
        if program.is_generator:
            bound = program.bind([])
            S = bound.new_stream(None, total=1)
            _step(bound.step, S, [], 0, None, write, stats)
        return stats
    part = resolve_key(key, records.columns, note)
    if records.format == "csv" or records.tabular:
        check_columns(program, records.columns, warn)
    bound = program.bind(records.columns, typed=records.format == "csv")
    typer = RowTyper(records.columns, bound.schema, program.input_types, part, fmt=records.format,
                     on_warning=warn)
    typed = _typed_rows(records.records, typer)
    streams: dict[Any, Any] = {}
    pos = position or (lambda k: None)
    if program.uses_lookahead or program.uses_total:
        rows = list(typed)
        groups: dict[Any, list] = {}
        for _, k, R in rows:
            groups.setdefault(k, []).append(R)
        for k, group in groups.items():
            streams[k] = bound.new_stream(k, total=len(group), rows=group, position=pos(k))
        typed = iter(rows)
    step = bound.step
    if records.lines is not None and not streams:
        # CSV streamed through the block kernel (same behaviour, column-wise typing).
        def new_stream(k: Any) -> Any:
            return bound.new_stream(k, position=pos(k))

        def emit_block(rows: list) -> None:
            stats.rows_out += len(rows)
            if write_block is not None:
                write_block(rows)
            else:
                for r in rows:
                    write(r)

        stats.rows_in = run_csv_blocks(records.lines, records.line_no, records.columns, bound.schema,
                                       program.input_types, part, streams, new_stream, step,
                                       emit_block, warn or (lambda m: None))
        stats.streams = len(streams)
        return stats
    for i, (line_no, k, R) in enumerate(typed):
        S = streams.get(k)
        if S is None:
            S = streams[k] = bound.new_stream(k, position=pos(k))
        _step(step, S, R, i, part, write, stats, line_no)
    stats.streams = len(streams)
    return stats


def _typed_rows(records: Iterable, typer: RowTyper):
    """(input line, key, R) per readable record."""
    for line_no, rec in records:
        try:
            k, R = typer.row(line_no, rec)
        except BadLine:
            continue  # already reported by the typer (batch mode warns and skips)
        yield line_no, k, R


def _step(step: Callable, S: Any, R: list, i: int, part: str | None, write: Callable[[list], None],
          stats: BatchStats, line_no: int | None = None) -> None:
    stats.rows_in += 1
    try:
        out = step(S, R)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a located DPLangError
        raise locate_error(exc, row=i, key=S.key if part is not None else None,
                           input_line=line_no) from None
    if out is not None:
        stats.rows_out += 1
        write(out)

