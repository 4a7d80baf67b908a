"""A task (SEED §2.2.3, §5.1): a script chain, a schema, a compute pool, an input and an output
pipeline, its state machine, error handling and statistics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from streamz import Stream

from ..engine.columns import text_column, value_column
from ..engine.readers import key_text
from ..lang.program import Program
from .autoscale import Autoscaler, load_rate
from .config import TaskConfig
from .inputs import Chunk, InputPipeline, make_input
from .outputs import OutputBuffer, OutputIOError, OutputPipeline, make_output
from .pool import ComputePool, PoolError, Result

__all__ = ["TaskState", "Task", "IllegalTransition", "OrchestrationError", "ErrorRecord"]

log = logging.getLogger("dporch.task")

Rows = tuple[list[int], list[Any], list[tuple]]  # sequence numbers, keys, values in schema order
FLUSH_DELAY = 0.02  # seconds an output row may wait in a buffer


class OrchestrationError(Exception):
    """Base of the orchestration errors; ``code`` is the API error code."""

    code = "internal"


class IllegalTransition(OrchestrationError):
    code = "invalid_state"


class TaskState(str, Enum):
    CREATED = "created"
    READY = "ready"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    ERROR = "error"


# action -> the states it may start from (SEED §5.1; stop also from paused and error)
ALLOWED: dict[str, set[TaskState]] = {
    "start": {TaskState.READY, TaskState.STOPPED},
    "pause": {TaskState.RUNNING},
    "resume": {TaskState.PAUSED},
    "stop": {TaskState.RUNNING, TaskState.PAUSED, TaskState.ERROR},
    "reset": {TaskState.ERROR},
    "delete": {TaskState.CREATED, TaskState.READY, TaskState.STOPPED, TaskState.ERROR},
    "push": {TaskState.RUNNING},
}


@dataclass
class ErrorRecord:
    task: str
    stage: str  # input | script | output | unit
    message: str
    kind: str = "InputError"
    time: float = 0.0
    line: int | None = None  # input line (input errors) or script line (script errors)
    column: str | None = None
    seq: int | None = None
    key: Any = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class Task:
    def __init__(self, config: TaskConfig, programs: list[Program], *, state_dir: Path | None = None):
        self.config = config
        self.programs = programs
        self.state = TaskState.READY
        self.state_dir = state_dir
        first = programs[0]
        if config.schema:
            self.columns = [c.name for c in config.schema]
            self.types = config.schema_types()
            self.required = {c.name for c in config.schema if c.required}
        else:
            self.columns = list(first.inputs)
            self.types = {c: first.input_types.get(c) for c in self.columns}
            self.required = set()
        self.outputs_columns = programs[-1].outputs
        self.key = config.key_column
        self.buffer = OutputBuffer(self.outputs_columns)
        self.errors: deque[ErrorRecord] = deque(maxlen=1000)
        self.pool: ComputePool | None = None
        self.input: InputPipeline | None = None
        self.output: OutputPipeline | None = None
        self._tasks: list[asyncio.Task] = []
        self._sinks: list[Stream] = []  # the streamz pipeline, built by start()
        self._flush_due: asyncio.TimerHandle | None = None
        self._emitting = 0
        self._stopping: asyncio.Task | None = None  # the shutdown after an error
        self._settled = asyncio.Event()
        self._settled.set()
        self._background: set[asyncio.Task] = set()
        self.processed = 0
        self.error_count = 0
        self.next_seq = 0
        self.retries: dict[int, int] = {}
        self.latencies: deque[float] = deque(maxlen=2000)
        self._rate: deque[tuple[float, int]] = deque(maxlen=64)
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.created_at = time.time()
        self.last_error: str | None = None
        self.autoscaler = Autoscaler(config.compute_pool)
        self.log: list[str] = deque(maxlen=200)  # type: ignore[assignment]

    # -- state machine --------------------------------------------------------------------------
    def allowed(self) -> list[str]:
        return sorted(a for a, states in ALLOWED.items() if self.state in states and a != "push")

    def check(self, action: str) -> None:
        if self.state not in ALLOWED[action]:
            raise IllegalTransition(
                f"cannot {action} task {self.config.id!r}: it is {self.state.value}; "
                f"allowed now: {', '.join(self.allowed()) or 'none'}")

    def note(self, message: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {message}")
        log.info("task %s: %s", self.config.id, message)

    # -- life cycle -----------------------------------------------------------------------------
    def _build_pipeline(self) -> None:
        """The task's data flow as a streamz graph (ARCHITECTURE.md §3)::

            chunks -map(validate)-> rows -filter(non-empty)-> sink(submit: route, micro-batch, actor calls)
            push_data, retries  -> rows
            pool results        -> results -> sink(deliver: output, buffer, stats)
                                           -> filter(failed rows) -> sink(retry, skip or fail)

        Every node is asynchronous: ``emit`` returns once the sinks are done with the element,
        so a full compute unit holds up the input (backpressure)."""
        self.chunks = Stream(asynchronous=True)
        self.rows = Stream(asynchronous=True)
        self.results = Stream(asynchronous=True)
        self.chunks.map(self._validate).connect(self.rows)
        self._sinks = [self.rows.filter(lambda r: bool(r[0])).sink(self._submit),
                       self.results.sink(self._deliver),
                       self.results.filter(lambda r: bool(r.errors)).sink(self._script_errors)]

    async def start(self, client: Any) -> None:
        self.check("start")
        await self.released()
        cfg = self.config
        self._build_pipeline()
        self.output = make_output(cfg.output, self.outputs_columns, cfg.id)
        scripts = [(p.script.source, p.file) for p in self.programs]
        pc = cfg.compute_pool
        self.pool = ComputePool(client, cfg.id, scripts, self.columns,
                                strategy=cfg.routing.strategy if cfg.routing.enabled else "hash",
                                window=pc.window_size, batch_size=pc.batch_size, batch_ms=pc.batch_ms,
                                max_in_flight=pc.max_in_flight, on_result=self.results.emit,
                                on_failover=self._on_failover)
        await self.pool.start(pc.initial_size if cfg.routing.enabled else 1)
        self.input = make_input(cfg.input, cfg.id)
        self.started_at = time.time()
        self.state = TaskState.RUNNING
        reader = asyncio.create_task(self._run_input())
        self._tasks = [reader, asyncio.create_task(self._timer())]
        ready = asyncio.create_task(self.input.ready.wait())
        await asyncio.wait({ready, reader}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not self.input.ready.is_set():
            message = self.last_error or f"input {self.input.describe()} did not become ready"
            await self._shutdown()
            raise OSError(message)
        self.note(f"started: {self.pool.size} unit(s), input {self.input.describe()}, "
                  f"output {self.output.describe()}")

    async def _run_input(self) -> None:
        assert self.input is not None
        try:
            await self.input.run(self._feed)
        except asyncio.CancelledError:
            raise
        except OSError as exc:
            self._error(ErrorRecord(self.config.id, "input", f"input failed: {exc}", kind="InputError",
                                    time=time.time()))
            if not self.input.ready.is_set():  # failed while starting: start() reports it
                self.last_error = f"input failed: {exc}"
                return
            await self._enter_error(f"input failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - a task failure, not a server failure
            log.exception("task %s input loop", self.config.id)
            await self._enter_error(f"input failed: {type(exc).__name__}: {exc}")

    async def pause(self) -> None:
        """Stop reading input, let in-flight batches finish, flush outputs; windows stay."""
        self.check("pause")
        assert self.input is not None and self.pool is not None and self.output is not None
        self.input.pause()
        self.state = TaskState.PAUSED
        await self._settled.wait()
        await self.pool.drain()
        await self.output.aflush()
        self.note("paused")

    async def resume(self) -> None:
        self.check("resume")
        assert self.input is not None
        self.state = TaskState.RUNNING
        self.input.resume()
        self.note("resumed")

    async def stop(self) -> None:
        """Drain, flush and close the outputs, release the compute units."""
        self.check("stop")
        await self.released()
        await self._shutdown()
        self.state = TaskState.STOPPED
        self.stopped_at = time.time()
        self.note("stopped")

    async def _shutdown(self) -> None:
        if self.input is not None:
            await self.input.close()
        await self._settled.wait()  # rows already read reach the pool before it drains
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._tasks = []
        if self.pool is not None:
            try:
                await self.pool.close()
            except Exception as exc:  # noqa: BLE001 - the units may be gone already
                log.warning("task %s: releasing units: %s", self.config.id, exc)
            self.pool = None
        if self.output is not None:
            try:
                await self.output.aclose()
            except OutputIOError as exc:
                self._error(ErrorRecord(self.config.id, "output", str(exc), kind="OutputError", time=time.time()))
            self.output = None
        if self._flush_due is not None:
            self._flush_due.cancel()
            self._flush_due = None
        for sink in self._sinks:  # streamz keeps sinks alive globally until destroyed
            sink.destroy()
        self._sinks = []

    def reset(self) -> None:
        self.check("reset")
        self.state = TaskState.READY
        self.last_error = None
        self.note("reset")

    async def _enter_error(self, message: str) -> None:
        """Enter Error now; release everything in the background, since the caller may be a
        part of the pipeline that the shutdown waits for."""
        if self.state in (TaskState.ERROR, TaskState.STOPPED):
            return
        self.last_error = message
        self.state = TaskState.ERROR
        self.note(f"error: {message}")
        self._stopping = asyncio.create_task(self._shutdown())

    async def released(self) -> None:
        """Wait until an error's background shutdown has finished."""
        if self._stopping is not None:
            await self._stopping
            self._stopping = None

    # -- data -----------------------------------------------------------------------------------
    async def _feed(self, chunk: Chunk) -> None:
        if self.input is not None:
            await self.input.running.wait()  # data read just before a pause waits for resume
        await self._emit(self.chunks, chunk)

    async def push(self, records: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        """Rows pushed through the API: (accepted count, per-row errors)."""
        self.check("push")
        before = len(self.errors)
        rows = self._validate(Chunk(None, list(records), list(range(1, len(records) + 1)), "push"))
        errors = [e.to_dict() for e in list(self.errors)[before:]]
        await self._emit(self.rows, rows)
        return len(rows[0]), errors

    async def _emit(self, stream: Stream, item: Any) -> None:
        """Emit into the pipeline; ``_settled`` is set while no emit is under way, so pause and
        stop can wait until every row already read has reached the pool."""
        self._emitting += 1
        self._settled.clear()
        try:
            await stream.emit(item)
        finally:
            self._emitting -= 1
            if not self._emitting:
                self._settled.set()

    async def _submit(self, rows: Rows) -> None:
        assert self.pool is not None
        try:
            await self.pool.submit(*rows, time.monotonic())
        except PoolError as exc:
            await self._enter_error(str(exc))

    def _validate(self, chunk: Chunk) -> Rows:
        """Typed rows in schema order; bad rows become error records (and are skipped)."""
        n = len(chunk.records)
        bad: dict[int, tuple[str | None, str]] = {}
        values: list[list] = []
        if chunk.header is not None:  # CSV cells
            index = {c: i for i, c in enumerate(chunk.header)}
            for i, rec in enumerate(chunk.records):
                if isinstance(rec, ValueError):
                    bad[i] = (None, str(rec))
                elif len(rec) != len(chunk.header):
                    bad[i] = (None, f"expected {len(chunk.header)} cells, got {len(rec)}")
            records = [r if i not in bad else [""] * len(chunk.header) for i, r in enumerate(chunk.records)]
            cols = list(zip(*records)) if records else []
            for name in self.columns:
                j = index.get(name)
                if j is None:
                    if name in self.required:
                        for i in range(n):
                            bad.setdefault(i, (name, f"required column {name!r} is missing from the header"))
                    values.append([None] * n)
                    continue

                def on_bad(i: int, text: str, message: str, _c: str = name) -> None:
                    bad.setdefault(i, (_c, message))

                values.append(text_column(cols[j], self.types.get(name), on_bad, exact=True))
            kj = index.get(self.key) if self.key else None
            keys = [(c or None) for c in cols[kj]] if kj is not None else [None] * n
        else:  # JSON objects
            recs = []
            for i, rec in enumerate(chunk.records):
                if not isinstance(rec, dict):
                    bad[i] = (None, str(rec) if isinstance(rec, ValueError) else "expected a JSON object")
                    recs.append({})
                else:
                    recs.append(rec)
            for name in self.columns:
                def on_bad_v(i: int, text: str, message: str, _c: str = name) -> None:
                    bad.setdefault(i, (_c, message))

                values.append(value_column([r.get(name) for r in recs], self.types.get(name), on_bad_v))
            keys = [key_text(r.get(self.key)) or None for r in recs] if self.key else [None] * n
        for name, col in zip(self.columns, values):
            if name in self.required:
                for i, v in enumerate(col):
                    if v is None:
                        bad.setdefault(i, (name, f"{name} is required"))
        now = time.time()
        for i, (col, msg) in sorted(bad.items()):
            self._error(ErrorRecord(self.config.id, "input", msg, time=now, line=chunk.lines[i], column=col,
                                    source=chunk.source))
        rows = list(zip(*values)) if values else [()] * n
        good = range(n)
        if bad:
            good = [i for i in good if i not in bad]
            rows = [rows[i] for i in good]
        seqs = list(range(self.next_seq, self.next_seq + len(good)))
        self.next_seq += len(good)
        return seqs, [keys[i] for i in good] if bad else keys, rows

    async def _deliver(self, result: Result) -> None:
        assert self.output is not None
        try:
            self.output.write(result.rows, result.keys)
        except OutputIOError as exc:
            await self._output_failed(str(exc))
        if self.output is not None and self.output.pending_since is not None:
            self._flush_later()
        self.buffer.add(result.rows)
        arrived = result.batch.arrived
        now = time.monotonic()
        for t in arrived[:: max(1, len(arrived) // 16)]:
            self.latencies.append(now - t)
        self.processed += len(arrived) - len({e["seq"] for e in result.errors})

    async def _script_errors(self, result: Result) -> None:
        eh = self.config.error_handling
        batch = result.batch
        index = {s: i for i, s in enumerate(batch.seqs)}
        for e in result.errors:
            seq = e["seq"]
            attempt = self.retries.get(seq, 0)
            if attempt < eh.retry_count and e["kind"] != "ScriptExit":
                self.retries[seq] = attempt + 1
                i = index[seq]
                delay = 0.1 * 2 ** attempt  # SEED §5.4.2: 100 ms x 2^n
                asyncio.create_task(self._retry(seq, batch.keys[i], batch.rows[i], delay))
                continue
            self.retries.pop(seq, None)
            self._error(ErrorRecord(self.config.id, "script", e["message"], kind=e["kind"], time=time.time(),
                                    line=e.get("line"), seq=seq, key=e.get("key")))
            if not eh.skip_on_error or e["kind"] == "ScriptExit":
                await self._enter_error(f"{e['kind']} at {e.get('file')}:{e.get('line')}: {e['message']}")
                return

    async def _retry(self, seq: int, key: Any, row: tuple, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.pool is not None and self.state in (TaskState.RUNNING, TaskState.PAUSED):
            await self._emit(self.rows, ([seq], [key], [row]))

    async def _output_failed(self, message: str) -> None:
        self._error(ErrorRecord(self.config.id, "output", message, kind="OutputError", time=time.time()))
        if self.state == TaskState.RUNNING and self.input is not None:
            self.input.pause()  # SEED §5.4.1: an I/O failure pauses the task
            self.state = TaskState.PAUSED
            self.note(f"paused: {message}")

    def _on_failover(self, message: str) -> None:
        self.note(message)
        self._error(ErrorRecord(self.config.id, "unit", message, kind="UnitLost", time=time.time()))

    def _error(self, rec: ErrorRecord) -> None:
        self.error_count += 1
        self.errors.append(rec)
        if self.config.error_handling.log_errors and self.state_dir is not None:
            path = self.state_dir / "errors" / f"{self.config.id}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec.to_dict(), ensure_ascii=False, default=str) + "\n")

    def _flush_later(self) -> None:
        """Rows wait in an output buffer at most FLUSH_DELAY (a timer, armed by the first row)."""
        if self._flush_due is None:
            self._flush_due = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush_now)

    def _flush_now(self) -> None:
        self._flush_due = None
        task = asyncio.create_task(self._flush_output())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _flush_output(self) -> None:
        out = self.output
        if out is not None and out.pending_since is not None:
            try:
                await out.aflush()
            except OutputIOError as exc:
                await self._output_failed(str(exc))

    async def _timer(self) -> None:
        """Sample throughput, autoscale."""
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if not self._rate or now - self._rate[-1][0] >= 0.5:
                self._rate.append((now, self.processed))
            if self.pool is not None and self.config.compute_pool.auto_scale and self.state == TaskState.RUNNING:
                await self.autoscaler.step(self.pool, self.load(), now, self.note)

    # -- stats ----------------------------------------------------------------------------------
    def rows_per_second(self) -> float:
        if len(self._rate) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._rate[max(0, len(self._rate) - 11)], self._rate[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def latency_ms(self) -> tuple[float, float]:
        if not self.latencies:
            return 0.0, 0.0
        xs = sorted(self.latencies)
        return sum(xs) / len(xs) * 1000, xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000

    def load(self) -> float:
        p = self.pool
        if p is None or not p.size:
            return 0.0
        return load_rate(p.busy_units, p.size, p.queue_length, p.mean_call_ms())

    def summary(self) -> dict[str, Any]:
        p = self.pool
        return {"id": self.config.id, "name": self.config.name, "status": self.state.value,
                "compute_pool_size": p.size if p else 0, "max_pool_size": self.config.compute_pool.max_size,
                "processed_count": self.processed}

    def stats(self) -> dict[str, Any]:
        p = self.pool
        mean, p99 = self.latency_ms()
        return {
            "status": self.state.value,
            "processed_count": self.processed,
            "error_count": self.error_count,
            "compute_pool_size": p.size if p else 0,
            "max_pool_size": self.config.compute_pool.max_size,
            "active_workers": p.busy_units if p else 0,
            "queue_length": p.queue_length if p else 0,
            "rows_per_second": round(self.rows_per_second(), 1),
            "latency_ms_mean": round(mean, 2),
            "latency_ms_p99": round(p99, 2),
            "load_rate": round(self.load(), 3),
            "output_rows": self.buffer.total,
            "input": self.input.describe() if self.input else None,
            "input_done": bool(self.input and self.input.done.is_set()),
            "connections": getattr(self.input, "connections", None),
            "units": p.units_info() if p else [],
            "started_at": self.started_at,
            "last_error": self.last_error,
            "log": list(self.log)[-20:],
        }
