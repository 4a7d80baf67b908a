"""The JSON-lines API over a real socket: every action, every error code, pipelining, many
clients, slow subscribers, limits, tokens and restart persistence."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from dporch.api.protocol import ERROR_CODES, MAX_LINE
from dporch.client import AsyncClient, Client, DporchAPIError

from ..orchestration.conftest import SEQ_SCRIPT, rows_text, seq_task_in
from ..conftest import wait_for
from .conftest import start_service


def seq_config(tmp_path: Path, tid: str = "t1", **extra) -> dict:
    return seq_task_in(tmp_path, tid, initial_size=1, max_size=2, **extra)


def raw(port: int, *lines: bytes) -> list[dict]:
    """Send raw request lines on one connection; the responses, in order."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        for line in lines:
            s.sendall(line)
        f = s.makefile("rb")
        return [json.loads(f.readline()) for _ in lines]


def test_task_lifecycle_and_data_actions(server, tmp_path):
    data_dir = Path(server.service.api.data_dirs[0])
    (data_dir / "more.csv").write_text(rows_text(50, start=100))
    with Client("127.0.0.1", server.port) as c:
        assert c.ping() == {"pong": True}
        info = c.server_info()
        assert info["version"] and info["scheduler"].startswith("tcp://") and info["uptime_seconds"] >= 0
        assert c.create_task(seq_config(tmp_path)) == {"task_id": "t1"}
        [summary] = c.list_tasks()["tasks"]
        assert summary == {"id": "t1", "name": "测试任务", "status": "ready", "compute_pool_size": 0, "max_pool_size": 2,
                           "processed_count": 0}
        assert c.start_task("t1")["status"] == "running"
        pushed = c.push_data("t1", [{"k": "A", "seq": i, "x": 1} for i in range(10)] + [{"k": "A", "seq": "bad"}])
        assert pushed["accepted_count"] == 10 and pushed["errors"][0]["column"] == "seq"
        att = c.attach_file("t1", str(data_dir / "more.csv"))
        assert att["processed_count"] == 50
        wait_for(lambda: c.get_task("t1")["stats"]["processed_count"] == 60)
        task = c.get_task("t1")
        assert task["config"]["routing"]["key_column"] == "k" and task["stats"]["error_count"] == 1
        out = c.fetch_output("t1", limit=5, offset=2)
        assert out["total_count"] == 60 and len(out["rows"]) == 5 and out["first_index"] == 0
        assert c.get_errors("t1")["errors"][0]["stage"] == "input"
        assert c.update_task("t1", {"output": {"buffer_size": 10}})["applied"] == ["output.buffer_size"]
        assert c.pause_task("t1")["status"] == "paused"
        with pytest.raises(DporchAPIError) as e:
            c.push_data("t1", [{"k": "A", "seq": 99}])
        assert e.value.code == "invalid_state"
        assert c.resume_task("t1")["status"] == "running"
        assert c.stop_task("t1")["status"] == "stopped"
        assert c.start_task("t1")["status"] == "running"
        c.stop_task("t1")
        c.delete_task("t1")
        assert c.list_tasks()["tasks"] == []


def test_every_error_code(server, tmp_path):
    port = server.port
    big = b'{"action": "ping", "params": {"pad": "' + b"x" * (MAX_LINE + 10) + b'"}}\n'
    responses = raw(port,
                    b"{not json\n",
                    b'{"action": "fly"}\n',
                    b'{"action": "get_task", "params": {}}\n',
                    b'{"action": "get_task", "params": {"task_id": "nope"}, "id": 7}\n',
                    json.dumps({"action": "create_task", "params": {"id": "bad", "scripts": []}}).encode() + b"\n",
                    big,
                    b'{"action": "ping"}\n')
    codes = [r.get("code") for r in responses]
    assert codes == ["bad_request", "unknown_action", "bad_request", "not_found", "invalid_config", "too_large", None]
    assert responses[3]["id"] == 7 and "known tasks" in responses[3]["message"]
    assert responses[6]["status"] == "ok"  # the connection stayed usable
    with Client("127.0.0.1", port) as c:
        c.create_task(seq_config(tmp_path, "s"))
        with pytest.raises(DporchAPIError) as e:
            c.pause_task("s")
        assert e.value.code == "invalid_state" and "allowed now" in e.value.message
        with pytest.raises(DporchAPIError) as e:
            c.attach_file("s", "/etc/passwd")
        assert e.value.code == "bad_request" and "outside the data directories" in e.value.message
        with pytest.raises(DporchAPIError) as e:
            c.attach_file("s", str(Path(server.service.api.data_dirs[0]) / ".." / "x.csv"))
        assert "outside" in e.value.message
    assert set(ERROR_CODES) >= set(codes) - {None}


