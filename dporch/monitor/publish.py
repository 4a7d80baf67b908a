"""Send the monitor's samples to the Dask scheduler, for the dashboard's dporch page.

Why Dask events: the figures are made in the ``dporch serve`` process (tasks, queues, latencies
and the actor calls live there, not on the workers, and actor calls are no Dask tasks), and
``Client.log_event`` is Dask's own channel from a client to the scheduler: one small message a
second over the connection the client already has, handed by the scheduler to every scheduler
plugin (the dporch plugin keeps the history) and readable by anyone with
``Client.get_events("dporch")`` or ``subscribe_topic``. Worker metrics would need a worker
plugin in every worker and would still miss the orchestrator's own figures.

One event: a JSON text (compact in the scheduler's bounded event log) holding, per task, the
figures of :data:`TASK_FIELDS`, per unit those of :data:`UNIT_FIELDS`, and the actor calls
answered since the previous event as ``[unit index, start (ms before time), duration (ms),
rows]``. The graph of the tasks (nodes ``[id, kind, layer, row]``, edges ``[from, to, via]``,
laid out by :func:`~dporch.orchestration.workflow.layout`: the page only draws it) rides
along only when it changed, and after each look at the scheduler's metadata, so that a
scheduler that restarted gets it again. Events go only to a scheduler that has the dporch
plugin (its metadata says so; checked every 30 s), and a tick is skipped while the previous
event is still on its way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable

from ..dashboard import FORMAT, METADATA_KEY, TOPIC
from .sampler import Monitor

__all__ = ["DashboardPublisher", "encode_event", "TASK_FIELDS", "UNIT_FIELDS"]

log = logging.getLogger("dporch.monitor")

TASK_FIELDS = ("id", "name", "status", "rows_per_second", "load_rate", "scale_threshold", "compute_pool_size",
               "active_workers", "max_pool_size", "queue_length", "latency_ms_p50", "latency_ms_p99",
               "error_count", "processed_count", "output_rows")
UNIT_FIELDS = ("id", "worker", "status", "keys", "rows", "rows_per_second", "busy_fraction", "in_flight")
MAX_SPANS = 2000  # the newest calls of a second, at most
CHECK_EVERY = 30.0  # seconds between looks at the scheduler's metadata


def encode_event(source: str, now: float, interval: float, samples: dict[str, dict[str, Any]],
                 spans: list[tuple], graph: dict[str, list[dict[str, Any]]] | None = None) -> str:
    units, index = [], {}
    for tid, s in samples.items():
        for u in s["units"]:
            index[(tid, u["id"])] = len(units)
            units.append([tid, *(u[f] for f in UNIT_FIELDS)])
    calls = []
    for tid, uid, sent, answered, rows in spans[-MAX_SPANS:]:
        i = index.get((tid, uid))
        if i is None:  # a unit removed since: it still ran these calls
            i = index[(tid, uid)] = len(units)
            units.append([tid, uid, "", "removed", 0, 0, 0.0, 0.0, 0])
        calls.append([i, round((sent - now) * 1000, 2), round((answered - sent) * 1000, 2), rows])
    event: dict[str, Any] = {"v": FORMAT, "source": source, "time": now, "interval": interval,
                             "task_fields": TASK_FIELDS,
                             "tasks": [[s[f] for f in TASK_FIELDS] for s in samples.values()],
                             "unit_fields": ("task", *UNIT_FIELDS), "units": units, "calls": calls}
    if graph is not None:
        event["graph"] = {"nodes": [[n["id"], n["kind"], n["layer"], n["row"]] for n in graph["nodes"]],
                          "edges": [[e["from"], e["to"], e["via"]] for e in graph["edges"]]}
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)


class DashboardPublisher:
    """``client_of()`` returns the Dask client to use now (it changes when the scheduler came
    back); ``source`` names this server in the events (its API address)."""

    def __init__(self, monitor: Monitor, client_of: Callable[[], Any], source: str):
        self.monitor = monitor
        self.client_of = client_of
        self.source = source
        self.enabled: bool | None = None  # the scheduler has the dporch plugin (None: not asked yet)
        self.checked = 0.0
        self.sent = 0
        self.skipped = 0
        self.graph_sent: int | None = None  # the monitor's graph version the scheduler has
        self._sending: asyncio.Future | None = None

    def start(self) -> None:
        self.monitor.listeners.append(self.on_tick)

    async def close(self) -> None:
        """Stop publishing; a scheduler that had our events forgets this server's tasks now
        (one last event says so) rather than showing them until they time out."""
        if self.on_tick in self.monitor.listeners:
            self.monitor.listeners.remove(self.on_tick)
        if self._sending is not None and not self._sending.done():
            try:  # an event on its way must not arrive after the goodbye (it would bring the tasks back)
                await asyncio.wait_for(asyncio.shield(self._sending), 5)
            except Exception:  # noqa: BLE001 - timed out, or the scheduler is gone
                self._sending.cancel()
        client = self.client_of()
        if self.enabled and client is not None and getattr(client, "status", None) == "running":
            try:
                bye = json.dumps({"v": FORMAT, "source": self.source, "time": time.time(), "closing": True})
                await asyncio.wait_for(client.log_event(TOPIC, bye), 2)
            except Exception:  # noqa: BLE001 - the scheduler may be gone already
                pass

    def on_tick(self, now: float, samples: dict[str, dict[str, Any]], spans: list[tuple]) -> None:
        if self._sending is not None and not self._sending.done():
            self.skipped += 1
            return
        self._sending = asyncio.ensure_future(self._send(now, samples, spans))

    async def _send(self, now: float, samples: dict[str, dict[str, Any]], spans: list[tuple]) -> None:
        client = self.client_of()
        if client is None or getattr(client, "status", None) != "running":
            self.enabled = None
            return
        try:
            if self.enabled is None or time.monotonic() - self.checked > CHECK_EVERY:
                self.checked = time.monotonic()
                meta = await asyncio.wait_for(client.get_metadata([METADATA_KEY], default=None), 5)
                self.enabled = meta is not None
                self.graph_sent = None
            if not self.enabled:
                return
            version, graph = self.monitor.graph_version, self.monitor.graph
            event = encode_event(self.source, now, self.monitor.interval, samples, spans,
                                 graph if version != self.graph_sent else None)
            await asyncio.wait_for(client.log_event(TOPIC, event), 5)
            self.sent += 1
            self.graph_sent = version
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the scheduler may be gone; the next tick tries again
            self.enabled = None
            log.debug("dashboard event not sent: %s", exc)
