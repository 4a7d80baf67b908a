"""Checkpoints of a running task (docs/architecture.md): aligned snapshots of every compute
unit's window state, with the input and output positions they cover.

1. *Cut*: between two input chunks (the task's ingest lock is held), note the next sequence
   number, the input position and the durable log's position, and put a marker into every
   unit's log after the rows submitted so far. Rows keep flowing right after.
2. *Barrier*: each unit's snapshot is taken in its batch order (the state after exactly the rows
   before its marker). A unit's result handling waits at its marker until every unit reached
   its own, so that the output files, flushed then, hold exactly the rows before the cut.
3. *Commit*: the changed key states, the positions and the counters are written in one SQLite
   transaction; then the replay logs and the durable input log drop what the checkpoint covers.

A unit lost in the middle re-sends its marker after it is rebuilt, so the checkpoint simply
completes later; if it cannot be rebuilt the checkpoint is abandoned, and the next one saves
every key (the units already forgot what changed).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .checkpoints import Checkpoint, CheckpointStore, SlotChanges
from .config import CheckpointConfig
from .replay import Marker

if TYPE_CHECKING:
    from .pool import Unit
    from .task import Task

__all__ = ["Checkpointer", "fingerprint"]

log = logging.getLogger("dporch.checkpoint")
BARRIER_SECONDS = 60.0  # a checkpoint waits this long for every unit to reach its marker


def fingerprint(task: "Task") -> str:
    """What window state depends on: the scripts, the input columns, routing and window size."""
    cfg = task.config
    h = hashlib.sha256()
    for p in task.programs:
        h.update(p.script.source.encode() + b"\x1e")
        if p.params:  # parameter values are part of the program (state under other values is not valid)
            h.update(repr(sorted(p.params.items())).encode() + b"\x1e")
    h.update(repr((task.columns, sorted(task.types.items()), cfg.routing.enabled, cfg.routing.key_column,
                   cfg.routing.strategy, cfg.compute_pool.window_size)).encode())
    return h.hexdigest()


@dataclass
class _InProgress:
    id: int
    cut: Checkpoint
    full: bool
    expected: set[str]
    snapshots: dict[str, bytes] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    aborted: str | None = None


class Checkpointer:
    def __init__(self, task: "Task", store: CheckpointStore, cfg: CheckpointConfig):
        self.task = task
        self.store = store
        self.cfg = cfg
        self.enabled = cfg.enabled
        self.next_id = 1
        self.full_next = True
        self.current: _InProgress | None = None
        self.one = asyncio.Lock()  # one checkpoint at a time; taken after the task's ingest lock
        self.committed = asyncio.Event()  # set at each commit (waiters clear it)
        self.last: Checkpoint | None = None
        self.last_seconds = 0.0
        self.last_bytes = 0
        self.count = 0

    # -- taking ---------------------------------------------------------------------------------------
    async def take(self) -> Checkpoint | None:
        """A checkpoint now."""
        if not self.enabled or self.task.pool is None:
            return None
        async with self.task.ingest:
            await self.one.acquire()
            try:
                progress = self.cut()
            except BaseException:
                self.one.release()
                raise
        try:
            return await self.complete(progress)
        finally:
            self.one.release()

    def cut(self) -> _InProgress:
        """Note what the checkpoint covers and put the markers in (ingest lock and ``one`` held)."""
        task, pool = self.task, self.task.pool
        assert pool is not None
        cid = self.next_id
        self.next_id += 1
        ckpt = Checkpoint(id=cid, fingerprint=fingerprint(task), next_seq=task.next_seq, slots=list(pool.units),
                          router=pool.router.state(), input=task.input_position(), wal=task.wal_position())
        task.cut_made()
        progress = _InProgress(cid, ckpt, self.full_next, set(pool.units))
        self.full_next = False
        self.current = progress
        pool.mark(cid, progress.full)
        return progress

    async def complete(self, progress: _InProgress) -> Checkpoint | None:
        """Barrier, output positions, commit (``one`` held by the caller)."""
        t0 = time.perf_counter()
        task = self.task
        waiter = asyncio.ensure_future(progress.arrived.wait())
        try:
            while not progress.arrived.is_set() and progress.aborted is None:
                await asyncio.wait({waiter}, timeout=0.5)
                if time.perf_counter() - t0 > BARRIER_SECONDS and not progress.arrived.is_set():
                    missing = ", ".join(sorted(progress.expected - set(progress.snapshots)))
                    self.abort(f"unit(s) {missing} did not reach the checkpoint within {BARRIER_SECONDS:g} s")
        finally:
            waiter.cancel()
        try:
            if progress.aborted is not None:
                log.warning("task %s: checkpoint %d abandoned: %s", task.config.id, progress.id, progress.aborted)
                self.full_next = True
                return None
            ckpt = progress.cut  # every unit stands at its marker: the outputs hold exactly the rows before
            ckpt.counters = task.counters()
            ckpt.retries = task.pending_retries()
            outputs = await task.output_positions()
            if outputs is None:
                self.full_next = True
                return None
            ckpt.outputs = outputs
        finally:
            progress.released.set()
            self.current = None
        changes: SlotChanges = {}
        for slot, data in progress.snapshots.items():
            states, dropped = pickle.loads(data)
            changes[slot] = (states, dropped)
        try:
            size = await asyncio.to_thread(self.store.commit, task.config.id, ckpt, changes, full=progress.full)
        except Exception:
            self.full_next = True
            raise
        if task.pool is not None:
            task.pool.committed(ckpt.id)
        task.checkpointed(ckpt)
        self.last = ckpt
        self.last_seconds = time.perf_counter() - t0
        self.last_bytes = size
        self.count += 1
        self.committed.set()
        return ckpt

    async def on_marker(self, unit: "Unit", marker: Marker, data: bytes) -> None:
        """A unit's snapshot at ``marker`` (its result handling waits here for the barrier)."""
        progress = self.current
        if progress is None or progress.id != marker.checkpoint:
            self.full_next = True  # a marker of an abandoned checkpoint took the unit's changes
            return
        progress.snapshots[unit.slot] = data
        if progress.expected <= set(progress.snapshots):
            progress.arrived.set()
        await progress.released.wait()

    def abort(self, reason: str) -> None:
        progress = self.current
        if progress is not None and progress.aborted is None:
            progress.aborted = reason
            progress.released.set()

    async def run_periodically(self) -> None:
        """The task's checkpoint timer (while it runs); an idle task has nothing new to save."""
        while True:
            await asyncio.sleep(self.cfg.interval)
            last = self.last
            idle = last is not None and last.next_seq == self.task.next_seq and not self.task.pending_retries()
            if self.task.accepting() and not idle:
                await self.take()

    async def bound_retention(self) -> None:
        """Called with the ingest lock held: keep the replay logs under ``max_retained_rows`` by
        checkpointing early, and wait (backpressure) until one is committed."""
        task = self.task
        while (self.enabled and task.pool is not None and task.pool.retained_rows > self.cfg.max_retained_rows
               and task.pool.live() and task.accepting()):
            self.committed.clear()
            if not self.one.locked():
                await self.one.acquire()
                progress = self.cut()
                task.background.spawn(self._complete_then_release(progress), "checkpoint")
            try:  # a unit down, or the task stopping, ends the wait: rows then stay in the logs
                await asyncio.wait_for(self.committed.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async def _complete_then_release(self, progress: _InProgress) -> None:
        try:
            await self.complete(progress)
        finally:
            self.one.release()

    # -- restoring -------------------------------------------------------------------------------------
    def latest(self) -> Checkpoint | None:
        """The committed checkpoint a new pool starts from (None: start afresh)."""
        if not self.enabled:
            return None
        ckpt = self.store.latest(self.task.config.id)
        if ckpt is not None and ckpt.fingerprint != fingerprint(self.task):
            self.task.note(f"checkpoint {ckpt.id} was taken with other scripts, columns, routing or window: "
                           "starting with empty history")
            self.store.clear(self.task.config.id)
            return None
        if ckpt is not None:
            self.next_id = ckpt.id + 1
            self.full_next = False
        return ckpt

    async def state_of(self, slot: str) -> tuple[int | None, Any]:
        if not self.enabled:
            return None, {}
        return await asyncio.to_thread(self.store.slot_states, self.task.config.id, slot)

    def stats(self) -> dict[str, Any]:
        last = self.last
        return {"enabled": self.enabled, "count": self.count, "last_id": last.id if last else None,
                "last_time": last.created if last else None, "last_seconds": round(self.last_seconds, 4),
                "last_bytes": self.last_bytes}
