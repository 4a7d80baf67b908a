"""The JSON-lines protocol shared by the server and the client (docs/api.md).

Request:  ``{"action": "...", "params": {...}, "id": <any, optional>, "token": "...", optional}``
Response: ``{"status": "ok", "data": ..., "message": "...", "id": ...}`` or
          ``{"status": "error", "code": "...", "message": "...", "id": ...}``
Stream:   ``{"status": "ok", "event": "output" | "stats", "data": {...}, "id": ...}`` (subscribe_output,
          subscribe_stats)
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

__all__ = ["ERROR_CODES", "ACTIONS", "MAX_LINE", "APIError", "encode", "ok", "error", "to_json_value"]

#: Every error code a response can carry.
ERROR_CODES = ("bad_request", "unknown_action", "not_found", "invalid_state", "invalid_config",
               "too_large", "unauthorized", "internal")

ACTIONS = ("create_task", "delete_task", "update_task", "list_tasks", "get_task", "start_task",
           "pause_task", "resume_task", "stop_task", "reset_task", "push_data", "attach_file",
           "fetch_output", "subscribe_output", "subscribe_stats", "unsubscribe", "get_errors", "get_graph", "ping",
           "server_info")

MAX_LINE = 16 * 1024 * 1024  # a request line may be this long (a 1,000-row push is ~130 KB)


class APIError(Exception):
    """An error response: ``code`` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str):
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message


def to_json_value(v: Any) -> Any:
    """DPLang values as JSON: NaN/inf as strings, decimals as numbers, arrays recursively."""
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v
    if isinstance(v, Decimal):
        return float(v) if v.is_finite() else str(v)
    if isinstance(v, list):
        return [to_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: to_json_value(x) for k, x in v.items()}
    if v is None or isinstance(v, (str, bool, int)):
        return v
    return str(v)


def encode(msg: dict[str, Any]) -> bytes:
    """One response line. Text that is not valid Unicode (a lone surrogate in an echoed value)
    goes out escaped, so an answer is always sent."""
    text = json.dumps(msg, ensure_ascii=False, default=str, separators=(",", ":")) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(msg, ensure_ascii=True, default=str, separators=(",", ":")) + "\n").encode("ascii")


def ok(data: Any = None, message: str = "", rid: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"status": "ok"}
    if data is not None:
        out["data"] = data
    out["message"] = message
    if rid is not None:
        out["id"] = rid
    return out


def error(code: str, message: str, rid: Any = None, issues: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An error answer; ``issues``: the problems of an invalid configuration, one per field."""
    out: dict[str, Any] = {"status": "error", "code": code, "message": message}
    if issues is not None:
        out["issues"] = issues
    if rid is not None:
        out["id"] = rid
    return out
