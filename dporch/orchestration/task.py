"""A task: a script chain, a schema, a compute pool, an input and an output
pipeline, its state machine, checkpoints, error handling and statistics.

Rows enter through one door: ``_feed`` (input readers, attach_file) and ``push`` (the API)
take the task's *ingest lock*, under which a chunk is validated, numbered and handed to the
pool. Checkpoints cut between two chunks under the same lock, so a checkpoint's sequence number
and input position always describe exactly the rows before it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable


from ..engine.writers import safe_file_name
from ..lang.program import Program
from .aio import Background, spawn
from .autoscale import Autoscaler
from .checkpointer import Checkpointer
from .checkpoints import Checkpoint, CheckpointStore
from .cluster import Cluster
from .config import TaskConfig
from .errors import ClusterUnavailable, IllegalTransition, OrchestrationError
from .inputs import InputPipeline, TaskInput, make_input
from .outputs import (STAGED_SUFFIX, OutputBuffer, OutputIOError, OutputPipeline, cut_back, make_output,
                      publish_staged)
from .workflow import Completion, is_batch, out_of_date
from .pool import ComputePool, Unit
from .delivery import Delivery
from .ingest import Ingest
from .states import ALLOWED, ErrorRecord, TaskState
from .taskstats import TaskStats
from .validate import RowChecker
from .wal import WriteAheadLog

__all__ = ["TaskState", "Task", "IllegalTransition", "OrchestrationError", "ErrorRecord"]

log = logging.getLogger("dporch.task")

DRAIN_SECONDS = 20.0  # pause/stop wait at most this long for rows in flight


class Task(Ingest, Delivery, TaskStats):
    """A task's state machine and life cycle; its input side is :class:`~.ingest.Ingest`, its
    output side :class:`~.delivery.Delivery`, its reports :class:`~.taskstats.TaskStats`."""

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
        self.checker = RowChecker(self.columns, self.types, self.required, self.key, config.input.task)
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
        self._sinks: list[Any] = []  # the streamz pipeline's sinks
        self._flush_due: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Task | None = None  # the release after an error
        self._input_pos: dict[str, Any] | None = None  # file inputs: where the last chunk ingested ended
        self._wal_pending: set[int] = set()  # logged chunks not yet ingested
        self._streams: dict[str, int] = {}  # durable TCP streams: records logged
        self.peers: dict[str, "Task"] = {}  # the server's tasks, by id (set by the manager): producers to read from
        self.downstream: list[TaskInput] = []  # inputs of tasks that read this task's output
        self._upstream_seen: set[int] = set()  # a task input: producer rows taken since the producer's checkpoint
        self._upstream_floor = 0  # the producer's committed row number: rows below it come no more
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
        from streamz import Stream  # with Dask: only a task that runs needs it

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
            if self.batch and not fresh and self.pool is None and self.store.latest(self.config.id) is None:
                reasons = self.out_of_date()  # no run under way: make the outputs up to date
                if not reasons:
                    self._set_state(TaskState.STOPPED, "up to date")
                    return
                fresh = True
                self.note(f"runs: {', '.join(reasons)}")
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
            cut_back({p: -1 for p in self.store.output_bases(cfg.id) if p.endswith(STAGED_SUFFIX)})
            self.store.clear(cfg.id)
            self.checkpointer = Checkpointer(self, self.store, cfg.checkpoint)
            self.next_seq, self._input_pos, self._retry_rows = 0, None, {}
            self._streams.clear()
        if cfg.input.durable and self.state_dir is None:
            raise OrchestrationError("input.durable needs a state directory (dporch serve --state-dir)")
        logged = cfg.input.durable or (cfg.input.type == "task" and self.state_dir is not None)
        if logged and self.wal is None:  # a task input is logged too: its producer replays only from its checkpoint
            self.wal = WriteAheadLog(self.state_dir / "wal" / safe_file_name(cfg.id))  # type: ignore[operator]
            if fresh:
                self.wal.clear()
        new_pool = self.pool is None
        ckpt = self._restore_checkpoint() if new_pool else None
        if not self._sinks:
            self._build_pipeline()
        on_new = (lambda path, base: self.store.note_output(cfg.id, path, base)) if cfg.checkpoint.enabled else None
        self.output = make_output(cfg.output, self.outputs_columns, cfg.id, on_new, stage=self.batch)
        assert self.pool is not None
        self.pool.csv_lines = self.output.wants_lines
        await self.pool.open()
        if new_pool and self.wal is not None:
            await self._replay_wal(ckpt)
        if self._reader is None or self._reader.done():
            self.input = make_input(cfg.input, cfg.id, self._input_pos, self._streams)
            if isinstance(self.input, TaskInput):
                self._connect(self.input)
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
            self.cluster, cfg.id, [(p.script.source, p.file, p.params) for p in self.programs], self.columns,  # type: ignore[arg-type]
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
        self._upstream_seen = set(ckpt.wal.get("upstream", []))
        c = ckpt.counters
        self.processed, self.error_count = c.get("processed", 0), c.get("errors", 0)
        self.buffer.total = c.get("output_rows", 0)
        self._retry_rows = {seq: (key, tuple(row), attempt) for seq, key, row, attempt in ckpt.retries}
        self.note(f"restored from checkpoint {ckpt.id}: {len(ckpt.slots)} unit(s), next row {ckpt.next_seq}")
        return ckpt

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
            return  # stopped or failed meanwhile
        for edge in self.downstream:
            edge.finish()

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
                output = self.output
                await self._release()
                if reason == "input finished" and self.batch and output is not None:
                    self._complete(output)
            finally:
                self.transition = None
            self.stopped_at = time.time()
            self.waiting_for_cluster = False
            self._set_state(TaskState.STOPPED, reason)

    @property
    def batch(self) -> bool:
        """Whether the task reads a finite input, so that a run ends (see workflow.py)."""
        return is_batch(self.config, {tid: t.config for tid, t in self.peers.items()})

    def out_of_date(self, *, forced: bool = False, upstream_runs: bool = False) -> list[str]:
        """Why a batch task must run ([]: its outputs are up to date)."""
        return out_of_date(self.config, self.programs, self.store.completed(self.config.id),
                           upstream_runs=upstream_runs, forced=forced)

    def _complete(self, output: OutputPipeline) -> None:
        """A batch run has finished: publish its staged files (each by one rename), remove the
        files of the previous run it did not make again, record what it read and made, and
        forget the run's checkpoint (the next run starts afresh)."""
        tid = self.config.id
        staged_paths = {p for p in self.store.output_bases(tid) if p.endswith(STAGED_SUFFIX)}
        finals = sorted(set(output.publish()) | {publish_staged(p) for p in staged_paths if os.path.exists(p)})
        previous = self.store.completed(tid)
        for old in set(previous["outputs"] if previous else []) - set(finals):
            if os.path.exists(old):
                os.remove(old)
        self.store.complete(tid, asdict(Completion.of(self.config, self.programs, finals)))
        self.store.clear(tid)
        self.pool = None
        self.checkpointer = Checkpointer(self, self.store, self.config.checkpoint)
        self.note(f"published {len(finals)} output file(s)")

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
        if isinstance(self.input, TaskInput):
            producer = self.peers.get(self.config.input.task or "")
            if producer is not None and self.input in producer.downstream:
                producer.downstream.remove(self.input)
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
