"""Fuzzing the API and a task's data path (hypothesis, bounded): every request line gets an
answer, never `internal`; the server logs no traceback; a control task keeps processing."""

from __future__ import annotations

import json
import logging
import socket

from hypothesis import HealthCheck, given, settings, strategies as st

from dporch.api.protocol import ACTIONS
from dporch.client import Client

from ..orchestration.conftest import free_port
from .test_api import seq_config, wait_for

PARAM_NAMES = ["task_id", "data", "limit", "offset", "filter", "file_path", "updates", "fresh", "subscription",
               "id", "scripts", "schema", "input", "output", "compute_pool", "routing", "name", "checkpoint"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                    st.floats(allow_nan=False), st.text(max_size=20), st.sampled_from(["nope", "fz", "..", "/etc/passwd"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(PARAM_NAMES) | st.text(max_size=8), inner, max_size=4), max_leaves=12)
requests = st.fixed_dictionaries({"action": st.sampled_from([a for a in ACTIONS if a != "subscribe_output"])
                                  | st.text(max_size=10)},
                                 optional={"params": st.dictionaries(st.sampled_from(PARAM_NAMES), values, max_size=5)
                                           | values, "id": values})
hostile_bytes = st.sampled_from([b"\xff\xfe{}", b"{" * 5000, b'{"action":"ping","id":"\\udc00"}', b"null", b"[]",
                                 b'{"action":"push_data","params":{"task_id":"control","data":[{"k":["x"]}]}}',
                                 b'{"action":"push_data","params":{"task_id":"control","data":"rows"}}'])


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_fuzzed_requests_are_answered_and_the_control_task_keeps_working(server, tmp_path):
    handler = Collect()
    logging.getLogger().addHandler(handler)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    reader = sock.makefile("rb")
    try:
        with Client("127.0.0.1", server.port) as c:
            c.create_task(seq_config(tmp_path, "control", input={"type": "tcp", "port": free_port()}))
            c.start_task("control")

            @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
            @given(st.one_of(requests.map(lambda r: json.dumps(r).encode()), hostile_bytes))
            def one(line: bytes) -> None:
                if b"control" in line and any(a.encode() in line for a in ("delete", "stop", "pause", "update", "reset")):
                    return  # leave the control task running
                sock.sendall(line.replace(b"\n", b" ") + b"\n")
                reply = json.loads(reader.readline())
                assert reply["status"] in ("ok", "error"), reply
                assert reply.get("code") != "internal", (line[:200], reply)

            one()
            for i in range(5):
                c.push_data("control", [{"k": "A", "seq": i, "x": 1}])
            wait_for(lambda: c.get_task("control")["stats"]["processed_count"] >= 5)
            assert c.get_task("control")["status"] == "running"
            assert c.ping() == {"pong": True}
    finally:
        sock.close()
        logging.getLogger().removeHandler(handler)
    tracebacks = [r for r in handler.records if r.exc_info and r.name.startswith("dporch")]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


def test_fuzzed_rows_become_error_records_and_good_rows_still_flow(server, tmp_path):
    handler = Collect()
    logging.getLogger().addHandler(handler)
    csv_port, json_port = free_port(), free_port()
    try:
        with Client("127.0.0.1", server.port) as c:
            c.create_task(seq_config(tmp_path, "fz-csv", input={"type": "tcp", "port": csv_port}))
            c.create_task(seq_config(tmp_path, "fz-json", input={"type": "tcp", "port": json_port, "format": "json"}))
            c.start_task("fz-csv")
            c.start_task("fz-json")
            sent = {"fz-csv": 0, "fz-json": 0}
            chunks = st.binary(max_size=300) | st.lists(
                st.sampled_from([b"A,1,1", b'"', b",", b"\n", b"\r\n", b"\xff", b"{", b"}", b"[", b'"k":', b"\\ud800",
                                 b'{"k":"B","seq":1,"x":1}', b"k,seq,x"]), max_size=30).map(b"".join)

            @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
            @given(chunks, st.lists(st.dictionaries(st.sampled_from(["k", "seq", "x", "other"]), values, max_size=4),
                                    max_size=5))
            def one(garbage: bytes, records: list) -> None:
                for tid, port, head, good in (("fz-csv", csv_port, b"k,seq,x\n", b"G,1,1\n"),
                                              ("fz-json", json_port, b"", b'{"k":"G","seq":1,"x":1}\n')):
                    with socket.create_connection(("127.0.0.1", port)) as s:
                        s.sendall(head + garbage + b"\n" + good)
                    sent[tid] += 1
                    reply = c.push_data(tid, records)
                    assert set(reply) == {"accepted_count", "errors"}

            one()
            for tid in sent:  # every good row sent after the garbage was processed
                wait_for(lambda: sum(1 for r in c.fetch_output(tid, limit=10_000)["rows"] if r["k"] == "G")
                         == sent[tid], timeout=30)
                assert c.get_task(tid)["status"] == "running"
    finally:
        logging.getLogger().removeHandler(handler)
    tracebacks = [r for r in handler.records if r.exc_info and r.name.startswith("dporch")]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
