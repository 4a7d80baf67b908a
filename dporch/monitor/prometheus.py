"""``/metrics``: the tasks' figures in the Prometheus text format (prometheus_client).

Everything is read at scrape time from the tasks themselves (counters are exact at that moment;
nothing runs between scrapes), with the latency histogram and the units' busy seconds that the
:class:`~.sampler.Monitor` folds from the samples the tasks keep. The registry also has the
standard process collector (``process_cpu_seconds_total``, memory, open files)."""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric,
                                    StateSetMetricFamily)

from .sampler import LATENCY_BUCKETS, Monitor

__all__ = ["TaskCollector", "make_registry", "exposition", "CONTENT_TYPE_LATEST"]

STATES = ("ready", "running", "paused", "stopped", "error")


class TaskCollector:
    """A prometheus_client collector over every task of the monitor's manager."""

    def __init__(self, monitor: Monitor):
        self.monitor = monitor

    def describe(self) -> list[Metric]:
        return []  # the series depend on the tasks: collected at each scrape only

    def collect(self) -> Iterator[Metric]:
        t = ["task"]
        u = ["task", "unit"]
        rows_in = CounterMetricFamily("dporch_task_rows_in", "Rows accepted into the task (valid, numbered).", labels=t)
        processed = CounterMetricFamily("dporch_task_rows_processed",
                                        "Rows the compute units ran through the scripts without error.", labels=t)
        rows_out = CounterMetricFamily("dporch_task_rows_out", "Output rows the task produced.", labels=t)
        errors = CounterMetricFamily("dporch_task_errors",
                                     "Error records: rejected input rows, failed rows, lost units, output errors.",
                                     labels=t)
        latency = HistogramMetricFamily("dporch_task_latency_seconds",
                                        "Time from a row's arrival to its result being handled (sampled: up to "
                                        "16 rows per batch).", labels=t)
        load = GaugeMetricFamily("dporch_task_load_rate", "Load rate of the compute pool (the autoscaling formula).",
                                 labels=t)
        threshold = GaugeMetricFamily("dporch_task_scale_threshold", "Load rate above which the pool grows.", labels=t)
        size = GaugeMetricFamily("dporch_task_pool_size", "Compute units the task holds now.", labels=t)
        max_size = GaugeMetricFamily("dporch_task_pool_max_size", "Most compute units the pool may have.", labels=t)
        busy = GaugeMetricFamily("dporch_task_units_busy", "Compute units with a call in flight.", labels=t)
        queue = GaugeMetricFamily("dporch_task_queue_length", "Rows waiting for a compute unit or in flight.", labels=t)
        state = StateSetMetricFamily("dporch_task_state", "The task's state.", labels=t)
        unit_rows = CounterMetricFamily("dporch_unit_rows", "Rows a compute unit returned results for.", labels=u)
        unit_busy = CounterMetricFamily("dporch_unit_busy_seconds",
                                        "Seconds during which a compute unit had at least one call in flight.",
                                        labels=u)
        unit_keys = GaugeMetricFamily("dporch_unit_keys", "Keys routed to a compute unit.", labels=u)
        unit_flight = GaugeMetricFamily("dporch_unit_in_flight", "Calls (batches) in flight to a compute unit.",
                                        labels=u)
        unit_info = GaugeMetricFamily("dporch_unit_info", "A compute unit's worker (value 1).",
                                      labels=["task", "unit", "worker"])
        monitor = self.monitor
        for tid, task in list(monitor.manager.tasks.items()):
            tr = monitor.fold(task)
            lab = [tid]
            rows_in.add_metric(lab, task.next_seq)
            processed.add_metric(lab, task.processed)
            rows_out.add_metric(lab, task.buffer.total)
            errors.add_metric(lab, task.error_count)
            cumulative, buckets = 0, []
            for bound, n in zip(LATENCY_BUCKETS, tr.buckets):
                cumulative += n
                buckets.append((_bound(bound), cumulative))
            buckets.append(("+Inf", tr.latency_count))
            latency.add_metric(lab, buckets, tr.latency_sum)
            pool = monitor.live_pool(task)
            cfg = task.config.compute_pool
            load.add_metric(lab, task.load() if pool is not None else 0.0)
            threshold.add_metric(lab, cfg.scale_threshold)
            size.add_metric(lab, pool.size if pool is not None else 0)
            max_size.add_metric(lab, cfg.max_size)
            busy.add_metric(lab, pool.busy_units if pool is not None else 0)
            queue.add_metric(lab, pool.queue_length if pool is not None else 0)
            state.add_metric(lab, {s: task.state.value == s for s in STATES})
            if task.pool is None:
                continue
            routes = task.pool.router.load
            for slot, unit in task.pool.units.items():
                ul = [tid, unit.uid]
                ut = tr.units.get(unit.uid)
                unit_rows.add_metric(ul, unit.rows)
                unit_busy.add_metric(ul, ut.busy if ut is not None else 0.0)
                unit_keys.add_metric(ul, routes.get(slot, 0))
                unit_flight.add_metric(ul, len(unit.calls))
                unit_info.add_metric([tid, unit.uid, unit.worker or ""], 1)
        yield from (rows_in, processed, rows_out, errors, latency, load, threshold, size, max_size, busy, queue,
                    state, unit_rows, unit_busy, unit_keys, unit_flight, unit_info)


def _bound(x: float) -> str:
    return repr(float(x))


def make_registry(monitor: Monitor) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TaskCollector(monitor))  # type: ignore[arg-type]
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: Any) -> bytes:
    """The text format of every metric of ``registry``."""
    return generate_latest(registry)
