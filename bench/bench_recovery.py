"""Benchmark checkpoints and recovery of realtime tasks.

* snapshot: the state of N stocks with full 1,000-row windows (``max(close[-999:0])``) and of
  script (c) (MA, RSI, MACD), taken by a compute unit and committed to the SQLite store: bytes,
  seconds to take, seconds to commit.
* recovery: a task on a 2-worker LocalCluster holding 100 stocks with full windows; after a
  checkpoint and some more ticks a worker process is killed (SIGKILL). The figure is the time
  from the kill until every tick sent before it is written again (the lost unit rebuilt from
  the checkpoint, its replay log sent again).

    python bench/bench_recovery.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WINDOW_SCRIPT = """-- INPUT stock_code:string, date:string, close:number --
-- OUTPUT stock_code:string, date:string, close:number, hi:number, lo:number --
hi = max(close[-999:0])
lo = min(close[-999:0])
return [stock_code, date, close, hi, lo]
"""
COLUMNS = ["stock_code", "date", "close"]


def columns(stocks: int, per_stock: int, start: int = 0) -> tuple[list, list, dict]:
    rnd = random.Random(start)
    keys = [f"{600000 + i % stocks}" for i in range(stocks * per_stock)]
    cols = {"stock_code": keys, "date": [f"d{start + i}" for i in range(len(keys))],
            "close": [10 + rnd.random() for _ in keys]}
    return list(range(start, start + len(keys))), keys, cols


def snapshot_figures(script: tuple[str, str], stocks: int) -> tuple[int, float, float]:
    """(bytes, seconds to take, seconds to commit) of a full snapshot of ``stocks`` keys."""
    import pickle

    from dporch.orchestration.checkpoints import Checkpoint, CheckpointStore
    from dporch.orchestration.unit import ComputeUnit, encode_batch

    unit = ComputeUnit([script], 1000, "bench", COLUMNS)

    async def fill_and_snap() -> tuple[bytes, float]:
        for b in range(10):  # 1,000 rows per stock, in 10 batches
            seqs, keys, cols = columns(stocks, 100, start=b * stocks * 100)
            await unit.process(b, encode_batch(seqs, keys, cols))
        t = time.perf_counter()
        data = await unit.snapshot(10, full=True)
        return data, time.perf_counter() - t

    data, took = asyncio.run(fill_and_snap())
    states, dropped = pickle.loads(data)
    with tempfile.TemporaryDirectory() as tmp:
        store = CheckpointStore(Path(tmp) / "c.sqlite")
        t = time.perf_counter()
        size = store.commit("bench", Checkpoint(1, "f", 0, ["u1"]), {"u1": (states, dropped)}, full=True)
        commit = time.perf_counter() - t
        store.close()
    return size, took, commit


async def recovery(stocks: int, after: int) -> dict:
    from dask.distributed import Client, LocalCluster

    from dporch.orchestration.manager import TaskManager

    tmp = Path(tempfile.mkdtemp())
    (tmp / "win.dp").write_text(WINDOW_SCRIPT)
    cluster = await LocalCluster(n_workers=2, threads_per_worker=1, processes=True, asynchronous=True,
                                 dashboard_address=None, silence_logs=50)
    client = await Client(cluster, asynchronous=True, direct_to_workers=True)
    m = TaskManager(client)
    try:
        cfg = {"id": "rec", "scripts": [str(tmp / "win.dp")],
               "schema": {"columns": [{"name": c, "type": "number" if c == "close" else "string"} for c in COLUMNS]},
               "routing": {"enabled": True, "key_column": "stock_code"},
               "compute_pool": {"initial_size": 2, "max_size": 2, "window_size": 1000},
               "checkpoint": {"interval": 3600},  # one checkpoint, taken below
               "input": {"type": "tcp", "port": 0},  # no sender: ticks are pushed
               "output": {"type": "file", "path": str(tmp / "out" / "{stock_code}.csv"), "mode": "split"}}
        t = m.create(cfg)
        await m.start("rec")
        sent = 0
        for b in range(10):  # full windows: 1,000 ticks per stock
            _, _, cols = columns(stocks, 100, start=sent)
            await t.push([dict(zip(COLUMNS, r)) for r in zip(*cols.values())])
            sent += stocks * 100
        while t.processed < sent:
            await asyncio.sleep(0.01)
        ck = await t.checkpointer.take()
        _, _, cols = columns(stocks, after // stocks, start=sent)
        await t.push([dict(zip(COLUMNS, r)) for r in zip(*cols.values())])
        sent += len(cols["close"])
        while t.processed < sent:
            await asyncio.sleep(0.01)
        pids = await client.run(os.getpid)
        unit = next(iter(t.pool.units.values()))
        replay = unit.log.rows
        t0 = time.perf_counter()
        os.kill(pids[unit.worker], signal.SIGKILL)
        # the next ticks find the unit gone; the clock stops when they, and the replay, are written
        _, _, cols = columns(stocks, 10, start=sent)
        await t.push([dict(zip(COLUMNS, r)) for r in zip(*cols.values())])
        sent += len(cols["close"])
        while t.processed < sent:
            await asyncio.sleep(0.005)
        took = time.perf_counter() - t0
        rebuilt = [line for line in t.log if "rebuilt" in line]
        await m.stop("rec")
        return {"seconds": took, "checkpoint_bytes": t.checkpointer.last_bytes, "replayed_rows": replay,
                "checkpoint": ck.id if ck else None, "log": rebuilt[-1] if rebuilt else "(no rebuild!)"}
    finally:
        await m.shutdown()
        await client.close()
        await cluster.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--after", type=int, default=20_000, help="ticks sent after the checkpoint, before the kill")
    a = ap.parse_args(argv)
    indicators = ((ROOT / "workflows" / "indicators.dp").read_text(), "indicators.dp")
    for name, script in (("window 1000", (WINDOW_SCRIPT, "win.dp")), ("script (c)", indicators)):
        for stocks in (100, 1000):
            size, took, commit = snapshot_figures(script, stocks)
            print(f"snapshot  {name:12s} {stocks:5d} stocks: {size / 1e6:7.2f} MB, taken in {took * 1000:7.1f} ms, "
                  f"committed in {commit * 1000:7.1f} ms")
    r = asyncio.run(recovery(100, a.after))
    print(f"recovery  100 stocks, window 1000, {r['replayed_rows']:,} ticks to replay after checkpoint "
          f"{r['checkpoint']}: caught up {r['seconds']:.2f} s after the kill\n          {r['log']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
