"""The library API: ``dporch.compile(source_or_path) -> Script``; ``Script.run(rows_or_df)``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from ..lang.errors import Diagnostic
from ..lang.program import Program, compile_program, read_script
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
                on_warning: Callable[[Diagnostic], None] | None = None) -> "Script":
        if isinstance(source_or_path, Path) or _looks_like_path(str(source_or_path)):
            path = str(source_or_path)
            return cls(compile_program(read_script(path), path, strict_null=strict_null,
                                       on_warning=on_warning))
        return cls(compile_program(str(source_or_path), None, strict_null=strict_null,
                                   on_warning=on_warning))

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
        "none"/None for one stream; not given: partition by stock_code when present."""
        if key is None:
            key = "none"
        rows: list[list] = []
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is a dependency
            pd = None
        if pd is not None and isinstance(data, pd.DataFrame):
            records = _frame_records(data)
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


def _frame_records(df: Any) -> Records:
    columns = [str(c) for c in df.columns]
    def gen():
        for i, tup in enumerate(df.itertuples(index=False, name=None)):
            yield i + 1, {c: _plain(v) for c, v in zip(columns, tup)}
    return Records("json", columns, gen(), empty=False, tabular=True)


def _dict_records(rows: list[dict]) -> Records:
    columns = list(rows[0].keys()) if rows else []
    def gen():
        for i, r in enumerate(rows):
            yield i + 1, {k: _plain(v) for k, v in r.items()}
    return Records("json", columns, gen(), empty=not rows)


def compile(source_or_path: str | Path, *, strict_null: bool = False) -> Script:  # noqa: A001
    """Parse and check a script once: ``dporch.compile("x.dp").run(df)``."""
    return Script.compile(source_or_path, strict_null=strict_null)


