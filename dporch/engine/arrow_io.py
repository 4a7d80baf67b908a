"""Arrow helpers for the column form: CSV in, exact §9.4 CSV text out, built from raw buffers.

Everything here avoids converting Python objects into Arrow values (``pa.array(list)``,
Python scalars in compute calls): pyarrow imports pandas to check such objects, which would
add ~0.5 s and ~100 MB to every `dporch run`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ..lang.format import csv_cell
from ..lang.values import number_text
from ..lang.vector_values import Bool, Col, Num, Str, Unsupported

__all__ = ["read_table", "num_col", "str_col", "bool_col", "string_array", "format_column", "csv_text",
           "write_csv_rows"]

_TYPES = {"number": pa.float64(), "string": pa.string(), "bool": pa.string()}


def string_array(values: list[str]) -> pa.Array:
    """A StringArray of Python strings, built from buffers."""
    data = "".join(values).encode("utf-8")
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    if values:
        offsets[1:] = np.cumsum([len(v.encode("utf-8")) for v in values])
    return pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _scalar(text: str) -> pa.Scalar:
    return string_array([text])[0]


def _bitmap(mask: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(mask, bitorder="little"))


def read_table(path: str, columns: list[str], types: dict[str, str | None]) -> pa.Table:
    """Read ``columns`` of a CSV file, typed for the column form (raises Unsupported when the
    text needs the row form's exact cell rules)."""
    convert = pcsv.ConvertOptions(
        column_types={c: _TYPES[types.get(c) or "string"] for c in columns},
        null_values=["", "null"], strings_can_be_null=True, quoted_strings_can_be_null=True,
        include_columns=columns, include_missing_columns=True)
    try:
        table = pcsv.read_csv(path, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise Unsupported(f"cells the fast reader does not take ({str(exc).splitlines()[0]})") from None
    return table.combine_chunks()


def _values(arr: pa.Array, dtype: Any) -> tuple[np.ndarray, np.ndarray | None]:
    bufs = arr.buffers()
    values = np.frombuffer(bufs[1], dtype=dtype, count=len(arr) + arr.offset)[arr.offset:]
    null = None
    if arr.null_count:
        valid = np.unpackbits(np.frombuffer(bufs[0], dtype=np.uint8), bitorder="little")
        null = ~valid[arr.offset: arr.offset + len(arr)].astype(bool)
    return values, null


def _bool_values(arr: pa.Array) -> np.ndarray:
    """A BooleanArray without nulls as numpy bools, from its bitmap (``to_numpy`` on a
    BooleanArray goes through pyarrow's pandas shim, which imports pandas)."""
    bits = np.unpackbits(np.frombuffer(arr.buffers()[1], dtype=np.uint8), bitorder="little")
    return bits[arr.offset: arr.offset + len(arr)].astype(bool)


def _chunk(col: pa.ChunkedArray) -> pa.Array:
    return col.chunk(0) if col.num_chunks == 1 else pa.concat_arrays(col.chunks)


def num_col(col: pa.ChunkedArray) -> Num:
    arr = _chunk(col)
    if len(arr) == 0:
        return Num(np.zeros(0))
    values, null = _values(arr, np.float64)
    return Num(values.copy(), null)


def str_col(col: pa.ChunkedArray) -> Str:
    """Category codes and categories of a string column (cells must be trimmed already)."""
    arr = _chunk(col)
    n = len(arr)
    if n == 0:
        return Str(np.zeros(0, dtype=np.int32), [])
    enc = pc.dictionary_encode(arr)
    cats = enc.dictionary.to_pylist()
    if any(c != c.strip() for c in cats):  # the row form trims unquoted cells
        raise Unsupported("string cells with surrounding blanks")
    codes, null = _values(enc.indices, np.int32)
    codes = codes.copy()
    if null is not None:
        codes[null] = 0
    return Str(codes, cats, null)


def bool_col(col: pa.ChunkedArray) -> Bool:
    s = str_col(col)
    lowered = [c.lower() for c in s.cats]
    if any(c not in ("true", "false") for c in lowered):
        raise Unsupported("bool cells other than true/false")
    table = np.array([c == "true" for c in lowered] or [False], dtype=bool)
    return Bool(table[s.codes], s.null)


def _texts_with_nulls(texts: pa.Array, null: np.ndarray | None) -> pa.Array:
    if null is None or not null.any():
        return texts
    empty = string_array([""] * 1)[0]
    masked = pa.Array.from_buffers(pa.string(), len(texts), [_bitmap(~null)] + texts.buffers()[1:],
                                   offset=texts.offset)
    return pc.fill_null(masked, empty)


def format_column(col: Col) -> pa.Array:
    """The §9.4 CSV cell texts of a column (identical to ``csv_cell`` per value)."""
    if isinstance(col, Num):
        v = col.v
        n = len(v)
        arr = pa.Array.from_buffers(pa.float64(), n, [None, pa.py_buffer(np.ascontiguousarray(v))])
        texts = pc.cast(arr, pa.string())
        # Arrow writes the same shortest digits as Python, but switches to an exponent at its own
        # thresholds (1.23456789015e+10); §9.4 never uses one, so those cells (and NaN) are
        # formatted by Python.
        odd = ~np.isfinite(v) | _bool_values(pc.match_substring(texts, "e"))
        if col.null is not None:
            odd &= ~col.null
        if odd.any():  # exponents and NaN: Python's rule, never an exponent
            idx = np.flatnonzero(odd)
            repl = string_array([number_text(float(x)) for x in v[idx]])
            texts = pc.replace_with_mask(texts, pa.Array.from_buffers(pa.bool_(), n, [None, _bitmap(odd)]), repl)
        return _texts_with_nulls(texts, col.null)
    if isinstance(col, Bool):
        cats = string_array(["false", "true"])
        idx = col.v.astype(np.int32)
        texts = cats.take(pa.Array.from_buffers(pa.int32(), len(idx), [None, pa.py_buffer(idx)]))
        return _texts_with_nulls(texts, col.null)
    cats = string_array([csv_cell(c) for c in col.cats] or [""])
    codes = np.ascontiguousarray(col.codes, dtype=np.int32)
    texts = cats.take(pa.Array.from_buffers(pa.int32(), len(codes), [None, pa.py_buffer(codes)]))
    return _texts_with_nulls(texts, col.null)


def csv_text(columns: list[pa.Array]) -> memoryview:
    """Rows of the formatted columns as CSV body text (``a,b\\n`` per row)."""
    if not columns or len(columns[0]) == 0:
        return memoryview(b"")
    comma, newline, empty = _scalar(","), _scalar("\n"), _scalar("")
    lines = pc.binary_join_element_wise(*columns, comma) if len(columns) > 1 else columns[0]
    lines = pc.binary_join_element_wise(lines, newline, empty)
    bufs = lines.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=len(lines) + 1 + lines.offset)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return memoryview(bufs[2])[start:end]


def _slice(col: Col, start: int, end: int) -> Col:
    null = None if col.null is None else col.null[start:end]
    if isinstance(col, Str):
        return Str(col.codes[start:end], col.cats, null)
    return type(col)(col.v[start:end], null)  # type: ignore[call-arg]


def write_csv_rows(cols: list[Col], n: int, out: Any, *, threads: int = 2, chunk: int = 1 << 17) -> None:
    """Format and write ``n`` rows of ``cols`` as CSV text: chunks of rows are formatted on
    ``threads`` threads (Arrow releases the GIL) and written in order."""
    from concurrent.futures import ThreadPoolExecutor

    def text(start: int) -> memoryview:
        end = min(start + chunk, n)
        return csv_text([format_column(_slice(c, start, end)) for c in cols])

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for part in pool.map(text, range(0, n, chunk)):
            out.write(part)
