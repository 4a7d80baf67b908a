"""`dporch tasks ...`, push/output/subscribe/feed through CliRunner, and the interactive client on
a real pseudo-terminal, against a live server: what a new user meets, including every mistake
(a missing file, a data port taken for the API, a paused task, a bad config) as one clear
message and a non-zero exit status, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pexpect
from typer.testing import CliRunner, Result

from dporch.api.client import Client
from dporch.cli.app import app

from ..conftest import wait_for
from ..orchestration.conftest import SEQ_SCRIPT, free_port, seq_task_toml

runner = CliRunner()


def task_file(tmp_path: Path, tid: str = "cli-task", port: int | None = None, script: str = SEQ_SCRIPT) -> str:
    (tmp_path / "seq.dp").write_text(script)
    p = tmp_path / f"{tid}.toml"
    p.write_text(seq_task_toml(tid, "seq.dp", f'type = "tcp"\nport = {port or free_port()}', "out", name="命令行任务"))
    return str(p)


def rows_csv(n: int, keys: str = "AB") -> str:
    return "k,seq,x\n" + "".join(f"{keys[i % len(keys)]},{i},1\n" for i in range(n))


def dporch(*args: str) -> Result:
    return runner.invoke(app, list(args))


def no_traceback(r: Result) -> None:
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)


def running_task(server, tmp_path: Path, tid: str, **kw) -> int:
    """Create and start a seq task with a TCP input; its input port."""
    port = free_port()
    srv = f"127.0.0.1:{server.port}"
    r = dporch("tasks", "create", task_file(tmp_path, tid, port, **kw), "--start", "--server", srv)
    assert r.exit_code == 0, r.output
    return port


def test_task_commands(server, tmp_path):
    srv = ["--server", f"127.0.0.1:{server.port}"]
    r = dporch("--lang", "zh", "tasks", "create", task_file(tmp_path), "--start", *srv)
    assert r.exit_code == 0, r.output
    assert "任务已创建: cli-task" in r.stdout
    data = tmp_path / "rows.csv"
    data.write_text(rows_csv(30))
    r = dporch("--lang", "zh", "push", "cli-task", str(data), "--batch", "7", *srv)
    assert r.exit_code == 0 and "已推送 30 行数据" in r.stdout
    r = dporch("tasks", "list", "--json", *srv)
    assert json.loads(r.stdout)["tasks"][0]["status"] == "running"
    r = dporch("--lang", "zh", "tasks", "list", *srv)
    assert "运行中" in r.stdout and "命令行任务" in r.stdout
    r = dporch("--lang", "en", "tasks", "list", *srv)
    assert "running" in r.stdout and "运行中" not in r.stdout
    for _ in range(100):
        r = dporch("output", "cli-task", "--limit", "100", "--json", *srv)
        if json.loads(r.stdout)["total_count"] == 30:
            break
        time.sleep(0.1)
    assert json.loads(r.stdout)["total_count"] == 30
    r = dporch("--lang", "zh", "tasks", "show", "cli-task", *srv)
    assert "已处理: 30 行" in r.stdout and "输入: tcp 127.0.0.1:" in r.stdout
    r = dporch("tasks", "update", "cli-task", "--set", "output.buffer_size=5", *srv)
    assert r.exit_code == 0 and "output.buffer_size" in r.stdout
    r = dporch("tasks", "update", "cli-task", "--set", "routing.strategy=sticky", *srv)
    assert r.exit_code == 1 and "invalid_state" in r.stderr
    for verb in ("pause", "resume", "stop"):
        assert dporch("tasks", verb, "cli-task", *srv).exit_code == 0
    r = dporch("tasks", "start", "cli-task", "--fresh", "--json", *srv)
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "running"
    assert dporch("tasks", "show", "cli-task", "--json", *srv).exit_code == 0
    assert dporch("tasks", "stop", "cli-task", *srv).exit_code == 0
    r = dporch("--lang", "en", "tasks", "show", "nope", *srv)
    assert r.exit_code == 1 and r.stderr.startswith("error: not found (not_found): ")
    assert dporch("tasks", "delete", "cli-task", *srv).exit_code == 0
    r = dporch("--lang", "en", "tasks", "list", "--server", f"127.0.0.1:{free_port()}")
    assert r.exit_code == 2 and "cannot reach the dporch API at 127.0.0.1:" in r.stderr
    assert "is `dporch serve` running there?" in r.stderr


def test_push_of_a_missing_or_malformed_file_is_one_message(server, tmp_path):
    srv = ["--server", f"127.0.0.1:{server.port}"]
    running_task(server, tmp_path, "t-push")
    r = dporch("--lang", "en", "push", "t-push", str(tmp_path / "nosuch.csv"), *srv)
    no_traceback(r)
    assert r.exit_code == 2 and r.stderr == f"error: file not found: {tmp_path / 'nosuch.csv'}\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"k": "A", "seq": 1}\n{"k": \n')
    r = dporch("--lang", "en", "push", "t-push", str(bad), *srv)
    no_traceback(r)
    assert r.exit_code == 2 and f"{bad} line 2 is not a JSON object" in r.stderr
    with Client("127.0.0.1", server.port) as c:
        assert c.get_task("t-push")["stats"]["processed_count"] == 0  # nothing was sent
    r = dporch("--lang", "en", "tasks", "update", "t-push", "--file", str(tmp_path / "none.toml"), *srv)
    assert r.exit_code == 2 and "file not found" in r.stderr
    changes = _write(tmp_path / "changes.json", "[1, 2]")
    r = dporch("--lang", "en", "tasks", "update", "t-push", "--file", str(changes), *srv)
    assert r.exit_code == 2 and r.stderr == f"error: {changes} must hold one table (TOML, or a JSON object)\n"
    r = dporch("--lang", "en", "tasks", "update", "t-push", "--set", "no-equals-sign", *srv)
    assert r.exit_code == 2 and "--set takes section.field=value" in r.stderr


def test_a_data_port_taken_for_the_api_fails_fast(server, tmp_path):
    port = running_task(server, tmp_path, "t-data")
    start = time.monotonic()
    r = dporch("--lang", "en", "tasks", "list", "--server", f"127.0.0.1:{port}")
    took = time.monotonic() - start
    no_traceback(r)
    assert r.exit_code == 2
    assert r.stderr.startswith(f"error: no dporch API answered at 127.0.0.1:{port} within 3 s; is it a task's data port?")
    assert took < 8, took


def test_config_errors_are_listed_one_per_line_with_the_file_name(server, tmp_path):
    srv = ["--server", f"127.0.0.1:{server.port}"]
    path = Path(task_file(tmp_path, "bad-task"))
    text = path.read_text().replace('key_column = "k"', 'key_column = "nope"\nbogus = 1')
    path.write_text(text + "[task.compute_pool]\ninitial_size = 3\nmax_size = 2\n")
    r = dporch("--lang", "en", "tasks", "create", str(path), *srv)
    no_traceback(r)
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert lines[0] == f"error: the task configuration in {path} has 3 problem(s):"
    assert sorted(lines[1:]) == sorted([
        "  routing.bogus: unknown key; allowed: enabled, key_column, strategy",
        "  routing.key_column: 'nope' is not a schema column (k, seq, x)",
        "  compute_pool.max_size: must be at least initial_size (3)",
    ])
    assert "<api>" not in r.stderr
    running_task(server, tmp_path, "good")
    r = dporch("--lang", "zh", "tasks", "update", "good", "--set", "compute_pool.max_size=0", *srv)
    assert r.exit_code == 1
    assert r.stderr.splitlines()[0] == "错误: 任务 good 的配置更改有 1 个问题:"


def test_output_tables_format_numbers_and_keep_every_column(server, tmp_path):
    wide = """-- INPUT k:string, seq:number, x:number --
