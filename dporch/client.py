"""The public client of the dporch API: ``from dporch.client import Client``.

:class:`Client` is blocking, :class:`AsyncClient` pipelines requests; both have one method per
action (docs/api.md), with results typed by the TypedDicts below, and raise
:class:`DporchAPIError`, whose ``code`` is the server's."""

from .api.client import AsyncClient, Client, DporchAPIError
from .api.results import (AttachResult, ErrorList, OutputPage, Pong, PushResult, ServerInfo, TaskCreated, TaskInfo,
                          TaskList, TaskStatus, TaskSummary, TaskUpdated)

__all__ = ["Client", "AsyncClient", "DporchAPIError", "Pong", "ServerInfo", "TaskCreated", "TaskSummary", "TaskList",
           "TaskInfo", "TaskStatus", "TaskUpdated", "PushResult", "AttachResult", "OutputPage", "ErrorList"]
