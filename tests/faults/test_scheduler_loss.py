"""The Dask scheduler itself goes away (SIGKILL; its workers end with it) and comes back on the
same address with new workers: tasks pause with the reason instead of failing row by row, then
rebuild their units from the last checkpoint and continue with identical output."""

from __future__ import annotations

import asyncio

from dporch.orchestration.states import TaskState

from .conftest import free_port
from .test_worker_loss import expected, read_split, run, send, task_config, ticks, wait_until


def test_scheduler_killed_and_started_again(dask_procs, tmp_path):
    dask_procs.start_workers(2)
    lines = ticks(16_000)
    out = tmp_path / "out"

    async def body(m):
        port = free_port()
        t = m.create(task_config("sched", port, out))
        await m.start("sched")
        sender = asyncio.ensure_future(send(port, lines, rate=4000))
        await wait_until(lambda: t.processed >= 4000 and t.checkpointer.count >= 1)
        dask_procs.kill(dask_procs.scheduler)
        await wait_until(lambda: t.state == TaskState.PAUSED and t.waiting_for_cluster, timeout=30)
        assert "waiting for the Dask scheduler" in t.reason
        assert any(e.stage == "cluster" for e in t.errors)
        processed = t.processed
        await asyncio.sleep(1)
        assert t.processed == processed  # nothing runs without a scheduler
        await asyncio.to_thread(dask_procs.start_scheduler)
        dask_procs.add_worker("w3")
        dask_procs.add_worker("w4")
        await wait_until(lambda: t.state == TaskState.RUNNING, timeout=60)
        assert t.reason == "the Dask scheduler is back"
        await sender
        await wait_until(lambda: t.processed == len(lines), timeout=60)
        await m.stop("sched")

    run(dask_procs, body)
    assert read_split(out) == expected(lines)
