"""The streaming daemon: lines in as they arrive -> StreamingExecutor -> CSV out (split per key
or merged), buffered, flushed when the input pauses, at exit and on SIGINT/SIGTERM."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..lang.errors import DPLangError, InputError
from ..lang.program import Program
from .batch import AUTO_KEY, check_columns
from .columns import BLOCK_LINES, read_block
from .readers import _split_quoted, json_loads, sniff_format
from .sources import LineSource, stopped_by_signals
from .streaming import RowError, StreamingExecutor
from .writers import expect_many_rows

__all__ = ["DaemonStats", "run_daemon", "Sink"]


class Sink(Protocol):
    """Where output rows go."""

    def write_rows(self, rows: list[list], keys: list[Any]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class DaemonStats:
    rows_in: int = 0
    rows_out: int = 0
    errors: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.rows_in / self.seconds if self.seconds > 0 else 0.0
        return (f"rows in {self.rows_in}, rows out {self.rows_out}, errors {self.errors}, "
                f"{rate:,.0f} rows/s")


def run_daemon(program: Program, source: LineSource, sink: Sink, *, key: Any = AUTO_KEY,
               window: int = 1000, report: Callable[[str], None],
               note: Callable[[str], None] | None = None) -> DaemonStats:
    """Process ``source`` until it ends (or a signal asks to stop); every accepted row is
    written before returning."""
    stats = DaemonStats()
    t0 = time.perf_counter()
    expect_many_rows()

    def on_error(err: RowError) -> None:
        stats.errors += 1
        report(str(err))

    ex = StreamingExecutor(program, window_size=window, key=key, on_error=on_error)

    def on_invalid(line: int, message: str) -> None:  # streaming: report the line and skip it
        stats.errors += 1
        report(f"InputError (input line {line}): {message}; line skipped")

    source.on_invalid = on_invalid
    with stopped_by_signals(source) as stop:
        try:
            _loop(ex, source, sink, stats, stop, report, note)
        finally:  # a signal while the sink flushes is still caught: no row lost
            sink.close()
            stats.rows_in = ex.rows_in
            stats.rows_out = ex.rows_out
            stats.seconds = time.perf_counter() - t0
    return stats


def _loop(ex: StreamingExecutor, source: LineSource, sink: Sink, stats: DaemonStats, stop: dict,
          report: Callable[[str], None], note: Callable[[str], None] | None) -> None:
    line_no = 0
    header: list[str] | None = None
    fmt = None
    while not stop["now"]:
        if not source.ready():  # input paused: make what we have visible
            sink.flush()
        n = source.wait_lines()
        if n == 0:
            return
        if fmt is None:
            first = next(source)
            line_no += 1
            if line_no in source.invalid_lines:
                raise InputError("the first line is not valid UTF-8; convert the input to UTF-8 "
                                 "(for example with iconv -f GBK -t UTF-8)", line=line_no)
            if not first.strip():
                continue
            fmt = sniff_format(first)
            if fmt == "csv":
                cells, used = _split_quoted(first, line_no, lambda: next(source, None)) \
                    if '"' in first else ([c.strip() for c in first.split(",")], 1)
                line_no += used - 1
                header = cells
                check_columns(ex.program, header, report)
                ex.bind(header)
                if note and ex._key is not None and ex.key_option is AUTO_KEY:
                    note(f"partitioning streams by column {ex._key} (use --key none for one stream)")
                continue
            source.unread(first)  # JSON: the first line is data
            line_no -= 1
        if fmt == "csv":
            assert header is not None
            block, line_no = read_block(source, line_no, len(header), strict=True, warn=report,
                                        state={}, limit=min(max(1, source.ready()), BLOCK_LINES))
            result = _push(ex, sink, (header, block))
        else:
            count = min(source.ready(), BLOCK_LINES)
            rows, lines = [], []
            for _ in range(count):
                text = next(source)
                line_no += 1
                if not text.strip():
                    continue
                try:
                    obj = json_loads(text)
                    if not isinstance(obj, dict):
                        raise ValueError("expected one JSON object per line")
                except ValueError as exc:
                    stats.errors += 1
                    report(f"InputError (input line {line_no}): {exc}; line skipped")
                    continue
                rows.append(obj)
                lines.append(line_no)
            if not rows:
                continue
            result = _push(ex, sink, rows, lines)
        sink.write_rows(result.rows, result.keys)


def _push(ex: StreamingExecutor, sink: Sink, batch: Any, lines: list[int] | None = None) -> Any:
    """``ex.push_many(batch)``; when a row ends the run (exit(), an error in the ERROR block)
    the output rows of the rows before it are written first (§9.5), then the error goes on."""
    try:
        return ex.push_many(batch, input_lines=lines)
    except DPLangError as exc:
        partial = getattr(exc, "partial_result", None)
        if partial is not None:
            sink.write_rows(partial.rows, partial.keys)
        raise

