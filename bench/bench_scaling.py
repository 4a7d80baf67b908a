"""Measure the cost model of docs/scaling.md, check it against runs here, and predict larger
clusters with it (bench/scaling_model.py).

1. Costs: bench_serve's task (script (c) over 100 stocks, TCP in, hash routing, split CSV files
   out) with 2 workers at batch sizes 1000, 300 and 100 (the median of 3 runs each); the CPU per
   tick of the orchestrator and of the units is fitted against actor calls per tick (least
   squares): cpu = per_tick + per_call * calls_per_tick. Bytes per tick each way are those of a
   real 1,000-row batch and its result; the wire time is the round trip of an empty actor call
   less the CPU the two processes spend on it.
2. Check: throughput with 1, 2 and 4 workers on this machine's cores (4 worker processes on 2
   cores: more processes than cores) against the model's figure for them.
3. Prediction: 8, 32 and 128 workers with a core each (the orchestrator on its own core, a
   10 Gb/s network), from the closed form and from the simulation; then with batch_ms = 20 and
   with the key space split over 4 ingest processes.

    python bench/bench_scaling.py              # about 4 minutes on 2 cores
    python bench/bench_scaling.py --rows 200000 --quick --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import ensure_data
from bench_serve import SCRIPT, Server, free_port, task_config, throughput
from scaling_model import Costs, capacity, simulate

NIC = 1.25e9  # 10 Gb/s, bytes per second


def serve_run(workers: int, data: Path, rows: int, batch_size: int = 1000, repeat: int = 3) -> dict:
    """The median of ``repeat`` runs of the task on a fresh server (each figure separately)."""
    runs = [_serve_once(workers, data, rows, batch_size) for _ in range(repeat)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _serve_once(workers: int, data: Path, rows: int, batch_size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        server = Server(base, workers=workers)
        try:
            port = free_port()
            server.run_task(task_config("t", port, base / "out", units=workers, batch_size=batch_size))
            tp = throughput(server, "t", port, base / "out", data, rows)
        finally:
            server.close()
    n = tp["rows"] - tp["first"]
    return {"workers": workers, "batch_size": batch_size, "rate": tp["rows_per_s"],
            "o": tp["cpu_orchestrator_s"] / n, "u": tp["cpu_workers_s"] / n, "f": tp["cpu_feeder_s"] / n,
            "calls_per_tick": tp["batches"] / tp["rows"]}


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a + b x: (a, b)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def wire_bytes(data: Path, n: int = 1000) -> tuple[float, float, float]:
    """Bytes per tick: feed line, batch as sent, result as returned (a real 1,000-row batch)."""
    from dporch.orchestration.unit import ComputeUnit, encode_batch

    with open(data, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split(",")
        lines = [f.readline() for _ in range(n)]
    rows = [line.rstrip("\n").split(",") for line in lines]
    cols = {h: [r[i] for r in rows] for i, h in enumerate(header) if h in ("stock_code", "date", "close")}
    cols["close"] = [float(v) for v in cols["close"]]
    keys = cols["stock_code"]
    unit = ComputeUnit([(SCRIPT.read_text(), str(SCRIPT))], 1000, columns=list(cols))
    payload = encode_batch(list(range(n)), keys, cols, csv_lines=True)  # as for a task writing CSV
    result = unit._run(payload)
    return sum(len(x) for x in lines) / n, len(payload) / n, len(result) / n


class _Echo:
    def ping(self, payload: bytes) -> bytes:
        return payload


def actor_round_trip(calls: int = 1000) -> tuple[float, float]:
    """An actor call with a 1-byte payload, awaited one by one: (round trip, the part of it
    that is no process's CPU: the wire and the wake-ups)."""
    import psutil
    from dask.distributed import Client, LocalCluster

    def cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return t.user + t.system

    async def run() -> tuple[float, float]:
        async with (LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                 asynchronous=True, silence_logs=50) as cluster,
                    Client(cluster, asynchronous=True, direct_to_workers=True) as client):
            actor = await client.submit(_Echo, actor=True)
            for _ in range(50):
                await actor.ping(b"x")
            me = psutil.Process()
            t, c = time.perf_counter(), cpu(me) + sum(cpu(k) for k in me.children(recursive=True))
            for _ in range(calls):
                await actor.ping(b"x")
            rtt = (time.perf_counter() - t) / calls
            used = (cpu(me) + sum(cpu(k) for k in me.children(recursive=True)) - c) / calls
            return rtt, max(0.0, rtt - used)

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per setting (their median is used)")
    ap.add_argument("--quick", action="store_true", help="fit on batch sizes 1000 and 100 only; check 1 and 2 workers")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    data = ensure_data(a.rows, 100)
    cores = os.cpu_count() or 1

    sizes = [1000, 100] if a.quick else [1000, 300, 100]
    fits = [serve_run(2, data, a.rows, bs, a.repeat) for bs in sizes]
    for r in fits:
        print(f"fit run   2 workers, batch_size {r['batch_size']:5}: {r['rate']:9,.0f} ticks/s, "
              f"{1 / r['calls_per_tick']:6,.0f} rows/call; CPU µs/tick orchestrator {r['o'] * 1e6:5.2f}, "
              f"units {r['u'] * 1e6:5.2f}, feeder {r['f'] * 1e6:4.2f}")
    x = [r["calls_per_tick"] for r in fits]
    o_tick, o_call = fit(x, [r["o"] for r in fits])
    u_tick, u_call = fit(x, [r["u"] for r in fits])
    feed_b, in_b, out_b = wire_bytes(data)
    rtt, wire = actor_round_trip()
    costs = Costs(o_tick=o_tick, o_call=o_call, u_tick=u_tick, u_call=u_call,
                  f_tick=statistics.fmean(r["f"] for r in fits), wire=wire,
                  bytes_in=in_b, bytes_out=out_b, bytes_feed=feed_b)
    print(f"costs     orchestrator {o_tick * 1e6:.2f} µs/tick + {o_call * 1e6:.0f} µs/call; units "
          f"{u_tick * 1e6:.2f} µs/tick + {u_call * 1e6:.0f} µs/call; sender {costs.f_tick * 1e6:.2f} µs/tick")
    print(f"          actor round trip {rtt * 1e3:.2f} ms (wire {costs.wire * 1e3:.2f} ms); bytes/tick: feed "
          f"{feed_b:.0f}, batch {in_b:.0f}, result {out_b:.0f}")

    checks = []
    for w in ([1, 2] if a.quick else [1, 2, 4]):
        run = fits[0] if w == 2 else serve_run(w, data, a.rows, repeat=a.repeat)
        model = capacity(costs, w, cores=cores)
        checks.append({"workers": w, "measured": run["rate"], "model": model["rate"], "bound": model["bound"],
                       "rows_per_call": 1 / run["calls_per_tick"], "model_rows_per_call": model["batch_rows"]})
        print(f"check     {w} worker(s) on {cores} cores: measured {run['rate']:9,.0f} ticks/s "
              f"({1 / run['calls_per_tick']:,.0f} rows/call), model {model['rate']:9,.0f} ({model['bound']}-bound, "
              f"{model['batch_rows']:,.0f} rows/call): {model['rate'] / run['rate'] - 1:+.0%}")
    lat = simulate(costs, 2, rate=10_000)
    print(f"latency   simulated at 10,000 ticks/s, 2 workers: p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
          f"(to the result reaching the orchestrator)")

    preds = []
    for label, cfg, shards in (("default", {}, 1), ("batch_ms=20", {"batch_ms": 20.0}, 1),
                               ("4 ingest shards", {}, 4)):
        for w in (8, 32, 128):
            per = w // shards  # a shard owns a slice of the keys and the units they route to
            model = capacity(costs, per, nic=NIC, **cfg)  # each ingest process on its own host
            sim = simulate(costs, per, **cfg)
            preds.append({"setup": label, "workers": w, "model": model["rate"] * shards, "bound": model["bound"],
                          "batch_rows": model["batch_rows"], "sim": sim["rate"] * shards,
                          "sim_batch_rows": sim["batch_rows"]})
            print(f"predict   {label:16} {w:4} workers: model {model['rate'] * shards:9,.0f} ticks/s "
                  f"({model['bound']}-bound, {model['batch_rows']:,.0f} rows/call), simulation "
                  f"{sim['rate'] * shards:9,.0f} ({sim['batch_rows']:,.0f} rows/call)")
    if a.json:
        print(json.dumps({"costs": asdict(costs), "fits": fits, "checks": checks, "latency": lat,
                          "predictions": preds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
