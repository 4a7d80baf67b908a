"""The library API: ``dporch.compile(source_or_path) -> Script``; ``Script.run(rows_or_df)``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from ..lang.errors import Diagnostic
from ..lang.program import Program, compile_program, read_script
from ..lang.values import number_text
from .batch import AUTO_KEY, BatchStats, run_batch
from .readers import Records

__all__ = ["Script", "compile"]


def _looks_like_path(s: str) -> bool:
    return "\n" not in s and s.strip().endswith(".dp")


class Script:
    """A compiled DPLang data script (parsed and checked once)."""

    def __init__(self, program: Program):
        self.program = program

    @classmethod
    def compile(cls, source_or_path: str | Path, *, strict_null: bool = False,
                on_warning: Callable[[Diagnostic], None] | None = None,
                params: dict[str, Any] | None = None) -> "Script":
        """``params``: values of the script's -- PARAMS -- (docs/language.md §3.7)."""
        if isinstance(source_or_path, Path) or _looks_like_path(str(source_or_path)):
            path = str(source_or_path)
            return cls(compile_program(read_script(path), path, strict_null=strict_null,
                                       on_warning=on_warning, params=params))
        return cls(compile_program(str(source_or_path), None, strict_null=strict_null,
                                   on_warning=on_warning, params=params))

    @property
    def params(self) -> dict[str, Any]:
        """Every parameter's value in this compiled script."""
        return dict(self.program.params)

    @property
    def inputs(self) -> list[str]:
        return self.program.inputs

    @property
    def outputs(self) -> list[str]:
        return self.program.outputs

    @property
    def warnings(self) -> list[Diagnostic]:
        return self.program.warnings

    def run(self, data: Any, key: Any = AUTO_KEY) -> Any:
        """Batch run over a pandas DataFrame (returns a DataFrame) or an iterable of dicts
        (returns a list of dicts keyed by the OUTPUT names). ``key``: a column name, or
        "none"/None for one stream; not given: partition by stock_code when present.

        A DataFrame column declared ``string`` in -- INPUT -- is read as text even when pandas
        parsed it as numbers (``pd.read_csv`` turns stock codes into ints, or floats when a
        cell is empty): an integer value becomes its integer text (600001 and 600001.0 give
        "600001"), another number its §9.4 number text. Leading zeros pandas already dropped
        cannot come back: read such columns with ``dtype=str`` to keep "000001"."""
        if key is None:
            key = "none"
        rows: list[list] = []
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is a dependency
            pd = None
        if pd is not None and isinstance(data, pd.DataFrame):
            records = _frame_records(data, self.program.input_types)
            run_batch(self.program, records, rows.append, key=key)
            return pd.DataFrame(rows, columns=self.outputs)
        records = _dict_records(list(data))
        run_batch(self.program, records, rows.append, key=key)
        return [dict(zip(self.outputs, r)) for r in rows]

    def run_stats(self, records: Records, write: Callable[[list], None], **kw: Any) -> BatchStats:
        return run_batch(self.program, records, write, **kw)


def _plain(v: Any) -> Any:
    """A host value as a JSON-like value: numpy scalars unwrapped, NaN/NaT -> null."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (list, str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if v.__class__.__name__ in ("NaTType", "NAType"):
        return None
    if not isinstance(v, (str, float, bool, list, Decimal)):
        return str(v)
    return v


def _string_cell(v: Any) -> Any:
    """A host number in a column declared string: its text (integers without ``.0``)."""
    if type(v) is float and v == v and v not in (float("inf"), float("-inf")):
        return str(int(v)) if v == int(v) else number_text(v)
    return v


def _frame_records(df: Any, types: dict[str, str | None]) -> Records:
    columns = [str(c) for c in df.columns]
    texts = [types.get(c) == "string" for c in columns]

    def gen():
        for i, tup in enumerate(df.itertuples(index=False, name=None)):
            yield i + 1, {c: (_string_cell(_plain(v)) if text else _plain(v))
                          for c, v, text in zip(columns, tup, texts)}
    return Records("json", columns, gen(), empty=False, tabular=True)


def _dict_records(rows: list[dict]) -> Records:
    columns = list(rows[0].keys()) if rows else []
    def gen():
        for i, r in enumerate(rows):
            yield i + 1, {k: _plain(v) for k, v in r.items()}
    return Records("json", columns, gen(), empty=not rows)


def compile(source_or_path: str | Path, *, strict_null: bool = False,  # noqa: A001
            params: dict[str, Any] | None = None) -> Script:
    """Parse and check a script once: ``dporch.compile("x.dp").run(df)``; ``params`` sets
    script parameters (``dporch.compile("x.dp", params={"fast": 10})``)."""
    return Script.compile(source_or_path, strict_null=strict_null, params=params)


