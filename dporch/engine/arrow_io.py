"""Arrow helpers for the column form: CSV in, exact §9.4 CSV text out, built from raw buffers.

Everything here avoids converting Python objects into Arrow values (``pa.array(list)``,
Python scalars in compute calls): pyarrow imports pandas to check such objects, which would
add ~0.5 s and ~100 MB to every `dporch run`.
"""

from __future__ import annotations

from typing import Any, Sequence

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


def string_array(values: Sequence[str], end: str = "") -> pa.Array:
    """A StringArray of Python strings, each followed by ``end``, built from buffers."""
    n = len(values)
    if n == 0:
        return pa.Array.from_buffers(pa.string(), 0, [None, pa.py_buffer(np.zeros(1, dtype=np.int32)),
                                                      pa.py_buffer(b"")])
    text = end.join(values) + end if end else "".join(values)
    data = text.encode("utf-8")
    if len(data) == len(text):  # ASCII: characters are bytes
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    else:
        index: dict[str, int] = {}
        codes = [index.setdefault(v, len(index)) for v in values]
        if len(index) * 4 <= n:  # few distinct texts (signals, codes): encode each once
            idx = np.array(codes, dtype=np.int32)
            return string_array(list(index), end).take(pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(idx)]))
        lengths = np.fromiter((len(v.encode("utf-8")) for v in values), dtype=np.int64, count=n)
    if end:
        lengths += len(end.encode("utf-8"))
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


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


def _with_nulls(texts: pa.Array, null: np.ndarray | None) -> pa.Array:
    """``texts`` with the rows of ``null`` marked null (the join writes them as empty cells)."""
    if null is None or not null.any():
        return texts
    return pa.Array.from_buffers(pa.string(), len(texts), [_bitmap(~null)] + texts.buffers()[1:],
                                 offset=texts.offset)


# Arrow writes the shortest round-trip digits, as Python's repr does, but switches to an exponent
# outside [1e-6, 1e10) (1.23456789015e+10); §9.4 never uses one. Cells outside the narrower range
# below (and zeros, NaN, inf) are formatted by Python: a numeric test, where searching the texts
# for "e" cost ~15 ns a cell. _arrow_range_ok() checks the range on this pyarrow build.
_ARROW_LOW, _ARROW_HIGH = 1e-5, 1e9
_range_checked: list[bool] = []


def _arrow_range_ok() -> bool:
    if not _range_checked:
        probe = [0.0, -0.0, 1e-5, -1e-5, 1.0000000000000002e-5, 0.00012345678901234567, 0.1, 1 / 3, 2.5,
                 123456.789, 999999999.9999999, -999999999.9999999, 987654321.1234567, 1e8, 5e-5]
        v = np.array(probe, dtype=np.float64)
        texts = pc.cast(pa.Array.from_buffers(pa.float64(), len(v), [None, pa.py_buffer(v)]), pa.string())
        _range_checked.append(texts.to_pylist() == [number_text(x) for x in probe])
    return _range_checked[0]


def _num_texts(col: Num) -> pa.Array:
    v = np.ascontiguousarray(col.v)
    n = len(v)
    texts = pc.cast(pa.Array.from_buffers(pa.float64(), n, [None, pa.py_buffer(v)]), pa.string())
    if _arrow_range_ok():
        a = np.abs(v)
        odd = ~(((a >= _ARROW_LOW) & (a < _ARROW_HIGH)) | (v == 0.0))  # NaN compares False: odd
    else:
        odd = ~np.isfinite(v) | _bool_values(pc.match_substring(texts, "e"))
    if col.null is not None:
        odd &= ~col.null
    if odd.any():
        idx = np.flatnonzero(odd)
        repl = string_array([number_text(float(x)) for x in v[idx]])
        texts = pc.replace_with_mask(texts, pa.Array.from_buffers(pa.bool_(), n, [None, _bitmap(odd)]), repl)
    return texts


def _take(cats: list[str], codes: np.ndarray) -> pa.Array:
    idx = np.ascontiguousarray(codes, dtype=np.int32)
    return string_array(cats).take(pa.Array.from_buffers(pa.int32(), len(idx), [None, pa.py_buffer(idx)]))


def format_column(col: Col, end: str = "") -> pa.Array:
    """The §9.4 CSV cell texts of a column (identical to ``csv_cell`` per value), each followed
    by ``end``; null cells are null (empty once joined) when ``end`` is empty."""
    if isinstance(col, Num):
        texts = _with_nulls(_num_texts(col), col.null)
        if end:  # a null cell becomes just ``end``
            texts = pc.binary_join_element_wise(texts, _scalar(""), _scalar(end), null_handling="replace",
                                                null_replacement="")
        return texts
    if isinstance(col, Bool):
        cats, codes = ["false", "true"], col.v.astype(np.int32)
    else:
        cats = [csv_cell(c) for c in col.cats] or [""]
        codes = col.codes
    if end or col.null is not None:
        # Nulls take an extra category: no validity bitmap, no fill pass.
        cats = [c + end for c in cats] + [end]
        if col.null is not None and col.null.any():
            codes = np.where(col.null, len(cats) - 1, codes)
    return _take(cats, codes)


def csv_text(columns: list[pa.Array]) -> memoryview:
    """Rows of the formatted columns as CSV body text; the last column's cells already end in
    ``\n`` (``format_column(col, "\n")``), so one join makes the lines."""
    if not columns or len(columns[0]) == 0:
        return memoryview(b"")
    if len(columns) > 1:
        lines = pc.binary_join_element_wise(*columns, _scalar(","), null_handling="replace", null_replacement="")
    else:
        lines = columns[0]
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

    last = len(cols) - 1

    def text(start: int) -> memoryview:
        end = min(start + chunk, n)
        return csv_text([format_column(_slice(c, start, end), "\n" if i == last else "") for i, c in enumerate(cols)])

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for part in pool.map(text, range(0, n, chunk)):
            out.write(part)
