"""The public client of the dporch API: ``from dporch.client import Client``.

:class:`Client` is blocking, :class:`AsyncClient` pipelines requests; both have one method per
action (docs/api.md) and raise :class:`DporchAPIError`, whose ``code`` is the server's."""

from .api.client import AsyncClient, Client, DporchAPIError, TaskSummary

__all__ = ["Client", "AsyncClient", "DporchAPIError", "TaskSummary"]
