"""StreamingExecutor: the row form fed tick by tick, with per-key bounded state (§8.7).

One executor holds one stream per key: history deques of at most ``window_size`` records (only
for the names the script indexes), one incremental state per indicator call site, and
``_index``. A failing row is reported and skipped without touching any state (§9.5 streaming);
other keys and rows are unaffected. ``export_state``/``import_state`` move keys between
executors (the orchestrator's compute units) exactly.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
import pickle
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..lang.errors import DPLangError, InputError
from ..lang.program import Bound, Program, locate_error
from .batch import AUTO_KEY
from ..lang.cells import CellError
from .columns import Block, text_column, value_column, value_converter
from .readers import key_text
from .script import Script

__all__ = ["StreamingExecutor", "RowError", "StepResult", "StateMismatch"]

_STATE_VERSION = 1
_NONE = type(None)
# Python types a value may have when its column's INPUT type is guaranteed (see kinds.py).
_ALLOWED: dict[str | None, set[type]] = {
    "number": {float, _NONE}, "string": {str, _NONE}, "bool": {bool, _NONE},
    "decimal": {Decimal, _NONE}, "array": {list, _NONE}, "null": {_NONE},
    None: {float, bool, str, _NONE},
}


@dataclass
class RowError:
    """A row that failed (bad input or a runtime error) and was skipped."""

    kind: str
    message: str
    row: int  # sequence number: rows pushed before it
    key: Any = None
    line: int | None = None  # script line (runtime errors)
    column: int | None = None
    file: str | None = None
    input_line: int | None = None  # input line number (bad lines of a text source)
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        """The batch form of a located error (§14.2): ``Kind at FILE:L:C (row R, key K, input
        line N): message``."""
        where = f" at {self.file or '<script>'}:{self.line}:{self.column or 1}" if self.line else ""
        parts = [f"row {self.row}"] + ([f"key {self.key}"] if self.key is not None else []) + \
            ([f"input line {self.input_line}"] if self.input_line else [])
        return f"{self.kind}{where} ({', '.join(parts)}): {self.message}"


@dataclass
class StepResult:
    """Outputs of a batch of pushed rows, in input order."""

    rows: list[list] = field(default_factory=list)  # output rows (OUTPUT order)
    positions: list[int] = field(default_factory=list)  # index of the input row of each output
    keys: list[Any] = field(default_factory=list)  # stream key of each output row
    errors: list[RowError] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def to_frame(self) -> Any:
        import pandas as pd
        return pd.DataFrame(self.rows, columns=self.columns)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]


class StateMismatch(InputError):
    """Exported state does not belong to this executor's script and input layout."""


def _as_program(script: Any) -> Program:
    if isinstance(script, Program):
        return script
    if isinstance(script, Script):
        return script.program
    return Script.compile(script if isinstance(script, (str, Path)) else str(script)).program


