"""The compute pool (计算元池): the compute units of one task on the Dask cluster,
the router in front of them, micro-batching, and the rebuilding of a lost unit.

A unit is a *slot* (``u1``, ``u2``...: what the router routes to) and the actor behind it now.
Rows for a unit collect into one columnar batch until it holds ``batch_size`` rows or its
oldest row has waited ``batch_ms`` (a timer per pending batch, so an idle pool costs nothing).
Closed batches and checkpoint markers go into the unit's :class:`~.replay.ReplayLog`; up to
``max_in_flight`` calls per unit are in flight, numbered, and their results are handled in the
order they were sent, so every key's outputs keep input order. A unit with too much waiting
makes ``submit`` wait: that is the backpressure that reaches the input.

When any call of a unit fails (its worker died, the actor was lost), the unit is rebuilt: a new
actor on a live worker gets the slot's state from the last committed checkpoint, then the whole
log since that checkpoint again; results of batches already delivered are dropped the second
time. Per-key output is then exactly what it would have been without the failure. Without
checkpoints only undelivered batches are kept, and the keys' history restarts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, NamedTuple, Sequence

from ..engine.columns import group_indexes
from .aio import Background
from .cluster import Cluster
from .errors import ClusterUnavailable, PoolError
from .replay import Batch, Item, Marker, ReplayLog
from .router import Router
from .unit import ComputeUnit, KeyStates, decode_result, encode_batch

if TYPE_CHECKING:
    from ..engine.row_blocks import Lines

__all__ = ["Unit", "ComputePool", "Result", "PoolError"]

log = logging.getLogger("dporch.pool")

CREATE_TIMEOUT = 30.0  # seconds to create an actor on a worker
REBUILD_ATTEMPTS = 3


@dataclass
class _Failed:
    """An actor call that raised (never left as an exception in a future nobody awaits)."""

    exc: BaseException


@dataclass
class Unit:
    slot: str
    uid: str  # shown to users: "<task>:<slot>"
    actor: Any = None
    future: Any = None  # keeps the actor alive
    worker: str = ""
    status: str = "stopped"  # stopped | idle | busy | recovering | error
    generation: int = 0  # bumped whenever the actor behind the slot changes
    pending: Batch = field(default_factory=Batch)
    log: ReplayLog = field(default_factory=ReplayLog)
    calls: deque = field(default_factory=deque)  # (call future, monotonic send time) in send order
    next_no: int = 0  # number of the next ordered call on the current actor
    rows: int = 0
    batches: int = 0  # batches delivered (rows / batches: how full the micro-batches run)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # a call was sent
    space: asyncio.Event = field(default_factory=asyncio.Event)  # a result was handled
    consumer: asyncio.Task | None = None
    due: asyncio.TimerHandle | None = None  # closes the pending batch when it has waited batch_ms


class Result(NamedTuple):
    """One batch's outputs: the sequence number and key of each output row, the output as
    columns (OUTPUT order), the rows that failed, their CSV lines, and the batch that was sent."""

    seqs: list[int]
    keys: list[Any]
    columns: list[Sequence[Any]]  # tuples from a unit
    errors: list[dict]
    lines: Lines | None  # the output rows' CSV lines, when the unit was asked for them
    batch: Batch


ResultHandler = Callable[[Result], Awaitable[Any]]
MarkerHandler = Callable[[Unit, Marker, bytes], Awaitable[None]]
StateSource = Callable[[str], Awaitable[tuple[int | None, KeyStates]]]


class ComputePool:
    """Compute units of one task.

    ``on_result`` gets each batch's outputs in order, ``on_marker`` each unit's snapshot at a
    checkpoint marker, ``on_failover`` messages about lost and rebuilt units, ``on_fatal`` a
    unit that cannot be rebuilt; ``state_of(slot)`` returns the committed checkpoint id and
    key states of a slot (``keep_log``: checkpoints are on, so handled items stay in the log
    until one is committed)."""

    def __init__(self, cluster: Cluster, task_id: str, scripts: list[tuple[str, str]], columns: list[str], *,
                 strategy: str, window: int, batch_size: int, batch_ms: float, max_in_flight: int,
                 on_result: ResultHandler, on_marker: MarkerHandler, on_failover: Callable[[str], None],
                 on_fatal: Callable[[Unit, BaseException], None], state_of: StateSource,
                 keep_log: bool, slots: list[str] | None = None, router: dict[str, Any] | None = None,
                 on_error: Callable[[BaseException], None] | None = None):
        self.cluster = cluster
        self.task_id = task_id
        self.scripts = scripts
        self.columns = columns
        self.window = window
        self.batch_size = batch_size
        self.batch_ms = batch_ms / 1000.0
        self.max_in_flight = max_in_flight
        self.on_result = on_result
        self.on_marker = on_marker
        self.on_failover = on_failover
        self.on_fatal = on_fatal
        self.state_of = state_of
        self.keep_log = keep_log
        self.csv_lines = False  # ask the units for their output rows' CSV lines (the output writes CSV)
        self.units: dict[str, Unit] = {}
        self.router = Router(strategy, [])
        self._slot_no = itertools.count(1)
        for s in slots or []:
            self._add_slot(s)
        if router:
            self.router.load_state(router)
        self.recent_batch_ms: deque[float] = deque(maxlen=100)  # actor call round trips
        self.spans: deque[tuple[str, float, float, int]] = deque(maxlen=5000)  # (unit, sent, answered, rows), wall time
        self._bg = Background(f"task {task_id} pool", on_error)  # a consumer that breaks fails the task

    def _add_slot(self, slot: str | None = None, *, route: bool = True) -> Unit:
        if slot is None:
            taken = set(self.units)
            slot = next(s for s in (f"u{i}" for i in self._slot_no) if s not in taken)
        unit = Unit(slot, f"{self.task_id}:{slot}")
        self.units[slot] = unit
        if route:
            self.router.add_unit(slot)
        return unit

    def add_slots(self, n: int) -> None:
        """Slots for a pool that has none yet (its first start)."""
        for _ in range(n):
            self._add_slot()

    # -- actors -------------------------------------------------------------------------------------
    async def _new_actor(self, unit: Unit, avoid: str = "") -> tuple[Any, Any, str]:
        """An actor for ``unit`` on the worker with the fewest units of this pool."""
        workers = await self.cluster.workers()
        usable = [w for w in workers if w != avoid] or workers
        counts = {w: 0 for w in usable}
        for u in self.units.values():
            if u.worker in counts and u is not unit:
                counts[u.worker] += 1
        worker = unit.worker = min(usable, key=lambda w: counts[w])  # claimed before any await
        fut = self.cluster.client.submit(
            ComputeUnit, self.scripts, self.window, self.task_id, self.columns, actor=True, pure=False,
            key=f"dporch-unit-{self.task_id}-{uuid.uuid4().hex[:12]}", workers=[worker], allow_other_workers=True)
        try:
            actor = await asyncio.wait_for(fut, CREATE_TIMEOUT)
        except asyncio.TimeoutError:
            raise ClusterUnavailable(f"no worker took a compute unit of task {self.task_id} "
                                     f"within {CREATE_TIMEOUT:g} s") from None
        return actor, fut, worker

    async def _release_actor(self, unit: Unit) -> None:
        fut, unit.future, unit.actor, unit.worker = unit.future, None, None, ""
        await self._cancel(fut)

    async def _cancel(self, fut: Any) -> None:
        if fut is not None:
            try:
                await asyncio.wait_for(self.cluster.client.cancel(fut), 5)
            except Exception:  # noqa: BLE001 - the worker or the scheduler may be gone already
                pass

    async def open(self) -> None:
        """Give every slot an actor with its committed state, and send what its log holds."""
        await asyncio.gather(*(self._rebuild(u, reason=None) for u in self.units.values()))

    async def suspend(self) -> None:
        """Release the actors; logs, pending rows and routes stay for the next :meth:`open`."""
        for unit in self.units.values():
            self._stop_unit(unit)
            unit.status = "stopped"
        await asyncio.gather(*(self._release_actor(u) for u in self.units.values()))
        await self._bg.cancel()

    def _stop_unit(self, unit: Unit) -> None:
        unit.generation += 1
        if unit.due is not None:
            unit.due.cancel()
            unit.due = None
        if unit.consumer is not None and unit.consumer is not asyncio.current_task():
            unit.consumer.cancel()
        unit.consumer = None
        for call, _ in unit.calls:
            call.cancel()
        unit.calls.clear()
        unit.space.set()

    async def _rebuild(self, unit: Unit, reason: str | None, avoid: str = "") -> None:
        """A new actor for ``unit``: the slot's committed state, then its log from there."""
        last: BaseException | None = None
        for _ in range(REBUILD_ATTEMPTS):
            try:
                actor, fut, worker = await self._new_actor(unit, avoid)
                ckpt, states = await self.state_of(unit.slot)
                if states:
                    await actor.restore(states)
            except ClusterUnavailable as exc:
                last = exc
                break
            except Exception as exc:  # noqa: BLE001 - the new worker died too: try another
                last = exc
                continue
            if ckpt is not None:
                unit.log.trim_to(ckpt)
            unit.log.rewind()
            unit.actor, unit.future, unit.worker = actor, fut, worker
            unit.next_no = 0
            unit.status = "idle"
            gen = unit.generation
            unit.consumer = self._bg.spawn(self._consume(unit, gen), f"unit {unit.slot} results")
            if reason is not None:
                replay = [i for i in unit.log if isinstance(i, Batch)]
                again = sum(len(b.seqs) for b in replay if b.delivered)
                restored = (f"{len(states)} key(s) restored from checkpoint {ckpt if ckpt is not None else '(none yet)'}"
                            if self.keep_log else "its keys' history restarts (checkpoints are off)")
                self.on_failover(f"compute unit {unit.uid} rebuilt on {worker}: {restored}, "
                                 f"{sum(len(b.seqs) for b in replay)} row(s) sent again "
                                 f"({again} of them already written: not written again)")
            self._pump(unit)
            return
        unit.status = "error"
        unit.space.set()
        assert last is not None
        if reason is None:
            raise last
        self.on_fatal(unit, last)

    def _lost(self, unit: Unit, exc: BaseException) -> None:
        """A call of ``unit`` failed: rebuild it in the background."""
        if unit.status in ("recovering", "error", "stopped"):
            return
        lost_on = unit.worker
        self._stop_unit(unit)
        unit.status = "recovering"
        rows = unit.log.rows + len(unit.pending.seqs)
        message = (f"compute unit {unit.uid} on {lost_on or '?'} failed ({type(exc).__name__}: {exc}); "
                   f"rebuilding it from the last checkpoint; {rows} row(s) are kept to be sent again")
        log.warning(message)
        self.on_failover(message)
        old, unit.future, unit.actor = unit.future, None, None
        self._bg.spawn(self._cancel(old), f"release unit {unit.slot}")
        self._bg.spawn(self._rebuild(unit, reason=message, avoid=lost_on), f"rebuild unit {unit.slot}")

    async def recover(self) -> None:
        """Rebuild every unit that could not be rebuilt before (the cluster is back)."""
        await asyncio.gather(*(self._rebuild(u, reason="recover") for u in self.units.values()
                               if u.status in ("error", "stopped")))

    # -- data path ------------------------------------------------------------------------------
    async def submit(self, seqs: list[int], keys: list[Any], columns: list[list], arrived: float) -> None:
        """Route rows (given as columns in schema order) to their units; waits while a unit has
        more than it can send."""
        if not self.units:
            raise PoolError("the compute pool has no unit")
        targets = self.router.route(keys)
        units = self.units
        first = targets[0] if targets else None
        if len(units) == 1 or targets.count(first) == len(targets):  # one unit gets them all
            groups: dict[str, list[int] | None] = {first: None} if targets else {}
        else:
            groups = group_indexes(targets)  # type: ignore[assignment]
        for slot, ix in groups.items():
            unit = units[slot]  # type: ignore[index]
            b = unit.pending
            if not b.seqs:
                b.first = arrived
                b.columns = [[] for _ in columns]
                unit.due = asyncio.get_running_loop().call_later(self.batch_ms, self._close, unit)
            if ix is None:
                b.seqs += seqs
                b.keys += keys
                for mine, given in zip(b.columns, columns):
                    mine += given
                b.arrived += [arrived] * len(seqs)
            else:
                b.seqs += [seqs[i] for i in ix]
                b.keys += [keys[i] for i in ix]
                for mine, given in zip(b.columns, columns):
                    mine += [given[i] for i in ix]
                b.arrived += [arrived] * len(ix)
            if len(b.seqs) >= self.batch_size:
                self._close_full(unit)
        limit = 2 * self.max_in_flight
        for slot in groups:
            unit = units[slot]  # type: ignore[index]
            while unit.log.outstanding > limit and unit.status not in ("error", "stopped"):
                unit.space.clear()
                await unit.space.wait()

    def _close_full(self, unit: Unit) -> None:
        """Close batches of ``batch_size`` rows while the pending one has that many."""
        n = self.batch_size
        while len(unit.pending.seqs) >= n:
            b = unit.pending
            rest = Batch(b.seqs[n:], b.keys[n:], [c[n:] for c in b.columns], b.arrived[n:],
                         b.arrived[n] if len(b.seqs) > n else 0.0)
            del b.seqs[n:], b.keys[n:], b.arrived[n:]
            for c in b.columns:
                del c[n:]
            self._close(unit)
            if rest.seqs:
                unit.pending = rest
                unit.due = asyncio.get_running_loop().call_later(self.batch_ms, self._close, unit)

    def _close(self, unit: Unit) -> None:
        """The pending batch goes into the log (and out, if there is room)."""
        if unit.due is not None:
            unit.due.cancel()
            unit.due = None
        if unit.pending.seqs:
            unit.log.append(unit.pending)
            unit.pending = Batch()
            self._pump(unit)

    def mark(self, checkpoint: int, full: bool) -> int:
        """Put a checkpoint marker into every unit's log, after all rows submitted so far."""
        for unit in self.units.values():
            self._close(unit)
            unit.log.append(Marker(checkpoint, full))
            self._pump(unit)
        return len(self.units)

    def committed(self, checkpoint: int) -> None:
        """Logs drop what ``checkpoint`` covers; a unit being rebuilt keeps its log whole, since
        it may be restoring an older checkpoint (it trims to that one itself)."""
        for unit in self.units.values():
            if unit.status in ("idle", "busy"):
                unit.log.trim_to(checkpoint)
                unit.space.set()

    def _pump(self, unit: Unit) -> None:
        """Send what the unit's log holds, up to ``max_in_flight`` calls."""
        if unit.status not in ("idle", "busy") or unit.actor is None:
            return
        ulog, actor = unit.log, unit.actor
        now = time.monotonic()
        while ulog.unsent and ulog.in_flight < self.max_in_flight:
            item = ulog.next_unsent()
            no = unit.next_no
            unit.next_no += 1
            unit.calls.append((asyncio.ensure_future(self._call(actor, item, no)), now))
            unit.status = "busy"
        if unit.calls:
            unit.wake.set()

    async def _call(self, actor: Any, item: Item, no: int) -> Any:
        try:
            if isinstance(item, Batch):
                return await actor.process(no, encode_batch(item.seqs, item.keys, dict(zip(self.columns, item.columns)),
                                                            self.csv_lines))
            return await actor.snapshot(no, item.full)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the call: the unit is rebuilt
            return _Failed(exc)

    async def _consume(self, unit: Unit, gen: int) -> None:
        """Handle the unit's results in send order (one consumer per actor generation)."""
        while unit.generation == gen:
            while not unit.calls:
                unit.wake.clear()
                await unit.wake.wait()
                if unit.generation != gen:
                    return
            call, sent = unit.calls[0]
            data = await call
            if unit.generation != gen:
                return
            if isinstance(data, _Failed):
                self._lost(unit, data.exc)
                return
            unit.calls.popleft()
            item = unit.log.oldest_in_flight()
            unit.log.mark_done()
            if isinstance(item, Batch):
                took = time.monotonic() - sent
                self.recent_batch_ms.append(took * 1000)
                now = time.time()
                self.spans.append((unit.uid, now - took, now, len(item.seqs)))
                if not item.delivered:
                    unit.rows += len(item.seqs)
                    unit.batches += 1
                    item.delivered = True
                    await self.on_result(Result(*decode_result(data), item))
            else:
                await self.on_marker(unit, item, data)
            if not self.keep_log:
                unit.log.drop_handled()
            if not unit.calls:
                unit.status = "idle"
            unit.space.set()
            self._pump(unit)

    async def check_stuck(self, after: float = 5.0) -> None:
        """A call waiting longer than ``after`` seconds on a worker the scheduler no longer has
        (a hung or partitioned worker: no connection broke to tell us) fails its unit over."""
        now = time.monotonic()
        stuck = [u for u in self.units.values() if u.calls and now - u.calls[0][1] > after]
        if not stuck:
            return
        try:
            live = set(await self.cluster.workers(wait=0))
        except ClusterUnavailable:
            return  # the cluster watch deals with a missing scheduler
        for unit in stuck:
            if unit.worker not in live:
                self._lost(unit, RuntimeError(f"worker {unit.worker} left the cluster"))

    # -- draining and scaling -------------------------------------------------------------------------
    def flush(self) -> None:
        for unit in self.units.values():
            self._close(unit)

    def live(self) -> bool:
        """Every unit has a working actor."""
        return all(u.status in ("idle", "busy") for u in self.units.values())

    def idle(self) -> bool:
        return all(not u.log.outstanding and not u.pending.seqs for u in self.units.values())

    async def drain(self, timeout: float | None = None) -> bool:
        """Send every pending row and wait until all results were handled (False: not within
        ``timeout``, or a unit is down and its rows wait for it)."""
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        self.flush()
        while not self.idle():
            if any(u.status in ("error", "stopped") for u in self.units.values()):
                return False
            if end is not None and loop.time() > end:
                return False
            await asyncio.sleep(0.002)
            self.flush()
        return True

    async def add_units(self, n: int) -> list[str]:
        """``n`` new units (the pool is drained); with hash routing the keys that now belong to
        a new unit move there with their state."""
        made = []
        for _ in range(n):
            unit = self._add_slot(route=False)  # routes change only once the actor exists
            try:
                await self._rebuild(unit, reason=None)
            except BaseException:
                del self.units[unit.slot]
                raise
            moved = self.router.add_unit(unit.slot)
            await self._move_keys(moved, unit.slot)
            made.append(unit.slot)
        return made

    async def remove_unit(self, slot: str | None = None) -> str | None:
        """Remove one unit (the one with the fewest keys by default; the pool is drained); its
        keys and their state move to the other units."""
        if len(self.units) <= 1:
            return None
        if slot is None:
            slot = min(self.units, key=lambda u: self.router.load.get(u, 0))
        unit = self.units[slot]
        keys = self.router.remove_unit(slot)
        by_unit: dict[str, list] = {}
        for k, u in self.router.reassign(keys).items():
            by_unit.setdefault(u, []).append(k)
        for u, ks in by_unit.items():
            await self.units[u].actor.import_state(await unit.actor.export_state(ks))
        del self.units[slot]
        self._stop_unit(unit)
        await self._release_actor(unit)
        return slot

    async def _move_keys(self, moved: dict[Any, str], new_slot: str) -> None:
        by_old: dict[str, list] = {}
        for k, old in moved.items():
            by_old.setdefault(old, []).append(k)
        for old, keys in by_old.items():
            src = self.units.get(old)
            if src is None or src.actor is None:
                continue
            data = await src.actor.export_state(keys)
            await self.units[new_slot].actor.import_state(data)
            await src.actor.drop_keys(keys)

    # -- stats --------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.units)

    @property
    def busy_units(self) -> int:
        return sum(1 for u in self.units.values() if u.calls)

    @property
    def queue_length(self) -> int:
        """Rows waiting for a unit or in flight."""
        return sum(len(u.pending.seqs) + sum(len(i.seqs) for i in u.log.unhandled() if isinstance(i, Batch))
                   for u in self.units.values())

    @property
    def retained_rows(self) -> int:
        """Rows kept for a replay (since the last committed checkpoint)."""
        return sum(u.log.rows for u in self.units.values())

    def mean_call_ms(self) -> float:
        """Mean round trip of the last 100 actor calls (the autoscaler's "average response time")."""
        return sum(self.recent_batch_ms) / len(self.recent_batch_ms) if self.recent_batch_ms else 0.0

    def units_info(self) -> list[dict[str, Any]]:
        return [{"id": u.uid, "worker": u.worker, "status": u.status, "rows": u.rows, "batches": u.batches,
                 "keys": self.router.load.get(u.slot, 0), "in_flight": len(u.calls),
                 "retained_rows": u.log.rows} for u in self.units.values()]
