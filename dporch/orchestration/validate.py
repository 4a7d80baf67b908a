"""Checking a chunk of input records against a task's schema: typed values in schema order, the
routing key of each row, and the rows that are bad with the column and reason.

Three kinds of chunks: CSV cells (text, with the source's header), JSON objects, and typed rows
of another task's output. The common case of each (every record well formed) runs as whole
columns in C; a record in trouble sends only its chunk down the careful path.
"""

from __future__ import annotations

from typing import Any

from ..engine.columns import text_column, value_column
from ..engine.readers import key_text
from .lines import Chunk

__all__ = ["RowChecker", "Bad"]

Bad = dict[int, tuple[str | None, str]]  # record index -> (column or None, reason)


class RowChecker:
    def __init__(self, columns: list[str], types: dict[str, str | None], required: set[str], key: str | None,
                 producer: str | None = None):
        self.columns = columns
        self.types = types
        self.required = required
        self.key = key
        self.producer = producer  # a task input: the task whose rows come in

    def check(self, chunk: Chunk) -> tuple[list[Any], list[list], Bad]:
        """(key of each record, one value column per schema column, bad records)."""
        bad: Bad = {}
        if chunk.upstream is not None:
            keys, values = self._typed(chunk, bad)
        elif chunk.header is not None:
            keys, values = self._csv(chunk, bad)
        else:
            keys, values = self._json(chunk, bad)
        for name, col in zip(self.columns, values):
            if name in self.required and None in col:
                for i, v in enumerate(col):
                    if v is None:
                        bad.setdefault(i, (name, f"{name} is required"))
        return keys, values, bad

    def _columns(self, header: list[str], cols: list, n: int, convert: Any, bad: Bad, missing: str) -> list[list]:
        index = {c: i for i, c in enumerate(header)}
        values = []
        for name in self.columns:
            j = index.get(name)
            if j is None:
                if name in self.required:
                    for i in range(n):
                        bad.setdefault(i, (name, missing.format(name=name)))
                values.append([None] * n)
                continue

            def on_bad(i: int, text: str, message: str, _c: str = name) -> None:
                bad.setdefault(i, (_c, message))

            values.append(convert(cols[j], self.types.get(name), on_bad))
        return values

    def _csv(self, chunk: Chunk, bad: Bad) -> tuple[list[Any], list[list]]:
        header, records = chunk.header or [], chunk.records
        n, width = chunk.size, len(chunk.header or [])
        if chunk.columns is not None:  # well-formed lines, already split into columns
            cols = chunk.columns
        else:
            try:
                well_formed = set(map(len, records)) <= {width}
            except TypeError:  # a ValueError among the records: a line that could not be read
                well_formed = False
            if not well_formed:
                for i, rec in enumerate(records):
                    if isinstance(rec, ValueError):
                        bad[i] = (None, str(rec))
                    elif len(rec) != width:
                        bad[i] = (None, f"expected {width} cells, got {len(rec)}")
                records = [r if i not in bad else [""] * width for i, r in enumerate(records)]
            cols = list(zip(*records)) if records else []
        values = self._columns(header, cols, n, lambda c, t, on_bad: text_column(c, t, on_bad, exact=True), bad,
                               "required column {name!r} is missing from the header")
        kj = header.index(self.key) if self.key in header else None
        if kj is None:
            return [None] * n, values
        col = cols[kj]
        return (list(col) if "" not in col else [c or None for c in col]), values

    def _typed(self, chunk: Chunk, bad: Bad) -> tuple[list[Any], list[list]]:
        header, n = chunk.header or [], chunk.size
        cols = chunk.columns or []
        values = self._columns(header, cols, n, lambda c, t, on_bad: value_column(list(c), t, on_bad), bad,
                               f"required column {{name!r}} is not in task {self.producer!r}'s output")
        kj = header.index(self.key) if self.key in header else None
        if kj is None:
            return [None] * n, values
        col = cols[kj]
        if set(map(type, col)) == {str}:
            return [k.strip() or None for k in col], values
        return [key_text(v) or None for v in col], values

    def _json(self, chunk: Chunk, bad: Bad) -> tuple[list[Any], list[list]]:
        recs: list[dict] = []
        for i, rec in enumerate(chunk.records):
            if isinstance(rec, dict):
                recs.append(rec)
            else:
                bad[i] = (None, str(rec) if isinstance(rec, ValueError) else "expected a JSON object")
                recs.append({})
        values = []
        for name in self.columns:
            def on_bad(i: int, text: str, message: str, _c: str = name) -> None:
                bad.setdefault(i, (_c, message))

            values.append(value_column([r.get(name) for r in recs], self.types.get(name), on_bad))
        keys: list[Any] = [None] * len(recs)
        if self.key:
            for i, r in enumerate(recs):
                k = r.get(self.key)
                if isinstance(k, (list, dict)):
                    bad.setdefault(i, (self.key, f"the routing key {self.key} must be a string or a number, "
                                                 f"got a JSON {'array' if isinstance(k, list) else 'object'}"))
                else:
                    keys[i] = key_text(k) or None
        return keys, values
