"""A restarted server brings every task back as it was: running, paused, stopped, failed or
never started; config-file and API tasks alike; live changes kept."""

from __future__ import annotations

from pathlib import Path

from dporch.client import Client

from ..orchestration.conftest import SEQ_SCRIPT, free_port
from .conftest import start_service
from .test_api import seq_config, wait_for


def config_file(tmp_path: Path) -> Path:
    (tmp_path / "seq.dp").write_text(SEQ_SCRIPT)
    tables = []
    for tid, enabled in (("cfg-run", "true"), ("cfg-pause", "true"), ("cfg-off", "false")):
        tables.append(f"""
[[task]]
id = "{tid}"
enabled = {enabled}
scripts = ["seq.dp"]
[task.routing]
enabled = true
key_column = "k"
[task.compute_pool]
initial_size = 1
max_size = 2
[task.input]
type = "tcp"
port = {free_port()}
[task.output]
type = "file"
mode = "split"
path = "out/{tid}/{{k}}.csv"
""")
    path = tmp_path / "tasks.toml"
    path.write_text("".join(tables))
    return path


def states(c: Client) -> dict[str, str]:
    return {t["id"]: t["status"] for t in c.list_tasks()["tasks"]}


def test_every_state_and_live_change_survives_a_restart(scheduler, tmp_path):
    config = config_file(tmp_path)
    div = tmp_path / "div.dp"
    div.write_text("-- INPUT k:string, x:number --\n-- OUTPUT r --\nreturn [10 / x]\n")
    s = start_service(scheduler, tmp_path / "state", config=config)
    try:
        with Client("127.0.0.1", s.port) as c:
            assert states(c) == {"cfg-run": "running", "cfg-pause": "running", "cfg-off": "ready"}
            c.pause_task("cfg-pause")
            c.update_task("cfg-run", {"compute_pool": {"max_size": 3}})
            c.create_task(seq_config(tmp_path, "api-pause"))
            c.start_task("api-pause")
            c.pause_task("api-pause")
            c.create_task(seq_config(tmp_path, "api-stop"))
            c.start_task("api-stop")
            c.stop_task("api-stop")
            c.create_task({"id": "api-fail", "scripts": [str(div)],
                           "schema": {"columns": [{"name": "k"}, {"name": "x", "type": "number"}]},
                           "input": {"type": "tcp", "port": free_port()},
                           "output": {"type": "file", "path": str(tmp_path / "fail.csv")},
                           "error_handling": {"retry_count": 0, "skip_on_error": False}})
            c.start_task("api-fail")
            c.push_data("api-fail", [{"k": "a", "x": 0}])
            wait_for(lambda: states(c)["api-fail"] == "error")
    finally:
        s.stop()
    s2 = start_service(scheduler, tmp_path / "state", config=config)
    try:
        with Client("127.0.0.1", s2.port) as c:
            assert states(c) == {"cfg-run": "running", "cfg-pause": "paused", "cfg-off": "ready",
                                 "api-pause": "paused", "api-stop": "stopped", "api-fail": "error"}
            assert c.get_task("cfg-run")["config"]["compute_pool"]["max_size"] == 3
            failed = c.get_task("api-fail")
            assert "ZeroDivision" in failed["stats"]["last_error"]
            assert failed["allowed_actions"] == ["delete", "reset", "stop"]
            c.resume_task("cfg-pause")
            c.stop_task("cfg-run")
    finally:
        s2.stop()
    # The config file changed: its values win over the recorded live change.
    config.write_text(config.read_text().replace("max_size = 2", "max_size = 4", 1))
    s3 = start_service(scheduler, tmp_path / "state", config=config)
    try:
        with Client("127.0.0.1", s3.port) as c:
            assert states(c)["cfg-run"] == "stopped" and states(c)["cfg-pause"] == "running"
            assert c.get_task("cfg-run")["config"]["compute_pool"]["max_size"] == 4
    finally:
        s3.stop()
