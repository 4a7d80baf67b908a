"""Checkpoints on a real LocalCluster: history continues across stop and start (unless started
fresh), the rows kept for a replay stay under their bound, an idle task saves nothing new."""

from __future__ import annotations

import asyncio

from dporch.orchestration.states import TaskState

from .conftest import check_sequences, free_port, read_split, rows_text, run_async, send_tcp, seq_task, wait_until


def test_stop_and_start_continue_history_and_fresh_forgets_it(tmp_path, seq_script, scheduler):
    out = tmp_path / "out"

    async def body(m, client):
        port = free_port()
        t = m.create(seq_task("cont", seq_script, port, out))
        await m.start("cont")
        await send_tcp(port, rows_text(1000))
        await wait_until(lambda: t.processed == 1000)
        await m.stop("cont")
        assert t.checkpointer.last is not None and t.checkpointer.last.next_seq == 1000
        await m.start("cont")
        await send_tcp(port, rows_text(1000, start=1000))
        await wait_until(lambda: t.processed == 2000)
        await m.stop("cont")
        check_sequences(out, 2000)  # one history per key across the stop
        await m.start("cont", fresh=True)
        assert t.next_seq == 0
        await send_tcp(port, "k,seq,x\nA,5000,1\n")
        await wait_until(lambda: t.processed == 2001)
        await m.stop("cont")

    run_async(body, scheduler)
    last = read_split(out)["A"][-1]
    assert last[1] == "5000" and last[2] == "" and last[3] == "0"  # empty history again


def test_rows_kept_for_replay_stay_under_their_bound(tmp_path, seq_script, scheduler):
    out = tmp_path / "out"

    async def body(m, client):
        port = free_port()
        t = m.create(seq_task("bound", seq_script, port, out, checkpoint={"interval": 3600, "max_retained_rows": 400}))
        await m.start("bound")
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, t.pool.retained_rows)
                await asyncio.sleep(0.001)

        watcher = asyncio.ensure_future(watch())
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"k,seq,x\n")
        for i in range(60):  # the bound is checked between chunks: send 60 of 100 rows
            w.write(rows_text(100, start=i * 100, header=False).encode())
            await w.drain()
            await asyncio.sleep(0.01)
        w.close()
        await wait_until(lambda: t.processed == 6000)
        watcher.cancel()
        assert t.checkpointer.count >= 6  # early checkpoints, not the hourly one
        assert peak <= 400 + 100  # the bound, plus one chunk
        count = t.checkpointer.count
        await asyncio.sleep(0.3)
        assert t.checkpointer.count == count  # nothing new: nothing saved
        await m.stop("bound")
        assert t.state == TaskState.STOPPED

    run_async(body, scheduler)
    check_sequences(out, 6000)
