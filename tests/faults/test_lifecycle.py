"""Lifecycle actions under load: stop, start, pause and resume every half second while rows
stream in through TCP and push_data; scaling up and down mid-stream. Every row accepted is
processed exactly once, with each key's history continuous."""

from __future__ import annotations

import asyncio
import random

from dporch.orchestration.errors import IllegalTransition
from dporch.orchestration.states import TaskState

from .conftest import free_port
from .test_worker_loss import expected, read_split, run, send, task_config, ticks, wait_until


def test_stop_start_pause_resume_every_half_second(dask_procs, tmp_path):
    dask_procs.start_workers(2)
    tcp_lines = ticks(60_000, stocks=50)
    out = tmp_path / "out"
    pushed: list[str] = []  # rows the API accepted, in order
    refused = 0

    async def body(m):
        nonlocal refused
        port = free_port()
        t = m.create(task_config("churn", port, out, batch_size=100))
        await m.start("churn")
        sender = asyncio.ensure_future(send(port, tcp_lines, rate=40_000))

        async def pusher() -> None:
            nonlocal refused
            rnd = random.Random(3)
            n = 0
            while not sender.done():
                batch = [f"{700000 + j % 10},p{n + j:07d},{10 + rnd.random():.3f}\n" for j in range(50)]
                try:
                    await t.push([dict(zip(("stock_code", "date", "close"), line.strip().split(",")))
                                  for line in batch])
                    pushed.extend(batch)
                    n += 50
                except IllegalTransition:
                    refused += 1
                await asyncio.sleep(0.005)

        pushing = asyncio.ensure_future(pusher())
        rnd = random.Random(5)
        actions = 0
        while not sender.done():
            await asyncio.sleep(0.5)
            action = rnd.choice(["stop", "pause"])
            await getattr(m, action)("churn")
            await asyncio.sleep(0.1)
            if action == "stop":
                assert t.state == TaskState.STOPPED
                await m.start("churn")
            else:
                assert t.state == TaskState.PAUSED
                await m.resume("churn")
            actions += 1
        await pushing
        total = len(tcp_lines) + len(pushed)
        await wait_until(lambda: t.processed == total, timeout=90)
        await m.stop("churn")
        assert actions >= 3 and refused >= 1

    run(dask_procs, body)
    want = expected(tcp_lines)
    want_pushed = expected(pushed)
    got = read_split(out)
    assert {k: v for k, v in got.items() if k.startswith("6")} == want
    assert {k: v for k, v in got.items() if k.startswith("7")} == want_pushed


def test_scaling_up_and_down_mid_stream_moves_state_with_keys(dask_procs, tmp_path):
    dask_procs.start_workers(2)
    lines = ticks(20_000)
    out = tmp_path / "out"

    async def body(m):
        port = free_port()
        t = m.create(task_config("scale", port, out, initial_size=1, max_size=4))
        await m.start("scale")
        sender = asyncio.ensure_future(send(port, lines, rate=10_000))
        await wait_until(lambda: t.processed >= 3000)
        assert await t.scale(2) and t.pool.size == 3
        await wait_until(lambda: t.processed >= 9000)
        assert await t.scale(-1) and t.pool.size == 2
        await wait_until(lambda: t.processed >= 14000)
        assert await t.scale(-1) and t.pool.size == 1
        await sender
        await wait_until(lambda: t.processed == len(lines), timeout=60)
        await m.stop("scale")

    run(dask_procs, body)
    assert read_split(out) == expected(lines)
