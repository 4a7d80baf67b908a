"""The web console's server without a browser: the WebSocket is the API's protocol through the
same dispatcher (same answers as TCP), subscribe_stats, create_task from TOML with the line of
each issue, /metrics counters equal to the rows sent, the token, the Host and Origin checks."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dporch.api.app import ServeOptions, serve
from dporch.api.client import Client
from dporch.orchestration.config import ConfigError

from ..orchestration.conftest import free_port
from .conftest import WS, http_get, seq_task, start_console, web_url


def tcp(port: int, *requests: dict) -> list[dict]:
    with socket.create_connection(("127.0.0.1", port)) as s:
        f = s.makefile("rwb")
        out = []
        for r in requests:
            f.write(json.dumps(r).encode() + b"\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if "event" not in msg:
                    out.append(msg)
                    break
        return out


def wait_for(pred, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def metrics(url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    status, _, body = http_get(url + "metrics", headers)
    assert status == 200, body
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_the_websocket_answers_exactly_like_the_tcp_api(console, tmp_path):
    """One protocol: the same requests over TCP and over the WebSocket get the same answers."""
    requests = [
        {"action": "ping", "id": 1},
        {"action": "launch_rockets", "id": 2},
        {"action": "get_task", "params": {}, "id": 3},
        {"action": "get_task", "params": {"task_id": "nope"}, "id": 4},
        {"action": "create_task", "params": {"id": "bad", "scripts": []}, "id": 5},
        {"action": "create_task", "params": {"toml": "id = 'bad'\nscripts = []\n[compute_pool]\ninitial_size = 0\n"},
         "id": 6},
        {"action": "start_task", "params": {"task_id": "bad"}, "id": 7},
        {"action": "subscribe_stats", "params": {"task_id": "nope"}, "id": 8},
        {"action": "list_tasks", "id": 9},
    ]
    over_tcp = tcp(console.port, *requests)
    ws = WS(web_url(console))
    try:
        over_ws = [ws.call(r["action"], r.get("params"), id=r["id"]) for r in requests]
        ws.send_raw("{not json")
        broken = ws.read()
    finally:
        ws.close()
    assert over_ws == over_tcp
    assert [r.get("code") for r in over_ws] == [None, "unknown_action", "bad_request", "not_found", "invalid_config",
                                                "invalid_config", "not_found", "not_found", None]
    assert broken["code"] == "bad_request" and "malformed JSON" in broken["message"]


def test_data_actions_and_subscriptions_over_the_websocket(console, tmp_path):
    ws = WS(web_url(console))
    try:
        assert ws.call("create_task", seq_task(tmp_path))["data"] == {"task_id": "t1"}
        assert ws.call("start_task", {"task_id": "t1"})["data"]["status"] == "running"
        sub = ws.call("subscribe_output", {"task_id": "t1", "filter": {"k": "A"}})
        sid = sub["data"]["subscription"]
        pushed = ws.call("push_data", {"task_id": "t1", "data": [{"k": "A", "seq": i, "x": 1} for i in range(5)] +
                                       [{"k": "B", "seq": 9, "x": 1}, {"k": "A", "seq": "bad"}]})
        assert pushed["data"]["accepted_count"] == 6 and pushed["data"]["errors"][0]["column"] == "seq"
        events = []
        while len(events) < 5:
            msg = ws.read()
            if msg.get("event") == "output":
                assert msg["subscription"] == sid
                events.append(msg["data"])
        assert [e["seq"] for e in events] == [0, 1, 2, 3, 4] and {e["k"] for e in events} == {"A"}
        info = ws.call("server_info")["data"]
        assert info["connections"] >= 1 and info["web"] == web_url(console)
        assert ws.call("pause_task", {"task_id": "t1"})["data"]["status"] == "paused"
        refused = ws.call("push_data", {"task_id": "t1", "data": [{"k": "A", "seq": 99}]})
        assert refused["code"] == "invalid_state" and "paused" in refused["message"]
        assert ws.call("unsubscribe", {"subscription": sid})["data"]["unsubscribed"] == [sid]
        assert ws.call("stop_task", {"task_id": "t1"})["data"]["status"] == "stopped"
        assert ws.call("delete_task", {"task_id": "t1"})["status"] == "ok"
    finally:
        ws.close()


def test_max_rate_bounds_the_output_events_and_counts_the_others(console, tmp_path):
    """What the console's output window asks for: at most max_rate rows a second."""
    ws = WS(web_url(console))
    try:
        ws.call("create_task", seq_task(tmp_path, "fast"))
        ws.call("start_task", {"task_id": "fast"})
        sub = ws.call("subscribe_output", {"task_id": "fast", "max_rate": 5})
        assert sub["data"]["max_rate"] == 5
        bad = ws.call("subscribe_output", {"task_id": "fast", "max_rate": 0})
        assert bad["code"] == "bad_request" and "max_rate" in bad["message"]
        ws.call("push_data", {"task_id": "fast", "data": [{"k": f"K{i % 3}", "seq": i, "x": 1} for i in range(1000)]})
        with Client("127.0.0.1", console.port) as c:
            wait_for(lambda: c.get_task("fast")["stats"]["processed_count"] == 1000)
        assert ws.call("ping")["status"] == "ok"  # the events before the answer are read (and counted)
        answer = ws.call("unsubscribe", {"subscription": sub["data"]["subscription"]})
        shown = ws.events.get("output", 0)
        assert 1 <= shown < 100 and shown + answer["data"]["dropped"] == 1000
    finally:
        ws.close()


