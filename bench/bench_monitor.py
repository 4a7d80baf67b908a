"""What live monitoring costs (docs/monitoring.md, "What it costs").

* throughput (--runs N): bench_serve.py's throughput phase (script (c), 100 stocks, 2 units,
  TCP in, split files out) on fresh `dporch serve` processes, alternating N without monitoring
  (--no-web --no-dashboard-page) and N with it on: the web console, the dporch page of the
  dashboard open in a headless Chromium on this machine for the whole run, and /metrics
  scraped every second. Medians, and the cost in % of throughput. The browser's own CPU is
  reported apart: it renders the page on the same two cores, which a browser on the viewer's
  own machine would not; --browser-nice 19 runs it at the lowest priority, closer to that, and
  --viewer bokeh-client replaces it by a Bokeh Python client of the page (the server does all
  it does for a browser: the session, the updates every second, sending them; the client only
  takes them in, without drawing).
* steady (--steady RATE): one `dporch serve` with monitoring on, ticks at a steady RATE (below
  saturation), and the CPU of the serve process (API, tasks, the in-process Dask scheduler and
  the dashboard's server side) over --seconds with nobody watching, then with the dporch page
  open and /metrics scraped every second, alternately (--rounds): what monitoring costs the
  server, whatever the browser costs its own machine.
* idle (--idle-tasks T): one `dporch serve` with T running tasks that receive nothing (TCP
  inputs, one unit each); the CPU of the serve process (which also hosts the Dask scheduler)
  over --seconds without a browser, then with the console's task list open in Chromium, then
  without again, and so on (--rounds); the difference in % of a core.

    python bench/bench_monitor.py --runs 5 [--rows 1000000] [--browser-nice 19 | --viewer bokeh-client]
    python bench/bench_monitor.py --runs 0 --steady 20000 --seconds 20 --rounds 3
    python bench/bench_monitor.py --runs 0 --idle-tasks 100 --seconds 30 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_run import ensure_data  # noqa: E402
from bench.bench_serve import (  # noqa: E402
    SCRIPT,
    Server,
    feed_steadily,
    free_port,
    task_config,
    throughput,
)


def scrape_every_second(url: str, stop: threading.Event, counts: list[int]) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
            counts[0] += 1
        except OSError:
            pass


def cpu_of(procs) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except Exception:  # noqa: BLE001 - a process that ended
            pass
    return total


def browser_procs(driver) -> list:
    import psutil

    root = psutil.Process(driver.service.process.pid)
    return [root, *root.children(recursive=True)]


def wait_page(driver, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if driver.execute_script("return !!(window.Bokeh && Bokeh.documents.length && "
                                 "Bokeh.documents[0].get_model_by_name('dporch-series'))"):
            return
        time.sleep(0.2)
    raise SystemExit("the dashboard page did not load")


def renice(procs, nice: int) -> None:
    for p in procs:
        try:
            p.nice(nice)
        except Exception:  # noqa: BLE001 - a process that ended
            pass


def bokeh_viewer(url: str) -> None:
    """A Bokeh client of the page, taking in its updates until killed (no drawing)."""
    from bokeh.client import pull_session

    session = pull_session(url=url)
    session._connection._loop_until(lambda: False)  # noqa: SLF001 - receive updates until killed


@contextlib.contextmanager
def viewer(kind: str, url: str, nice: int) -> Iterator[list]:
    """The dporch page open in ``kind`` (chromium | bokeh-client); yields its processes."""
    if kind == "chromium":
        from dporch.web.headless import chromium

        with chromium(1400, 1000) as driver:
            driver.get(url)
            wait_page(driver)
            procs = browser_procs(driver)
            if nice:
                renice(procs, nice)
            yield procs
        return
    import psutil

    proc = subprocess.Popen([sys.executable, __file__, "--bokeh-viewer", url])
    try:
        time.sleep(3)
        yield [psutil.Process(proc.pid)]
    finally:
        proc.kill()
        proc.wait(10)


def one_run(base: Path, data: Path, rows: int, monitoring: bool, browser_nice: int = 0,
            kind: str = "chromium") -> dict:
    server = Server(base, monitoring=monitoring)
    try:
        port = free_port()
        server.run_task(task_config("tp", port, base / "out", SCRIPT))
        if not monitoring:
            return {**throughput(server, "tp", port, base / "out", data, rows), "scrapes": 0, "cpu_browser_s": 0.0}
        stop, counts = threading.Event(), [0]
        scraper = threading.Thread(target=scrape_every_second,
                                   args=(f"http://127.0.0.1:{server.web_port}/metrics", stop, counts), daemon=True)
        with viewer(kind, f"http://127.0.0.1:{server.dashboard_port}/dporch", browser_nice) as procs:
            scraper.start()
            time.sleep(2)  # the page and the scraper are in their stride
            cpu0 = cpu_of(procs)
            tp = throughput(server, "tp", port, base / "out", data, rows)
            cpu1 = cpu_of(procs)
            stop.set()
        return {**tp, "scrapes": counts[0], "cpu_browser_s": cpu1 - cpu0}
    finally:
        server.close()


def compare_throughput(runs: int, rows: int, stocks: int, browser_nice: int = 0, kind: str = "chromium") -> None:
    data = ensure_data(rows, stocks)
    figures: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for i in range(runs):
        for monitoring in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                r = one_run(Path(tmp), data, rows, monitoring, browser_nice, kind)
            figures[monitoring].append(r["rows_per_s"])
            print(f"run {i + 1} monitoring {'on ' if monitoring else 'off'}: {r['rows_per_s']:9,.0f} ticks/s "
                  f"({r['wall_s']:.2f} s; CPU orchestrator {r['cpu_orchestrator_s']:.1f} s, workers "
                  f"{r['cpu_workers_s']:.1f} s" + (f", browser {r['cpu_browser_s']:.1f} s, {r['scrapes']} scrapes"
                                                    if monitoring else "") + ")", flush=True)
            cpu[monitoring].append(r["cpu_orchestrator_s"] / r["rows"] * 1e6)
    off, on = statistics.median(figures[False]), statistics.median(figures[True])
    print(f"monitoring ({kind}) costs {1 - on / off:+.1%} of throughput (median of {runs} runs each: "
          f"{on:,.0f} ticks/s on, {off:,.0f} off); orchestrator CPU per million ticks "
          f"{statistics.median(cpu[True]):.2f} s on, {statistics.median(cpu[False]):.2f} s off")


def steady(rate: float, seconds: float, rounds: int, stocks: int) -> None:
    from dporch.web.headless import chromium

    data = ensure_data(300_000, stocks)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        server = Server(base, monitoring=True)
        stop = threading.Event()
        try:
            port = free_port()
            server.run_task(task_config("steady", port, base / "out", SCRIPT))
            threading.Thread(target=feed_steadily, args=(port, data, rate, stop), daemon=True).start()
            time.sleep(5)

            def measure(label: str) -> tuple[float, float]:
                c0, t0 = server.cpu(), time.perf_counter()
                time.sleep(seconds)
                c1, dt = server.cpu(), time.perf_counter() - t0
                used = ((c1[0] - c0[0]) / dt, (c1[1] - c0[1]) / dt)
                print(f"  {label}: dporch serve {used[0]:.1%} of a core, workers {used[1]:.1%}", flush=True)
                return used

            quiet, watched = [], []
            for r in range(rounds):
                quiet.append(measure(f"round {r + 1}, nobody watching")[0])
                scrape_stop, counts = threading.Event(), [0]
                with chromium(1400, 1000) as driver:
                    driver.get(f"http://127.0.0.1:{server.dashboard_port}/dporch")
                    wait_page(driver)
                    threading.Thread(target=scrape_every_second, daemon=True, args=(
                        f"http://127.0.0.1:{server.web_port}/metrics", scrape_stop, counts)).start()
                    time.sleep(2)
                    watched.append(measure(f"round {r + 1}, page open, /metrics every second")[0])
                    scrape_stop.set()
            off, on = statistics.median(quiet), statistics.median(watched)
            print(f"at {rate:,.0f} ticks/s: dporch serve {off:.1%} of a core unwatched, {on:.1%} watched: "
                  f"{on - off:+.1%} of a core (medians of {rounds})")
        finally:
            stop.set()
            server.close()


def idle(tasks: int, seconds: float, rounds: int) -> None:
    from dporch.web.headless import chromium

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        server = Server(base, monitoring=True)
        try:
            t = time.perf_counter()
            for i in range(tasks):
                cfg = task_config(f"idle-{i:03d}", free_port(), base / "out" / str(i), SCRIPT)
                cfg["compute_pool"] = {"initial_size": 1, "max_size": 1, "auto_scale": False}
                server.run_task(cfg)
            print(f"{tasks} idle tasks running ({time.perf_counter() - t:.0f} s to start them)", flush=True)
            time.sleep(10)

            def measure(label: str) -> float:
                c0, t0 = server.cpu()[0], time.perf_counter()
                time.sleep(seconds)
                used = (server.cpu()[0] - c0) / (time.perf_counter() - t0)
                print(f"  {label}: dporch serve {used:.2%} of a core", flush=True)
                return used

            without, with_console, browser = [], [], []
            for r in range(rounds):
                without.append(measure(f"round {r + 1}, no console"))
                with chromium(1400, 1000) as driver:
                    driver.get(f"http://127.0.0.1:{server.web_port}/")
                    end = time.monotonic() + 30
                    while len(driver.find_elements("css selector", "article.card")) < tasks:
                        if time.monotonic() > end:
                            raise SystemExit("the console did not show every task")
                        time.sleep(0.2)
                    procs = browser_procs(driver)
                    b0, bt = cpu_of(procs), time.perf_counter()
                    with_console.append(measure(f"round {r + 1}, console open"))
                    browser.append((cpu_of(procs) - b0) / (time.perf_counter() - bt))
            without.append(measure("after, no console"))
            off, on = statistics.median(without), statistics.median(with_console)
            print(f"{tasks} idle tasks: dporch serve {off:.2%} of a core without the console, {on:.2%} with it "
                  f"open: {on - off:+.2%} of a core (medians); the browser itself {statistics.median(browser):.2%}")
        finally:
            server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="throughput runs with and without monitoring (each)")
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--stocks", type=int, default=100)
    ap.add_argument("--browser-nice", type=int, default=0, metavar="N",
                    help="throughput: run the browser at this nice level (19: lowest priority)")
    ap.add_argument("--viewer", choices=("chromium", "bokeh-client"), default="chromium",
                    help="throughput: what has the dporch page open")
    ap.add_argument("--bokeh-viewer", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--steady", type=float, default=0.0, metavar="RATE", help="steady: ticks per second")
    ap.add_argument("--idle-tasks", type=int, default=0, metavar="T")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each idle measurement")
    ap.add_argument("--rounds", type=int, default=3, help="idle: rounds of (no console, console open)")
    a = ap.parse_args(argv)
    if a.bokeh_viewer:
        bokeh_viewer(a.bokeh_viewer)
        return 0
    if a.runs:
        compare_throughput(a.runs, a.rows, a.stocks, a.browser_nice, a.viewer)
    if a.steady:
        steady(a.steady, a.seconds, a.rounds, a.stocks)
    if a.idle_tasks:
        idle(a.idle_tasks, a.seconds, a.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
