"""Batch runs in the column form: CSV file -> Arrow -> grouped numpy columns -> the compiled
column program -> CSV text, in input order (issue: column form).

:func:`run_columns` raises :class:`~dporch.lang.vector_values.Unsupported` when the script or
the data needs the row form; callers then run :func:`~dporch.engine.batch.run_batch`, which
gives the exact result (or error) of the language reference.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

import numpy as np

from ..lang import ast as A
from ..lang.format import csv_header
from ..lang.indicators import INDICATORS
from ..lang.program import Program
from ..lang.vector import Frame, compile_columns
from ..lang.vector_values import Col, Unsupported, null_num
from . import arrow_io
from .batch import AUTO_KEY, check_columns, resolve_key
from .readers import csv_records, sniff_format

__all__ = ["ColumnResult", "run_columns", "evaluate", "group_rows"]


@dataclass
class ColumnResult:
    rows_in: int
    rows_out: int
    streams: int


def group_rows(keys: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A stable order that puts each key's rows together (input order within a key), and the
    (start, end) of each group in that order."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64), []
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    cuts = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    bounds = np.concatenate(([0], cuts, [len(keys)]))
    return order, [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def evaluate(program: Program, inputs: dict[str, Col], key_codes: np.ndarray | None,
             n: int) -> tuple[np.ndarray, list[Col], int]:
    """Run the column form over rows in input order. Returns (emitted row indexes in input
    order, output columns for those rows, number of streams)."""
    cp = compile_columns(program)
    if key_codes is None or (n and bool((key_codes[1:] >= key_codes[:-1]).all())):
        # One stream, or rows already grouped by key (a backtest's partitions): no reordering.
        if key_codes is None or n == 0:
            groups = [(0, n)] if n else []
        else:
            cuts = np.flatnonzero(key_codes[1:] != key_codes[:-1]) + 1
            bounds = np.concatenate(([0], cuts, [n]))
            groups = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        emitted_mask, outs = cp.run(Frame(n, groups, dict(inputs)))
        emitted = np.flatnonzero(emitted_mask)
        return emitted, outs if len(emitted) == n else [c.take(emitted) for c in outs], len(groups)
    order, groups = group_rows(key_codes)
    frame = Frame(n, groups, {name: col.take(order) for name, col in inputs.items()})
    emitted_sorted, outs = cp.run(frame)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    emitted = np.flatnonzero(emitted_sorted[inverse])
    pick = inverse[emitted]  # positions in the grouped layout of the emitted rows, input order
    # An output that is an input column unchanged is that column in input order: no reordering.
    original = {id(frame.inputs[name]): col for name, col in inputs.items()}
    every = len(emitted) == n
    cols = []
    for c in outs:
        src = original.get(id(c))
        cols.append(c.take(pick) if src is None else src if every else src.take(emitted))
    return emitted, cols, len(groups)


def _has_quote(path: str) -> bool:
    import mmap

    with open(path, "rb") as f:
        try:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return m.find(b'"') >= 0
        except ValueError:  # an empty file cannot be mapped
            return False


def _preload_indicators(program: Program) -> None:
    """Import TA-Lib and run its agreement probes in a thread while the file is read, when the
    script calls an indicator (without letting TA-Lib import pandas: see load_talib)."""
    from ..lang.indicators import prepare_columns

    calls = (n for st in program.script.body for n in A.walk(st) if isinstance(n, A.Call))
    names = [c.name for c in calls if c.name in INDICATORS and c.pkg is None]
    if names:
        threading.Thread(target=prepare_columns, args=(names,), kwargs={"without_pandas": True},
                         daemon=True).start()


def run_columns(program: Program, path: str, out: BinaryIO, *, key: Any = AUTO_KEY,
                note: Callable[[str], None] | None = None, threads: int = 2) -> ColumnResult:
    """Run ``program`` over the CSV file ``path`` in the column form, writing CSV to ``out``."""
    compile_columns(program)  # fail fast, before reading
    _preload_indicators(program)
    with open(path, encoding="utf-8-sig", newline="") as f:
        header_line = f.readline()
    if sniff_format(header_line) != "csv":
        raise Unsupported("JSON input (the column form reads CSV)")
    if '"' in header_line or any(c != c.strip() for c in header_line.rstrip("\r\n").split(",")):
        raise Unsupported("a header with quotes or blanks around names")
    if _has_quote(path):
        raise Unsupported("quoted fields (the row form reads them exactly, RFC 4180)")
    header = next(csv_records([header_line]), (0, []))[1] if header_line.strip() else []
    if not header:
        raise Unsupported("an empty input")
    part = resolve_key(key, header, note)
    check_columns(program, header, (lambda m: note(f"warning: {m}")) if note else None)
    schema = program.schema_for(header)
    types = program.input_types
    wanted = list(dict.fromkeys(schema + ([part] if part else [])))
    wanted = [c for c in wanted if c in header]
    table = arrow_io.read_table(path, wanted, {**types, **({part: "string"} if part else {})})
    n = table.num_rows
    inputs: dict[str, Col] = {}
    for name in schema:
        if name not in header:
            inputs[name] = null_num(n)
            continue
        t = types.get(name)
        column = table.column(name)
        inputs[name] = arrow_io.num_col(column) if t == "number" else \
            arrow_io.bool_col(column) if t == "bool" else arrow_io.str_col(column)
    key_codes = None
    if part is not None:
        kc = arrow_io.str_col(table.column(part))
        key_codes = kc.codes.astype(np.int64)
        if kc.null is not None:
            key_codes[kc.null] = -1  # empty or missing keys share one stream (§8.7)
    emitted, cols, streams = evaluate(program, inputs, key_codes, n)
    out.write(csv_header(program.outputs).encode("utf-8"))
    arrow_io.write_csv_rows(cols, len(emitted), out, threads=threads)
    out.flush()
    return ColumnResult(n, len(emitted), streams)
