"""The orchestration layer's errors; ``code`` is the API error code each one answers with."""

from __future__ import annotations

__all__ = ["OrchestrationError", "IllegalTransition", "NotFound", "ClusterUnavailable", "PoolError"]


class OrchestrationError(Exception):
    """Base of the orchestration errors."""

    code = "internal"


class IllegalTransition(OrchestrationError):
    """The action is not allowed in the task's current state (or while it changes state)."""

    code = "invalid_state"


class NotFound(OrchestrationError):
    code = "not_found"


class ClusterUnavailable(OrchestrationError):
    """The Dask scheduler cannot be reached, or it has no worker to run a compute unit on."""

    code = "unavailable"


class PoolError(OrchestrationError):
    """The compute pool cannot go on (no unit left, a unit that cannot be rebuilt)."""