def test_subscribe_stats_sends_everything_then_only_what_changed(console, tmp_path):
    with Client("127.0.0.1", console.port) as c:
        c.create_task(seq_task(tmp_path, "a"))
        c.create_task(seq_task(tmp_path, "b"))
        c.start_task("a")
    ws = WS(web_url(console))
    try:
        answer = ws.call("subscribe_stats")
        assert answer["data"]["interval"] == 1.0
        first = ws.read()
        assert first["event"] == "stats" and {t["id"] for t in first["data"]["tasks"]} == {"a", "b"}
        a = next(t for t in first["data"]["tasks"] if t["id"] == "a")
        assert a["status"] == "running" and a["compute_pool_size"] == 2 and "units" not in a
        assert a["allowed_actions"] == ["pause", "stop"] and a["scale_threshold"] == 0.8
        with Client("127.0.0.1", console.port) as c:
            c.push_data("a", [{"k": f"K{i % 7}", "seq": i, "x": 1} for i in range(300)])
            c.delete_task("b")
        seen_b_removed, processed = False, 0
        while not (seen_b_removed and processed == 300):
            ev = ws.read()["data"]
            assert {t["id"] for t in ev["tasks"]} <= {"a"}  # b never changed: it is not sent again
            if ev["removed"] == ["b"]:  # the graph changed with it: its version says so
                seen_b_removed = True
                assert ev["graph"] == first["data"]["graph"] + 1
            for t in ev["tasks"]:
                processed = t["processed_count"]
        one = ws.call("subscribe_stats", {"task_id": "a"})
        assert one["status"] == "ok"
        while True:
            msg = ws.read()
            if msg.get("subscription") == one["data"]["subscription"]:
                break
        [t] = msg["data"]["tasks"]
        assert sorted(u["id"] for u in t["units"]) == ["a:u1", "a:u2"]
        assert sum(u["rows"] for u in t["units"]) == 300 and sum(u["keys"] for u in t["units"]) == 7
        assert all(0 <= u["busy_fraction"] <= 1 and u["worker"].startswith("tcp://") for u in t["units"])
    finally:
        ws.close()


def test_the_python_client_reads_stats(console, tmp_path):
    with Client("127.0.0.1", console.port) as c:
        c.create_task(seq_task(tmp_path, "py"))
        for data in c.subscribe_stats("py"):
            [t] = data["tasks"]
            assert t["id"] == "py" and t["status"] == "ready" and t["units"] == []
            break


def test_create_task_from_toml_says_the_line_of_each_issue(console, tmp_path):
    script = tmp_path / "seq.dp"
    script.write_text("-- INPUT k:string, seq:number --\n-- OUTPUT k:string --\nreturn [k]\n")
    text = f"""# a task
id = "from-toml"
scripts = ["{script}"]

[routing]
enabled = true
strategy = "nope"

[compute_pool]
initial_size = 4
max_size = 2
"""
    [bad] = tcp(console.port, {"action": "create_task", "params": {"toml": text}})
    assert bad["code"] == "invalid_config"
    lines = {i["field"]: i["line"] for i in bad["issues"]}
    assert lines["compute_pool.max_size"] == 11 and lines["routing.strategy"] == 7
    [syntax] = tcp(console.port, {"action": "create_task", "params": {"toml": "id = 'x'\nscripts = [\n"}})
    assert syntax["code"] == "invalid_config" and syntax["issues"][0]["field"] == "toml"
    assert syntax["issues"][0]["line"] == 2  # the end of the text: its last line
    good = text.replace('strategy = "nope"', 'key_column = "k"').replace("initial_size = 4", "initial_size = 1")
    good = "[[task]]\n" + good.replace("[routing]", "[task.routing]").replace("[compute_pool]", "[task.compute_pool]")
    [created] = tcp(console.port, {"action": "create_task", "params": {"toml": good}})
    assert created["data"] == {"task_id": "from-toml"}, created


