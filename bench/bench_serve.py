"""Benchmark a realtime task end to end: `dporch serve` on a 2-worker LocalCluster, script (c)
(workflows/indicators.dp: MA5, MA20, RSI14, MACD, a signal) over 100 stocks, hash routing to 2
compute units, TCP input fed by a separate process, split CSV files out (one per stock).

* throughput: `dporch feed` sends --rows ticks as fast as the task takes them (TCP
  backpressure); the figure is rows processed per second from the first processed rows to
  the last (the feeder's start-up is not counted), after checking that every row reached the
  files exactly once.
* latency: a separate process sends ticks at a steady --rate for --seconds, stamping each
  tick's `date` cell with its send time; this process tails the output files of 10 of the
  stocks (polling every 2 ms, so figures include up to 2 ms of polling delay) and records when
  each of their rows becomes readable in its file. The first second is warm-up.
* CPU: user+system seconds of the orchestrator process (API, routing, I/O, and the in-process
  Dask scheduler) and of the worker processes (compute units), per phase.

    python bench/bench_serve.py                       # 300k rows, 5k ticks/s for 10 s
    python bench/bench_serve.py --rows 1000000 --rate 5000 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_run import _ENV, ensure_data  # noqa: E402

SCRIPT = ROOT / "workflows" / "indicators.dp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def task_config(tid: str, port: int, out: Path, script: Path = SCRIPT, checkpoints: bool = True, units: int = 2,
                batch_size: int = 1000, batch_ms: float = 5.0) -> dict:
    """The benchmark task: script (c) per stock, ``units`` units, TCP in, one CSV file per stock
    out; checkpoints on (the default: every 5 s) or off."""
    return {
        "id": tid, "scripts": [str(script)],
        "schema": {"columns": [{"name": "stock_code", "type": "string", "required": True},
                               {"name": "date", "type": "string"}, {"name": "close", "type": "number"}]},
        "routing": {"enabled": True, "key_column": "stock_code", "strategy": "hash"},
        "compute_pool": {"initial_size": units, "max_size": units, "window_size": 1000, "auto_scale": False,
                         "batch_size": batch_size, "batch_ms": batch_ms},
        "input": {"type": "tcp", "host": "127.0.0.1", "port": port, "format": "csv"},
        "output": {"type": "file", "path": f"{out}/{{stock_code}}.csv", "mode": "split", "auto_flush": True},
        "checkpoint": {"enabled": checkpoints},
    }


class Server:
    """`dporch serve` in its own process, and its API. ``monitoring``: with the web console
    and /metrics on ``web_port`` and the dporch page on the dashboard (``dashboard_port``);
    without (the default), neither: the figures of the README were measured that way."""

    def __init__(self, base: Path, monitoring: bool = False, workers: int = 2):
        import psutil

        self.port = free_port()
        self.web_port, self.dashboard_port = free_port(), free_port()
        (base / "empty.toml").write_text("")
        extra = (["--web", f"127.0.0.1:{self.web_port}"] if monitoring else ["--no-web", "--no-dashboard-page"])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dporch.cli", "serve", "--config", str(base / "empty.toml"),
             "--port", str(self.port), "--workers", str(workers), "--state-dir", str(base / "state"),
             "--dashboard", f"127.0.0.1:{self.dashboard_port}", "--allow-path", str(ROOT), "--allow-path", str(base),
             *extra],
            env=_ENV, stdout=subprocess.DEVNULL, stderr=open(base / "serve.log", "w"))
        self.ps = psutil.Process(self.proc.pid)
        from dporch.api.client import Client

        deadline = time.monotonic() + 120
        while True:
            try:
                self.api = Client("127.0.0.1", self.port)
                self.api.ping()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"dporch serve did not start; see {base / 'serve.log'}")
                time.sleep(0.2)

    def task(self, tid: str) -> dict:
        return self.api.get_task(tid)

    def run_task(self, config: dict) -> None:
        """Create and start a task through the API; returns when it is running."""
        self.api.create_task(config)
        self.api.start_task(config["id"])

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far: (orchestrator, workers)."""
        return _cpu(self.ps), sum(_cpu(c) for c in self.ps.children(recursive=True))

    def close(self) -> None:
        self.api.close()
        self.proc.terminate()
        self.proc.wait(60)


def count_rows(out: Path) -> tuple[int, int]:
    """(data rows, files) of a split output folder."""
    files = list(out.glob("*.csv"))
    return sum(sum(1 for _ in open(f, "rb")) - 1 for f in files), len(files)


