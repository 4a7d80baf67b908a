"""The shapes of the API's ``data`` objects, as TypedDicts: what each client method returns.

They are plain dicts at run time (JSON in, JSON out); the types document and check the keys.
docs/api.md shows each one in an example."""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["Pong", "ServerInfo", "TaskCreated", "TaskSummary", "TaskList", "TaskInfo", "TaskStatus",
           "TaskUpdated", "PushResult", "AttachResult", "OutputPage", "ErrorList", "GraphNode", "GraphEdge",
           "TaskGraph"]


class Pong(TypedDict):
    pong: bool


class ServerInfo(TypedDict):
    version: str
    uptime_seconds: float
    api: str
    connections: int
    tasks: int
    running: int
    data_dirs: list[str]
    scheduler: str | None
    dashboard: str | None
    web: str | None  # the web console's address, None without one


class TaskCreated(TypedDict):
    task_id: str


class TaskSummary(TypedDict):
    id: str
    name: str | None
    status: str
    compute_pool_size: int
    max_pool_size: int
    processed_count: int


class TaskList(TypedDict):
    tasks: list[TaskSummary]


class TaskInfo(TypedDict):
    id: str
    name: str | None
    status: str
    allowed_actions: list[str]
    config: dict[str, Any]  # the task table, as in tasks.toml
    columns: dict[str, dict[str, str | None]]  # {"input"|"output": {name: "string" | "number" | "bool" | None}}
    stats: dict[str, Any]  # processed_count, error_count, latency_ms_p99, load_rate, units, log...


class TaskStatus(TypedDict):
    task_id: str
    status: str


class TaskUpdated(TaskStatus):
    applied: list[str]


class PushResult(TypedDict):
    accepted_count: int
    errors: list[dict[str, Any]]


class AttachResult(TypedDict):
    processed_count: int
    error_count: int
    bytes: int


class OutputPage(TypedDict):
    total_count: int
    first_index: int
    rows: list[dict[str, Any]]


class ErrorList(TypedDict):
    error_count: int
    errors: list[dict[str, Any]]


class GraphNode(TypedDict):
    id: str
    name: str  # "" without one
    kind: str  # "batch" (reads a finite input) or "realtime"
    layer: int  # the longest path to the task from a task that reads no task: its column, left to right
    row: int  # its place in the layer, from the top
    status: str


#: An edge: ``from`` feeds ``to``, ``via`` "task" (rows in process) or "file" (files its output path makes).
GraphEdge = TypedDict("GraphEdge", {"from": str, "to": str, "via": str})


class TaskGraph(TypedDict):
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    issues: list[dict[str, Any]]  # {file, task, field, message}: cycles, clashing outputs, unknown upstream tasks
