"""Scheduler preload: ``dask scheduler --preload dporch.dashboard.preload`` (or
``LocalCluster(scheduler_kwargs={"preload": [PRELOAD]})``).

Importing it adds the ``/dporch`` page to the dashboard's pages and *dporch* to its top menu
(Dask imports preloads before it builds the dashboard's Bokeh server, which reads both then);
``dask_setup`` gives each scheduler the :class:`~.plugin.DporchPlugin` and marks the scheduler
(metadata ``dporch-dashboard``) so that dporch serve knows its events are wanted. The standard
pages are left as they are."""

from __future__ import annotations

import logging
from typing import Any

from . import METADATA_KEY, FORMAT
from .plugin import DporchPlugin

__all__ = ["dask_setup", "PAGE"]

log = logging.getLogger("dporch.dashboard")
PAGE = "/dporch"


def _page(scheduler: Any, extra: dict[str, Any], doc: Any) -> None:
    from .page import dporch_doc  # Bokeh models are built only when a page is opened

    dporch_doc(scheduler, extra, doc)


def _register_page() -> bool:
    try:
        from distributed.dashboard import scheduler as dashboard
    except ImportError:  # no bokeh: Dask runs without a dashboard, the plugin still keeps the figures
        return False
    dashboard.applications.setdefault(PAGE, _page)
    original = dashboard.template_variables
    if getattr(original, "_dporch", False):
        return True

    def template_variables(scheduler: Any) -> dict[str, Any]:
        variables = original(scheduler)  # memoized by Dask: one dict per scheduler
        pages = variables["pages"]
        if "dporch" not in pages:
            pages.insert(pages.index("info") if "info" in pages else len(pages), "dporch")
        return variables

    template_variables._dporch = True  # type: ignore[attr-defined]
    dashboard.template_variables = template_variables
    return True


HAS_PAGE = _register_page()


def dask_setup(scheduler: Any) -> None:
    scheduler.add_plugin(DporchPlugin(), name=DporchPlugin.name, idempotent=True)
    scheduler.set_metadata(keys=[METADATA_KEY], value={"format": FORMAT, "page": PAGE if HAS_PAGE else None})
