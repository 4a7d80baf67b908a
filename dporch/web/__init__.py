"""The web console of ``dporch serve`` (docs/monitoring.md): a task list and a page per task,
live over a WebSocket that carries the API's own protocol, and ``/metrics`` for Prometheus.
Beside ``api/``: it uses the API's dispatcher and the monitor, and adds no second
implementation of any action."""

from .server import WebConsole, parse_address

__all__ = ["WebConsole", "parse_address"]