def test_metrics_count_exactly_the_rows_sent(console, tmp_path):
    port = free_port()
    with Client("127.0.0.1", console.port) as c:
        c.create_task(seq_task(tmp_path, "m", port=port))
        c.start_task("m")
    lines = ["k,seq,x"] + [f"K{i % 13},{i},1" for i in range(2000)] + ["K1,oops,1", ",5,1", "K2,7,zz"]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(("\n".join(lines) + "\n").encode())
    url = web_url(console)
    wait_for(lambda: metrics(url).get(("dporch_task_rows_out_total", (("task", "m"),))) == 2000)
    m = metrics(url)
    task = (("task", "m"),)
    assert m[("dporch_task_rows_in_total", task)] == 2000
    assert m[("dporch_task_rows_processed_total", task)] == 2000
    assert m[("dporch_task_errors_total", task)] == 3
    assert m[("dporch_task_pool_size", task)] == 2 and m[("dporch_task_pool_max_size", task)] == 2
    assert m[("dporch_task_state", (("dporch_task_state", "running"), ("task", "m")))] == 1
    assert m[("dporch_task_state", (("dporch_task_state", "paused"), ("task", "m")))] == 0
    units = {dict(k[1])["unit"]: v for k, v in m.items() if k[0] == "dporch_unit_rows_total"}
    assert sorted(units) == ["m:u1", "m:u2"] and sum(units.values()) == 2000
    assert sum(v for k, v in m.items() if k[0] == "dporch_unit_keys") == 13
    busy = [v for k, v in m.items() if k[0] == "dporch_unit_busy_seconds_total"]
    assert len(busy) == 2 and all(v > 0 for v in busy)
    count = m[("dporch_task_latency_seconds_count", task)]
    assert 0 < count <= 2000 and m[("dporch_task_latency_seconds_bucket", (("le", "+Inf"), ("task", "m")))] == count
    assert ("process_cpu_seconds_total", ()) in m


def test_static_files_are_served_by_the_process(console):
    url = web_url(console)
    status, headers, body = http_get(url)
    assert status == 200 and b"/static/console.js" in body and b"http" not in body.replace(b"http-equiv", b"")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    for name, kind in (("console.js", "javascript"), ("console.css", "text/css"), ("favicon.svg", "svg")):
        status, headers, body = http_get(url + "static/" + name)
        assert status == 200 and kind in headers["Content-Type"], (name, headers)
        assert b"https://" not in body and b"//cdn" not in body  # nothing from the network
    assert http_get(url + "tasks/anything")[0] == 200
    assert http_get(url + "static/../server.py")[0] in (403, 404)


def test_a_foreign_host_or_origin_is_refused(console):
    url = web_url(console)
    assert http_get(url, {"Host": "evil.example"})[0] == 403
    assert http_get(url + "metrics", {"Host": f"localhost:{console.service.web.port}"})[0] == 200
    with pytest.raises(Exception) as e:
        WS(url, {"Origin": "http://evil.example"})
    assert "403" in str(e.value)


def test_with_a_token_nothing_is_served_without_it(dash_cluster, tmp_path):
    s = start_console(dash_cluster.scheduler_address, tmp_path, token="sekret")
    try:
        url = web_url(s)
        status, headers, _ = http_get(url + "tasks/x")
        assert status == 302 and headers["Location"] == "/login?next=/tasks/x"
        for path in ("static/console.js", "metrics"):
            assert http_get(url + path)[0] == 401, path
        with pytest.raises(Exception) as e:
            WS(url)
        assert "403" in str(e.value)
        status, _, body = http_get(url + "login")
        assert status == 200 and b'type="password"' in body and b"<script" not in body
        import urllib.parse
        import urllib.request

        def login(token: str) -> tuple[int, str | None]:
            data = urllib.parse.urlencode({"token": token, "next": "/tasks/x"}).encode()

            class NoRedirect(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, *a, **k):
                    return None
            try:
                with urllib.request.build_opener(NoRedirect).open(url + "login", data, timeout=10) as r:
                    return r.status, r.headers.get("Set-Cookie")
            except urllib.error.HTTPError as err:
                return err.code, err.headers.get("Set-Cookie")

        assert login("wrong") == (401, None)
        status, cookie = login("sekret")
        assert status == 302 and cookie and "HttpOnly" in cookie and "sekret" not in cookie
        session = cookie.split(";")[0]
        assert http_get(url + "static/console.js", {"Cookie": session})[0] == 200
        assert http_get(url + "metrics", {"Authorization": "Bearer sekret"})[0] == 200
        assert http_get(url + "metrics", {"Authorization": "Bearer nope"})[0] == 401
        ws = WS(url, {"Cookie": session})
        try:  # the session is the credential: requests need no token
            assert ws.call("ping")["data"] == {"pong": True}
        finally:
            ws.close()
        # the TCP API still wants the token in each request
        assert tcp(s.port, {"action": "ping"})[0]["code"] == "unauthorized"
    finally:
        s.stop()


def test_a_taken_web_port_moves_and_a_public_console_needs_a_token(dash_cluster, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = start_console(dash_cluster.scheduler_address, tmp_path, web=f"127.0.0.1:{port}")
        try:
            web = s.service.web
            assert web.moved_from == port and web.port != port
            assert http_get(web.url)[0] == 200
            assert "was in use" in s.service.banner()
        finally:
            s.stop()
    opts = ServeOptions(config=None, port=0, web="0.0.0.0:0", state_dir=tmp_path / "st")
    with pytest.raises(ConfigError) as e:
        asyncio.run(serve(opts))
    assert e.value.issues[0].field == "--web" and "token" in e.value.issues[0].message
    with pytest.raises(ConfigError):
        asyncio.run(serve(ServeOptions(config=None, port=0, web="127.0.0.1:http", state_dir=tmp_path / "st")))
