"""Benchmark the streaming engine with script (c) (MA5, MA20, RSI14, MACD and a signal):

* StreamingExecutor.push, tick by tick (rows are dicts prepared before timing);
* StreamingExecutor.push_many with 1,000-row DataFrame batches;
* `dporch daemon` end to end in a fresh process (CSV file in, --split CSV files out), at
  --rows and at 10x --rows, to show that peak RSS does not grow with the input.

    python bench/bench_stream.py                 # 200k rows, 100 stocks
    python bench/bench_stream.py --rows 200000 --daemon-scale 10
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_run import ensure_data, measure_cpu  # noqa: E402

SCRIPT = ROOT / "workflows" / "indicators.dp"


def bench_push(data: Path) -> tuple[float, int]:
    from dporch.engine.streaming import StreamingExecutor

    rows = list(csv.DictReader(open(data, newline="")))
    for r in rows:  # a tick source delivers typed values
        for c in ("open", "high", "low", "close", "volume"):
            r[c] = float(r[c])
    ex = StreamingExecutor(str(SCRIPT), window_size=1000)
    t = time.perf_counter()
    push = ex.push
    for r in rows:
        push(r)
    return time.perf_counter() - t, len(rows)


def bench_push_many(data: Path, batch: int) -> tuple[float, int]:
    import pandas as pd

    from dporch.engine.streaming import StreamingExecutor

    frame = pd.read_csv(data, dtype={"stock_code": str})
    batches = [frame.iloc[i:i + batch] for i in range(0, len(frame), batch)]
    ex = StreamingExecutor(str(SCRIPT), window_size=1000)
    t = time.perf_counter()
    for b in batches:
        ex.push_many(b)
    return time.perf_counter() - t, len(frame)


def bench_daemon(data: Path, extra: list[str]) -> tuple[float, int, float]:
    """(wall seconds, peak RSS in KB, CPU seconds of the daemon and its workers)."""
    with tempfile.TemporaryDirectory() as out:
        return measure_cpu([sys.executable, "-m", "dporch.cli", "daemon", str(SCRIPT), str(data), "--split",
                            "--out", out, *extra])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--stocks", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--daemon-scale", type=int, default=10, help="also run the daemon on rows x this")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("extra", nargs="*", help="extra arguments for dporch daemon")
    a = ap.parse_args(argv)
    data = ensure_data(a.rows, a.stocks)
    print(f"data: {data.name}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}")
    best = min(bench_push(data)[0] for _ in range(a.repeat))
    print(f"push (tick by tick)        {a.rows / best:10,.0f} rows/s  ({best:.2f} s)")
    best = min(bench_push_many(data, a.batch)[0] for _ in range(a.repeat))
    print(f"push_many ({a.batch}-row frames) {a.rows / best:10,.0f} rows/s  ({best:.2f} s)")
    runs = [bench_daemon(data, a.extra) for _ in range(a.repeat)]
    wall = min(r[0] for r in runs)
    rss = max(r[1] for r in runs)
    print(f"daemon --split ({a.rows} rows)  {a.rows / wall:10,.0f} rows/s  ({wall:.2f} s wall)  peak RSS {rss / 1024:.1f} MB"
          f"  (runs: {', '.join(f'{r[0]:.2f}' for r in runs)}; cpu: {', '.join(f'{r[2]:.2f}' for r in runs)})")
    if a.daemon_scale > 1:
        big = ensure_data(a.rows * a.daemon_scale, a.stocks)
        wall, rss_big, _ = bench_daemon(big, a.extra)
        n = a.rows * a.daemon_scale
        print(f"daemon --split ({n} rows) {n / wall:10,.0f} rows/s  ({wall:.2f} s wall)  peak RSS {rss_big / 1024:.1f} MB "
              f"({(rss_big / rss - 1) * 100:+.1f}% vs {a.rows} rows)")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