class StreamingExecutor:
    """Tick-by-tick execution of one script with per-key state.

    ``key``: the partition column (default: ``stock_code`` when the rows have it; ``None`` or
    ``"none"``: one stream). ``retry(error, attempt) -> bool`` is asked after a runtime error
    whether to run the row again (the state is untouched by the failed attempt)."""

    def __init__(self, script: Script | Program | str | Path, window_size: int = 1000, *,
                 key: Any = AUTO_KEY, retry: Callable[[RowError, int], bool] | None = None,
                 on_error: Callable[[RowError], None] | None = None, max_errors_kept: int = 1000):
        if window_size < 1:
            raise ValueError("window_size must be at least 1")
        self.program = _as_program(script)
        self.window = window_size
        self.key_option = key
        self.retry = retry
        self.on_error = on_error
        self.recent_errors: deque[RowError] = deque(maxlen=max_errors_kept)
        self._bound: Bound | None = None
        self._typed: Bound | None = None  # the same program compiled for guaranteed INPUT types
        self._key: str | None = None
        self._convs: list[tuple[str, str | None]] = []
        self._value_convs: list[tuple[str, Callable[[Any], Any]]] = []
        self._streams: dict[Any, Any] = {}
        self.rows_in = 0
        self.rows_out = 0
        self.errors = 0
        self._busy = 0.0
        self._touched: set[Any] = set()  # keys whose state may have changed since take_changes()
        self._dropped: set[Any] = set()  # keys dropped since take_changes()

    # -- binding ------------------------------------------------------------------------------
    @property
    def outputs(self) -> list[str]:
        return self.program.outputs

    @property
    def schema(self) -> list[str] | None:
        return self._bound.schema if self._bound else None

    def bind(self, columns: Sequence[str]) -> None:
        """Fix the input layout (done automatically by the first push)."""
        columns = list(columns)
        bound = self.program.bind(columns)
        if self._bound is not None and bound is not self._bound:
            if self._streams:
                raise InputError("the input columns changed after rows were pushed; "
                                 f"expected {self._bound.schema}")
        self._bound = bound
        self._typed = self.program.bind(columns, typed=True)
        key = self.key_option
        if key is AUTO_KEY:
            self._key = "stock_code" if "stock_code" in columns else None
        elif key is None or (isinstance(key, str) and key.lower() == "none"):
            self._key = None
        else:
            self._key = key
        types = self.program.input_types
        self._convs = [(c, types.get(c)) for c in bound.schema]
        self._value_convs = [(c, value_converter(t)) for c, t in self._convs]

    def _stream(self, k: Any) -> Any:
        S = self._streams.get(k)
        if S is None:
            S = self._streams[k] = self._bound.new_stream(k, window=self.window)  # type: ignore[union-attr]
        return S

    # -- pushing ------------------------------------------------------------------------------
    def push(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """Process one row; returns its output row (a dict in OUTPUT order) or None (filtered,
        or failed: see ``recent_errors`` / ``on_error``)."""
        if self._bound is None:
            self.bind(list(row.keys()))
        seq = self.rows_in
        self.rows_in += 1
        bad: list[str] = []
        R = []
        for name, conv in self._value_convs:
            try:
                R.append(conv(row.get(name)))
            except CellError as exc:
                bad.append(f"column {name}: {exc.message}")
                R.append(None)
        k = key_text(row.get(self._key)) if self._key is not None else None
        k = k or None
        if bad:
            self._fail(RowError("InputError", "; ".join(bad), seq, k))
            return None
        t0 = time.perf_counter()
        self._touched.add(k)
        out = self._run(self._stream(k), R, seq, k)
        self._busy += time.perf_counter() - t0
        if out is None:
            return None
        self.rows_out += 1
        return dict(zip(self.program.outputs, out))

    def _run(self, S: Any, R: Sequence[Any], seq: int, k: Any,
             failure: BaseException | None = None, input_line: int | None = None) -> list | None:
        """Step one row; on a runtime error ask the retry hook, else report and skip it.
        ``failure``: the first attempt already failed with this exception."""
        step = self._bound.step  # type: ignore[union-attr]
        attempt = 1
        while True:
            try:
                if failure is not None:
                    exc, failure = failure, None
                    raise exc
                return step(S, R)
            except Exception as exc:  # noqa: BLE001 - reported as a RowError
                err = locate_error(exc, row=seq, key=k, input_line=input_line)
                if err.aborts_run:  # exit() or an error in the ERROR block ends the run (§9.5)
                    raise err from None
                rerr = RowError(err.kind, err.message, seq, k, err.line, err.column, err.file,
                                input_line=input_line, attempts=attempt)
                if self.retry is not None and self.retry(rerr, attempt):
                    attempt += 1
                    continue
                self._fail(rerr)
                return None

    def _fail(self, err: RowError) -> None:
        self.errors += 1
        self.recent_errors.append(err)
        if self.on_error is not None:
            self.on_error(err)

    def push_many(self, batch: Any, keys: Sequence[Any] | None = None, *,
                  input_lines: Sequence[int] | None = None) -> StepResult:
        """Process a batch of rows in order: a pandas DataFrame, a pyarrow RecordBatch or Table,
        a dict of column lists, a sequence of dicts, or a text
        :class:`~dporch.engine.columns.Block` with its header (``(columns, block)``, as the
        daemon reads CSV). ``keys`` overrides the stream key of each row; ``input_lines`` gives
        the input line of each row for error reports.

        A row that ends the run (``exit()``, an error in the ERROR block) raises its located
        DPLangError with ``partial_result``: the StepResult of the rows before it."""
        columns, values, row_keys, bad, lines = self._columns(batch)
        lines = lines if input_lines is None else input_lines  # where each row is in the input
        keys = row_keys if keys is None else list(keys)
        result = StepResult(columns=self.program.outputs)
        n = len(keys)
        base = self.rows_in
        self.rows_in += n
        streams = self._streams
        assert self._bound is not None and self._typed is not None
        # Streams are laid out identically for both compilations; the typed one drops checks
        # and is valid when every value has its declared type (always for CSV text).
        # (CSV text typed by text_column conforms unless a cell was bad)
        clean_text = isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[1], Block) and not bad
        step = self._typed.step if clean_text or self._conforms(values) else self._bound.step
        rows = zip(*values) if values else iter([()] * n)
        self._touched.update(keys)
        t0 = time.perf_counter()
        out_rows, positions, out_keys = result.rows, result.positions, result.keys
        for i, (k, R) in enumerate(zip(keys, rows)):
            if bad and i in bad:
                err = RowError("InputError", bad[i], base + i, k,
                               input_line=lines[i] if lines is not None else None)
                self._fail(err)
                result.errors.append(err)
                continue
            S = streams.get(k)
            if S is None:
                S = self._stream(k)
            try:
                o = step(S, R)
            except Exception as exc:  # noqa: BLE001 - the error path (state untouched)
                errors_before = self.errors
                try:
                    o = self._run(S, R, base + i, k, failure=exc,
                                  input_line=lines[i] if lines is not None else None)
                except DPLangError as end:  # the run ends here: the rows before it are the result
                    self.rows_in, self.rows_out = base + i + 1, self.rows_out + len(out_rows)
                    end.partial_result = result  # type: ignore[attr-defined]
                    raise
                if self.errors > errors_before:
                    result.errors.append(self.recent_errors[-1])
            if o is not None:
                out_rows.append(o)
                positions.append(i)
                out_keys.append(k)
        self._busy += time.perf_counter() - t0
        self.rows_out += len(out_rows)
        return result

    def _conforms(self, values: list[list]) -> bool:
        for (name, kind), col in zip(self._convs, values):
            allowed = _ALLOWED.get(kind)
            if allowed is not None and not set(map(type, col)) <= allowed:
                return False
        return True

    def _columns(self, batch: Any) -> tuple[list[str], list[list], list[Any], dict[int, str], Any]:
        """(columns, typed schema columns, keys, bad rows, input lines) of a batch."""
        bad: dict[int, str] = {}
        lines = None
        if isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[1], Block):
            columns, block = batch
            if self._bound is None:
                self.bind(columns)
            bad = dict(block.bad)
            lines = block.lines
            index = {c: i for i, c in enumerate(columns)}
            cols = list(zip(*block.rows)) if block.rows else [()] * len(columns)
            values = []
            for name, kind in self._convs:
                j = index.get(name)
                if j is None:
                    values.append([None] * len(block.rows))
                    continue

                def on_bad(i: int, text: str, message: str, _n: str = name) -> None:
                    bad.setdefault(i, f"column {_n}: {message}")

                values.append(text_column(cols[j], kind, on_bad, exact=block.exact))
            kj = index.get(self._key) if self._key is not None else None
            if kj is None:
                keys = [None] * len(block.rows)
            elif (self._key, "string") in self._convs:  # the key column is typed already
                keys = values[self._convs.index((self._key, "string"))]
            else:
                keys = text_column(cols[kj], "string", lambda *a: None, exact=block.exact)
            return columns, values, keys, bad, lines
        nan_is_null = False
        if hasattr(batch, "to_pydict") and hasattr(batch, "schema"):  # pyarrow RecordBatch/Table
            data = batch.to_pydict()
            columns = list(data)
        elif isinstance(batch, dict):  # column name -> list of values
            data = batch
            columns = list(batch)
        elif hasattr(batch, "columns") and hasattr(batch, "to_dict"):  # pandas DataFrame
            columns = [str(c) for c in batch.columns]
            data = {str(c): batch[c].tolist() for c in batch.columns}
            nan_is_null = True
        else:
            rows = list(batch)
            columns = list(rows[0].keys()) if rows else (self._bound.schema if self._bound else [])
            data = {c: [r.get(c) for r in rows] for c in {c for r in rows for c in r} | set(columns)}
        if self._bound is None:
            self.bind(columns)
        n = len(next(iter(data.values()))) if data else 0
        values = []
        for name, kind in self._convs:
            col = data.get(name)
            if col is None:
                values.append([None] * n)
                continue

            def on_bad_v(i: int, text: str, message: str, _n: str = name) -> None:
                bad.setdefault(i, f"column {_n}: {message}")

            values.append(value_column(col, kind, on_bad_v, nan_is_null=nan_is_null))
        if self._key is not None and self._key in data:
            keys = [key_text(v) or None for v in data[self._key]]
        else:
            keys = [None] * n
        return columns, values, keys, bad, lines

    # -- state ----------------------------------------------------------------------------------
    @property
    def keys(self) -> list[Any]:
        return list(self._streams)

    def _fingerprint(self) -> str:
        schema = self._bound.schema if self._bound else []
        h = hashlib.sha256(self.program.script.source.encode())
        h.update(("\x1f".join(schema) + f"\x1e{self.window}").encode())
        return h.hexdigest()

    def export_state(self, keys: Iterable[Any] | None = None) -> bytes:
        """Serialise the state of ``keys`` (default all): history windows, indicator states and
        ``_index``. ``import_state`` on an executor of the same script continues exactly."""
        chosen = self._streams if keys is None else [k for k in keys if k in self._streams]
        payload = {
            "version": _STATE_VERSION,
            "fingerprint": self._fingerprint(),
            "schema": self._bound.schema if self._bound else None,
            "streams": {k: self.stream_state(k) for k in chosen},
        }
        return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)

    def import_state(self, data: bytes) -> list[Any]:
        """Add (or replace) the streams in ``data``; returns their keys."""
        payload = pickle.loads(data)
        if payload.get("version") != _STATE_VERSION:
            raise StateMismatch(f"unsupported state version {payload.get('version')}")
        if self._bound is None and payload["schema"] is not None:
            self.bind(payload["schema"])
        if payload["fingerprint"] != self._fingerprint():
            raise StateMismatch("the state was exported by a different script, input layout or window")
        for k, state in payload["streams"].items():
            self.load_stream_state(k, state)
        return list(payload["streams"])

    def stream_state(self, key: Any) -> tuple | None:
        """One key's state as plain picklable values (None: the key has no stream). Only
        meaningful to an executor of the same script, input layout and window."""
        S = self._streams.get(key)
        return None if S is None else (S.index, S.h, S.ind, S.lazy)

    def load_stream_state(self, key: Any, state: tuple) -> None:
        """Install a key's state taken by :meth:`stream_state` (replacing any it had)."""
        assert self._bound is not None, "bind() the executor before loading state"
        index, h, ind, lazy = state
        S = self._bound.new_stream(key, window=self.window)
        S.index, S.h, S.ind, S.lazy = index, h, ind, lazy
        S.hl = tuple(h.values())
        self._streams[key] = S
        self._touched.add(key)

    def take_changes(self) -> tuple[set[Any], set[Any]]:
        """(keys whose state changed, keys dropped) since the previous call; an incremental
        checkpoint saves the first and forgets the second."""
        touched, dropped = self._touched, self._dropped
        self._touched, self._dropped = set(), set()
        streams = self._streams
        return {k for k in touched if k in streams}, {k for k in dropped if k not in streams}

    def drop_keys(self, keys: Iterable[Any]) -> None:
        for k in keys:
            if self._streams.pop(k, None) is not None:
                self._dropped.add(k)

    def reset(self) -> None:
        """Forget every stream (history, indicator state, counters stay)."""
        self._streams.clear()

    def stats(self) -> dict[str, Any]:
        processed = self.rows_in - self.errors
        return {
            "keys": len(self._streams),
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "errors": self.errors,
            "mean_step_us": (self._busy / self.rows_in * 1e6) if self.rows_in else 0.0,
            "processed": processed,
        }

