"""`dporch tasks ...`, push/output/subscribe through CliRunner, and the interactive client on a
real pseudo-terminal, against a live server."""

from __future__ import annotations

import json
import sys

import pexpect
from typer.testing import CliRunner

from dporch.cli.app import app

from ..orchestration.conftest import SEQ_SCRIPT, free_port, seq_task_toml


def task_file(tmp_path, tid: str = "cli-task") -> str:
    (tmp_path / "seq.dp").write_text(SEQ_SCRIPT)
    p = tmp_path / "task.toml"
    p.write_text(seq_task_toml(tid, "seq.dp", f'type = "tcp"\nport = {free_port()}', "out", name="命令行任务"))
    return str(p)


def test_task_commands(server, tmp_path):
    runner = CliRunner()
    srv = ["--server", f"127.0.0.1:{server.port}"]
    r = runner.invoke(app, ["tasks", "create", task_file(tmp_path), "--start", *srv])
    assert r.exit_code == 0, r.output
    assert "cli-task" in r.stdout
    data = tmp_path / "rows.csv"
    data.write_text("k,seq,x\n" + "".join(f"{'AB'[i % 2]},{i},1\n" for i in range(30)))
    r = runner.invoke(app, ["push", "cli-task", str(data), "--batch", "7", *srv])
    assert r.exit_code == 0 and "已推送 30 行数据" in r.stdout
    r = runner.invoke(app, ["tasks", "list", "--json", *srv])
    assert json.loads(r.stdout)["tasks"][0]["status"] == "running"
    r = runner.invoke(app, ["tasks", "list", *srv])
    assert "运行中" in r.stdout and "命令行任务" in r.stdout
    import time
    for _ in range(100):
        r = runner.invoke(app, ["output", "cli-task", "--limit", "100", "--json", *srv])
        if json.loads(r.stdout)["total_count"] == 30:
            break
        time.sleep(0.1)
    assert json.loads(r.stdout)["total_count"] == 30
    r = runner.invoke(app, ["tasks", "show", "cli-task", *srv])
    assert "已处理: 30 行" in r.stdout
    r = runner.invoke(app, ["tasks", "update", "cli-task", "--set", "output.buffer_size=5", *srv])
    assert r.exit_code == 0 and "output.buffer_size" in r.stdout
    r = runner.invoke(app, ["tasks", "update", "cli-task", "--set", "routing.strategy=sticky", *srv])
    assert r.exit_code == 1 and "invalid_state" in r.stderr
    for verb in ("pause", "resume", "stop"):
        assert runner.invoke(app, ["tasks", verb, "cli-task", *srv]).exit_code == 0
    r = runner.invoke(app, ["tasks", "show", "nope", *srv])
    assert r.exit_code == 1 and "not_found" in r.stderr
    assert runner.invoke(app, ["tasks", "delete", "cli-task", *srv]).exit_code == 0
    r = runner.invoke(app, ["tasks", "list", "--server", f"127.0.0.1:{free_port()}"])
    assert r.exit_code == 2 and "cannot reach" in r.stderr


def test_interactive_client_session(server, tmp_path):
    """The seed's session (SEED §7.1.3) on a real terminal."""
    task_path = task_file(tmp_path, "task-001")
    data = tmp_path / "realtime_data.csv"
    data.write_text("k,seq,x\n" + "".join(f"K{i % 3},{i},1\n" for i in range(1000)))
    child = pexpect.spawn(sys.executable, ["-m", "dporch.cli", "client"], encoding="utf-8", timeout=60,
                          env={"DPORCH_SERVER": "", "TERM": "dumb", "PATH": "/usr/bin:/bin",
                               "HOME": str(tmp_path)}, dimensions=(40, 160))
    try:
        child.expect("DPLang 任务编排客户端 v1.0")
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
