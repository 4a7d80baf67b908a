"""Benchmark `dporch run` end to end (CSV in, CSV out): rows/s and peak RSS.

    python bench/bench_run.py                      # 200k rows (100 stocks x 2000 days)
    python bench/bench_run.py --rows 1000000 --repeat 3

Scripts: (a) workflows/momentum.dp  chg = (close - open) / open * 100 plus a ternary signal;
         (b) workflows/window.dp    prev = close[-1], avg = sum(close[-4:0]) / 5 (per stock).
Each run is a fresh `dporch run` process; the figure is the best of --repeat runs (wall time
includes interpreter start-up) and the peak RSS of that process; the CPU time (user + system,
all threads) of each run follows the wall times.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
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


# Spawned from a bare interpreter so that the peak RSS reported by wait4 is the command's own
# (a child forked from this process would count this process's pages until exec).
_MEASURE = ("import os, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "print(time.perf_counter() - t, usage.ru_maxrss, status, usage.ru_utime + usage.ru_stime)\n")


# Commands run as an installed tool normally runs: with Python's bytecode cache (some sandboxes
# set PYTHONDONTWRITEBYTECODE, which would add ~0.3 s of compiling to every start-up).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
subprocess.run([sys.executable, "-c", "import dporch.cli.app"], env=_ENV, check=True)  # warm the cache


def measure_cpu(cmd: list[str]) -> tuple[float, int, float]:
    """(wall seconds, peak RSS in KB, CPU seconds: user + system) of one command. The CPU time
    covers the command's threads and the child processes it waited for; on a shared machine it
    moves much less than the wall time."""
    out = subprocess.run([sys.executable, "-S", "-c", _MEASURE, *cmd], capture_output=True, text=True,
                         check=True, env=_ENV).stdout.split()
    wall, rss, status, cpu = float(out[0]), int(out[1]), int(out[2]), float(out[3])
    if status != 0:
        raise SystemExit(f"command failed ({status}): {' '.join(cmd)}")
    return wall, rss, cpu


def measure(cmd: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in KB) of one command."""
    wall, rss, _ = measure_cpu(cmd)
    return wall, rss


def run_once(script: Path, data: Path, extra: list[str]) -> tuple[float, int, float]:
    """(wall seconds, peak RSS in KB, CPU seconds) of one `dporch run` process."""
    return measure_cpu([sys.executable, "-m", "dporch.cli", "run", str(script), str(data), "-o", os.devnull, *extra])


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
              f"peak RSS {rss / 1024:7.1f} MB  (runs: {', '.join(f'{r[0]:.2f}' for r in runs)}; "
              f"cpu: {', '.join(f'{r[2]:.2f}' for r in runs)})")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
