"""Benchmark start-up: whole `dporch` processes on tiny work, wall and CPU time.

    python bench/bench_startup.py                 # 10 runs of each command
    python bench/bench_startup.py --repeat 20

Commands: `dporch --help`, `dporch check` (script (c)), `dporch run` on a 50-row file (scripts
(a) and (c): the row form, chosen by size) and, for comparison, `python -c pass`. Each figure is
the best and the median of --repeat fresh processes; CPU time is user + system of the process
(less sensitive than wall time to other work on the machine). --modules also lists, per command,
the heavy modules the process loaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_run import SCRIPTS, ensure_data, measure_cpu  # noqa: E402

HEAVY = ("numpy", "pandas", "pyarrow", "talib", "dask", "distributed", "rich", "pydantic", "asyncio")

# Runs the CLI in-process, then reports which of HEAVY it imported (on stderr, after the command).
_PROBE = ("import sys, atexit\n"
          "atexit.register(lambda: print('modules:', ' '.join(m for m in %r if m in sys.modules) or '-', "
          "file=sys.stderr))\n"
          "sys.argv = ['dporch'] + sys.argv[1:]\n"
          "from dporch.cli.app import main\n"
          "main()\n" % (HEAVY,))


def small_file() -> Path:
    path = ROOT / "bench" / "data" / "ticks_50.csv"
    if not path.exists():
        big = ensure_data(200_000, 100)
        with open(big) as src, open(path, "w") as dst:
            for _, line in zip(range(51), src):
                dst.write(line)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--modules", action="store_true", help="also list the heavy modules each command loads")
    a = ap.parse_args(argv)
    data = small_file()
    dporch = [sys.executable, "-m", "dporch.cli"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "dporch --help": dporch + ["--help"],
        "dporch check (c)": dporch + ["check", str(SCRIPTS["c"])],
        "dporch run (a), 50 rows": dporch + ["run", str(SCRIPTS["a"]), str(data), "-o", os.devnull],
        "dporch run (c), 50 rows": dporch + ["run", str(SCRIPTS["c"]), str(data), "-o", os.devnull],
    }
    print(f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}, {a.repeat} runs each (best / median)")
    for name, cmd in commands.items():
        runs = [measure_cpu(cmd) for _ in range(a.repeat)]
        walls = [r[0] for r in runs]
        cpus = [r[2] for r in runs]
        print(f"{name:26s} wall {min(walls):.3f} / {statistics.median(walls):.3f} s   "
              f"cpu {min(cpus):.3f} / {statistics.median(cpus):.3f} s   peak RSS {max(r[1] for r in runs) / 1024:.0f} MB")
        if a.modules and cmd[:3] == dporch:
            err = subprocess.run([sys.executable, "-c", _PROBE, *cmd[3:]], capture_output=True, text=True).stderr
            print("    " + next(line for line in err.splitlines() if line.startswith("modules:")))
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
