"""Per-stream state of the row form: history buffers, indicator states, ``_index`` (§8.7)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from .indicator_calls import make_state, numc

__all__ = ["StreamLayout", "Stream"]


@dataclass(frozen=True)
class StreamLayout:
    """What a stream must hold for one bound program."""

    buffers: tuple[tuple[str, int | None], ...]  # (name, lookback; None = all)
    sites: tuple[tuple[str, tuple], ...]  # (indicator, params) per preallocated call site


class Stream:
    """One key's state. ``window`` bounds explicit history (streaming mode); None keeps what
    the lookbacks require (batch mode)."""

    __slots__ = ("key", "index", "total", "rows", "h", "hl", "ind", "lazy", "position")

    def __init__(self, layout: StreamLayout, key: Any = None, *, window: int | None = None,
                 total: int | None = None, rows: list | None = None,
                 position: Callable[[], float] | None = None) -> None:
        self.key = key
        self.index = 0
        self.total = None if total is None else float(total)
        self.rows = rows
        self.h: dict[str, Any] = {}
        for name, lookback in layout.buffers:
            if window is None:
                self.h[name] = [] if lookback is None else deque(maxlen=lookback)
            else:
                self.h[name] = deque(maxlen=window if lookback is None else min(lookback, window))
        self.hl = tuple(self.h.values())
        self.ind = [make_state(name, params) for name, params in layout.sites]
        self.lazy: dict[tuple, tuple[Any, tuple]] = {}
        self.position = position

    def ahead(self, col: int, k: int) -> Any:
        rows = self.rows
        if rows is None:
            return None
        j = self.index + k
        return rows[j][col] if j < len(rows) else None

    def lazy_state(self, site: str, name: str, params: tuple, sources: tuple) -> Any:
        """State of an indicator call site with computed parameters or series sources; on
        first use it replays the retained history of its sources."""
        key = (site, name, params, sources)
        entry = self.lazy.get(key)
        if entry is None:
            state = make_state(name, params)
            bufs = [self.h.get(s) if s is not None else None for s in sources]
            if bufs and all(b is not None for b in bufs):
                n = min(len(b) for b in bufs)
                columns = [list(b)[len(b) - n:] for b in bufs]
                for i in range(n):
                    state.commit(*[numc(c[i]) for c in columns])
            entry = (state, sources)
            self.lazy[key] = entry
        return entry[0]

    def commit_lazy(self, final: dict[str, Any]) -> None:
        for state, sources in self.lazy.values():
            state.commit(*[numc(final.get(s)) for s in sources])
