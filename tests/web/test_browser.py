"""In a real browser (headless Chromium from the distribution, driven by selenium): the console
from task creation to deletion, and the Dask dashboard's dporch page filling while ticks flow."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

import pytest

from dporch.api.client import Client

from ..api.test_api import chain_configs
from ..orchestration.conftest import free_port
from .conftest import browser_or_skip, seq_task, start_console, web_url
from .test_console_http import metrics

pytestmark = pytest.mark.usefixtures("needs_browser")


@pytest.fixture
def needs_browser() -> None:
    browser_or_skip()


@pytest.fixture
def browser():
    from dporch.web.headless import chromium

    with chromium(1400, 1000) as driver:
        driver.set_page_load_timeout(60)
        yield driver


def until(driver: Any, what: Callable[[Any], Any], timeout: float = 30, message: str = "") -> Any:
    """What ``what(driver)`` returns once it is true; the live parts of the pages are redrawn
    every second, so an element found may be replaced before it is read: that is retried."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=[StaleElementReferenceException]).until(what, message)


def css(driver: Any, selector: str, timeout: float = 30) -> Any:
    from selenium.webdriver.common.by import By

    return until(driver, lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, selector)), None), timeout,
                 f"no element {selector}")


def set_text(driver: Any, element: Any, text: str) -> None:
    driver.execute_script("arguments[0].value = arguments[1]", element, text)


def card_state(driver: Any, tid: str) -> str | None:
    return driver.execute_script(
        "const c = [...document.querySelectorAll('article.card')].find((c) => c.dataset.task === arguments[0]);"
        "return c ? c.dataset.state : null", tid)


def test_the_console_from_new_task_to_delete(console, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url = web_url(console)
    script = tmp_path / "seq.dp"
    script.write_text("-- INPUT k:string, seq:number, x:number --\n-- OUTPUT k:string, seq:number, doubled:number --\n"
                      "return [k, seq, x * 2]\n")
    out = tmp_path / "out"
    good = f"""id = "web1"
name = "网页任务"
scripts = ["{script}"]

[schema]
columns = [
  {{ name = "k", type = "string", required = true }},
  {{ name = "seq", type = "number" }},
  {{ name = "x", type = "number" }},
]

[routing]
enabled = true
key_column = "k"

[compute_pool]
initial_size = 2
max_size = 2
batch_ms = 2

[input]
type = "tcp"
port = {free_port()}

[output]
type = "file"
path = "{out}/{{k}}.csv"
mode = "split"
"""
    bad = good.replace("max_size = 2", "max_size = 1")
    browser.get(url)
    until(browser, lambda d: d.find_element(By.ID, "conn").text == "live")
    assert css(browser, "p.empty").is_displayed()

    # a bad task: the problem appears right under the line of the field it names
    css(browser, "#new-task").click()
    editor = css(browser, "#task-toml")
    set_text(browser, editor, bad)
    css(browser, "#create-task").click()
    issue = css(browser, '#task-review .issue[data-field="compute_pool.max_size"]')
    assert "must be at least initial_size (2)" in issue.text
    line = bad.splitlines().index("max_size = 1") + 1
    above = browser.execute_script("return arguments[0].previousElementSibling", issue)
    assert above.get_attribute("data-line") == str(line) and "max_size = 1" in above.text
    assert "not created" in css(browser, "#new-task-panel .msg.refused").text
    assert card_state(browser, "web1") is None

    # the good one, then start it from its card
    set_text(browser, editor, good)
    css(browser, "#create-task").click()
    until(browser, lambda d: card_state(d, "web1") == "ready")
    assert not browser.find_element(By.ID, "new-task-panel").is_displayed()
    card = css(browser, 'article.card[data-task="web1"]')
    assert "网页任务" in card.text
    card.find_element(By.CSS_SELECTOR, 'button[data-action="start"]').click()
    until(browser, lambda d: card_state(d, "web1") == "running")
    assert "task started" in card.find_element(By.CSS_SELECTOR, ".msg").text
    assert card.find_element(By.CSS_SELECTOR, ".f-units").text.startswith("2/2")

    # its page: push rows through the form, see them in the output window
    card.find_element(By.CSS_SELECTOR, "a.tid").click()
    until(browser, lambda d: d.find_element(By.ID, "conn").text == "live" and "/tasks/web1" in d.current_url)
    until(browser, lambda d: "running" in d.find_element(By.ID, "task-state").text)
    css(browser, "#output-info")
    until(browser, lambda d: d.find_element(By.ID, "output-info").text == "waiting for rows…")
    set_text(browser, css(browser, "#push-text"), "k,seq,x\nA,1,10\nB,2,20\nA,3,30\nA,oops,1\n")
    css(browser, "#push").click()
    until(browser, lambda d: "3 rows accepted, 1 refused" in d.find_element(By.ID, "push-msg").text)
    assert "seq" in css(browser, "#push-errors li").text
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#output .out-row")) == 3)
    assert browser.find_element(By.CSS_SELECTOR, "#output .out-hdr").text == "k,seq,doubled"
    assert sorted(r.text for r in browser.find_elements(By.CSS_SELECTOR, "#output .out-row")) == \
        ["A,1,20", "A,3,60", "B,2,40"]
    # a key filter, and JSON lines this time
    set_text(browser, css(browser, "#output-filter"), "k=B")
    css(browser, "#apply-filter").click()
    until(browser, lambda d: d.find_element(By.ID, "output-info").text == "waiting for rows…")
    browser.find_element(By.CSS_SELECTOR, '#push-format option[value="json"]').click()
    set_text(browser, css(browser, "#push-text"), '{"k": "A", "seq": 4, "x": 1}\n{"k": "B", "seq": 5, "x": 2}\n')
    css(browser, "#push").click()
    until(browser, lambda d: "2 rows accepted" in d.find_element(By.ID, "push-msg").text)
    until(browser, lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, "#output .out-row")] == ["B,5,4"])
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".f-processed").text == "5")
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#units tbody tr[data-unit]")) == 2)
    until(browser, lambda d: "seq" in d.find_element(By.ID, "errors").text)  # the error log has the bad row
    assert 'key_column = "k"' in browser.find_element(By.ID, "config").text

    # pause: the state changes, a push is refused with the server's message, so is a start
    css(browser, 'button[data-action="pause"]').click()
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#task-state .badge").text == "paused")
    css(browser, "#push").click()
    refused = until(browser, lambda d: (m := d.find_element(By.ID, "push-msg")).text.startswith("invalid_state") and m)
    assert "paused" in refused.text and "resume it first" in refused.text and "refused" in refused.get_attribute("class")
    css(browser, 'button[data-action="start"]').click()
    until(browser, lambda d: "cannot start task 'web1': it is paused" in d.find_element(By.ID, "task-msg").text)

    # stop and delete (the console asks first)
    css(browser, 'button[data-action="stop"]').click()
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#task-state .badge").text == "stopped")
    css(browser, 'button[data-action="delete"]').click()
    until(browser, lambda d: d.switch_to.alert).accept()
    until(browser, lambda d: d.current_url.rstrip("/") == url.rstrip("/"))
    until(browser, lambda d: d.find_element(By.ID, "task-count").text == "0 tasks")
    with Client("127.0.0.1", console.port) as c:
        assert c.list_tasks()["tasks"] == []
    assert sorted(p.name for p in out.iterdir()) == ["A.csv", "B.csv"]