def test_token_and_internal_codes(scheduler, tmp_path):
    s = start_service(scheduler, tmp_path / "st", token="sekret")
    try:
        r = raw(s.port, b'{"action": "ping"}\n', b'{"action": "ping", "token": "sekret"}\n')
        assert r[0]["code"] == "unauthorized" and r[1]["status"] == "ok"
    finally:
        s.stop()


def test_pipelined_requests_from_fifty_clients_while_streaming(server, tmp_path):
    with Client("127.0.0.1", server.port) as c:
        c.create_task(seq_config(tmp_path, "busy"))
        c.start_task("busy")
    errors: list[BaseException] = []

    async def client(n: int) -> None:
        async with AsyncClient("127.0.0.1", server.port) as ac:
            replies = await asyncio.gather(*(ac.get_task("busy") for _ in range(5)), ac.list_tasks(),
                                           ac.push_data("busy", [{"k": f"C{n}", "seq": i, "x": 1} for i in range(20)]))
            assert replies[-1]["accepted_count"] == 20
            assert replies[-2]["tasks"][0]["id"] == "busy"

    def run() -> None:
        async def main() -> None:
            await asyncio.gather(*(client(n) for n in range(50)))
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(120)
    assert not errors, errors
    with Client("127.0.0.1", server.port) as c:
        wait_for(lambda: c.get_task("busy")["stats"]["processed_count"] == 1000)


def test_subscribe_filter_and_slow_consumer(server, tmp_path):
    with Client("127.0.0.1", server.port) as c:
        c.create_task(seq_config(tmp_path, "sub"))
        c.start_task("sub")
    sub = Client("127.0.0.1", server.port)
    it = sub.subscribe("sub", {"k": "A"})
    with Client("127.0.0.1", server.port) as c:
        c.push_data("sub", [{"k": "AB"[i % 2], "seq": i, "x": 1} for i in range(10)])
        got = [next(it) for _ in range(5)]
        assert [r["seq"] for r in got] == [0, 2, 4, 6, 8] and all(r["k"] == "A" for r in got)
        # A subscriber that does not read: its queue is bounded, the rest is dropped and counted.
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b'{"action": "subscribe_output", "params": {"task_id": "sub"}}\n')
        time.sleep(0.3)
        for j in range(10):
            c.push_data("sub", [{"k": "B", "seq": 100 + j * 1000 + i, "x": 1} for i in range(1000)])
        wait_for(lambda: c.get_task("sub")["stats"]["processed_count"] == 10010, timeout=60)
        buffer = server.service.manager.get("sub").buffer
        unfiltered = [s for s in buffer.subscribers if not s.filter]
        assert len(unfiltered) == 1 and unfiltered[0].dropped > 0 and unfiltered[0].queue.qsize() <= 1000
        assert c.ping() == {"pong": True}  # the server and the other clients are unaffected
        slow.close()
    sub.close()


def test_restart_restores_api_tasks(scheduler, tmp_path):
    state = tmp_path / "state"
    s = start_service(scheduler, state)
    try:
        with Client("127.0.0.1", s.port) as c:
            c.create_task(seq_config(tmp_path, "keep"))
            c.start_task("keep")
            c.create_task(seq_config(tmp_path, "idle"))
            c.create_task(seq_config(tmp_path, "gone"))
            c.delete_task("gone")
    finally:
        s.stop()
    s2 = start_service(scheduler, state)
    try:
        with Client("127.0.0.1", s2.port) as c:
            tasks = {t["id"]: t["status"] for t in c.list_tasks()["tasks"]}
            assert tasks == {"keep": "running", "idle": "ready"}
            c.stop_task("keep")
    finally:
        s2.stop()
    s3 = start_service(scheduler, state, restore_running=False)
    try:
        with Client("127.0.0.1", s3.port) as c:
            assert {t["id"]: t["status"] for t in c.list_tasks()["tasks"]} == {"keep": "stopped", "idle": "ready"}
    finally:
        s3.stop()


def chain_configs(tmp_path: Path) -> list[dict]:
    """Three tasks: t1 (rows over TCP) feeds t2 in process, t2's files feed t3, a batch task."""
    reader = tmp_path / "reader.dp"
    reader.write_text("-- INPUT k:string, seq:number --\n-- OUTPUT k:string, seq:number --\nreturn [k, seq]\n")
    t2_out = str(tmp_path / "out" / "t2" / "{k}.csv")
    t2 = seq_config(tmp_path, "t2", scripts=[str(reader)], input={"type": "task", "task": "t1"},
                    output={"type": "file", "path": t2_out, "mode": "split"})
    t3 = seq_config(tmp_path, "t3", name="三", scripts=[str(reader)], input={"type": "file", "path": t2_out},
                    output={"type": "none"})
    del t2["name"], t2["schema"], t3["schema"]
    return [seq_config(tmp_path, "t1"), t2, t3]


