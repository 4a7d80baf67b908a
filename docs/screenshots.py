"""Make the screenshots of docs/monitoring.md and the README from a running demo.

Starts `dporch serve` (its own local cluster, with the dashboard page) on free ports, with
four tasks: two realtime tasks fed with ticks (3,000/s and 800/s), a realtime screen reading
the first one's rows in process, and a batch task reading the first one's files, run once
after the warm-up, so that the workflow has both kinds of edge; lets a minute of history build
up; then opens, in a headless Chromium, the console's task list, the page of the busiest task
(after pushing a few rows through its form), and the Dask dashboard's dporch page, and writes
them as PNGs (256 colours, to stay small):

    .venv/bin/python docs/screenshots.py [--warmup 60] [--out docs]

Needs the distribution's chromium and chromedriver; Chinese task names need a CJK font
(Debian: fonts-wqy-microhei)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_serve import feed_steadily, free_port  # noqa: E402
from dporch.api.client import Client  # noqa: E402
from dporch.web.headless import chromium  # noqa: E402

TICKS = ROOT / "data" / "sample_ticks.csv"


def tasks_toml(out: Path, ports: dict[str, int]) -> str:
    columns = """[task.schema]
columns = [
    { name = "stock_code", type = "string", required = true },
    { name = "date", type = "string", required = true },
    { name = "open", type = "number" },
    { name = "high", type = "number" },
    { name = "low", type = "number" },
    { name = "close", type = "number", required = true },
    { name = "volume", type = "number" },
]
"""
    indicators = f"{out / 'realtime-indicators'}/{{stock_code}}.csv"
    text = ""
    for tid, name, script, pool, source in (
            ("realtime-indicators", "实时股票技术指标计算", "indicators.dp", (2, 4), ports["realtime-indicators"]),
            ("intraday-momentum", "Intraday momentum signals", "momentum.dp", (1, 2), ports["intraday-momentum"]),
            ("signal-screen", "Signals worth a look", "screen.dp", (1, 2), "realtime-indicators"),
            ("five-day-window", "Five-day averages", "window.dp", (1, 2), indicators)):
        if isinstance(source, int):  # ticks over TCP
            take = f"{columns}[task.input]\ntype = \"tcp\"\nport = {source}\n"
        elif "/" in source:  # another task's files: a batch task
            take = f'[task.input]\ntype = "file"\npath = "{source}"\n'
        else:  # another task's rows, in process
            take = f'[task.input]\ntype = "task"\ntask = "{source}"\n'
        text += f"""
[[task]]
id = "{tid}"
name = "{name}"
scripts = ["{ROOT / 'workflows' / script}"]
enabled = {str(tid != "five-day-window").lower()}
[task.routing]
enabled = true
key_column = "stock_code"
[task.compute_pool]
initial_size = {pool[0]}
max_size = {pool[1]}
auto_scale = true
scale_threshold = 0.7
{take}[task.output]
type = "file"
path = "{out / tid}/{{stock_code}}.csv"
mode = "split"
"""
    return text


def save(driver, path: Path) -> None:
    from PIL import Image

    raw = path.with_suffix(".raw.png")
    driver.save_screenshot(str(raw))
    with Image.open(raw) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    raw.unlink()
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def wait(pred, timeout: float = 60, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds of history before the pictures")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dporch-shots-"))
    ports = {"realtime-indicators": free_port(), "intraday-momentum": free_port()}
    (base / "tasks.toml").write_text(tasks_toml(base / "output", ports), encoding="utf-8")
    api, web, dash = free_port(), free_port(), free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "dporch.cli", "serve", "--config", str(base / "tasks.toml"), "--port", str(api),
         "--web", f"127.0.0.1:{web}", "--dashboard", f"127.0.0.1:{dash}", "--state-dir", str(base / "state"),
         "--allow-path", str(ROOT)],
        cwd=base, stdout=subprocess.DEVNULL, stderr=open(base / "serve.log", "w"), start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    stop = threading.Event()
    try:
        def up() -> bool:
            try:
                with Client("127.0.0.1", api) as c:
                    return sum(t["status"] == "running" for t in c.list_tasks()["tasks"]) == 3
            except OSError:
                return False

        wait(up, 120, "dporch serve")
        for tid, rate in (("realtime-indicators", 3000.0), ("intraday-momentum", 800.0)):
            threading.Thread(target=feed_steadily, args=(ports[tid], TICKS, rate, stop), daemon=True).start()
        print(f"demo running (log {base / 'serve.log'}); {a.warmup:.0f} s of history...")
        time.sleep(a.warmup)
        with Client("127.0.0.1", api) as c:  # the batch task reads the files made so far, and finishes
            c.start_task("five-day-window")

            def finished() -> bool:
                return c.get_task("five-day-window")["status"] == "stopped"

            wait(finished, 120, "the batch task")
        with chromium(1400, 900) as d:
            d.get(f"http://127.0.0.1:{web}/")
            wait(lambda: len(d.find_elements("css selector", "article.card")) == 4
                 and len(d.find_elements("css selector", "#workflow a.node")) == 4, 30, "the task cards and graph")
            time.sleep(3)
            save(d, a.out / "console-tasks.png")
            d.set_window_size(1400, 1250)
            d.get(f"http://127.0.0.1:{web}/tasks/realtime-indicators")
            wait(lambda: d.find_element("id", "conn").text == "live", 30, "the task page")
            d.execute_script("document.getElementById('output-filter').value = 'stock_code=600001'")
            d.find_element("id", "apply-filter").click()
            d.execute_script("document.getElementById('push-text').value = arguments[0]",
                             "stock_code,date,close\n600001,2026-12-01,6.31\n600001,2026-12-02,oops\n")
            d.find_element("id", "push").click()
            time.sleep(20)  # twenty seconds of charts
            save(d, a.out / "console-task.png")
            d.set_window_size(1400, 1300)
            d.get(f"http://127.0.0.1:{dash}/dporch")
            wait(lambda: d.execute_script(
                "const d = window.Bokeh && Bokeh.documents[0];"
                "const m = d && d.get_model_by_name('dporch-series'); return m && m.data.time.length > 10"),
                60, "the dashboard page")
            time.sleep(4)
            save(d, a.out / "dashboard-dporch.png")
    finally:
        stop.set()
        serve.terminate()
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
