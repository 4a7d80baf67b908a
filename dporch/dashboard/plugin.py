"""The scheduler plugin that keeps what ``dporch serve`` publishes (topic ``dporch``): ten
minutes of each task's figures, the compute units as last reported, the latest actor calls
(for the unit stream) and each server's task graph. Pages read it; nothing here blocks the
scheduler: an event is parsed and appended to bounded deques."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import deque
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from . import TOPIC

__all__ = ["DporchPlugin", "SERIES"]

log = logging.getLogger("dporch.dashboard")

#: The per-task time series (one point per event, i.e. per second).
SERIES = ("rows_per_second", "load_rate", "scale_threshold", "compute_pool_size", "active_workers", "max_pool_size",
          "queue_length", "latency_ms_p50", "latency_ms_p99", "error_count", "errors_per_second")
SOURCE_TIMEOUT = 600.0  # a dporch serve silent this long is forgotten


class TaskSeries:
    def __init__(self, key: str, task_id: str, source: str, maxlen: int):
        self.key = key
        self.task_id = task_id
        self.source = source
        self.columns: dict[str, deque] = {name: deque(maxlen=maxlen) for name in ("time", *SERIES)}
        self.count = 0  # points ever appended
        self.latest: dict[str, Any] = {}

    def append(self, t: float, sample: dict[str, Any]) -> None:
        cols = self.columns
        prev_t = cols["time"][-1] / 1000 if cols["time"] else None
        prev_errors = cols["error_count"][-1] if cols["error_count"] else None
        errors = sample.get("error_count") or 0
        rate = 0.0
        if prev_t is not None and prev_errors is not None and t > prev_t:
            rate = max(0.0, (errors - prev_errors) / (t - prev_t))
        cols["time"].append(t * 1000)  # Bokeh datetimes are milliseconds
        for name in SERIES:
            if name == "errors_per_second":
                cols[name].append(round(rate, 3))
            else:
                v = sample.get(name)
                cols[name].append(float("nan") if v is None else v)
        self.count += 1
        self.latest = sample

    def since(self, count: int) -> dict[str, list]:
        """The points appended after the first ``count`` (as many as are still held)."""
        n = min(self.count - count, len(self.columns["time"]))
        if n <= 0:
            return {name: [] for name in self.columns}
        out = {}
        for name, col in self.columns.items():
            xs = list(itertools.islice(reversed(col), n))
            xs.reverse()
            out[name] = xs
        return out


class DporchPlugin(SchedulerPlugin):
    """Registered as ``dporch`` by the preload; ``history``: points kept per task (one a
    second), ``max_calls``: actor calls kept for the unit stream, ``keep_events``: how many
    dporch events the scheduler's own event log keeps (Dask's default, 1,000, would hold
    ~15 minutes of them, which nobody needs twice)."""

    name = "dporch"

    def __init__(self, history: int = 600, max_calls: int = 20000, keep_events: int = 60):
        self.history = history
        self.keep_events = keep_events
        self.series: dict[str, TaskSeries] = {}
        self.units: dict[str, list[dict[str, Any]]] = {}  # per source: the units as last reported
        self.calls: deque[tuple] = deque(maxlen=max_calls)  # (task key, unit, start ms, end ms, rows)
        self.call_count = 0  # calls ever received
        self.sources: dict[str, float] = {}  # source -> when it last sent (wall time)
        self.graphs: dict[str, dict[str, list[dict[str, Any]]]] = {}  # source -> its graph as last sent
        self.graph_count = 0  # changes of the graphs or of the tasks' names: pages redraw the graph then
        self.events = 0
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self._bound_event_log()

    def _bound_event_log(self) -> None:
        """Keep only the last ``keep_events`` dporch events in the scheduler's event log (this
        plugin holds what pages need); a Dask without this private structure keeps its default."""
        try:
            topic = self.scheduler._broker._topics[TOPIC]
            if topic.events.maxlen != self.keep_events:
                topic.events = deque(topic.events, maxlen=self.keep_events)
        except Exception:  # noqa: BLE001 - only an optimisation
            pass

    def log_event(self, topic: str, msg: Any) -> None:
        if topic != TOPIC:
            return
        try:
            self.ingest(json.loads(msg) if isinstance(msg, (str, bytes)) else msg)
        except Exception:  # noqa: BLE001 - a malformed event is dropped, the scheduler goes on
            log.warning("dropped a malformed dporch event", exc_info=True)

    # -- taking events in ----------------------------------------------------------------------------
    def key(self, source: str, task_id: str) -> str:
        """How a task is named on the page: its id, with its server when several publish."""
        return task_id if len(self.sources) <= 1 else f"{task_id} @ {source}"

    def ingest(self, ev: dict[str, Any]) -> None:
        source, t = str(ev["source"]), float(ev["time"])
        if ev.get("closing"):  # that dporch serve stopped
            self._forget(source)
            return
        if source not in self.sources and self.sources:
            self.sources[source] = t
            self._rekey()
        self.sources[source] = t
        self.events += 1
        fields = ev["task_fields"]
        seen = set()
        for row in ev["tasks"]:
            sample = dict(zip(fields, row))
            key = self.key(source, str(sample["id"]))
            seen.add(key)
            s = self.series.get(key)
            if s is None:
                s = self.series[key] = TaskSeries(key, str(sample["id"]), source, self.history)
            s.append(t, sample)
        self._drop({k for k, s in self.series.items() if s.source == source and k not in seen})  # deleted tasks
        ufields = ev["unit_fields"]
        units = [dict(zip(ufields, row)) for row in ev["units"]]
        for u in units:
            u["task"] = self.key(source, str(u["task"]))
        self.units[source] = [u for u in units if u.get("status") != "removed"]
        ms = t * 1000
        for i, start, duration, rows in ev["calls"]:
            u = units[i]
            self.calls.append((u["task"], u["id"], ms + start, ms + start + duration, rows))
        self.call_count += len(ev["calls"])
        if ev.get("graph") is not None:
            graph = {"nodes": [dict(zip(("id", "kind", "layer", "row"), n)) for n in ev["graph"]["nodes"]],
                     "edges": [dict(zip(("from", "to", "via"), e)) for e in ev["graph"]["edges"]]}
            if self.graphs.get(source) != graph:
                self.graphs[source] = graph
                self.graph_count += 1
        self._forget_silent(t)

    def _rekey(self) -> None:
        """The number of servers publishing went past one or back to one: names become
        'task @ server', or plain task ids again."""
        old, self.series = self.series, {}
        changed = False
        for k, s in old.items():
            s.key = self.key(s.source, s.task_id)
            changed |= s.key != k
            self.series[s.key] = s
        if changed:
            self.calls.clear()  # the unit stream starts over under the new names
            self.graph_count += 1

    def _forget_silent(self, now: float) -> None:
        for source, last in list(self.sources.items()):
            if now - last > SOURCE_TIMEOUT:
                self._forget(source)

    def _forget(self, source: str) -> None:
        if self.sources.pop(source, None) is None:
            return
        self.units.pop(source, None)
        if self.graphs.pop(source, None) is not None:
            self.graph_count += 1
        self._drop({k for k, s in self.series.items() if s.source == source})
        self._rekey()

    def _drop(self, keys: set[str]) -> None:
        """Tasks gone: their series, and their calls from the unit stream."""
        if not keys:
            return
        for key in keys:
            del self.series[key]
        kept = [c for c in self.calls if c[0] not in keys]
        self.calls.clear()
        self.calls.extend(kept)

    # -- what pages read ------------------------------------------------------------------------------
    def task_keys(self) -> list[str]:
        return sorted(self.series)

    def all_units(self) -> list[dict[str, Any]]:
        return [u for units in self.units.values() for u in units]

    def graph(self) -> dict[str, list[dict[str, Any]]]:
        """Every server's graph, one below the other: nodes ``{key, task, kind, layer, row,
        status}`` named as on the page (status: the task's latest), edges ``{from, to, via}``
        between those names."""
        nodes: list[dict[str, Any]] = []
        edges: list[dict[str, Any]] = []
        top = 0
        for source in sorted(self.graphs):
            g = self.graphs[source]
            for n in g["nodes"]:
                key = self.key(source, str(n["id"]))
                s = self.series.get(key)
                nodes.append({"key": key, "task": n["id"], "kind": n["kind"], "layer": n["layer"],
                              "row": top + n["row"], "status": s.latest.get("status") if s else None})
            edges += [{"from": self.key(source, str(e["from"])), "to": self.key(source, str(e["to"])),
                       "via": e["via"]} for e in g["edges"]]
            top += max((n["row"] for n in g["nodes"]), default=-1) + 1
        return {"nodes": nodes, "edges": edges}

    def calls_since(self, count: int) -> list[tuple]:
        n = min(self.call_count - count, len(self.calls))
        if n <= 0:
            return []
        out = list(itertools.islice(reversed(self.calls), n))
        out.reverse()
        return out

    def status(self) -> dict[str, Any]:
        now = time.time()
        return {"sources": {s: round(now - t, 1) for s, t in self.sources.items()}, "events": self.events,
                "tasks": len(self.series), "calls": self.call_count}
