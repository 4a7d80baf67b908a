"""Task states, the actions each allows (docs/orchestration.md, "Task states"), and error records."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["TaskState", "ALLOWED", "ErrorRecord"]


class TaskState(str, Enum):
    CREATED = "created"
    READY = "ready"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    ERROR = "error"


# action -> the states it may start from (stop also from paused and error)
ALLOWED: dict[str, set[TaskState]] = {
    "start": {TaskState.READY, TaskState.STOPPED},
    "pause": {TaskState.RUNNING},
    "resume": {TaskState.PAUSED},
    "stop": {TaskState.RUNNING, TaskState.PAUSED, TaskState.ERROR},
    "reset": {TaskState.ERROR},
    "delete": {TaskState.CREATED, TaskState.READY, TaskState.STOPPED, TaskState.ERROR},
    "push": {TaskState.RUNNING},
}


@dataclass
class ErrorRecord:
    task: str
    stage: str  # input | script | output | unit | cluster
    message: str
    kind: str = "InputError"
    time: float = 0.0
    line: int | None = None  # input line (input errors) or script line (script errors)
    column: str | None = None
    seq: int | None = None
    key: Any = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}
