"""Benchmark `dporch backtest`, whole process (interpreter start, imports, report included).

    python bench/bench_backtest.py                      # everything below, 3 runs each
    python bench/bench_backtest.py --only small,1m      # a subset: small, 1m, 1m-processes, sweep

* small: one instrument, 2,000 daily bars, workflows/ma_cross.dp, report.html included.
* 1m: 500 instruments x 2,000 days = 1M rows, MA cross, report included, default mode (Dask's
  threaded scheduler in the process); 1m-processes: the same with --processes 2.
* sweep: 100 combinations (fast=3:12:1 x slow=15:60:5) over the 1M rows, with --processes 1 and
  --processes 2 (and the default threads), report and heatmap included.

Prints wall time and peak RSS (the command's, or its report helper's if larger) per run, the
machine's load average before each group, and the command's own time split (summary.json).
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

SCRIPT = ROOT / "workflows" / "ma_cross.dp"


def run(label: str, args: list[str], repeat: int) -> None:
    print(f"{label}  (load {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    walls = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(repeat):
            wall, rss = measure([sys.executable, "-m", "dporch.cli", "backtest", *args, "--out", out])
            walls.append(wall)
            split = json.loads((Path(out) / "summary.json").read_text())["timings_s"]
            print(f"    {wall:6.2f} s wall, peak RSS {rss / 1024:.0f} MB; split: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in split.items()))
    print(f"  best {min(walls):.2f} s, runs {min(walls):.2f}-{max(walls):.2f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="small,1m,1m-processes,sweep")
    a = ap.parse_args(argv)
    only = set(a.only.split(","))
    print(f"{os.cpu_count()} cpus, Python {sys.version.split()[0]}")
    if "small" in only:
        small = ensure_data(2000, 1)
        run("2,000 bars, one instrument, report included", [str(SCRIPT), str(small)], a.repeat)
    big = ensure_data(1_000_000, 500) if only & {"1m", "1m-processes", "sweep"} else None
    if "1m" in only:
        run("1M rows (500 x 2,000), MA cross, report included, threads (default)", [str(SCRIPT), str(big)], a.repeat)
    if "1m-processes" in only:
        run("1M rows, --processes 2", [str(SCRIPT), str(big), "--processes", "2"], a.repeat)
    if "sweep" in only:
        sweep = [str(SCRIPT), str(big), "--sweep", "fast=3:12:1", "--sweep", "slow=15:60:5"]
        for mode in (["--processes", "1"], ["--processes", "2"], []):
            run(f"sweep, 100 combinations over 1M rows, {' '.join(mode) or 'threads (default)'}", sweep + mode,
                max(1, a.repeat - 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