-- OUTPUT k:string, seq:number, third:number, a_rather_long_column_name:string, another_long_column:number, tail:string --
return [k, seq, seq / 3 + 5.1, "a long text value that needs room " + k, 0.1 + 0.2, "end"]
"""
    srv = ["--server", f"127.0.0.1:{server.port}"]
    port = running_task(server, tmp_path, "t-wide", script=wide)
    assert dporch("feed", str(_write(tmp_path / "rows.csv", rows_csv(4))), "--port", str(port), *srv).exit_code == 0
    wait_for(lambda: json.loads(dporch("output", "t-wide", "--json", *srv).stdout)["total_count"] == 4)
    raw = json.loads(dporch("output", "t-wide", "--json", *srv).stdout)["rows"]
    assert raw[1]["third"] == 1 / 3 + 5.1 and raw[1]["another_long_column"] == 0.1 + 0.2  # JSON keeps every digit
    r = dporch("output", "t-wide", *srv)
    lines = r.stdout.splitlines()
    header = next(line for line in lines if "stock" in line or "seq" in line)
    for col in ("k", "seq", "third", "a_rather_long_column_name", "another_long_column", "tail"):
        assert col in header.split()
    row = next(line for line in lines if line.split()[:2] == ["B", "1"])
    assert row.split() == ["B", "1", "5.433333", "a", "long", "text", "value", "that", "needs", "room", "B", "0.3", "end"]
    assert "…" not in r.stdout and len(row) > 80


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- dporch feed -------------------------------------------------------------------------------------
def test_feed_into_a_running_task_confirms_every_row_was_read(server, tmp_path):
    port = running_task(server, tmp_path, "t-feed")
    data = _write(tmp_path / "rows.csv", rows_csv(300))
    r = dporch("--lang", "en", "feed", str(data), "--port", str(port), "--server", f"127.0.0.1:{server.port}")
    assert r.exit_code == 0, r.output
    assert r.stderr.startswith("sent 300 rows in ") and r.stderr.endswith("; the task read them all\n")
    with Client("127.0.0.1", server.port) as c:
        wait_for(lambda: c.get_task("t-feed")["stats"]["processed_count"] == 300)


def test_feed_stream_into_a_durable_input_is_exactly_once(server, tmp_path):
    """A durable input acknowledges what it logged; a named stream resumes where the task
    stands, so feeding the same file twice sends nothing the second time."""
    port = free_port()
    srv = f"127.0.0.1:{server.port}"
    (tmp_path / "seq.dp").write_text(SEQ_SCRIPT)
    toml = seq_task_toml("t-durable", "seq.dp", f'type = "tcp"\nport = {port}\ndurable = true', "out")
    r = dporch("tasks", "create", str(_write(tmp_path / "d.toml", toml)), "--start", "--server", srv)
    assert r.exit_code == 0, r.output
    data = _write(tmp_path / "rows.csv", rows_csv(300))
    for _ in range(2):
        r = dporch("--lang", "en", "feed", str(data), "--port", str(port), "--stream", "day-1", "--server", srv)
        assert r.exit_code == 0, r.output
        assert r.stderr.startswith("sent 300 rows in ")
    r = dporch("--lang", "en", "feed", str(data), "--port", str(port), "--server", srv)  # no stream: acks are fine
    assert r.exit_code == 0, r.output
    with Client("127.0.0.1", server.port) as c:
        wait_for(lambda: c.get_task("t-durable")["stats"]["processed_count"] == 600)
        time.sleep(0.3)
        assert c.get_task("t-durable")["stats"]["processed_count"] == 600


def test_feed_stream_needs_a_durable_input(server, tmp_path):
    port = running_task(server, tmp_path, "t-plain")
    r = dporch("--lang", "en", "feed", str(_write(tmp_path / "r.csv", rows_csv(3))), "--port", str(port),
               "--stream", "s", "--server", f"127.0.0.1:{server.port}", "--timeout", "1")
    no_traceback(r)
    assert r.exit_code == 2
    assert r.stderr == (f"error: 127.0.0.1:{port} did not answer #stream: only a durable input "
                        "(input.durable = true) takes --stream\n")


def test_feed_refuses_a_paused_task_before_sending(server, tmp_path):
    port = running_task(server, tmp_path, "t-paused")
    srv = f"127.0.0.1:{server.port}"
    assert dporch("tasks", "pause", "t-paused", "--server", srv).exit_code == 0
    r = dporch("--lang", "en", "feed", str(_write(tmp_path / "r.csv", rows_csv(300))), "--port", str(port),
               "--server", srv)
    no_traceback(r)
    assert r.exit_code == 1
    assert r.stderr == (f"error: task t-paused (input 127.0.0.1:{port}) is paused: it reads no data; "
                        "resume it first: dporch tasks resume t-paused\n")


def test_feed_without_an_api_notices_a_paused_task(server, tmp_path):
    """No API to ask (--server elsewhere): the small file waits in the connection, unread; the
    command says so and fails; once resumed, the task reads those rows."""
    port = running_task(server, tmp_path, "t-quiet")
    srv = f"127.0.0.1:{server.port}"
    assert dporch("tasks", "pause", "t-quiet", "--server", srv).exit_code == 0
    nowhere = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    r = dporch("--lang", "en", "feed", str(_write(tmp_path / "r.csv", rows_csv(300))), "--port", str(port),
               "--server", nowhere, "--timeout", "1")
    no_traceback(r)
    assert r.exit_code == 1 and time.monotonic() - start < 6
    assert r.stderr == (f"error: the task at 127.0.0.1:{port} has not read all rows within 1 s (paused?): all 300 "
                        "rows were sent and wait in the connection until it reads again\n")
    assert dporch("tasks", "resume", "t-quiet", "--server", srv).exit_code == 0
    with Client("127.0.0.1", server.port) as c:
        wait_for(lambda: c.get_task("t-quiet")["stats"]["processed_count"] == 300)


def test_feed_without_an_api_stops_when_a_paused_task_stops_reading(server, tmp_path):
    """Enough rows to fill the socket buffers: the send stalls, the command reports how far it
    got and exits 1 instead of dying in sendall."""
    port = running_task(server, tmp_path, "t-stall")
    srv = f"127.0.0.1:{server.port}"
    assert dporch("tasks", "pause", "t-stall", "--server", srv).exit_code == 0
    data = _write(tmp_path / "r.csv", rows_csv(1000))
    r = dporch("--lang", "en", "feed", str(data), "--port", str(port), "--repeat", "100000",
               "--server", f"127.0.0.1:{free_port()}", "--timeout", "1")
    no_traceback(r)
    assert r.exit_code == 1
    assert r.stderr.startswith(f"error: the task at 127.0.0.1:{port} is not reading (paused?): sent ")
    assert " of 100,000,000 rows, then nothing moved for 1 s; the connection was reset" in r.stderr
    with Client("127.0.0.1", server.port) as c:
        assert c.get_task("t-stall")["stats"]["error_count"] == 0  # no row arrived cut in half


def test_feed_into_the_api_port_fails_clearly(server, tmp_path):
    running_task(server, tmp_path, "t-api")
    data = _write(tmp_path / "r.csv", rows_csv(300))
    r = dporch("--lang", "en", "feed", str(data), "--port", str(server.port), "--server", f"127.0.0.1:{server.port}")
    no_traceback(r)
    assert r.exit_code == 2
    assert r.stderr.startswith(f"error: 127.0.0.1:{server.port} is the dporch API, not a task's data port; "
                               "tasks with a TCP input: t-api ")
    # without an API to ask, the API's answer gives it away
    r = dporch("--lang", "en", "feed", str(data), "--port", str(server.port), "--server", f"127.0.0.1:{free_port()}")
    no_traceback(r)
    assert r.exit_code == 2
    assert r.stderr.startswith(f"error: 127.0.0.1:{server.port} is the dporch API, not a task's data port "
                               "(it answered: malformed JSON")
    r = dporch("--lang", "en", "feed", str(tmp_path / "missing.csv"), "--port", str(server.port))
    assert r.exit_code == 2 and r.stderr == f"error: file not found: {tmp_path / 'missing.csv'}\n"


# -- the interactive client --------------------------------------------------------------------------
def spawn_client(tmp_path: Path, *args: str) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "dporch.cli", "client", *args], encoding="utf-8", timeout=60,
                         env={"DPORCH_SERVER": "", "TERM": "dumb", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                              "LANG": "C.UTF-8"},
                         dimensions=(40, 160))


def test_interactive_client_session(server, tmp_path):
    """The session of the orchestration guide, in Chinese, on a real terminal."""
    task_path = task_file(tmp_path, "task-001")
    data = tmp_path / "realtime_data.csv"
    data.write_text("k,seq,x\n" + "".join(f"K{i % 3},{i},1\n" for i in range(1000)))
    child = spawn_client(tmp_path, "--lang", "zh")
    try:
        child.expect("DPLang 任务编排客户端 v1.0")
        child.sendline("list")
        child.expect("未连接; 先执行 connect HOST:PORT")
        child.sendline(f"connect 127.0.0.1:{server.port}")
        child.expect(f"已连接到 127.0.0.1:{server.port}")
        child.sendline(f"create {task_path}")
        child.expect("任务已创建: task-001")
        child.sendline("start task-001")
        child.expect("任务已启动")
        child.sendline("list")
        child.expect("task-001")
        child.expect("运行中")
        child.sendline(f"push task-001 {data}")
        child.expect("已推送 1,000 行数据")
        child.sendline("show task-001")
        child.expect("计算元池")
        child.sendline("output task-001 10")
        child.expect(r"输出结果 \(最近10行\)")
        child.sendline("show nope")
        child.expect(r"未找到 \(not_found\): ")
        child.sendline("pause task-001")
        child.expect("任务已暂停")
        child.sendline("bogus")
        child.expect("未知命令")
        child.sendline("exit")
        child.expect("再见")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert (tmp_path / ".dporch_history").read_text().count("connect") == 1


def test_interactive_client_mistakes_and_subscribe(server, tmp_path):
    """English by locale; --server connects at start; a failed connect keeps the working
    connection; bad arguments get a usage line; help keeps [limit]; subscribe prints one CSV
    line per row."""
    port = running_task(server, tmp_path, "t-repl")
    child = spawn_client(tmp_path, "--server", f"127.0.0.1:{server.port}")
    try:
        child.expect("DPLang task orchestration client v1.0")
        child.expect(f"connected to 127.0.0.1:{server.port}")
        child.sendline(f"connect 127.0.0.1:{free_port()}")
        child.expect("cannot reach the dporch API at 127.0.0.1:")
        child.expect(f"still connected to 127.0.0.1:{server.port}")
        child.sendline("output t-repl abc")
        child.expect(r"the row count must be a positive integer, got 'abc'; usage: output <task_id> \[limit\]")
        child.sendline("show")
        child.expect("usage: show <task_id>")
        child.sendline("help")
        child.expect(r"output <task_id> \[limit\]\s+the latest output rows")
        child.sendline(f"push t-repl {tmp_path / 'missing.csv'}")
        child.expect("file not found: ")
        child.sendline("subscribe t-repl")
        child.expect("output of t-repl as it comes")
        assert dporch("feed", str(_write(tmp_path / "r.csv", rows_csv(3))), "--port", str(port),
                      "--server", f"127.0.0.1:{server.port}").exit_code == 0
        child.expect("k,seq,prev,idx")
        child.expect(r"A,0,,0\r\n")
        child.expect(r"B,1,,0\r\n")
        child.expect(r"A,2,0,1\r\n")
        child.sendintr()
        child.expect("subscription stopped")
        child.sendline("list")
        child.expect("t-repl")
        child.sendline("exit")
        child.expect("bye")
        child.expect(pexpect.EOF)
    finally:
        child.close()


def test_interactive_client_after_a_failed_connect_says_not_connected(tmp_path):
    child = spawn_client(tmp_path, "--server", f"127.0.0.1:{free_port()}")
    try:
        child.expect("cannot reach the dporch API at 127.0.0.1:")
        child.sendline("list")
        child.expect("not connected; use connect HOST:PORT")
        child.sendline("subscribe t1")
        child.expect("not connected; use connect HOST:PORT")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert "Bad file descriptor" not in (child.before or "")


def test_subscribe_filter_values_take_the_column_type(server, tmp_path):
    """`--filter k=600000` matches the string key 600000 (not the number), `seq=4` the number;
    a word for a number column is refused before subscribing."""
    port = running_task(server, tmp_path, "t-filter")
    srv = ["--server", f"127.0.0.1:{server.port}"]
    sub = subprocess.Popen([sys.executable, "-m", "dporch.cli", "subscribe", "t-filter", "--filter", "k=600000",
                            "--filter", "seq=4", "--count", "1", *srv], stdout=subprocess.PIPE, text=True)
    try:
        assert server.service is not None
        wait_for(lambda: server.service.manager.get("t-filter").buffer.subscribers, timeout=60)
        rows = "k,seq,x\n" + "".join(f"{k},{i},1\n" for i, k in enumerate(["600000", "000001"] * 3))
        assert dporch("feed", str(_write(tmp_path / "f.csv", rows)), "--port", str(port), *srv).exit_code == 0
        out, _ = sub.communicate(timeout=60)
    finally:
        sub.kill()
    assert [json.loads(line) for line in out.splitlines()] == [{"k": "600000", "seq": 4, "prev": 2, "idx": 2}]
    r = dporch("--lang", "en", "subscribe", "t-filter", "--filter", "seq=four", *srv)
    assert r.exit_code == 2 and "column seq holds a number value; got 'seq=four'" in r.stderr
