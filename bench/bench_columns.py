"""Benchmark batch runs in the column form and `dporch backtest` on 1M rows.

    python bench/bench_columns.py                 # 500 stocks x 2,000 days = 1M rows

* `dporch run workflows/indicators.dp` (script (c)) on a CSV file: the column form, CSV parse
  and write included, output to /dev/null; and the same with --row-form for comparison.
* `dporch backtest workflows/ma_cross.dp` in its default mode (Dask's threaded scheduler in the
  process), report included; its summary.json holds the time split (read, compute, summarize,
  report). bench/bench_backtest.py measures the backtest in every mode, and sweeps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_run import ensure_data, measure  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--stocks", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--row-form", action="store_true", help="also time the row form")
    a = ap.parse_args(argv)
    data = ensure_data(a.rows, a.stocks)
    n = a.rows
    print(f"data: {data.name} ({n} rows), {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}")
    script = ROOT / "workflows" / "indicators.dp"
    cmd = [sys.executable, "-m", "dporch.cli", "run", str(script), str(data), "-o", os.devnull]
    runs = [measure(cmd) for _ in range(a.repeat)]
    best = min(r[0] for r in runs)
    print(f"run (c), column form   {n / best:10,.0f} rows/s  best {best:.2f} s  peak RSS {max(r[1] for r in runs) / 1024:.0f} MB"
          f"  (runs: {', '.join(f'{r[0]:.2f}' for r in runs)})")
    if a.row_form:
        wall, rss = measure(cmd + ["--row-form"])
        print(f"run (c), row form      {n / wall:10,.0f} rows/s  {wall:.2f} s  peak RSS {rss / 1024:.0f} MB")
    with tempfile.TemporaryDirectory() as out:
        bt = [sys.executable, "-m", "dporch.cli", "backtest", str(ROOT / "workflows" / "ma_cross.dp"), str(data),
              "--out", out]
        walls = []
        for _ in range(a.repeat):
            wall, rss = measure(bt)
            walls.append(wall)
            split = json.loads((Path(out) / "summary.json").read_text())["timings_s"]
        print(f"backtest (MA cross)    best {min(walls):.2f} s wall  (runs: {', '.join(f'{w:.2f}' for w in walls)})  "
              f"peak RSS (client) {rss / 1024:.0f} MB")
        print("  last run's split: " + ", ".join(f"{k} {v:.2f}s" for k, v in split.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
