"""Compute units survive their workers: real `dask worker` processes killed with SIGKILL at
different moments. Each run's split output must equal, cell for cell and in per-key order, the
output of the same rows computed without any failure (a StreamingExecutor in this process)."""

from __future__ import annotations

import asyncio
import csv
import random
from pathlib import Path
from typing import Any, Awaitable, Callable

from dporch.engine.streaming import StreamingExecutor
from dporch.lang.format import csv_cell
from dporch.orchestration.states import TaskState

from ..orchestration.conftest import wait_until
from .conftest import ROOT, DaskProcesses, free_port

SCRIPT = ROOT / "workflows" / "indicators.dp"


def ticks(n: int, stocks: int = 100, seed: int = 7) -> list[str]:
    """CSV lines (no header) of ``n`` ticks over ``stocks`` stocks, a random walk each."""
    rnd = random.Random(seed)
    price = [10.0 + i % 50 for i in range(stocks)]
    lines = []
    for i in range(n):
        s = i % stocks
        price[s] = round(price[s] * (1 + rnd.uniform(-0.02, 0.02)), 3)
        lines.append(f"{600000 + s},d{i:07d},{price[s]}\n")
    return lines


HEADER = "stock_code,date,close\n"


def expected(lines: list[str]) -> dict[str, list[list[str]]]:
    ex = StreamingExecutor(str(SCRIPT), window_size=1000)
    out: dict[str, list[list[str]]] = {}
    for row in csv.DictReader([HEADER, *lines]):
        o = ex.push(row)
        if o:
            out.setdefault(o["stock_code"], []).append([csv_cell(v) for v in o.values()])
    return out


def read_split(out: Path) -> dict[str, list[list[str]]]:
    return {p.stem: list(csv.reader(p.open()))[1:] for p in sorted(out.glob("*.csv"))}


def task_config(tid: str, port: int, out: Path, **pool: Any) -> dict[str, Any]:
    return {
        "id": tid, "scripts": [str(SCRIPT)],
        "schema": {"columns": [{"name": "stock_code", "type": "string", "required": True},
                               {"name": "date", "type": "string"}, {"name": "close", "type": "number"}]},
        "routing": {"enabled": True, "key_column": "stock_code", "strategy": "hash"},
        "compute_pool": {"initial_size": 2, "max_size": 4, "batch_size": 200, "batch_ms": 2, **pool},
        "checkpoint": {"interval": 0.3},
        "input": {"type": "tcp", "port": port},
        "output": {"type": "file", "path": str(out / "{stock_code}.csv"), "mode": "split"},
    }


async def send(port: int, lines: list[str], *, header: bool = True, rate: float = 0.0) -> None:
    _, w = await asyncio.open_connection("127.0.0.1", port)
    if header:
        w.write(HEADER.encode())
    step = 200
    for i in range(0, len(lines), step):
        w.write("".join(lines[i:i + step]).encode())
        await w.drain()
        if rate:
            await asyncio.sleep(step / rate)
    w.close()


def run(procs: DaskProcesses, body: Callable[..., Awaitable[Any]], timeout: float = 180) -> Any:
    from dask.distributed import Client

    from dporch.orchestration.manager import TaskManager

    async def main() -> Any:
        async with Client(procs.address, asynchronous=True, direct_to_workers=True) as client:
            manager = TaskManager(client)
            try:
                return await asyncio.wait_for(body(manager), timeout)
            finally:
                await manager.shutdown()

    return asyncio.run(main())


def unit_worker_names(task: Any) -> set[str]:
    return {u.worker for u in task.pool.units.values()}


async def kill_a_unit_worker(procs: DaskProcesses, manager: Any, task: Any) -> str:
    """Kill the worker process of the task's first unit; returns the worker's name."""
    info = await manager.client.scheduler.identity()
    victim = next(iter(task.pool.units.values())).worker
    name = info["workers"][victim]["name"]
    procs.kill_worker(name)
    return name