def throughput(server: Server, tid: str, port: int, out: Path | None, data: Path, rows: int) -> dict:
    feeder = subprocess.Popen([sys.executable, "-m", "dporch.cli", "feed", str(data), "--port", str(port)],
                              env=_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import psutil

    feeder_ps, feeder_cpu = psutil.Process(feeder.pid), None
    cpu0, t0, first, f0 = server.cpu(), time.perf_counter(), 0, 0.0
    while (done := server.task(tid)["stats"]["processed_count"]) < rows:
        if feeder_cpu is None:
            pid, status, usage = os.wait4(feeder.pid, os.WNOHANG)  # reaped here, for its CPU time
            if pid:
                feeder.returncode = os.waitstatus_to_exitcode(status)
                if feeder.returncode:
                    raise SystemExit("the feeder failed")
                feeder_cpu = usage.ru_utime + usage.ru_stime
        if not first and done:  # the clock starts with the first processed rows
            cpu0, t0, first, f0 = server.cpu(), time.perf_counter(), done, _cpu(feeder_ps)
        time.sleep(_poll_delay(done, first, t0, rows))
    wall = time.perf_counter() - t0
    cpu1 = server.cpu()
    if feeder_cpu is None:
        _, _, usage = os.wait4(feeder.pid, 0)
        feeder.returncode = 0
        feeder_cpu = usage.ru_utime + usage.ru_stime
    f1 = feeder_cpu
    time.sleep(0.2)  # the last auto-flush
    stats = server.task(tid)["stats"]
    written, files = count_rows(out) if out is not None else (rows, 0)  # None: the task writes no files
    if written != rows or stats["error_count"]:
        raise SystemExit(f"expected {rows} rows in the files, found {written} ({stats['error_count']} errors)")
    return {"rows": rows, "first": first, "files": files, "wall_s": wall, "rows_per_s": (rows - first) / wall,
            "cpu_orchestrator_s": cpu1[0] - cpu0[0], "cpu_workers_s": cpu1[1] - cpu0[1], "cpu_feeder_s": f1 - f0,
            "batches": sum(u["batches"] for u in stats["units"])}


def _poll_delay(done: int, first: int, t0: float, rows: int) -> float:
    """Poll often only near the end (the end time is when the last row is seen), so that the
    benchmark's own get_task calls (~4 % of the orchestrator's CPU at 100 a second) do not
    weigh on what it measures."""
    if not first or done <= first:
        return 0.01
    rate = (done - first) / (time.perf_counter() - t0)
    return min(0.1, max(0.005, (rows - done) / rate / 2))


def _cpu(p) -> float:
    """User + system CPU seconds of a process (0 once it has exited)."""
    try:
        t = p.cpu_times()
    except Exception:  # noqa: BLE001 - psutil.NoSuchProcess: it finished
        return 0.0
    return t.user + t.system


def paced_feed(port: int, data: str, rate: float, seconds: float) -> None:
    """Send ticks at `rate`/s, each `date` cell replaced by the send time (time.time())."""
    with open(data, encoding="utf-8") as f:
        header = f.readline()
        rows = [line.rstrip("\n").split(",") for line in f]
    total = int(rate * seconds)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(header.encode())
        start, sent = time.monotonic(), 0
        while sent < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            if due > sent:
                now = f"{time.time():.6f}"
                block = []
                for k in range(sent, due):
                    r = rows[k % len(rows)]
                    r[1] = now
                    block.append(",".join(r))
                sock.sendall(("\n".join(block) + "\n").encode())
                sent += len(block)
            time.sleep(0.0005)


def feed_steadily(port: int, data: Path, rate: float, stop: threading.Event) -> None:
    """The rows of ``data`` (a CSV file), over and over, at ``rate`` per second until ``stop``."""
    lines = data.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall((header + "\n").encode())
        start, sent = time.monotonic(), 0
        while not stop.is_set():
            due = int((time.monotonic() - start) * rate)
            if due > sent:
                s.sendall("".join(rows[i % len(rows)] + "\n" for i in range(sent, due)).encode())
                sent = due
            time.sleep(0.005)


class Tail:
    """New complete lines of some CSV files, polled."""

    def __init__(self, paths: list[Path]):
        self.waiting = list(paths)  # not created yet
        self.files: list[list] = []  # [file, partial line, header seen]

    def poll(self) -> list[bytes]:
        for p in [p for p in self.waiting if p.exists()]:
            self.waiting.remove(p)
            self.files.append([open(p, "rb"), bytearray(), False])
        lines: list[bytes] = []
        for entry in self.files:
            f, rest, started = entry
            chunk = f.read()
            if chunk:
                rest += chunk
                cut = rest.rfind(b"\n") + 1
                if cut:
                    got = bytes(rest[:cut]).splitlines()
                    del rest[:cut]
                    lines += got if started else got[1:]  # the first line is the header
                    entry[2] = True
        return lines


def latency(server: Server, tid: str, port: int, out: Path, data: Path, rate: float, seconds: float,
            sample: int = 10) -> dict:
    """Ticks of `sample` stocks are timed (tailing every file would cost this process more
    CPU than the server's orchestrator on a 2-core machine)."""
    with open(data) as f:
        f.readline()
        codes = [line.split(",", 1)[0] for line in f]
    chosen = sorted(set(codes))[:sample]
    total = int(rate * seconds)
    expected = sum(1 for k in range(total) if codes[k % len(codes)] in chosen)
    tail = Tail([out / f"{c}.csv" for c in chosen])
    feeder = multiprocessing.get_context("spawn").Process(target=paced_feed, args=(port, str(data), rate, seconds))
    cpu0, t0, own0 = server.cpu(), time.time(), time.process_time()
    feeder.start()
    timed: list[tuple[float, float]] = []  # (sent, latency)
    deadline = time.monotonic() + seconds + 60
    while len(timed) < expected and time.monotonic() < deadline:
        lines = tail.poll()
        now = time.time()
        for line in lines:
            sent = float(line.split(b",", 2)[1])
            timed.append((sent, now - sent))
        time.sleep(0.002)
    cpu1, own = server.cpu(), time.process_time() - own0
    feeder.join(30)
    if len(timed) < expected:
        raise SystemExit(f"only {len(timed)} of {expected} timed ticks reached the files")
    start = min(t for t, _ in timed) + 1.0  # the first second is warm-up
    steady = sorted(lat for t, lat in timed if t >= start)
    pct = lambda q: steady[min(len(steady) - 1, int(len(steady) * q))] * 1000  # noqa: E731
    wall = time.time() - t0
    return {"ticks": total, "timed": len(steady), "rate": rate, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "max_ms": steady[-1] * 1000, "cpu_orchestrator_s": cpu1[0] - cpu0[0],
            "cpu_workers_s": cpu1[1] - cpu0[1], "cpu_tail_s": own, "wall_s": wall,
            "server_p99_ms": server.task(tid)["stats"]["latency_ms_p99"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--stocks", type=int, default=100)
    ap.add_argument("--rate", type=float, default=5000.0, help="ticks/s of the latency phase")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the latency phase")
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes, one compute unit on each")
    ap.add_argument("--batch-size", type=int, default=1000, help="compute_pool.batch_size: rows per actor call")
    ap.add_argument("--batch-ms", type=float, default=5.0, help="compute_pool.batch_ms: a partial batch waits this long")
    ap.add_argument("--no-latency", action="store_true", help="measure the throughput only")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--compare-checkpoints", type=int, default=0, metavar="N",
                    help="run the throughput phase N times with checkpoints on and N times off, alternating")
    a = ap.parse_args(argv)
    data = ensure_data(a.rows, a.stocks)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        runs = ["throughput"]
        for i in range(a.compare_checkpoints):
            runs += [f"throughput-off-{i}"] + ([f"throughput-{i}"] if i else [])
        ports = {tid: free_port() for tid in [*runs, *([] if a.no_latency else ["latency"])]}
        t = time.perf_counter()
        server = Server(base, workers=a.workers)
        try:
            for tid, port in ports.items():
                server.run_task(task_config(tid, port, base / tid, checkpoints="off" not in tid, units=a.workers,
                                            batch_size=a.batch_size, batch_ms=a.batch_ms))
            print(f"data: {data.name}, {os.cpu_count()} cpus; server up in {time.perf_counter() - t:.1f} s")
            figures: dict[str, list[float]] = {"on": [], "off": []}
            for tid in runs:
                tp = throughput(server, tid, ports[tid], base / tid, data, a.rows)
                mode = "off" if "off" in tid else "on"
                figures[mode].append(tp["rows_per_s"])
                ck = server.task(tid)["stats"]["checkpoint"]
                per = tp["rows"] - tp["first"]
                print(f"throughput  {tp['rows_per_s']:10,.0f} ticks/s  ({tp['rows']:,} ticks into {tp['files']} files "
                      f"in {tp['wall_s']:.2f} s; CPU per tick: orchestrator {tp['cpu_orchestrator_s'] / per * 1e6:.1f} µs, "
                      f"units {tp['cpu_workers_s'] / per * 1e6:.1f} µs, feeder {tp['cpu_feeder_s'] / per * 1e6:.1f} µs; "
                      f"{tp['rows'] / max(1, tp['batches']):,.0f} rows per actor call; "
                      f"checkpoints {mode}, {ck['count']} taken)")
            if figures["off"]:
                on, off = statistics.median(figures["on"]), statistics.median(figures["off"])
                print(f"checkpoints cost {1 - on / off:+.1%} of throughput (median of {len(figures['on'])} runs: "
                      f"{on:,.0f} ticks/s on, {off:,.0f} off)")
            if a.no_latency:
                if a.json:
                    print(json.dumps({"throughput": tp}))
                return 0
            lt = latency(server, "latency", ports["latency"], base / "latency", data, a.rate, a.seconds)
            print(f"latency     at {lt['rate']:,.0f} ticks/s: tick-to-file p50 {lt['p50_ms']:.1f} ms, "
                  f"p99 {lt['p99_ms']:.1f} ms, max {lt['max_ms']:.1f} ms (server's own p99 "
                  f"{lt['server_p99_ms']:.1f} ms); CPU orchestrator {lt['cpu_orchestrator_s'] / lt['wall_s']:.0%}, "
                  f"workers {lt['cpu_workers_s'] / lt['wall_s']:.0%} of a core; {lt['timed']:,} ticks timed, "
                  f"timing cost {lt['cpu_tail_s'] / lt['wall_s']:.0%})")
            if a.json:
                print(json.dumps({"throughput": tp, "latency": lt}))
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
