"""Hostile requests and rows against a real server: each gets a precise answer or error record,
nothing stalls a task or the server, and nothing escapes the folders tasks may use."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from dporch.client import Client, DporchAPIError

from ..orchestration.conftest import SEQ_SCRIPT, free_port
from .test_api import raw, seq_config, wait_for


def answer(port: int, line: bytes) -> dict:
    return raw(port, line)[0]


def test_rows_that_once_stalled_a_task_are_error_records(server, tmp_path):
    tcp = free_port()
    with Client("127.0.0.1", server.port) as c:
        cfg = seq_config(tmp_path, "j", input={"type": "tcp", "port": tcp, "format": "json"})
        c.create_task(cfg)
        c.start_task("j")
        r = c.push_data("j", [{"k": ["x"], "seq": 0, "x": 1}, {"k": {"a": 1}, "seq": 1, "x": 1},
                              {"k": "K" * 300, "seq": 2, "x": 1}])
        assert r["accepted_count"] == 1
        assert [e["column"] for e in r["errors"]] == ["k", "k"]
        assert "must be a string or a number, got a JSON array" in r["errors"][0]["message"]
        with socket.create_connection(("127.0.0.1", tcp)) as s:
            s.sendall(b'{"k":["x"],"seq":3,"x":1}\n' + b"[" * 100_000 + b"\n"
                      + b"".join(b'{"k":"B","seq":%d,"x":1}\n' % i for i in range(4, 5004))
                      + b'{"k":"C","seq":9,"x":\xff}\n{"k":"C","seq":10,"x":1}\n')
        wait_for(lambda: c.get_task("j")["stats"]["processed_count"] == 5002)
        errors = c.get_errors("j", limit=10)["errors"]
        lines = {e["line"]: e["message"] for e in errors if e["stage"] == "input" and e.get("line", 0) < 10}
        assert "nested more than 100 levels" in lines[2] or "too deep" in lines[2]
        assert any("not UTF-8" in e["message"] for e in errors)
        c.stop_task("j")
    files = sorted(p.name for p in (tmp_path / "out" / "j").iterdir())
    assert "B.csv" in files and "C.csv" in files
    long = [f for f in files if f.startswith("KKKK")]
    assert len(long) == 1 and len(long[0]) <= 124  # 300 characters, cut and hashed


def test_a_fifo_as_script_is_refused_and_the_server_stays_responsive(server, tmp_path):
    fifo = tmp_path / "pipe.dp"
    os.mkfifo(fifo)
    port = server.port
    t = time.monotonic()
    r = answer(port, json.dumps({"action": "create_task", "params": {"id": "f", "scripts": [str(fifo)]}}).encode() + b"\n")
    assert r["code"] == "invalid_config" and "not a regular file" in r["message"]
    assert time.monotonic() - t < 5
    assert answer(port, b'{"action":"ping"}\n')["status"] == "ok"


def test_lone_surrogates_are_bad_requests_and_leave_no_trace(server):
    port = server.port
    for line in (b'{"action":"create_task","params":{"id":"s","name":"\\ud800","scripts":["x.dp"]}}\n',
                 b'{"action":"get_task","params":{"task_id":"\\udfff"}}\n',
                 b'{"action":"ping","id":"\\ud800"}\n'):
        r = answer(port, line)
        assert r["code"] == "bad_request" and "surrogate" in r["message"], r
    assert answer(port, b'{"action":"ping","id":"\\ud83d\\ude00"}\n') == {"status": "ok", "data": {"pong": True},
                                                                          "message": "pong", "id": "😀"}
    assert answer(port, b'{"action":"list_tasks"}\n')["status"] == "ok"


@pytest.mark.parametrize("request_line, code, words", [
    (b"[" * 200_000 + b"\n", "bad_request", "nested too deep"),
    (b'{"action":"fetch_output","params":{"task_id":"x","limit":18446744073709551616}}\n', "bad_request", "between 0 and"),
    (b'{"action":"get_errors","params":{"task_id":"x","limit":-1}}\n', "bad_request", "between 0 and"),
    (b'{"action":"attach_file","params":{"task_id":"x","file_path":"a\\u0000b"}}\n', "bad_request", "NUL"),
    (b'{"action":"create_task","params":{"id":[],"scripts":["a.dp"]}}\n', "invalid_config", "id"),
    (b'{"action":"create_task","params":{"id":"t","scripts":["a\\u0000.dp"]}}\n', "invalid_config", "NUL"),
    (b'{"action":"create_task","params":{"id":"t","scripts":["a.dp"],"schema":{"columns":[{"name":"k","type":[]}]}}}\n',
     "invalid_config", "unknown type"),
    (b'{"action":"create_task","params":{"id":"t","scripts":["a.dp"],"input":{"type":"tcp","port":-1}}}\n',
     "invalid_config", "0 to 65535"),
    (b'{"action":"create_task","params":{"id":"t","scripts":["a.dp"],"input":{"type":"tcp","port":70000}}}\n',
     "invalid_config", "0 to 65535"),
    (b'{"action":"ping"}\xff\n', "bad_request", "UTF-8"),
])
def test_each_malformed_request_gets_its_own_code(server, request_line, code, words):
    r = answer(server.port, request_line)
    assert r["status"] == "error" and r["code"] == code and words in r["message"], r


def test_paths_stay_inside_their_folders(server, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    secret = outside / "secret.csv"
    secret.write_text("k,seq,x\nA,1,1\n")
    (tmp_path / "link").symlink_to(outside)
    with Client("127.0.0.1", server.port) as c:
        def refused(tid: str, **over) -> str:
            with pytest.raises(DporchAPIError) as e:
                c.create_task(seq_config(tmp_path, tid, **over))
            assert e.value.code == "invalid_config"
            return e.value.message

        assert "is not a task id" in refused("../../../../escaped")
        assert "outside the folders this task may read" in refused(
            "r", input={"type": "file", "path": str(secret)})
        assert "outside the folders this task may read" in refused(
            "s", input={"type": "file", "path": str(tmp_path / "link" / "secret.csv")})
        assert "outside the folders this task may write" in refused(
            "w", output={"type": "file", "path": str(outside / "{k}.csv"), "mode": "split"})
        assert "outside the folders this task may write" in refused(
            "v", output={"type": "file", "path": str(tmp_path / "out" / "{k}" / ".." / ".." / ".." / "x.csv"),
                         "mode": "split"})
        # a key ".." in a folder position names a folder, it does not climb one
        c.create_task(seq_config(tmp_path, "dots", output={"type": "file", "mode": "split",
                                                           "path": str(tmp_path / "out" / "dots" / "{k}" / "rows.csv")}))
        c.start_task("dots")
        c.push_data("dots", [{"k": "..", "seq": 1, "x": 1}, {"k": "/etc", "seq": 2, "x": 1}])
        wait_for(lambda: c.get_task("dots")["stats"]["processed_count"] == 2)
        c.stop_task("dots")
    made = sorted(str(p.relative_to(tmp_path / "out" / "dots")) for p in (tmp_path / "out" / "dots").rglob("*.csv"))
    assert made == ["%2E%2E/rows.csv", "%2Fetc/rows.csv"]
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv"]


def test_serve_refuses_a_public_address_without_token_and_a_broken_tasks_file(tmp_path):
    from typer.testing import CliRunner

    from dporch.cli.app import app

    runner = CliRunner()
    r = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--config", str(tmp_path / "none.toml"),
                            "--state-dir", str(tmp_path / "s")])
    assert r.exit_code == 2 and "without a token" in r.stderr and "Traceback" not in r.output
    broken = tmp_path / "tasks.toml"
    broken.write_text("[[task]\nid = 'x'\n")
    r = runner.invoke(app, ["serve", "--config", str(broken), "--state-dir", str(tmp_path / "s"), "--workers", "1",
                            "--dashboard", ":0", "--port", str(free_port())])
    assert r.exit_code == 2 and "Traceback" not in r.output
    lines = [line for line in r.stderr.splitlines() if line.startswith("config:")]
    assert len(lines) == 1 and "syntax" in lines[0] and str(broken) in lines[0]


@pytest.fixture(autouse=True)
def _script(tmp_path):
    (tmp_path / "seq.dp").write_text(SEQ_SCRIPT)
    return Path(tmp_path / "seq.dp")
