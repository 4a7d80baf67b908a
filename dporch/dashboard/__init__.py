"""The dporch page of the Dask dashboard, on the scheduler's side (docs/monitoring.md).

``dask scheduler --preload dporch.dashboard.preload`` (``make serve`` does this, and so does the
LocalCluster that ``dporch serve`` starts) adds a *dporch* page to the dashboard's top menu, at
``/dporch``, and a scheduler plugin that receives what ``dporch serve`` publishes: once a second
it logs one event under the topic ``dporch`` (``Client.log_event``, Dask's own event channel);
the scheduler hands every event to its plugins, and the plugin keeps ten minutes of each task's
figures and the latest compute-unit calls for the page.

This package runs inside the scheduler process: it imports distributed and bokeh, and nothing
of the rest of dporch."""

#: The Dask event topic dporch serve publishes its samples under.
TOPIC = "dporch"
#: Scheduler metadata set by the preload: publishers send only where the page can show it.
METADATA_KEY = "dporch-dashboard"
#: The module to give ``dask scheduler --preload``.
PRELOAD = "dporch.dashboard.preload"
#: Version of the event format (see :mod:`dporch.monitor.publish`).
FORMAT = 1

__all__ = ["TOPIC", "METADATA_KEY", "PRELOAD", "FORMAT"]