def test_get_graph_lays_out_the_tasks_with_their_status(server, tmp_path):
    with Client("127.0.0.1", server.port) as c:
        assert c.get_graph() == {"nodes": [], "edges": [], "issues": []}
        for cfg in reversed(chain_configs(tmp_path)):  # created readers first: the graph does not care
            c.create_task(cfg)
        c.start_task("t1")
        graph = c.get_graph()
        assert graph["nodes"] == [
            {"id": "t1", "kind": "realtime", "layer": 0, "row": 0, "name": "测试任务", "status": "running"},
            {"id": "t2", "kind": "realtime", "layer": 1, "row": 0, "name": "", "status": "ready"},
            {"id": "t3", "kind": "batch", "layer": 2, "row": 0, "name": "三", "status": "ready"}]
        assert graph["edges"] == [{"from": "t1", "to": "t2", "via": "task"}, {"from": "t2", "to": "t3", "via": "file"}]
        assert graph["issues"] == []
        c.stop_task("t1")
        graph = c.get_graph()
        assert graph["nodes"][0]["status"] == "stopped"
        # a cycle that create_task lets in (x reads y's files, y reads x's rows): drawn, and said
        x_out, y_out = str(tmp_path / "out" / "x" / "{k}.csv"), str(tmp_path / "out" / "y" / "{k}.csv")
        c.create_task(seq_config(tmp_path, "x", input={"type": "file", "path": y_out},
                                 output={"type": "file", "path": x_out, "mode": "split"}))
        c.create_task(seq_config(tmp_path, "y", input={"type": "task", "task": "x"},
                                 output={"type": "file", "path": y_out, "mode": "split"}))
        graph = c.get_graph()
        at = {n["id"]: (n["layer"], n["row"]) for n in graph["nodes"]}
        assert at == {"t1": (0, 0), "x": (0, 1), "t2": (1, 0), "y": (1, 1), "t3": (2, 0)}
        assert graph["issues"] == [{"file": None, "task": "x", "field": "input",
                                    "message": "tasks feed each other in a cycle: x -> y -> x"}]
    bad = raw(server.port, b'{"action":"get_graph","params":"all","id":1}\n', b'{"action":"get_graph","id":2}\n')
    assert bad[0]["code"] == "bad_request" and bad[1]["status"] == "ok" and bad[1]["id"] == 2


def test_config_tasks_and_api_tasks_coexist(scheduler, tmp_path):
    (tmp_path / "seq.dp").write_text(SEQ_SCRIPT)
    toml = tmp_path / "tasks.toml"
    toml.write_text('[[task]]\nid = "from-file"\nenabled = false\nscripts = ["seq.dp"]\n')
    s = start_service(scheduler, tmp_path / "state", config=toml)
    try:
        with Client("127.0.0.1", s.port) as c:
            with pytest.raises(DporchAPIError) as e:
                c.create_task(seq_config(tmp_path, "from-file"))
            assert e.value.code == "invalid_config" and "already exists" in e.value.message
            c.create_task(seq_config(tmp_path, "from-api"))
            assert {t["id"] for t in c.list_tasks()["tasks"]} == {"from-file", "from-api"}
    finally:
        s.stop()


def test_result_types_name_exactly_the_keys_the_server_sends(server, tmp_path):
    from typing import get_type_hints

    from dporch.api import results

    def keys(t: type) -> set[str]:
        return set(get_type_hints(t))

    data_dir = Path(server.service.api.data_dirs[0])
    (data_dir / "rows.csv").write_text(rows_text(5))
    with Client("127.0.0.1", server.port) as c:
        got = {"Pong": c.ping(), "ServerInfo": c.server_info(), "TaskCreated": c.create_task(seq_config(tmp_path))}
        got["TaskList"] = c.list_tasks()
        got["TaskSummary"] = got["TaskList"]["tasks"][0]
        got["TaskStatus"] = c.start_task("t1")
        got["TaskUpdated"] = c.update_task("t1", {"compute_pool": {"max_size": 3}})
        got["TaskInfo"] = c.get_task("t1")
        got["PushResult"] = c.push_data("t1", [{"k": "A", "seq": 1, "x": 1}])
        got["AttachResult"] = c.attach_file("t1", str(data_dir / "rows.csv"))
        got["OutputPage"] = c.fetch_output("t1")
        got["ErrorList"] = c.get_errors("t1")
        c.stop_task("t1")
        c.create_task(chain_configs(tmp_path)[1])
        got["TaskGraph"] = c.get_graph()
        got["GraphNode"] = got["TaskGraph"]["nodes"][0]
        got["GraphEdge"] = got["TaskGraph"]["edges"][0]
    assert set(got) == set(results.__all__)
    for name, data in got.items():
        assert set(data) == keys(getattr(results, name)), name
