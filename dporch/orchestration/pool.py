"""The compute pool (计算元池, SEED §2.2.4): N compute-unit actors on the Dask cluster, the
router in front of them, and per-unit micro-batching.

Rows for a unit collect into one columnar batch until it holds ``batch_size`` rows or its
oldest row has waited ``batch_ms`` (a timer per pending batch, so an idle pool costs nothing);
up to ``max_in_flight`` batches per unit are in flight and their results are handled in the
order they were sent, so every key's outputs keep input order.
A full unit makes ``submit`` wait: that is the backpressure that reaches the input.

When a unit's worker is lost, the unit is marked ``error`` and removed, its routes are cleared
and its unfinished batches go to the remaining units (whose history for those keys starts
afresh): no row is lost (SEED §5.4.3).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, NamedTuple

from .router import Router
from .unit import ComputeUnit, decode_result, encode_batch

__all__ = ["Unit", "ComputePool", "PoolError", "Result"]

log = logging.getLogger("dporch.pool")
_uid = itertools.count(1)


class PoolError(RuntimeError):
    pass


@dataclass
class _Batch:
    seqs: list[int] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)  # values in schema order
    arrived: list[float] = field(default_factory=list)  # monotonic arrival time per row
    first: float = 0.0


@dataclass
class Unit:
    uid: str
    actor: Any
    future: Any  # keeps the actor alive
    worker: str
    status: str = "idle"  # idle | busy | error
    batch_no: int = 0
    pending: _Batch = field(default_factory=_Batch)
    in_flight: deque = field(default_factory=deque)  # (batch, asyncio.Task) in send order
    waiting: deque = field(default_factory=deque)  # batches waiting for an in-flight slot, in order
    sem: asyncio.Semaphore | None = None
    rows: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    consumer: asyncio.Task | None = None
    due: asyncio.TimerHandle | None = None  # sends the pending batch when it has waited batch_ms


class Result(NamedTuple):
    """One batch's outputs: (sequence number, key, output row) of each output row, the rows
    that failed, and the batch that was sent."""

    seqs: list[int]
    keys: list[Any]
    rows: list[list]
    errors: list[dict]
    batch: _Batch


Handler = Callable[[Result], Awaitable[Any] | None]


class ComputePool:
    """Compute units of one task. ``on_result(result)`` receives each batch's outputs in order; ``on_failover(message)`` is told about lost units."""

    def __init__(self, client: Any, task_id: str, scripts: list[tuple[str, str]], columns: list[str], *,
                 strategy: str, window: int, batch_size: int, batch_ms: float, max_in_flight: int,
                 on_result: Handler, on_failover: Callable[[str], None]):
        self.client = client
        self.task_id = task_id
        self.scripts = scripts
        self.columns = columns
        self.window = window
        self.batch_size = batch_size
        self.batch_ms = batch_ms / 1000.0
        self.max_in_flight = max_in_flight
        self.on_result = on_result
        self.on_failover = on_failover
        self.units: dict[str, Unit] = {}
        self.router = Router(strategy, [])
        self.lock = asyncio.Lock()  # held while routes change (scaling, failover)
        self.recent_batch_ms: deque[float] = deque(maxlen=100)  # actor call round trips
        self._sends: set[asyncio.Task] = set()  # batches sent because they waited long enough
        self._closed = False

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self, n: int) -> None:
        await self.add_units(n)

    async def _workers(self) -> list[str]:
        info = await self.client.scheduler.identity()
        return sorted(info.get("workers", {}))

    async def _new_unit(self, worker: str | None) -> Unit:
        uid = f"{self.task_id}:u{next(_uid)}"
        placement = {"workers": [worker], "allow_other_workers": True} if worker else {}
        fut = self.client.submit(ComputeUnit, self.scripts, self.window, self.task_id, actor=True,
                                 pure=False, key=f"dporch-unit-{uid}", **placement)
        actor = await fut
        unit = Unit(uid, actor, fut, worker or "", sem=asyncio.Semaphore(self.max_in_flight))
        unit.consumer = asyncio.create_task(self._consume(unit))
        return unit

    async def add_units(self, n: int) -> list[str]:
        """Create ``n`` units spread over the workers (fewest units first); with hash routing
        the keys that now belong to a new unit move there with their state."""
        workers = await self._workers()
        counts = {w: sum(1 for u in self.units.values() if u.worker == w) for w in workers}
        made = []
        for _ in range(n):
            w = min(workers, key=lambda x: counts[x]) if workers else None
            if w:
                counts[w] += 1
            made.append(await self._new_unit(w))
        async with self.lock:
            if self.units:
                await self._drain_locked()
            for unit in made:
                self.units[unit.uid] = unit
                moved = self.router.add_unit(unit.uid)
                await self._move_keys(moved, unit.uid)
        return [u.uid for u in made]

    async def remove_unit(self, uid: str | None = None) -> str | None:
        """Remove one unit (the one with the fewest keys by default); its keys and their state
        move to the other units."""
        async with self.lock:
            if len(self.units) <= 1:
                return None
            if uid is None:
                uid = min(self.units, key=lambda u: self.router.load.get(u, 0))
            await self._drain_locked()
            unit = self.units.pop(uid)
            keys = self.router.remove_unit(uid)
            by_unit: dict[str, list] = {}
            for k, u in self.router.reassign(keys).items():
                by_unit.setdefault(u, []).append(k)
            for u, ks in by_unit.items():
                await self.units[u].actor.import_state(await unit.actor.export_state(ks))
            await self._release(unit)
        return uid

    async def _move_keys(self, moved: dict[Any, str], new_uid: str) -> None:
        by_old: dict[str, list] = {}
        for k, old in moved.items():
            by_old.setdefault(old, []).append(k)
        for old, keys in by_old.items():
            src = self.units.get(old)
            if src is None:
                continue
            data = await src.actor.export_state(keys)
            await self.units[new_uid].actor.import_state(data)
            await src.actor.drop_keys(keys)

    async def _release(self, unit: Unit) -> None:
        if unit.due is not None:
            unit.due.cancel()
        if unit.consumer is not None:
            unit.consumer.cancel()
        try:
            await self.client.cancel(unit.future)
        except Exception:  # noqa: BLE001 - the worker may already be gone
            pass

    async def close(self) -> None:
        """Drain, then release every actor."""
        self._closed = True
        await self.drain()
        for unit in list(self.units.values()):
            await self._release(unit)
        self.units.clear()

    # -- data path ------------------------------------------------------------------------------
    async def submit(self, seqs: list[int], keys: list[Any], rows: list[tuple], arrived: float) -> None:
        """Route rows to their units; waits while a unit has ``max_in_flight`` batches out."""
        if not self.units:
            raise PoolError("the compute pool has no unit left")
        async with self.lock:
            targets = self.router.route(keys)
        loop = asyncio.get_running_loop()
        full = []
        for seq, key, row, uid in zip(seqs, keys, rows, targets):
            unit = self.units[uid]
            b = unit.pending
            if not b.seqs:
                b.first = arrived
                unit.due = loop.call_later(self.batch_ms, self._send_due, unit)
            b.seqs.append(seq)
            b.keys.append(key)
            b.rows.append(row)
            b.arrived.append(arrived)
            if len(b.seqs) >= self.batch_size:
                full.append(unit)
        for unit in full:
            if len(unit.pending.seqs) >= self.batch_size:
                await self._send(unit)

    async def _send(self, unit: Unit) -> None:
        batch = unit.pending
        if not batch.seqs:
            return
        unit.pending = _Batch()
        if unit.due is not None:
            unit.due.cancel()
            unit.due = None
        assert unit.sem is not None
        unit.waiting.append(batch)
        await unit.sem.acquire()
        if unit.uid not in self.units:  # the unit failed meanwhile; _failover has resent the batch
            unit.sem.release()  # and wakes the next waiter
            return
        unit.waiting.remove(batch)
        columns = dict(zip(self.columns, map(list, zip(*batch.rows))))
        payload = encode_batch(batch.seqs, batch.keys, columns)
        no = unit.batch_no
        unit.batch_no += 1
        unit.status = "busy"
        call = asyncio.ensure_future(unit.actor.process(no, payload))
        unit.in_flight.append((batch, call, time.monotonic()))
        unit.wake.set()

    async def _consume(self, unit: Unit) -> None:
        """Handle the unit's results in send order."""
        while True:
            while not unit.in_flight:
                unit.wake.clear()
                await unit.wake.wait()
            batch, call, sent = unit.in_flight[0]
            try:
                data = await call
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the unit (its worker) is gone
                await self._failover(unit, exc)
                return
            unit.in_flight.popleft()
            assert unit.sem is not None
            unit.sem.release()
            now = time.monotonic()
            self.recent_batch_ms.append((now - sent) * 1000)
            unit.rows += len(batch.seqs)
            if not unit.in_flight:
                unit.status = "idle"
            r = self.on_result(Result(*decode_result(data), batch))
            if inspect.isawaitable(r):
                await r

    async def _failover(self, unit: Unit, exc: BaseException) -> None:
        unit.status = "error"
        lost = [b for b, _, _ in unit.in_flight] + list(unit.waiting) + ([unit.pending] if unit.pending.seqs else [])
        unit.in_flight.clear()
        unit.waiting.clear()
        unit.pending = _Batch()
        assert unit.sem is not None
        unit.sem.release()  # batches waiting for a slot of this unit return (they are in `lost`)
        self.units.pop(unit.uid, None)
        keys = self.router.remove_unit(unit.uid)
        msg = (f"compute unit {unit.uid} on {unit.worker or '?'} failed ({type(exc).__name__}: {exc}); "
               f"{len(keys)} key(s) move to other units and their history restarts; "
               f"{sum(len(b.seqs) for b in lost)} row(s) are sent again")
        log.warning(msg)
        self.on_failover(msg)
        try:
            await self.client.cancel(unit.future)
        except Exception:  # noqa: BLE001
            pass
        for b in lost:
            if not self.units:
                break
            await self.submit(b.seqs, b.keys, b.rows, b.first)

    def _send_due(self, unit: Unit) -> None:
        """Timer callback: the unit's pending batch has waited ``batch_ms``."""
        unit.due = None
        if unit.pending.seqs and unit.uid in self.units and not self._closed:
            task = asyncio.create_task(self._send(unit))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def flush(self) -> None:
        for unit in list(self.units.values()):
            await self._send(unit)

    async def _drain_locked(self) -> None:
        await self.flush()
        while any(u.in_flight or u.waiting for u in self.units.values()):
            await asyncio.sleep(0.002)

    async def drain(self) -> None:
        """Send every pending row and wait until all results were handled."""
        await self.flush()
        while any(u.in_flight or u.waiting or u.pending.seqs for u in self.units.values()):
            await asyncio.sleep(0.002)
            await self.flush()

    # -- stats --------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.units)

    @property
    def busy_units(self) -> int:
        return sum(1 for u in self.units.values() if u.in_flight)

    @property
    def queue_length(self) -> int:
        return sum(len(u.pending.seqs) + sum(len(b.seqs) for b in u.waiting)
                   + sum(len(b.seqs) for b, _, _ in u.in_flight) for u in self.units.values())

    def mean_call_ms(self) -> float:
        """Mean round trip of the last 100 actor calls (the seed's "average response time")."""
        return sum(self.recent_batch_ms) / len(self.recent_batch_ms) if self.recent_batch_ms else 0.0

    def units_info(self) -> list[dict[str, Any]]:
        return [{"id": u.uid, "worker": u.worker, "status": u.status, "rows": u.rows,
                 "keys": self.router.load.get(u.uid, 0), "in_flight": len(u.in_flight)} for u in self.units.values()]
