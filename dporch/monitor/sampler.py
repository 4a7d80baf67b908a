"""The once-a-second sampler of every task's live figures.

Each tick reads, for every task, what the orchestration keeps anyway: counters, the pool's
load, the latencies a task samples (up to 16 rows per batch; ``Task.latency_samples`` says how
many were added since the last look) and ``ComputePool.spans`` (every answered actor call:
unit, sent, answered, rows). From the spans it derives each unit's busy time: the union of the
intervals during which at least one of its calls was in flight (calls of a unit are sent and
answered in order, so one sweep per unit is exact). Reading costs nothing in the data path:
it happens on the event loop, between chunks, once a second.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..orchestration.workflow import build_graph, layout

__all__ = ["Monitor", "StatsSubscription", "LATENCY_BUCKETS", "TaskTrack", "UnitTrack"]

log = logging.getLogger("dporch.monitor")

#: Upper bounds (seconds) of the latency histogram's buckets (and +Inf).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_PENDING_SPANS = 5000  # spans kept for the next tick's listeners (the newest)


@dataclass
class UnitTrack:
    busy: float = 0.0  # seconds with a call in flight, so far
    covered: float = 0.0  # the end of the last call folded
    rows_then: int = 0  # rows and busy seconds at the last tick
    busy_then: float = 0.0
    sampled: bool = False  # rates start at the second tick that sees the unit


@dataclass
class TaskTrack:
    pool: int | None = None  # id() of the pool the spans were read from
    span_mark: float = 0.0  # the answer time of the newest span folded
    latency_seen: int = 0  # Task.latency_samples folded
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0
    recent: list[float] = field(default_factory=list)  # latencies since the last tick
    units: dict[str, UnitTrack] = field(default_factory=dict)
    processed_then: int | None = None
    time_then: float = 0.0


class StatsSubscription:
    """A ``subscribe_stats`` subscriber: a bounded queue of stats events (when it is full, an
    event is dropped and counted). ``task_id`` None: every task, each event holding the tasks
    whose figures changed (the first event: all of them); a task id: that task with its units,
    every tick."""

    def __init__(self, monitor: "Monitor", task_id: str | None, maxsize: int = 8):
        self.monitor = monitor
        self.task_id = task_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0
        self.sent: dict[str, dict[str, Any]] = {}  # what this subscriber was last sent, per task
        self.graph = -1  # the graph version this subscriber was last sent

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def close(self) -> None:
        self.monitor.subscriptions.discard(self)


Listener = Callable[[float, dict[str, dict[str, Any]], list[tuple]], None]


class Monitor:
    """``manager``: the TaskManager. ``listeners`` are called after each tick with (time, the
    samples by task id, the spans folded since the last tick as (task, unit, sent, answered,
    rows) in wall-clock seconds). ``graph`` is the tasks' graph laid out to draw
    (:func:`~dporch.orchestration.workflow.layout`), made again when a task is added, removed
    or reconfigured, which bumps ``graph_version``: readers fetch or send it only then."""

    def __init__(self, manager: Any, *, interval: float = 1.0):
        self.manager = manager
        self.interval = interval
        self.tracks: dict[str, TaskTrack] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.listeners: list[Listener] = []
        self.subscriptions: set[StatsSubscription] = set()
        self.pending_spans: list[tuple] = []
        self.time = 0.0
        self.graph: dict[str, list[dict[str, Any]]] = {"nodes": [], "edges": []}
        self.graph_version = 0
        self._configs: list[Any] = []  # the task configurations the graph was made of
        self._runner: asyncio.Task | None = None

    # -- running --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except BaseException:  # noqa: BLE001 - cancelled
                pass
            self._runner = None
        for sub in list(self.subscriptions):
            sub.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if loop.time() - next_at > self.interval:  # the loop was blocked: do not catch up
                next_at = loop.time()
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - monitoring never stops the server
                log.exception("monitor tick failed")

    # -- reading a task -------------------------------------------------------------------------------
    @staticmethod
    def live_pool(task: Any) -> Any:
        """The pool of a task that holds its units now (a stopped task holds none)."""
        return task.pool if task.output is not None else None

    def fold(self, task: Any) -> TaskTrack:
        """Take in the task's new latency samples and answered calls (idempotent; the
        Prometheus collector calls it at each scrape, the tick once a second)."""
        tid = task.config.id
        tr = self.tracks.get(tid)
        if tr is None:
            tr = self.tracks[tid] = TaskTrack(latency_seen=task.latency_samples)
        new = task.latency_samples - tr.latency_seen
        if new < 0:  # a task object replaced under the same id
            tr = self.tracks[tid] = TaskTrack(latency_seen=task.latency_samples)
            new = 0
        if new:
            tr.latency_seen = task.latency_samples
            lat = task.latencies
            take = min(new, len(lat))
            for i in range(len(lat) - take, len(lat)):
                x = lat[i]
                tr.buckets[bisect.bisect_left(LATENCY_BUCKETS, x)] += 1
                tr.latency_sum += x
                tr.recent.append(x)
            tr.latency_count += take
        pool = task.pool
        if pool is None:
            return tr
        if tr.pool != id(pool):
            tr.pool, tr.span_mark, tr.units = id(pool), 0.0, {}
        spans = pool.spans
        if spans and spans[-1][2] > tr.span_mark:
            fresh = []
            for s in reversed(spans):
                if s[2] <= tr.span_mark:
                    break
                fresh.append(s)
            fresh.reverse()
            tr.span_mark = fresh[-1][2]
            units = tr.units
            for uid, sent, answered, rows in fresh:
                u = units.get(uid)
                if u is None:
                    u = units[uid] = UnitTrack()
                u.busy += answered - max(sent, u.covered)
                if answered > u.covered:
                    u.covered = answered
            self.pending_spans.extend((tid, *s) for s in fresh)
            if len(self.pending_spans) > MAX_PENDING_SPANS:
                del self.pending_spans[:-MAX_PENDING_SPANS]
        return tr

    def sample(self, task: Any, now: float) -> dict[str, Any]:
        """The task's figures now (folds first); rates are over the time since the last tick."""
        tr = self.fold(task)
        cfg = task.config
        pool = self.live_pool(task)
        dt = now - tr.time_then if tr.processed_then is not None else 0.0
        rate = (task.processed - tr.processed_then) / dt if dt > 0 else 0.0
        tr.processed_then, tr.time_then = task.processed, now
        recent, tr.recent = sorted(tr.recent), []
        p50 = p99 = None
        if recent:
            p50 = round(recent[len(recent) // 2] * 1000, 2)
            p99 = round(recent[min(len(recent) - 1, int(len(recent) * 0.99))] * 1000, 2)
        units = []
        if pool is not None:
            load = pool.router.load
            for slot, u in pool.units.items():
                ut = tr.units.get(u.uid)
                if ut is None:
                    ut = tr.units[u.uid] = UnitTrack()
                if not ut.sampled:
                    ut.rows_then, ut.busy_then, ut.sampled = u.rows, ut.busy, True
                urate = (u.rows - ut.rows_then) / dt if dt > 0 else 0.0
                busy = min(1.0, (ut.busy - ut.busy_then) / dt) if dt > 0 else 0.0
                ut.rows_then, ut.busy_then = u.rows, ut.busy
                units.append({"id": u.uid, "worker": u.worker, "status": u.status, "keys": load.get(slot, 0),
                              "rows": u.rows, "rows_per_second": round(max(0.0, urate), 1),
                              "busy_fraction": round(max(0.0, busy), 3), "in_flight": len(u.calls),
                              "busy_seconds": round(ut.busy, 3)})
        return {
            "id": cfg.id, "name": cfg.name, "status": task.state.value, "transition": task.transition,
            "reason": task.reason, "allowed_actions": task.allowed(),
            "rows_in": task.next_seq, "processed_count": task.processed, "output_rows": task.buffer.total,
            "error_count": task.error_count, "rows_per_second": round(max(0.0, rate), 1),
            "load_rate": round(task.load(), 3) if pool is not None else 0.0,
            "scale_threshold": cfg.compute_pool.scale_threshold, "auto_scale": cfg.compute_pool.auto_scale,
            "compute_pool_size": pool.size if pool is not None else 0,
            "active_workers": pool.busy_units if pool is not None else 0,
            "max_pool_size": cfg.compute_pool.max_size,
            "queue_length": pool.queue_length if pool is not None else 0,
            "latency_ms_p50": p50, "latency_ms_p99": p99,
            "units": units,
        }

    def watch_graph(self) -> None:
        """Lay the graph out again if the tasks changed: an update builds a new task with a new
        configuration object, so comparing the objects is enough (and costs nothing per tick)."""
        configs = [t.config for t in list(self.manager.tasks.values())]
        if len(configs) == len(self._configs) and all(a is b for a, b in zip(configs, self._configs)):
            return
        self._configs = configs
        try:
            self.graph = layout(build_graph(configs)[0])
        except Exception:  # noqa: BLE001 - the figures go on without the drawing
            log.exception("the task graph could not be laid out")
            self.graph = {"nodes": [], "edges": []}
        self.graph_version += 1

    # -- a tick ---------------------------------------------------------------------------------------
    def tick(self) -> None:
        now = time.time()
        self.time = now
        self.watch_graph()
        tasks = self.manager.tasks
        samples = {tid: self.sample(task, now) for tid, task in list(tasks.items())}
        for gone in set(self.tracks) - set(samples):
            del self.tracks[gone]
        removed = [tid for tid in self.latest if tid not in samples]
        self.latest = samples
        spans, self.pending_spans = self.pending_spans, []
        for sub in list(self.subscriptions):
            self._notify(sub, now, samples, removed)
        for fn in list(self.listeners):
            try:
                fn(now, samples, spans)
            except Exception:  # noqa: BLE001 - one listener must not stop the others
                log.exception("monitor listener failed")

    def subscribe(self, task_id: str | None = None) -> StatsSubscription:
        """A subscriber; its first event (everything known now) is queued at once."""
        sub = StatsSubscription(self, task_id)
        self.subscriptions.add(sub)
        if self.latest:
            self._notify(sub, self.time, self.latest, [])
        return sub

    def _notify(self, sub: StatsSubscription, now: float, samples: dict[str, dict[str, Any]],
                removed: list[str]) -> None:
        graph = self.graph_version
        if sub.task_id is not None:
            s = samples.get(sub.task_id)
            if s is not None:
                sub.offer({"time": now, "tasks": [s], "removed": [], "graph": graph})
            elif sub.task_id in removed:
                sub.offer({"time": now, "tasks": [], "removed": [sub.task_id], "graph": graph})
            return
        changed = []
        for tid, s in samples.items():
            brief = {k: v for k, v in s.items() if k != "units"}
            if sub.sent.get(tid) != brief:
                sub.sent[tid] = brief
                changed.append(brief)
        gone = [tid for tid in list(sub.sent) if tid not in samples]
        for tid in gone:
            del sub.sent[tid]
        if changed or gone or sub.graph != graph:
            sub.graph = graph
            sub.offer({"time": now, "tasks": changed, "removed": gone, "graph": graph})
