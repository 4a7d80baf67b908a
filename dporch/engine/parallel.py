"""Key-partitioned parallel daemon: the reading process routes CSV lines by a stable hash of the
key cell to worker processes; each worker runs its own StreamingExecutor and writes the split
files of its keys. A key always goes to the same worker, so per-key history and file order are
exactly those of a single process.

Only ``--split`` output is parallel: a merged file must keep input order across keys.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import time
import zlib
from typing import Any, Callable

from ..lang.errors import DPLangError, InputError
from ..lang.program import Program
from .batch import AUTO_KEY, check_columns
from .columns import BLOCK_LINES, read_block
from .daemon import DaemonStats
from .readers import BadLine, _split_quoted
from .sources import LineSource, stopped_by_signals
from .streaming import RowError, StreamingExecutor
from .writers import SplitWriter, expect_many_rows

__all__ = ["run_parallel_daemon", "stable_hash"]


_ABORT = "abort"  # a worker's message: the run has ended with this error


def stable_hash(text: str) -> int:
    """Deterministic across processes and runs (Python's hash() is salted)."""
    return zlib.crc32(text.encode("utf-8"))


def _worker(conn: Any, program: Program, header: list[str], key: Any, window: int, template: str,
            buffer: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the reading process decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    expect_many_rows()
    errors = 0

    def on_error(err: RowError) -> None:
        nonlocal errors
        errors += 1
        print(f"warning: {err}", file=sys.stderr, flush=True)

    ex = StreamingExecutor(program, window_size=window, key=key, on_error=on_error)
    ex.bind(header)
    sink = SplitWriter(template, program.outputs, buffer_rows=buffer)
    aborted = False
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                break
            if aborted:
                continue  # the run has ended: drop what was routed before the reader knew
            numbers, text = msg  # numbers: the input line number of each physical line
            lines = iter(text.split("\n")[:-1])
            block, _ = read_block((ln + "\n" for ln in lines), 0, len(header), strict=True,
                                  warn=lambda m: print(f"warning: {m}", file=sys.stderr, flush=True),
                                  state={}, limit=len(numbers), line_of=numbers)
            try:
                result = ex.push_many((header, block))
            except DPLangError as exc:  # exit() or an ERROR-block error: the rows before it count
                partial = getattr(exc, "partial_result", None)
                if partial is not None:
                    sink.write_rows(partial.rows, partial.keys)
                exc.partial_result = None  # type: ignore[attr-defined]
                aborted = True
                conn.send((_ABORT, exc))
                continue
            sink.write_rows(result.rows, result.keys)
            if conn.poll() is False:
                sink.flush()  # nothing queued: make the rows visible
    finally:
        sink.close()
        conn.send((ex.rows_in, ex.rows_out, errors))
        conn.close()


def run_parallel_daemon(program: Program, source: LineSource, template: str, *, workers: int, key: Any,
                        window: int, buffer: int, report: Callable[[str], None],
                        note: Callable[[str], None] | None = None) -> DaemonStats:
    """Like :func:`~dporch.engine.daemon.run_daemon` for CSV input and split output, on
    ``workers`` processes. A row that ends the run (exit(), an error in the ERROR block) stops
    the reader; blocks already routed to the other workers are still processed."""
    stats = DaemonStats()
    t0 = time.perf_counter()

    def on_invalid(line: int, message: str) -> None:  # report the line and skip it
        stats.errors += 1
        report(f"InputError (input line {line}): {message}; line skipped")

    source.on_invalid = on_invalid
    line_no = 0
    header: list[str] | None = None
    while header is None:
        if source.wait_lines() == 0:
            stats.seconds = time.perf_counter() - t0
            return stats
        first = next(source)
        line_no += 1
        if line_no in source.invalid_lines:
            raise InputError("the first line is not valid UTF-8; convert the input to UTF-8 "
                             "(for example with iconv -f GBK -t UTF-8)", line=line_no)
        if first.strip():
            cells, used = _split_quoted(first, line_no, lambda: next(source, None)) if '"' in first \
                else ([c.strip() for c in first.split(",")], 1)
            line_no += used - 1
            header = cells
    check_columns(program, header, report)
    probe = StreamingExecutor(program, window_size=window, key=key)
    probe.bind(header)
    part = probe._key
    if note and part is not None and key is AUTO_KEY:
        note(f"partitioning streams by column {part} (use --key none for one stream)")
    kidx = header.index(part) if part is not None else None
    _preload_writer()
    ctx = mp.get_context("fork")
    pipes, procs = [], []
    for _ in range(workers):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(child, program, header, key, window, template, buffer),
                        daemon=True)
        p.start()
        child.close()
        pipes.append(parent)
        procs.append(p)
    aborted: list[DPLangError] = []
    owner: dict[str, int] = {}  # key cell text -> worker
    try:
        with stopped_by_signals(source) as stop:
            while not stop["now"]:
                for conn in pipes:  # a worker says the run has ended (exit(), ERROR block)
                    if conn.poll():
                        aborted.append(conn.recv()[1])
                if aborted:
                    break
                n = source.wait_lines()
                if n == 0:
                    break
                pending = [next(source) for _ in range(min(n, BLOCK_LINES * workers))]
                buckets, line_no = _route(pending, source, kidx, workers, line_no, owner)
                for conn, (numbers, lines) in zip(pipes, buckets):
                    if numbers:
                        conn.send((numbers, "".join(lines)))
    finally:
        for conn in pipes:
            conn.send(None)
        for conn, p in zip(pipes, procs):
            msg = conn.recv()
            while msg[0] == _ABORT:
                aborted.append(msg[1])
                msg = conn.recv()
            rows_in, rows_out, errors = msg
            stats.rows_in += rows_in
            stats.rows_out += rows_out
            stats.errors += errors
            p.join()
        stats.seconds = time.perf_counter() - t0
    if aborted:  # the error of the earliest input row
        raise min(aborted, key=lambda e: e.input_line or 0)
    return stats


def _preload_writer() -> None:
    """Import what the workers' writers use (Arrow, ~0.1 s) once, before they are forked."""
    import importlib

    importlib.import_module(".row_blocks", __package__)


def _worker_of(k: str, owner: dict[str, int], workers: int) -> int:
    w = owner.get(k)
    if w is None:
        if len(owner) >= 1 << 16:  # many distinct keys: keep the cache bounded
            owner.clear()
        w = owner[k] = stable_hash(k.strip()) % workers
    return w


def _route(lines: list[str], source: LineSource, kidx: int | None, workers: int,
           line_no: int, owner: dict[str, int] | None = None) -> tuple[list[tuple[list[int], list[str]]], int]:
    """Records of one block by worker (stable hash of the key cell) with their input line
    numbers, and the last line number; a quoted record spanning lines takes the next ones.
    ``owner``: the worker of each key text seen so far (filled here)."""
    if owner is None:
        owner = {}
    if (kidx is not None and lines and lines[-1].endswith("\n") and not any(map(str.isspace, lines))
            and '"' not in "".join(lines)):
        # The common block: one record per line, none blank. Per-line work in comprehensions.
        keys = [c[kidx] if len(c) > kidx else "" for c in (line.split(",", kidx + 1) for line in lines)]
        get = owner.get
        ws = [get(k) for k in keys]
        if None in ws:
            ws = [_worker_of(k, owner, workers) if w is None else w for k, w in zip(keys, ws)]
        numbers = range(line_no + 1, line_no + 1 + len(lines))
        out = [([n for n, x in zip(numbers, ws) if x == w], [ln for ln, x in zip(lines, ws) if x == w])
               for w in range(workers)]
        return out, line_no + len(lines)
    buckets: list[tuple[list[int], list[str]]] = [([], []) for _ in range(workers)]
    pending = iter(lines)
    for line in pending:
        line_no += 1
        start = line_no
        record = line
        if kidx is None:
            w = 0
        else:
            if '"' in line:
                consumed: list[str] = []

                def more() -> str | None:
                    nxt = next(pending, None)
                    nxt = nxt if nxt is not None else next(source, None)
                    if nxt is not None:
                        consumed.append(nxt)
                    return nxt

                try:
                    cells, _ = _split_quoted(line, line_no, more)
                except BadLine:
                    cells = [""]  # the worker reports the line
                record = line + "".join(consumed)
                line_no += len(consumed)
            else:
                cells = line.split(",", kidx + 1)
            w = _worker_of(cells[kidx] if kidx < len(cells) else "", owner, workers)
        if not record.strip():
            continue
        record = record if record.endswith("\n") else record + "\n"
        buckets[w][0].extend(range(start, start + record.count("\n")))
        buckets[w][1].append(record)
    return buckets, line_no
