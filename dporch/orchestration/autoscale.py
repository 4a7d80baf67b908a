"""Load rate and the scaling policy of a compute pool (docs/orchestration.md, "Compute pools and autoscaling").

    LoadRate = 0.5 * busy/total + 0.3 * min(queue/1000, 1) + 0.2 * min(avg_latency/100 ms, 1)

Scale up when the load stays above ``scale_threshold`` for ``scale_up_seconds`` (30 s) and the
pool is below ``max_size``: +2 units while smaller than 10, else +20 %. Scale down by one unit
when the load stays below 0.3 for ``scale_down_seconds`` (5 min), down to ``initial_size``.
"""

from __future__ import annotations

import math
from .config import ComputePool as PoolConfig

__all__ = ["load_rate", "scale_up_step", "Autoscaler"]


def load_rate(busy: int, total: int, queue: int, avg_latency_ms: float) -> float:
    if total <= 0:
        return 0.0
    return 0.5 * busy / total + 0.3 * min(queue / 1000, 1.0) + 0.2 * min(avg_latency_ms / 100.0, 1.0)


def scale_up_step(size: int) -> int:
    return 2 if size < 10 else max(1, math.ceil(size * 0.2))


class Autoscaler:
    """Decides; the task applies (it moves state with the keys and checkpoints after)."""

    def __init__(self, cfg: PoolConfig):
        self.cfg = cfg
        self.high_since: float | None = None
        self.low_since: float | None = None

    def decide(self, size: int, load: float, now: float) -> int:
        """Units to add (> 0) or remove (< 0) now."""
        cfg = self.cfg
        self.high_since = (self.high_since or now) if load > cfg.scale_threshold else None
        self.low_since = (self.low_since or now) if load < 0.3 else None
        if self.high_since is not None and now - self.high_since >= cfg.scale_up_seconds and size < cfg.max_size:
            self.high_since = None
            return min(scale_up_step(size), cfg.max_size - size)
        if self.low_since is not None and now - self.low_since >= cfg.scale_down_seconds and size > cfg.initial_size:
            self.low_since = None
            return -1
        return 0
