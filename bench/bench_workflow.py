"""Benchmark workflows.

* planning: a 200-task workflow (100 stages of "indicators per stock" over 100 small files,
  each followed by a screen reading its files), run once for real, then `dporch workflow run -n`
  (whole process: reading the tasks file, compiling, the graph, the up-to-date checks on disk)
  when everything is up to date; and the in-process plan alone.
* task-to-task edge: `dporch serve` with script (c) followed by the screen over 100 stocks,
  once as one task chaining both scripts and once as two tasks (the second reads the first's
  rows, `type = "task"`); CPU per tick of the orchestrator and of the workers for each.

    python bench/bench_workflow.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_run import _ENV, ensure_data, measure  # noqa: E402
from bench.bench_serve import Server, free_port, throughput  # noqa: E402

INDICATORS = ROOT / "workflows" / "indicators.dp"
SCREEN = ROOT / "workflows" / "screen.dp"


def workflow_file(base: Path, stages: int) -> Path:
    data = base / "data"
    data.mkdir()
    lines = "".join(f"{600000 + i % 5},d{i},{10 + (i * 7919 % 100) / 10}\n" for i in range(50))
    parts = []
    for n in range(stages):
        (data / f"in{n}.csv").write_text("stock_code,date,close\n" + lines)
        parts.append(f"""
[[task]]
id = "ind{n}"
scripts = ["{INDICATORS}"]
routing = {{ enabled = true, key_column = "stock_code" }}
compute_pool = {{ initial_size = 1, max_size = 1 }}
input = {{ type = "file", path = "data/in{n}.csv" }}
output = {{ type = "file", mode = "split", path = "out/ind{n}/{{stock_code}}.csv" }}

[[task]]
id = "scr{n}"
scripts = ["{SCREEN}"]
routing = {{ enabled = true, key_column = "stock_code" }}
compute_pool = {{ initial_size = 1, max_size = 1 }}
input = {{ type = "file", path = "out/ind{n}/{{stock_code}}.csv" }}
output = {{ type = "file", mode = "merge", path = "out/scr{n}.csv" }}
""")
    f = base / "tasks.toml"
    f.write_text("".join(parts))
    return f


def planning(stages: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        f = workflow_file(base, stages)
        cmd = [sys.executable, "-m", "dporch.cli", "workflow", "run", str(f), "--state-dir", str(base / "state"),
               "--allow-path", str(ROOT / "workflows")]
        t = time.perf_counter()
        subprocess.run(cmd, cwd=base, env=_ENV, check=True, capture_output=True)
        print(f"workflow  {2 * stages} tasks run once for real in {time.perf_counter() - t:.1f} s")
        os.chdir(base)
        best = min(measure([*cmd, "-n"])[0] for _ in range(3))
        print(f"planning  {2 * stages} tasks, all up to date: dporch workflow run -n in {best:.2f} s "
              "(whole process, best of 3)")
        from dporch.api.app import ServeOptions, open_manager
        from dporch.orchestration.runner import plan

        manager, _ = open_manager(ServeOptions(config=f, state_dir=base / "state",
                                               allow_paths=[str(ROOT / "workflows")]), None, strict=True)
        t = time.perf_counter()
        steps = plan(manager)
        took = time.perf_counter() - t
        assert not steps.runs, [s.task for s in steps.runs]
        print(f"planning  the graph and up-to-date checks of {len(steps.steps)} tasks in process: {took * 1000:.0f} ms")
        manager.store.close()
        os.chdir(ROOT)


def edge_cost(rows: int) -> None:
    data = ensure_data(rows, 100)
    schema = {"columns": [{"name": "stock_code", "type": "string", "required": True},
                          {"name": "date", "type": "string"}, {"name": "close", "type": "number"}]}
    routing = {"enabled": True, "key_column": "stock_code"}
    pool = {"initial_size": 2, "max_size": 2}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        server = Server(base)
        try:
            one, two = free_port(), free_port()
            server.run_task({"id": "chain", "scripts": [str(INDICATORS), str(SCREEN)], "schema": schema,
                             "routing": routing, "compute_pool": pool, "input": {"type": "tcp", "port": one},
                             "output": {"type": "none"}})
            server.api.create_task({"id": "reader", "scripts": [str(SCREEN)], "routing": routing,
                                    "compute_pool": pool, "input": {"type": "task", "task": "first"},
                                    "output": {"type": "none"}})
            server.api.create_task({"id": "first", "scripts": [str(INDICATORS)], "schema": schema,
                                    "routing": routing, "compute_pool": pool, "input": {"type": "tcp", "port": two},
                                    "output": {"type": "none"}})
            server.api.start_task("reader")
            server.api.start_task("first")
            figures = {}
            for name, tid, port in (("one task, two scripts", "chain", one), ("two tasks, one edge", "first", two)):
                tp = throughput(server, tid, port, None, data, rows)
                figures[name] = tp
                per = (tp["cpu_orchestrator_s"] + tp["cpu_workers_s"]) / rows * 1e6
                print(f"edge      {name:22s}: {tp['rows_per_s']:9,.0f} ticks/s; CPU per tick: orchestrator "
                      f"{tp['cpu_orchestrator_s'] / rows * 1e6:.1f} µs, workers {tp['cpu_workers_s'] / rows * 1e6:.1f} µs, "
                      f"total {per:.1f} µs")
            a, b = (sum((f["cpu_orchestrator_s"], f["cpu_workers_s"])) for f in figures.values())
            print(f"edge      the task-to-task edge costs {b / a - 1:+.1%} CPU per tick")
        finally:
            server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", type=int, default=100, help="stages of two tasks each")
    ap.add_argument("--rows", type=int, default=200_000, help="ticks for the edge measurement")
    a = ap.parse_args(argv)
    planning(a.stages)
    edge_cost(a.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
