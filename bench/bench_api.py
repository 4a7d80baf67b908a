"""Benchmark the JSON-lines API of `dporch serve` (2-worker LocalCluster in its own process).

* control-plane latency: with --tasks tasks running (one compute unit each, TCP inputs), the
  round trip of get_task and list_tasks, one request at a time on one connection (the client
  waits for each answer), --requests of each: p50, p99, max;
* push_data: --pushes requests of 1,000 rows each into one task (script (c), 2 units, split
  file output), one at a time on one connection; rows accepted per second, and every row
  checked in the output files at the end. Also the same with 8 requests in flight (pipelined
  ids on one connection).

    python bench/bench_api.py
    python bench/bench_api.py --tasks 100 --requests 2000 --pushes 200
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_run import ensure_data  # noqa: E402
from bench.bench_serve import Server, count_rows, free_port, task_config  # noqa: E402


def percentiles(xs: list[float]) -> str:
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(len(xs) * p))] * 1000  # noqa: E731
    return f"p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {xs[-1] * 1000:.2f} ms"


def control_plane(server: Server, n: int, tasks: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"get_task": [], "list_tasks": []}
    for i in range(n):
        t = time.perf_counter()
        server.api.get_task(f"idle-{i % tasks:03d}")
        times["get_task"].append(time.perf_counter() - t)
        t = time.perf_counter()
        server.api.list_tasks()
        times["list_tasks"].append(time.perf_counter() - t)
    return times


def batches(data: Path, size: int, count: int) -> list[list[dict]]:
    with open(data, newline="") as f:
        rows = [{"stock_code": r["stock_code"], "date": r["date"], "close": float(r["close"])}
                for r in csv.DictReader(f)]
    return [rows[i * size:(i + 1) * size] for i in range(count)]


def push_sequential(server: Server, tid: str, work: list[list[dict]]) -> float:
    t = time.perf_counter()
    for b in work:
        if server.api.push_data(tid, b)["accepted_count"] != len(b):
            raise SystemExit("rows were refused")
    return time.perf_counter() - t


def push_pipelined(port: int, tid: str, work: list[list[dict]], depth: int) -> float:
    from dporch.api.client import AsyncClient

    async def run() -> float:
        client = await AsyncClient("127.0.0.1", port).connect()
        sem = asyncio.Semaphore(depth)

        async def one(b: list[dict]) -> None:
            async with sem:
                if (await client.push_data(tid, b))["accepted_count"] != len(b):
                    raise SystemExit("rows were refused")

        t = time.perf_counter()
        await asyncio.gather(*(one(b) for b in work))
        elapsed = time.perf_counter() - t
        await client.close()
        return elapsed

    return asyncio.run(run())


def wait_rows(server: Server, tid: str, n: int) -> None:
    deadline = time.monotonic() + 120
    while server.task(tid)["stats"]["processed_count"] < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"task {tid} did not process {n} rows")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--pushes", type=int, default=200)
    ap.add_argument("--depth", type=int, default=8, help="requests in flight for the pipelined push")
    a = ap.parse_args(argv)
    data = ensure_data(a.pushes * 2 * 1000, 100)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        server = Server(base)
        try:
            t = time.perf_counter()
            for i in range(a.tasks):
                cfg = task_config(f"idle-{i:03d}", free_port(), base / "idle", script=ROOT / "workflows/momentum.dp")
                cfg["compute_pool"].update(initial_size=1, max_size=1)
                cfg["schema"]["columns"].append({"name": "open", "type": "number"})
                server.run_task(cfg)
            print(f"{os.cpu_count()} cpus; {a.tasks} tasks running after {time.perf_counter() - t:.1f} s")
            times = control_plane(server, a.requests, a.tasks)
            for action, xs in times.items():
                print(f"{action:<11} {percentiles(xs)}  ({len(xs)} requests, {a.tasks} tasks running)")

            work = batches(data, 1000, 2 * a.pushes)
            server.run_task(task_config("push", free_port(), base / "push"))
            rows = sum(map(len, work[:a.pushes]))
            wall = push_sequential(server, "push", work[:a.pushes])
            print(f"push_data   {rows / wall:10,.0f} rows/s accepted  ({a.pushes} requests of 1,000 rows, "
                  f"one at a time, {wall:.2f} s)")
            wall = push_pipelined(server.port, "push", work[a.pushes:], a.depth)
            print(f"push_data   {rows / wall:10,.0f} rows/s accepted  ({a.pushes} requests of 1,000 rows, "
                  f"{a.depth} in flight, {wall:.2f} s)")
            wait_rows(server, "push", 2 * rows)
            time.sleep(0.3)  # the last auto-flush
            written, _ = count_rows(base / "push")
            if written != 2 * rows:
                raise SystemExit(f"expected {2 * rows} rows in the files, found {written}")
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