def test_worker_killed_while_rows_stream_in(dask_procs, tmp_path):
    """SIGKILL of a worker while batches are in flight: the unit is rebuilt on the other worker
    from its checkpoint and its log, and no output cell differs."""
    dask_procs.start_workers(2)
    lines = ticks(12000)
    out = tmp_path / "out"

    async def body(m):
        port = free_port()
        t = m.create(task_config("kill-streaming", port, out))
        await m.start("kill-streaming")
        assert len(unit_worker_names(t)) == 2
        sender = asyncio.ensure_future(send(port, lines, rate=6000))
        await wait_until(lambda: t.processed >= 3000 and t.checkpointer.count >= 1)
        await kill_a_unit_worker(dask_procs, m, t)
        await sender
        await wait_until(lambda: t.processed == len(lines), timeout=90)
        assert t.state == TaskState.RUNNING and t.pool.size == 2
        assert any("rebuilt" in line for line in t.log)
        await m.stop("kill-streaming")

    run(dask_procs, body)
    assert read_split(out) == expected(lines)


def test_worker_killed_while_idle_and_while_paused(dask_procs, tmp_path):
    """A unit whose worker dies while nothing is in flight is found out by its next call; one
    that dies while the task is paused is rebuilt before the task resumes its rows."""
    dask_procs.start_workers(3)
    lines = ticks(6000)
    out = tmp_path / "out"

    async def body(m):
        port = free_port()
        t = m.create(task_config("kill-idle", port, out))
        await m.start("kill-idle")
        await send(port, lines[:2000])
        await wait_until(lambda: t.processed == 2000)
        await kill_a_unit_worker(dask_procs, m, t)  # idle: nothing in flight
        await send(port, lines[2000:4000])
        await wait_until(lambda: t.processed == 4000, timeout=90)
        await m.pause("kill-idle")
        await kill_a_unit_worker(dask_procs, m, t)  # paused
        await m.resume("kill-idle")
        await send(port, lines[4000:])
        await wait_until(lambda: t.processed == 6000, timeout=90)
        await m.stop("kill-idle")

    run(dask_procs, body)
    assert read_split(out) == expected(lines)


def test_both_workers_lost_in_turn_then_a_new_one(dask_procs, tmp_path):
    """The second worker dies after the first: no worker is left, so the task goes to error,
    keeping every row it had not finished. A new worker joins; reset and start continue with
    identical output."""
    dask_procs.start_workers(2)
    lines = ticks(8000)
    out = tmp_path / "out"

    async def body(m):
        port = free_port()
        t = m.create(task_config("in-turn", port, out))
        await m.start("in-turn")
        sender = asyncio.ensure_future(send(port, lines[:4000], rate=8000))
        await wait_until(lambda: t.processed >= 1000 and t.checkpointer.count >= 1)
        await kill_a_unit_worker(dask_procs, m, t)
        await wait_until(lambda: any("rebuilt" in line for line in t.log))
        assert len(unit_worker_names(t)) == 1  # both units now on the survivor
        await kill_a_unit_worker(dask_procs, m, t)
        await sender
        await wait_until(lambda: t.state == TaskState.ERROR, timeout=90)
        assert "cannot be rebuilt" in t.last_error and "start a worker" in t.last_error
        assert t.pool.retained_rows > 0  # kept for the replay; unread rows wait in the socket
        dask_procs.add_worker("w3")
        dask_procs.wait_workers(1)
        m.reset("in-turn")
        await m.start("in-turn")
        await wait_until(lambda: t.processed == 4000, timeout=90)
        await send(port, lines[4000:])
        await wait_until(lambda: t.processed == 8000, timeout=90)
        await m.stop("in-turn")

    run(dask_procs, body)
    assert read_split(out) == expected(lines)


def test_without_checkpoints_a_lost_unit_loses_no_row_but_its_keys_history(dask_procs, tmp_path):
    dask_procs.start_workers(2)
    lines = ticks(6000, stocks=20)
    out = tmp_path / "out"

    async def body(m):
        port = free_port()
        cfg = task_config("no-ckpt", port, out)
        cfg["checkpoint"] = {"enabled": False}
        t = m.create(cfg)
        await m.start("no-ckpt")
        await send(port, lines[:3000])
        await wait_until(lambda: t.processed == 3000)
        await kill_a_unit_worker(dask_procs, m, t)
        await send(port, lines[3000:])
        await wait_until(lambda: t.processed == 6000, timeout=90)
        assert any("history restarts (checkpoints are off)" in line for line in t.log)
        await m.stop("no-ckpt")

    run(dask_procs, body)
    got, want = read_split(out), expected(lines)
    assert {k: [r[1] for r in v] for k, v in got.items()} == {k: [r[1] for r in v] for k, v in want.items()}
    assert got != want  # the rebuilt unit's stocks started their indicators again