def test_the_console_draws_the_workflow_and_follows_its_changes(console, browser, tmp_path):
    """t1 feeds t2 in process, t2's files feed t3: three boxes in three layers, a solid and a
    dashed arrow, colours that follow the states, a redraw when a task goes, a click to a task."""
    from selenium.webdriver.common.by import By

    with Client("127.0.0.1", console.port) as c:
        for cfg in chain_configs(tmp_path):
            c.create_task(cfg)
        c.start_task("t1")
    browser.get(web_url(console))
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#workflow a.node")) == 3, 30, "no graph drawn")
    assert css(browser, "#workflow").is_displayed()

    def nodes() -> dict[str, dict]:
        return browser.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('#workflow a.node')].map((n) => {"
            "  const r = n.querySelector('rect').getBoundingClientRect();"
            "  return [n.dataset.task, {state: n.dataset.state, kind: n.dataset.kind, x: r.x, y: r.y, w: r.width,"
            "    text: n.textContent, fill: getComputedStyle(n.querySelector('rect')).fill}]; }))")

    until(browser, lambda d: nodes()["t1"]["state"] == "running")
    drawn = nodes()
    assert drawn["t1"]["x"] + drawn["t1"]["w"] < drawn["t2"]["x"] < drawn["t3"]["x"]  # layers, left to right
    assert drawn["t1"]["y"] == drawn["t2"]["y"] == drawn["t3"]["y"] and drawn["t1"]["w"] > 100
    assert [drawn[t]["kind"] for t in ("t1", "t2", "t3")] == ["realtime", "realtime", "batch"]
    assert "realtime · running" in drawn["t1"]["text"] and "batch · ready" in drawn["t3"]["text"]
    assert drawn["t1"]["fill"] == "rgb(46, 125, 50)" and drawn["t2"]["fill"] == "rgb(108, 117, 125)"  # as the badges
    edges = browser.execute_script(
        "return [...document.querySelectorAll('#workflow path.edge')].map((p) => ["
        "  p.dataset.from, p.dataset.to, p.dataset.via, getComputedStyle(p).strokeDasharray,"
        "  p.getTotalLength()])")
    assert sorted(e[:3] for e in edges) == [["t1", "t2", "task"], ["t2", "t3", "file"]]
    dashes = {e[2]: e[3] for e in edges}
    assert dashes["task"] == "none" and dashes["file"] != "none"
    assert all(e[4] > 30 for e in edges)  # from one box to the next, not collapsed
    # a state changes: the box's colour follows
    with Client("127.0.0.1", console.port) as c:
        c.start_task("t2")
    until(browser, lambda d: nodes()["t2"]["state"] == "running")
    assert nodes()["t2"]["fill"] == "rgb(46, 125, 50)"
    # a task goes: the graph is fetched again
    with Client("127.0.0.1", console.port) as c:
        c.delete_task("t3")
    until(browser, lambda d: sorted(nodes()) == ["t1", "t2"])
    assert len(browser.find_elements(By.CSS_SELECTOR, "#workflow path.edge")) == 1
    # a click on a box opens that task's page, as its card's link does
    css(browser, '#workflow a.node[data-task="t2"]').click()
    until(browser, lambda d: "/tasks/t2" in d.current_url and d.find_element(By.ID, "task-id").text == "t2")


def feed_ticks(port: int, stop: threading.Event, rate: float = 1500.0) -> int:
    """Ticks of 20 stocks at about ``rate``/s until ``stop``; returns how many were sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"k,seq,x\n")
        start = time.monotonic()
        while not stop.is_set():
            due = int((time.monotonic() - start) * rate)
            if due > sent:
                s.sendall("".join(f"K{i % 20},{i},{i % 7}\n" for i in range(sent, due)).encode())
                sent = due
            time.sleep(0.01)
    return sent


def test_the_dashboard_page_fills_while_ticks_flow(dash_cluster, browser, tmp_path):
    from selenium.webdriver.common.by import By

    s = start_console(dash_cluster.scheduler_address, tmp_path)
    port = free_port()
    stop = threading.Event()
    sent: list[int] = []
    feeder = threading.Thread(target=lambda: sent.append(feed_ticks(port, stop)), daemon=True)
    try:
        with Client("127.0.0.1", s.port) as c:
            c.create_task(seq_task(tmp_path, "ticks", port=port))
            c.start_task("ticks")
        feeder.start()
        dashboard = dash_cluster.dashboard_link
        browser.get(dashboard.replace("/status", "/dporch"))
        menu = [a.text.strip().lower() for a in browser.find_elements(By.CSS_SELECTOR, ".navbar li a")]
        assert "dporch" in menu and "status" in menu and "workers" in menu

        def length(name: str, column: str) -> int:
            return browser.execute_script(
                "const d = window.Bokeh && Bokeh.documents[0];"
                "const m = d && d.get_model_by_name(arguments[0]);"
                "return m ? m.data[arguments[1]].length : -1", name, column)

        def data(name: str, column: str) -> list:
            return browser.execute_script(
                "return Array.from(Bokeh.documents[0].get_model_by_name(arguments[0]).data[arguments[1]])",
                name, column)

        until(browser, lambda d: length("dporch-series", "time") >= 3, 60, "no points in the time series")
        until(browser, lambda d: max(data("dporch-series", "rows_per_second")) > 0, 30, "rows/s stays 0")
        until(browser, lambda d: length("dporch-unit-stream", "start") > 0, 30, "no bars in the unit stream")
        until(browser, lambda d: set(data("dporch-units", "unit")) >= {"ticks:u1", "ticks:u2"}, 30)
        [key] = [k for k in data("dporch-tasks", "task") if k.split(" @ ")[0] == "ticks"]  # "ticks @ server"
        assert key in set(data("dporch-unit-stream", "task"))  # while another server publishes too
        assert browser.execute_script(
            "return Bokeh.documents[0].get_model_by_name('dporch-task-select').value") == key
        n = length("dporch-series", "time")
        until(browser, lambda d: length("dporch-series", "time") > n, 10, "the page does not refresh")
        assert set(data("dporch-series", "scale_threshold")) == {0.8}
        assert key in set(data("dporch-graph-nodes", "key"))  # the workflow, drawn in the page too
        assert browser.execute_script("return Bokeh.documents[0].get_model_by_name('dporch-graph').visible")
        # the standard pages are still there
        browser.get(dashboard)
        until(browser, lambda d: d.execute_script("return !!(window.Bokeh && Bokeh.documents.length)"), 60)
        stop.set()
        feeder.join(30)
        # /metrics agrees with what was sent
        url = web_url(s)
        until(browser, lambda d: metrics(url).get(("dporch_task_rows_out_total", (("task", "ticks"),))) == sent[0],
              60, "not every tick reached the output")
        assert metrics(url)[("dporch_task_rows_in_total", (("task", "ticks"),))] == sent[0]
    finally:
        stop.set()
        s.stop()


def test_the_browser_and_its_driver_are_gone_afterwards():
    import psutil

    from dporch.web.headless import chromium

    with chromium() as driver:
        procs = [psutil.Process(driver.service.process.pid)]
        procs += procs[0].children(recursive=True)
        assert any("chrom" in p.name() for p in procs[1:])
    assert not [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
