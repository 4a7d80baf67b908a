"""Benchmark `dporch run` end to end (CSV in, CSV out): rows/s and peak RSS.

    python bench/bench_run.py                      # 200k rows (100 stocks x 2000 days)
    python bench/bench_run.py --rows 1000000 --repeat 3

Scripts: (a) workflows/momentum.dp  chg = (close - open) / open * 100 plus a ternary signal;
         (b) workflows/window.dp    prev = close[-1], avg = sum(close[-4:0]) / 5 (per stock).
Each run is a fresh `dporch run` process; the figure is the best of --repeat runs (wall time
includes interpreter start-up) and the peak RSS of that process.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"a": ROOT / "workflows/momentum.dp", "b": ROOT / "workflows/window.dp",
           "c": ROOT / "workflows/indicators.dp"}


def ensure_data(rows: int, stocks: int) -> Path:
    path = ROOT / "bench" / "data" / f"ticks_{stocks}x{rows // stocks}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "bench/gen_data.py"), "--stocks", str(stocks),
                        "--rows", str(rows), "-o", str(path)], check=True)
    return path


def run_once(script: Path, data: Path, extra: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in KB) of one `dporch run` process."""
    cmd = [sys.executable, "-m", "dporch.cli", "run", str(script), str(data), "-o", os.devnull, *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"dporch run failed ({status}): {' '.join(cmd)}")
    return wall, usage.ru_maxrss


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--stocks", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scripts", default="ab", help="which scripts to run (letters a, b, c)")
    ap.add_argument("extra", nargs="*", help="extra arguments for dporch run")
    a = ap.parse_args(argv)
    data = ensure_data(a.rows, a.stocks)
    n = sum(1 for _ in open(data)) - 1
    print(f"data: {data.name} ({n} rows), {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}")
    for letter in a.scripts:
        script = SCRIPTS[letter]
        runs = [run_once(script, data, a.extra) for _ in range(a.repeat)]
        best = min(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        print(f"({letter}) {script.name:16s} best {best:6.2f} s  {n / best:10,.0f} rows/s  "
              f"peak RSS {rss / 1024:7.1f} MB  (runs: {', '.join(f'{r[0]:.2f}' for r in runs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
