"""What a task reports about itself: throughput, latency, load, and the statistics of get_task
(part of :class:`~.task.Task`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .autoscale import load_rate
from .states import TaskState

__all__ = ["TaskStats"]


class TaskStats:
    """A mixin of :class:`~.task.Task`: it uses the task's state."""

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
