"""`dporch serve` killed with SIGKILL and started again on the same state directory: every task
comes back as it was, and outputs equal those of a run that was never interrupted."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

from .conftest import ENV, DaskProcesses, Serve, free_port, wait_for
from .test_worker_loss import HEADER, SCRIPT, expected, read_split, ticks


def toml_task(tid: str, input_table: str, output: str, extra: str = "") -> str:
    return f"""
[[task]]
id = "{tid}"
scripts = ["{SCRIPT}"]
[task.schema]
columns = [{{ name = "stock_code", type = "string", required = true }}, {{ name = "date", type = "string" }},
           {{ name = "close", type = "number" }}]
[task.routing]
enabled = true
key_column = "stock_code"
[task.compute_pool]
initial_size = 2
max_size = 4
batch_size = 200
[task.checkpoint]
interval = 0.3
[task.input]
{input_table}
[task.output]
{output}
{extra}
"""


def by_stock(rows: list[list[str]]) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(r)
    return out


def test_file_tasks_killed_mid_run_resume_from_their_checkpoint(dask_procs: DaskProcesses, tmp_path: Path):
    dask_procs.start_workers(2)
    lines = ticks(300_000)  # long enough to be killed mid-run after a checkpoint
    data = tmp_path / "ticks.csv"
    data.write_text(HEADER + "".join(lines))
    config = tmp_path / "tasks.toml"
    config.write_text(
        toml_task("split", f'type = "file"\npath = "{data}"',
                  f'type = "file"\nmode = "split"\npath = "{tmp_path}/split/{{stock_code}}.csv"')
        + toml_task("merge", f'type = "file"\npath = "{data}"',
                    f'type = "file"\nmode = "merge"\npath = "{tmp_path}/merge.csv"'))
    serve = Serve(tmp_path, dask_procs.address, config, tmp_path / "state").start()
    try:
        def checkpointed() -> bool:
            stats = serve.task("split")["stats"]
            return stats["processed_count"] >= 10_000 and stats["checkpoint"]["count"] >= 1

        wait_for(checkpointed, what="10k rows processed and a checkpoint")
        before = serve.task("split")
        serve.kill()
        assert before["status"] == "running" and before["stats"]["processed_count"] < len(lines)
        serve.start()
        for tid in ("split", "merge"):
            wait_for(lambda: serve.task(tid)["status"] == "stopped", timeout=120, what=f"{tid} finished")
            assert serve.task(tid)["stats"]["reason"] == "input finished"
        # split had a checkpoint when killed: it went on from there (merge may not have had one yet:
        # then it ran again from its start, dropping its staged file; the files below show either way)
        assert any("restored from checkpoint" in line for line in serve.task("split")["stats"]["log"])
        serve.stop()
        want = expected(lines)
        assert read_split(tmp_path / "split") == want
        merged = list(csv.reader((tmp_path / "merge.csv").open()))
        assert merged[0] == ["stock_code", "date", "close", "ma5", "ma20", "rsi", "dif", "dea", "bar", "signal"]
        assert by_stock(merged[1:]) == want and len(merged) - 1 == sum(map(len, want.values()))
        # A finished file task is not run again by a restart.
        sizes = {p: p.stat().st_size for p in [tmp_path / "merge.csv", *sorted((tmp_path / "split").iterdir())]}
        serve.start()
        assert serve.task("merge")["status"] == "stopped" and serve.task("split")["status"] == "stopped"
        time.sleep(1)
        serve.stop()
        assert sizes == {p: p.stat().st_size for p in sizes}
    finally:
        if serve.proc and serve.proc.poll() is None:
            serve.kill()


def test_durable_tcp_task_killed_loses_and_repeats_nothing(dask_procs: DaskProcesses, tmp_path: Path):
    dask_procs.start_workers(2)
    lines = ticks(30_000)
    port = free_port()
    config = tmp_path / "tasks.toml"
    config.write_text(toml_task("ticks", f'type = "tcp"\nport = {port}\ndurable = true',
                                f'type = "file"\nmode = "split"\npath = "{tmp_path}/out/{{stock_code}}.csv"'))
    data = tmp_path / "ticks.csv"
    data.write_text(HEADER + "".join(lines))
    serve = Serve(tmp_path, dask_procs.address, config, tmp_path / "state").start()
    try:
        # the real sender: dporch feed with a named stream (resumes after reconnecting)
        feeder = subprocess.Popen([sys.executable, "-m", "dporch.cli", "feed", str(data), "--port", str(port),
                                   "--stream", "feed-1", "--rate", "10000", "--timeout", "30",
                                   "--server", f"127.0.0.1:{serve.port}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        wait_for(lambda: serve.task("ticks")["stats"]["processed_count"] >= 8000, what="8k rows processed")
        serve.kill()
        time.sleep(0.5)
        serve.start()
        _, err = feeder.communicate(timeout=120)
        assert feeder.returncode == 0, err
        assert f"sent {len(lines):,} rows" in err and "the connection broke" in err
        wait_for(lambda: serve.task("ticks")["stats"]["processed_count"] == len(lines), timeout=60,
                 what="every row processed")
        serve.stop()
        assert read_split(tmp_path / "out") == expected(lines)
    finally:
        if serve.proc and serve.proc.poll() is None:
            serve.kill()
