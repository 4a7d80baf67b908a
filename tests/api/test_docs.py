"""docs/api.md is executable: every `→` line of its jsonl blocks is sent, in order, on one
connection to a real server, and the answer must match the `←` line that follows it.

Matching is loose where the document says so: an expected object lists a subset of the keys,
lists match element by element, and the string "..." stands for any value. Read-only requests
are retried for a while, since output arrives asynchronously."""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

from .conftest import ROOT, start_service

DOC = ROOT / "docs" / "api.md"
READ_ONLY = {"fetch_output", "get_task", "list_tasks", "get_errors"}


def exchanges(text: str) -> list[tuple[str, Any, int]]:
    """(request line, expected response, line number) for every →/← pair of the jsonl blocks."""
    pairs: list[tuple[str, Any, int]] = []
    pending: tuple[str, int] | None = None
    for block in re.finditer(r"```jsonl\n(.*?)```", text, re.S):
        first = text.count("\n", 0, block.start(1)) + 1
        for n, line in enumerate(block.group(1).splitlines(), first):
            if line.startswith("→ "):
                assert pending is None, f"api.md:{n}: request without a response before it"
                pending = (line[2:], n)
            elif line.startswith("← "):
                assert pending is not None, f"api.md:{n}: response without a request"
                pairs.append((pending[0], json.loads(line[2:]), pending[1]))
                pending = None
    assert pending is None, "api.md ends with a request that has no response"
    return pairs


def mismatch(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where `actual` fails to match `expected`, or None."""
    if expected == "...":
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path or 'response'}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key}: missing in {actual!r}"
            if (m := mismatch(value, actual[key], f"{path}.{key}")) is not None:
                return m
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{path}: expected {len(expected)} items, got {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            if (m := mismatch(e, a, f"{path}[{i}]")) is not None:
                return m
        return None
    return None if expected == actual else f"{path}: expected {expected!r}, got {actual!r}"


class Connection:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.reader = self.sock.makefile("rb")

    def send(self, line: str) -> dict:
        self.sock.sendall(line.encode() + b"\n")
        while True:
            answer = json.loads(self.reader.readline())
            if "event" not in answer:  # output events of a subscription are not answers
                return answer

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def test_every_example_in_api_md_runs_against_a_real_server(scheduler, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the document's paths are relative to the repository
    pairs = exchanges(DOC.read_text(encoding="utf-8"))
    actions = {json.loads(r)["action"] for r, _, _ in pairs if r.startswith("{\"")}
    assert {"create_task", "push_data", "subscribe_output", "attach_file", "reset_task"} <= actions
    server = start_service(scheduler, tmp_path / "state", data_dirs=[str(ROOT / "data")])
    conn = Connection(server.port)
    try:
        for request, expected, line in pairs:
            retry = request.startswith("{\"") and json.loads(request)["action"] in READ_ONLY
            deadline = time.monotonic() + (30 if retry else 0)
            while True:
                problem = mismatch(expected, conn.send(request))
                if problem is None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert problem is None, f"docs/api.md:{line}: {request}\n{problem}"
    finally:
        conn.close()
        server.stop()


def test_the_matcher_is_strict_where_the_document_is():
    assert mismatch({"a": 1, "b": "..."}, {"a": 1, "b": [2], "c": 3}) is None
    assert mismatch({"a": 1}, {"a": 2}) is not None
    assert mismatch({"a": [{"x": 1}]}, {"a": [{"x": 1}, {"x": 2}]}) is not None
    assert mismatch({"a": {"b": 1}}, {"a": {}}) is not None
    assert mismatch(["x"], ["y"]) is not None
