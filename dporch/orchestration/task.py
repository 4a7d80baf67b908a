"""A task: a script chain, a schema, a compute pool, an input and an output
pipeline, its state machine, checkpoints, error handling and statistics.

Rows enter through one door: ``_feed`` (input readers, attach_file) and ``push`` (the API)
take the task's *ingest lock*, under which a chunk is validated, numbered and handed to the
pool. Checkpoints cut between two chunks under the same lock, so a checkpoint's sequence number
and input position always describe exactly the rows before it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from streamz import Stream

from ..engine.columns import text_column, value_column
from ..engine.readers import key_text
from ..engine.writers import safe_file_name
from ..lang.program import Program
from .aio import Background, spawn
from .autoscale import Autoscaler, load_rate
from .checkpointer import Checkpointer
from .checkpoints import Checkpoint, CheckpointStore
from .cluster import Cluster
from .config import TaskConfig
from .errors import ClusterUnavailable, IllegalTransition, OrchestrationError, PoolError
from .inputs import Chunk, InputPipeline, Logged, make_input
from .outputs import OutputBuffer, OutputIOError, OutputPipeline, cut_back, make_output
from .pool import ComputePool, Result, Unit
from .states import ALLOWED, ErrorRecord, TaskState
from .wal import WriteAheadLog

__all__ = ["TaskState", "Task", "IllegalTransition", "OrchestrationError", "ErrorRecord"]

log = logging.getLogger("dporch.task")

Rows = tuple[list[int], list[Any], list[tuple]]  # sequence numbers, keys, values in schema order
FLUSH_DELAY = 0.02  # seconds an output row may wait in a buffer
DRAIN_SECONDS = 20.0  # pause/stop wait at most this long for rows in flight


class Task:
    def __init__(self, config: TaskConfig, programs: list[Program], *, state_dir: Path | None = None,
                 store: CheckpointStore | None = None, on_change: Callable[["Task"], None] | None = None):
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
        self.store = store if store is not None else CheckpointStore(None)
        self.checkpointer = Checkpointer(self, self.store, config.checkpoint)
        self.on_change = on_change or (lambda task: None)
        self.cluster: Cluster | None = None
        self.pool: ComputePool | None = None
        self.input: InputPipeline | None = None
        self.output: OutputPipeline | None = None
        self.wal: WriteAheadLog | None = None
        self.ingest = asyncio.Lock()  # held while a chunk enters the pool, and at a checkpoint's cut
        self._accepting = asyncio.Event()  # new chunks may enter (cleared while stopping/stopped)
        self._lifecycle = asyncio.Lock()  # one start/pause/resume/stop at a time
        self.transition: str | None = None  # "starting", "pausing", "stopping" while one is under way
        self.waiting_for_cluster = False  # paused because the Dask scheduler went away
        self._state_before_cluster_loss = TaskState.RUNNING
        self.background = Background(f"task {config.id}", on_error=self._background_failed)
        self._reader: asyncio.Task | None = None
        self._timers: list[asyncio.Task] = []
        self._sinks: list[Stream] = []
        self._flush_due: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Task | None = None  # the release after an error
        self._input_pos: dict[str, Any] | None = None  # file inputs: where the last chunk ingested ended
        self._wal_pending: set[int] = set()  # logged chunks not yet ingested
        self._streams: dict[str, int] = {}  # durable TCP streams: records logged
        self._retry_rows: dict[int, tuple[Any, tuple, int]] = {}  # seq -> (key, row, attempt) waiting
        self._retried: dict[int, tuple[Any, tuple, int]] = {}  # rows sent again since the last cut
        self._attempts: dict[int, int] = {}  # seq -> attempts so far, of rows sent again
        self.processed = 0
        self.error_count = 0
        self.next_seq = 0
        self.latencies: deque[float] = deque(maxlen=2000)
        self.latency_samples = 0  # latencies ever appended (the deque keeps the last 2,000)
        self._rate: deque[tuple[float, int]] = deque(maxlen=64)
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.created_at = time.time()
        self.last_error: str | None = None
        self.reason: str | None = None  # why the task is in its state, when it got there by itself
        self.autoscaler = Autoscaler(config.compute_pool)
        self.log: deque[str] = deque(maxlen=200)

    # -- state machine --------------------------------------------------------------------------
    def allowed(self) -> list[str]:
        if self.transition is not None:
            return []
        actions = sorted(a for a, states in ALLOWED.items() if self.state in states and a != "push")
        return [a for a in actions if a != "resume"] if self.waiting_for_cluster else actions

    def check(self, action: str) -> None:
        if self.transition is not None:
            raise IllegalTransition(f"cannot {action} task {self.config.id!r}: it is {self.transition}; "
                                    "try again in a moment")
        if self.state not in ALLOWED[action]:
            raise IllegalTransition(
                f"cannot {action} task {self.config.id!r}: it is {self.state.value}; "
                f"allowed now: {', '.join(self.allowed()) or 'none'}")
        if action == "resume" and self.waiting_for_cluster:
            raise IllegalTransition(f"cannot resume task {self.config.id!r}: it waits for the Dask scheduler "
                                    f"and resumes by itself when it is back ({self.reason})")

    def note(self, message: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {message}")
        log.info("task %s: %s", self.config.id, message)

    def _set_state(self, state: TaskState, reason: str | None = None) -> None:
        self.state = state
        self.reason = reason
        self.note(state.value + (f": {reason}" if reason else ""))
        self.on_change(self)

    def accepting(self) -> bool:
        return self._accepting.is_set() and self.state == TaskState.RUNNING and self.pool is not None

    # -- life cycle -----------------------------------------------------------------------------
    def _build_pipeline(self) -> None:
        """The task's data flow as a streamz graph (docs/architecture.md)::

            chunks (inputs, push_data, attach_file) --_ingest: validate, number--> rows
            retries                                                            -> rows
            rows -filter(non-empty)-> sink(submit: route, micro-batch, actor calls)
            pool results -> results -> sink(deliver: output, buffer, stats)
                                    -> filter(failed rows) -> sink(retry, skip or fail)

        Every node is asynchronous: ``emit`` returns once the sinks are done with the element,
        so a full compute unit holds up the input (backpressure)."""
        self.rows = Stream(asynchronous=True)
        self.results = Stream(asynchronous=True)
        self._sinks = [self.rows.filter(lambda r: bool(r[0])).sink(self._submit),
                       self.results.sink(self._deliver),
                       self.results.filter(lambda r: bool(r.errors)).sink(self._script_errors)]

    async def start(self, cluster: Cluster, *, paused: bool = False, fresh: bool = False) -> None:
        """Start (or continue from the last checkpoint); ``paused``: restore everything but
        read nothing yet; ``fresh``: forget the checkpoint and begin with empty history."""
        async with self._lifecycle:
            self.check("start")
            await self.released()
            self.transition = "starting"
            try:
                await self._open(cluster, fresh)
            except BaseException as exc:
                await self._release()
                self.transition = None
                self.last_error = f"start failed: {exc}"
                self._set_state(TaskState.ERROR, self.last_error)
                raise
            self.transition = None
            self.started_at = time.time()
            self.waiting_for_cluster = False
            if paused:
                self.input.pause()  # type: ignore[union-attr]
                self._set_state(TaskState.PAUSED, "restored paused")
            else:
                self.input.resume()  # type: ignore[union-attr]
                self._accepting.set()
                self._set_state(TaskState.RUNNING)
            self.note(f"started: {self.pool.size} unit(s), input {self.input.describe()}, "  # type: ignore[union-attr]
                      f"output {self.output.describe()}")  # type: ignore[union-attr]

    async def _open(self, cluster: Cluster, fresh: bool) -> None:
        cfg = self.config
        self.cluster = cluster
        if fresh:
            await self.close()
            self.store.clear(cfg.id)
            self.checkpointer = Checkpointer(self, self.store, cfg.checkpoint)
            self.next_seq, self._input_pos, self._retry_rows = 0, None, {}
            self._streams.clear()
        if cfg.input.durable and self.wal is None:
            if self.state_dir is None:
                raise OrchestrationError("input.durable needs a state directory (dporch serve --state-dir)")
            self.wal = WriteAheadLog(self.state_dir / "wal" / safe_file_name(cfg.id))
            if fresh:
                self.wal.clear()
        new_pool = self.pool is None
        ckpt = self._restore_checkpoint() if new_pool else None
        if not self._sinks:
            self._build_pipeline()
        on_new = (lambda path, base: self.store.note_output(cfg.id, path, base)) if cfg.checkpoint.enabled else None
        self.output = make_output(cfg.output, self.outputs_columns, cfg.id, on_new)
        assert self.pool is not None
        await self.pool.open()
        if new_pool and self.wal is not None:
            await self._replay_wal(ckpt)
        if self._reader is None or self._reader.done():
            self.input = make_input(cfg.input, cfg.id, self._input_pos, self._streams)
            self.input.pause()
            self._reader = self.background.spawn(self._run_input(), "input")
            ready = asyncio.ensure_future(self.input.ready.wait())
            await asyncio.wait({ready, self._reader}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if not self.input.ready.is_set():
                raise OSError(self.last_error or f"input {self.input.describe()} did not become ready")
        self._timers = [self.background.spawn(self._timer(), "stats")]
        if self.checkpointer.enabled:
            self._timers.append(self.background.spawn(self.checkpointer.run_periodically(), "checkpoints"))

    def _restore_checkpoint(self) -> Checkpoint | None:
        """A new pool: from the last checkpoint (state, routes, positions, counters) with the
        outputs cut back to what it covers, or from nothing."""
        cfg = self.config
        ckpt = self.checkpointer.latest()
        bases = self.store.output_bases(cfg.id) if cfg.checkpoint.enabled else {}
        if ckpt is not None or bases:
            sizes = {**bases, **(ckpt.outputs if ckpt else {})}
            changed = cut_back(sizes)
            if changed:
                self.note(f"{len(changed)} output file(s) cut back to checkpoint "
                          f"{ckpt.id if ckpt else '(none: to where the task began)'}")
        pc = cfg.compute_pool
        strategy = cfg.routing.strategy if cfg.routing.enabled else "hash"
        self.pool = ComputePool(
            self.cluster, cfg.id, [(p.script.source, p.file) for p in self.programs], self.columns,  # type: ignore[arg-type]
            strategy=strategy, window=pc.window_size, batch_size=pc.batch_size, batch_ms=pc.batch_ms,
            max_in_flight=pc.max_in_flight, on_result=self.results_emit, on_marker=self.checkpointer.on_marker,
            on_failover=self._on_failover, on_fatal=self._on_fatal, state_of=self.checkpointer.state_of,
            keep_log=self.checkpointer.enabled, slots=ckpt.slots if ckpt else None, router=ckpt.router if ckpt else None,
            on_error=self._background_failed)
        if ckpt is None:
            self.pool.add_slots(pc.initial_size if cfg.routing.enabled else 1)
            self.next_seq, self._input_pos, self._retry_rows = 0, None, {}
            return None
        self.next_seq = ckpt.next_seq
        self._input_pos = ckpt.input or None
        self._streams.clear()
        self._streams.update(ckpt.wal.get("streams", {}))
        c = ckpt.counters
        self.processed, self.error_count = c.get("processed", 0), c.get("errors", 0)
        self.buffer.total = c.get("output_rows", 0)
        self._retry_rows = {seq: (key, tuple(row), attempt) for seq, key, row, attempt in ckpt.retries}
        self.note(f"restored from checkpoint {ckpt.id}: {len(ckpt.slots)} unit(s), next row {ckpt.next_seq}")
        return ckpt

    async def results_emit(self, result: Result) -> None:
        await self.results.emit(result)

    async def _replay_wal(self, ckpt: Checkpoint | None) -> None:
        """Chunks the durable log holds that the checkpoint (if any) does not cover go in again."""
        assert self.wal is not None
        since = ckpt.wal.get("next", 0) if ckpt else 0
        pending = set(ckpt.wal.get("pending", [])) if ckpt else set()
        n = 0
        for rid, chunk in self.wal.records(since, pending):
            if chunk.stream is not None:
                self._streams[chunk.stream] = max(self._streams.get(chunk.stream, 0), chunk.count)
            async with self.ingest:
                await self._ingest(chunk, rid)
            n += 1
        if n:
            self.note(f"replayed {n} chunk(s) from the durable input log")
        for seq, (key, row, attempt) in list(self._retry_rows.items()):
            self.background.spawn(self._retry(seq, key, row, attempt, 0.0), "retry")

    async def _run_input(self) -> None:
        assert self.input is not None
        inp = self.input
        try:
            await inp.run(self._feed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a task failure, not a server failure
            message = f"input failed: {exc}" if isinstance(exc, OSError) else \
                f"input failed: {type(exc).__name__}: {exc}"
            self._error(ErrorRecord(self.config.id, "input", message, kind="InputError", time=time.time()))
            if not inp.ready.is_set():  # failed while starting: start() reports it
                self.last_error = message
                return
            await self._enter_error(message)
            return
        if inp.done.is_set() and self.state in (TaskState.RUNNING, TaskState.PAUSED):
            self.background.spawn(self._input_finished(), "finish")

    async def _input_finished(self) -> None:
        await self._settle()
        try:
            await self.stop(reason="input finished")
        except IllegalTransition:
            pass  # stopped or failed meanwhile

    async def _settle(self) -> bool:
        """Wait (at most DRAIN_SECONDS) until no chunk is on its way in."""
        try:
            await asyncio.wait_for(self.ingest.acquire(), DRAIN_SECONDS)
        except asyncio.TimeoutError:
            return False
        self.ingest.release()
        return True

    async def pause(self) -> None:
        """Stop reading input, let rows already read and in flight finish, flush outputs, take a
        checkpoint; windows stay."""
        async with self._lifecycle:
            self.check("pause")
            self.transition = "pausing"
            try:
                assert self.input is not None and self.pool is not None and self.output is not None
                self.input.pause()
                await self._settle()
                if await self.pool.drain(DRAIN_SECONDS):
                    await self.output.aflush()
                    await self.checkpointer.take()
            finally:
                self.transition = None
            self._set_state(TaskState.PAUSED)

    async def resume(self) -> None:
        async with self._lifecycle:
            self.check("resume")
            assert self.input is not None
            self.input.resume()
            self._set_state(TaskState.RUNNING)

    async def stop(self, reason: str | None = None) -> None:
        """Take no new rows, process every row accepted (at most DRAIN_SECONDS), take a final
        checkpoint, flush and close the outputs, release the compute units. Rows that could
        not be processed stay in the replay logs for the next start."""
        async with self._lifecycle:
            self.check("stop")
            await self.released()
            self.transition = "stopping"
            try:
                self._accepting.clear()
                if self.input is not None:
                    self.input.pause()
                await self._settle()
                if self.pool is not None and self.state != TaskState.ERROR:
                    if await self.pool.drain(DRAIN_SECONDS):
                        await self.checkpointer.take()
                    else:
                        self.note(f"stopping with {self.pool.queue_length} row(s) not processed: "
                                  "they are processed when the task starts again")
                await self._release()
            finally:
                self.transition = None
            self.stopped_at = time.time()
            self.waiting_for_cluster = False
            self._set_state(TaskState.STOPPED, reason)

    async def _release(self) -> None:
        """Release the compute units and the outputs; the input, replay logs and routes stay."""
        self._accepting.clear()
        for t in self._timers:
            t.cancel()
        self._timers = []
        self.checkpointer.abort("the task is stopping")
        if self.pool is not None:
            await self.pool.suspend()
        if self._flush_due is not None:
            self._flush_due.cancel()
            self._flush_due = None
        if self.output is not None:
            try:
                await self.output.aclose()
            except OutputIOError as exc:
                self._error(ErrorRecord(self.config.id, "output", str(exc), kind="OutputError", time=time.time()))
            self.output = None

    async def close(self) -> None:
        """Everything goes: the input (its port), the pipeline, the pool (a deleted or replaced
        task, a server shutting down)."""
        await self._release()
        if self.input is not None:
            await self.input.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except BaseException:  # noqa: BLE001 - it is going away
                pass
            self._reader = None
        self.input = None
        await self.background.cancel()
        self.pool = None
        if self.wal is not None:
            self.wal.close()
            self.wal = None
        for sink in self._sinks:  # streamz keeps sinks alive globally until destroyed
            sink.destroy()
        self._sinks = []

    def reset(self) -> None:
        """Error -> Ready; the checkpoint and the rows kept for replay stay, so the next start
        continues where the task stood."""
        self.check("reset")
        self.last_error = None
        self._set_state(TaskState.READY)

    async def _enter_error(self, message: str) -> None:
        """Enter Error now; release everything in the background, since the caller may be a
        part of the pipeline that the release waits for."""
        if self.state in (TaskState.ERROR, TaskState.STOPPED):
            return
        self.last_error = message
        self._accepting.clear()
        if self.input is not None:
            self.input.pause()
        self._set_state(TaskState.ERROR, message)
        self._stopping = self.background.spawn(self._release(), "release after error")

    async def released(self) -> None:
        """Wait until an error's background release has finished."""
        if self._stopping is not None:
            try:
                await self._stopping
            except BaseException:  # noqa: BLE001 - reported by the background handler
                pass
            self._stopping = None

    def _background_failed(self, exc: BaseException) -> None:
        log.error("task %s: background work failed", self.config.id, exc_info=exc)
        self._error(ErrorRecord(self.config.id, "task", f"{type(exc).__name__}: {exc}", kind="InternalError",
                                time=time.time()))
        if self.state in (TaskState.RUNNING, TaskState.PAUSED):
            spawn(self._enter_error(f"internal failure: {type(exc).__name__}: {exc}"), name=f"task {self.config.id}: error")

    # -- the cluster -------------------------------------------------------------------------------
    def _on_fatal(self, unit: Unit, exc: BaseException) -> None:
        """A unit could not be rebuilt: wait for the scheduler, or fail for want of workers."""
        self.checkpointer.abort(f"unit {unit.uid} is down")
        if self.cluster is not None and not self.cluster.up:
            return  # cluster_lost() takes care of it
        if isinstance(exc, ClusterUnavailable) and self.cluster is not None and not self.cluster.connected():
            self.background.spawn(self.cluster_lost(), "cluster lost")
            return
        message = (f"compute unit {unit.uid} cannot be rebuilt ({exc}); its rows are kept: "
                   "start a worker, then reset and start the task")
        self._error(ErrorRecord(self.config.id, "unit", message, kind="UnitLost", time=time.time()))
        self.background.spawn(self._enter_error(message), "error")

    async def cluster_lost(self) -> None:
        """The scheduler went away: pause (rows stay in the replay logs) until it is back."""
        if self.waiting_for_cluster or self.state not in (TaskState.RUNNING, TaskState.PAUSED):
            return
        self._state_before_cluster_loss = self.state
        self.waiting_for_cluster = True
        if self.input is not None:
            self.input.pause()
        self.checkpointer.abort("the Dask scheduler went away")
        if self.pool is not None:
            await self.pool.suspend()
        reason = f"waiting for the Dask scheduler at {self.cluster.address if self.cluster else '?'}"
        self._error(ErrorRecord(self.config.id, "cluster", reason, kind="ClusterUnavailable", time=time.time()))
        self._set_state(TaskState.PAUSED, reason)

    async def cluster_back(self) -> None:
        """Rebuild the units from the last checkpoint and their logs; continue as before."""
        if not self.waiting_for_cluster or self.pool is None:
            return
        try:
            await self.pool.open()
        except Exception as exc:  # noqa: BLE001 - still not usable: wait for the next notice
            self.note(f"the Dask scheduler is back but the units cannot be rebuilt yet: {exc}")
            return
        self.waiting_for_cluster = False
        if self._state_before_cluster_loss == TaskState.RUNNING:
            self.input.resume()  # type: ignore[union-attr]
            self._set_state(TaskState.RUNNING, "the Dask scheduler is back")
        else:
            self._set_state(TaskState.PAUSED, "the Dask scheduler is back")

    async def scale(self, delta: int) -> bool:
        """Add ``delta`` units (or remove -delta); state moves with its keys, then a checkpoint
        records where every key now lives. False: the pool could not be drained."""
        pool = self.pool
        if pool is None or delta == 0:
            return False
        async with self.ingest:
            async with self.checkpointer.one:
                if not await pool.drain(DRAIN_SECONDS):
                    return False
                if delta > 0:
                    await pool.add_units(delta)
                else:
                    for _ in range(-delta):
                        if await pool.remove_unit() is None:
                            break
                if self.checkpointer.enabled:
                    progress = self.checkpointer.cut()
                    await self.checkpointer.complete(progress)
        return True

    # -- data -----------------------------------------------------------------------------------
    async def _feed(self, chunk: Chunk, logged: Logged | None = None) -> None:
        """A chunk from an input reader: logged first when the input is durable, then in when
        the task takes rows (a stopped task keeps it until it starts again)."""
        rid = self.wal.append(chunk) if self.wal is not None else None
        if rid is not None:
            self._wal_pending.add(rid)
            if chunk.stream is not None:
                self._streams[chunk.stream] = chunk.count
            if logged is not None:
                logged(chunk)
        while True:
            await self._accepting.wait()
            async with self.ingest:
                if self._accepting.is_set():
                    await self._ingest(chunk, rid)
                    return

    async def _ingest(self, chunk: Chunk, rid: int | None) -> tuple[int, list[ErrorRecord]]:
        """Validate, number and submit a chunk (the ingest lock is held): (rows accepted, errors)."""
        await self.checkpointer.bound_retention()
        self._wal_pending.discard(rid)  # type: ignore[arg-type]
        if chunk.end is not None and chunk.source.startswith("file:"):
            self._input_pos = chunk.end
        rows, errors = self._check(chunk)
        for rec in errors:
            self._error(rec)
        await self.rows.emit(rows)
        return len(rows[0]), errors

    async def push_chunk(self, chunk: Chunk) -> tuple[int, list[ErrorRecord]]:
        """Rows brought by a request (push_data, attach_file): in now, or IllegalTransition if
        the task takes no data now. With a durable input they are logged before this returns."""
        self.check("push")
        async with self.ingest:
            if not self.accepting() or self.transition is not None:
                raise IllegalTransition(f"task {self.config.id!r} is {self.transition or self.state.value}: "
                                        "it takes no data now; try again when it runs")
            rid = self.wal.append(chunk) if self.wal is not None else None
            return await self._ingest(chunk, rid)

    async def push(self, records: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        """Rows pushed through the API: (accepted count, per-row errors)."""
        n, errors = await self.push_chunk(Chunk(None, list(records), list(range(1, len(records) + 1)), "push"))
        return n, [e.to_dict() for e in errors]

    async def _submit(self, rows: Rows) -> None:
        assert self.pool is not None
        try:
            await self.pool.submit(*rows, time.monotonic())
        except PoolError as exc:
            await self._enter_error(str(exc))

    def _check(self, chunk: Chunk) -> tuple[Rows, list[ErrorRecord]]:
        """Typed rows in schema order, numbered; bad rows become error records (and are skipped)."""
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
            keys = [None] * n
            if self.key:
                for i, r in enumerate(recs):
                    k = r.get(self.key)
                    if isinstance(k, (list, dict)):
                        bad.setdefault(i, (self.key, f"the routing key {self.key} must be a string or a number, "
                                                     f"got a JSON {'array' if isinstance(k, list) else 'object'}"))
                    else:
                        keys[i] = key_text(k) or None
        for name, col in zip(self.columns, values):
            if name in self.required:
                for i, v in enumerate(col):
                    if v is None:
                        bad.setdefault(i, (name, f"{name} is required"))
        now = time.time()
        errors = [ErrorRecord(self.config.id, "input", msg, time=now, line=chunk.lines[i], column=col,
                              source=chunk.source) for i, (col, msg) in sorted(bad.items())]
        rows = list(zip(*values)) if values else [()] * n
        good = range(n)
        if bad:
            good = [i for i in good if i not in bad]
            rows = [rows[i] for i in good]
        seqs = list(range(self.next_seq, self.next_seq + len(good)))
        self.next_seq += len(good)
        return (seqs, [keys[i] for i in good] if bad else keys, rows), errors

    async def _deliver(self, result: Result) -> None:
        output = self.output
        assert output is not None, "results are handled only while the outputs are open"
        try:
            output.write(result.rows, result.keys)
        except OutputIOError as exc:
            await self._output_failed(str(exc))
        if output.pending_since is not None:
            self._flush_later()
        self.buffer.add(result.rows)
        if self._attempts:  # rows sent again that went through this time
            failed = {e["seq"] for e in result.errors}
            for s in result.batch.seqs:
                if s not in failed:
                    self._attempts.pop(s, None)
        arrived = result.batch.arrived
        now = time.monotonic()
        sampled = arrived[:: max(1, len(arrived) // 16)]
        self.latencies.extend(now - t for t in sampled)
        self.latency_samples += len(sampled)  # monitors read the samples added since they last looked
        self.processed += len(arrived) - len({e["seq"] for e in result.errors})

    async def _script_errors(self, result: Result) -> None:
        eh = self.config.error_handling
        batch = result.batch
        index = {s: i for i, s in enumerate(batch.seqs)}
        for e in result.errors:
            seq = e["seq"]
            attempt = self._attempts.pop(seq, 0)
            if attempt < eh.retry_count and e["kind"] != "ScriptExit":
                i = index[seq]
                self._retry_rows[seq] = (batch.keys[i], batch.rows[i], attempt + 1)
                delay = 0.1 * 2 ** attempt  # 100 ms x 2^n
                self.background.spawn(self._retry(seq, batch.keys[i], batch.rows[i], attempt + 1, delay), "retry")
                continue
            self._error(ErrorRecord(self.config.id, "script", e["message"], kind=e["kind"], time=time.time(),
                                    line=e.get("line"), seq=seq, key=e.get("key")))
            if not eh.skip_on_error or e["kind"] == "ScriptExit":
                await self._enter_error(f"{e['kind']} at {e.get('file')}:{e.get('line')}: {e['message']}")
                return

    async def _retry(self, seq: int, key: Any, row: tuple, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)
        while True:
            await self._accepting.wait()
            async with self.ingest:
                if not self._accepting.is_set():
                    continue
                if self._retry_rows.get(seq, (None, None, -1))[2] == attempt:  # not superseded
                    del self._retry_rows[seq]
                    self._retried[seq] = (key, row, attempt)
                    self._attempts[seq] = attempt
                    await self.rows.emit(([seq], [key], [row]))
                return

    async def _output_failed(self, message: str) -> None:
        self._error(ErrorRecord(self.config.id, "output", message, kind="OutputError", time=time.time()))
        if self.state == TaskState.RUNNING and self.input is not None:
            self.input.pause()  # an I/O failure pauses the task
            self._set_state(TaskState.PAUSED, message)

    def _on_failover(self, message: str) -> None:
        self.note(message)
        self._error(ErrorRecord(self.config.id, "unit", message, kind="UnitLost", time=time.time()))

    def _error(self, rec: ErrorRecord) -> None:
        self.error_count += 1
        self.errors.append(rec)
        if self.config.error_handling.log_errors and self.state_dir is not None:
            path = self.state_dir / "errors" / f"{safe_file_name(self.config.id)}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec.to_dict(), ensure_ascii=False, default=str) + "\n")

    def _flush_later(self) -> None:
        """Rows wait in an output buffer at most FLUSH_DELAY (a timer, armed by the first row)."""
        if self._flush_due is None:
            self._flush_due = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush_now)

    def _flush_now(self) -> None:
        self._flush_due = None
        self.background.spawn(self._flush_output(), "flush")

    async def _flush_output(self) -> None:
        out = self.output
        if out is not None and out.pending_since is not None:
            try:
                await out.aflush()
            except OutputIOError as exc:
                await self._output_failed(str(exc))

    async def _timer(self) -> None:
        """Sample throughput, look for stuck units, autoscale."""
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if not self._rate or now - self._rate[-1][0] >= 0.5:
                self._rate.append((now, self.processed))
                if self.pool is not None:
                    await self.pool.check_stuck()
            if self.pool is not None and self.config.compute_pool.auto_scale and self.state == TaskState.RUNNING:
                delta = self.autoscaler.decide(self.pool.size, self.load(), now)
                if delta and await self.scale(delta):
                    self.note(f"autoscale: load {self.load():.2f}, {delta:+d} unit(s) -> {self.pool.size}")

    # -- what a checkpoint records --------------------------------------------------------------
    def input_position(self) -> dict[str, Any]:
        return dict(self._input_pos) if self._input_pos else {}

    def wal_position(self) -> dict[str, Any]:
        if self.wal is None:
            return {}
        return {"next": self.wal.next_id, "pending": sorted(self._wal_pending), "streams": dict(self._streams)}

    def counters(self) -> dict[str, int]:
        return {"processed": self.processed, "errors": self.error_count, "output_rows": self.buffer.total}

    def pending_retries(self) -> list[list[Any]]:
        """Rows waiting to be tried again, and rows tried again since the cut (the state at
        the cut does not have them); asked at the barrier, after every earlier result."""
        waiting = {**self._retried, **self._retry_rows}
        return [[seq, key, list(row), attempt] for seq, (key, row, attempt) in sorted(waiting.items())]

    def cut_made(self) -> None:
        self._retried = {}

    async def output_positions(self) -> dict[str, int] | None:
        """Flush the outputs and say how long each file is (with the files the last checkpoint
        knew and this run has not touched); None: the outputs cannot be written now."""
        previous = self.checkpointer.last.outputs if self.checkpointer.last else {}
        if self.output is None:
            return dict(previous)
        try:
            await self.output.aflush()
            return {**previous, **self.output.positions()}
        except (OutputIOError, OSError) as exc:
            await self._output_failed(str(exc))
            return None

    def checkpointed(self, ckpt: Checkpoint) -> None:
        if self.wal is not None:
            self.wal.checkpointed(min([ckpt.wal.get("next", 0), *ckpt.wal.get("pending", [])]))

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
                "compute_pool_size": p.size if p and self.output is not None else 0,
                "max_pool_size": self.config.compute_pool.max_size, "processed_count": self.processed}

    def stats(self) -> dict[str, Any]:
        p = self.pool if self.output is not None else None  # a stopped task holds no unit
        mean, p99 = self.latency_ms()
        return {
            "status": self.state.value,
            "transition": self.transition,
            "reason": self.reason,
            "processed_count": self.processed,
            "error_count": self.error_count,
            "compute_pool_size": p.size if p else 0,
            "max_pool_size": self.config.compute_pool.max_size,
            "active_workers": p.busy_units if p else 0,
            "queue_length": p.queue_length if p else 0,
            "retained_rows": self.pool.retained_rows if self.pool else 0,
            "rows_per_second": round(self.rows_per_second(), 1),
            "latency_ms_mean": round(mean, 2),
            "latency_ms_p99": round(p99, 2),
            "load_rate": round(self.load(), 3),
            "output_rows": self.buffer.total,
            "input": self.input.describe() if self.input else None,
            "input_done": bool(self.input and self.input.done.is_set()),
            "connections": getattr(self.input, "connections", None),
            "units": p.units_info() if p else [],
            "checkpoint": self.checkpointer.stats(),
            "started_at": self.started_at,
            "last_error": self.last_error,
            "log": list(self.log)[-20:],
        }
