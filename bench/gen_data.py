"""Synthetic OHLCV ticks: N stocks x M days, interleaved by date.

    python bench/gen_data.py --stocks 100 --days 2000 -o bench/data/ticks_200k.csv
    python bench/gen_data.py --rows 1000000 -o bench/data/ticks_1m.csv   # stocks x days = rows

Columns: stock_code,date,open,high,low,close,volume. Prices are a seeded random walk with
two decimals; the output is streamed (memory does not grow with --rows).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys


def generate(stocks: int, days: int, seed: int, out) -> int:
    rng = random.Random(seed)
    codes = [f"{600000 + i:06d}" if i % 2 else f"{i:06d}" for i in range(stocks)]
    price = [rng.uniform(5, 50) for _ in codes]
    start = dt.date(2015, 1, 5)
    out.write("stock_code,date,open,high,low,close,volume\n")
    n = 0
    day = start
    for _ in range(days):
        while day.weekday() >= 5:
            day += dt.timedelta(days=1)
        date = day.isoformat()
        lines = []
        for i, code in enumerate(codes):
            p = price[i]
            o = max(0.5, p * (1 + rng.gauss(0, 0.01)))
            c = max(0.5, o * (1 + rng.gauss(0, 0.02)))
            h = max(o, c) * (1 + abs(rng.gauss(0, 0.005)))
            lo = min(o, c) * (1 - abs(rng.gauss(0, 0.005)))
            v = int(rng.uniform(1e4, 1e6))
            price[i] = c
            lines.append(f"{code},{date},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v}\n")
        out.write("".join(lines))
        n += len(lines)
        day += dt.timedelta(days=1)
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stocks", type=int, default=100)
    ap.add_argument("--days", type=int, default=2000)
    ap.add_argument("--rows", type=int, help="total rows; overrides --days (days = rows / stocks)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("-o", "--output", help="output file (default stdout)")
    a = ap.parse_args(argv)
    days = a.days if a.rows is None else max(1, a.rows // a.stocks)
    out = open(a.output, "w", newline="") if a.output else sys.stdout
    try:
        n = generate(a.stocks, days, a.seed, out)
    finally:
        if a.output:
            out.close()
    print(f"wrote {n} rows ({a.stocks} stocks x {days} days)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
