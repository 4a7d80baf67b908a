"""Live metrics of the running tasks, in the ``dporch serve`` process (docs/monitoring.md).

:class:`~.sampler.Monitor` samples every task once a second (rows/s, load, pool, queue,
latency percentiles, per-unit rows/s and busy fraction, the batches each unit ran) and hands
the samples to whoever listens: ``subscribe_stats`` subscribers of the API (the web console),
the publisher that sends them to the Dask scheduler as events for the dashboard's dporch page
(:mod:`.publish`), and the Prometheus collector behind ``/metrics`` (:mod:`.prometheus`).

Layering: api/ and web/ use this package; it reads orchestration/ objects and changes nothing
in them."""

from .sampler import LATENCY_BUCKETS, Monitor, StatsSubscription

__all__ = ["Monitor", "StatsSubscription", "LATENCY_BUCKETS"]
