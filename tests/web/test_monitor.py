"""The monitor's arithmetic on stand-in tasks (busy time as the union of calls in flight,
latency samples taken exactly once, rates), the event format the dashboard plugin reads, and
a real dporch serve publishing to a scheduler that loaded the preload."""

from __future__ import annotations

import json
import time
from collections import deque
from types import SimpleNamespace

import pytest

from dporch.dashboard import METADATA_KEY, TOPIC
from dporch.dashboard.plugin import DporchPlugin
from dporch.monitor import LATENCY_BUCKETS, Monitor
from dporch.monitor.publish import TASK_FIELDS, encode_event
from dporch.orchestration.states import TaskState

from .conftest import seq_task, start_console


class FakeRouter:
    def __init__(self) -> None:
        self.load = {"u1": 3, "u2": 1}


def fake_task(tid: str = "t") -> SimpleNamespace:
    units = {s: SimpleNamespace(uid=f"{tid}:{s}", worker="tcp://w", status="idle", rows=0, calls=deque())
             for s in ("u1", "u2")}
    pool = SimpleNamespace(spans=deque(maxlen=5000), units=units, router=FakeRouter(), size=2, busy_units=0,
                           queue_length=0)
    cp = SimpleNamespace(scale_threshold=0.8, auto_scale=False, max_size=4)
    task = SimpleNamespace(config=SimpleNamespace(id=tid, name="n", compute_pool=cp), state=TaskState.RUNNING,
                           transition=None, reason=None, next_seq=0, processed=0, error_count=0,
                           buffer=SimpleNamespace(total=0), latencies=deque(maxlen=2000), latency_samples=0,
                           pool=pool, output=object())
    task.allowed = lambda: ["pause", "stop"]
    task.load = lambda: 0.25
    return task


def test_busy_time_is_the_union_of_the_calls_in_flight_and_spans_are_read_once():
    task = fake_task()
    monitor = Monitor(SimpleNamespace(tasks={"t": task}))
    spans = task.pool.spans
    # u1: calls [0,1], [0.5,2] (overlapping: pipelined), [3,4]: busy 3 s; u2: [1,1.5]
    spans.extend([("t:u1", 100.0, 101.0, 10), ("t:u1", 100.5, 102.0, 10), ("t:u2", 101.0, 101.5, 5)])
    monitor.fold(task)
    spans.append(("t:u1", 103.0, 104.0, 10))
    monitor.fold(task)
    monitor.fold(task)  # nothing new: nothing counted twice
    tr = monitor.tracks["t"]
    assert tr.units["t:u1"].busy == pytest.approx(3.0) and tr.units["t:u2"].busy == pytest.approx(0.5)
    assert [s[1] for s in monitor.pending_spans] == ["t:u1", "t:u1", "t:u2", "t:u1"]


def test_latency_samples_are_folded_exactly_once_into_the_histogram():
    task = fake_task()
    task.latencies.extend([0.0005] * 1990)
    task.latency_samples = 1990  # samples taken before the monitor looked are not counted
    monitor = Monitor(SimpleNamespace(tasks={"t": task}))
    monitor.fold(task)
    new = [0.0005, 0.003, 0.2, 20.0]
    task.latencies.extend(new)
    task.latency_samples += len(new)
    monitor.fold(task)
    monitor.fold(task)
    tr = monitor.tracks["t"]
    assert tr.latency_count == 4 and tr.latency_sum == pytest.approx(sum(new))
    assert tr.buckets[0] == 1 and tr.buckets[LATENCY_BUCKETS.index(0.005)] == 1
    assert tr.buckets[LATENCY_BUCKETS.index(0.25)] == 1 and tr.buckets[-1] == 1  # beyond 10 s: +Inf
    sample = monitor.sample(task, time.time())
    assert sample["latency_ms_p50"] == pytest.approx(200.0) and sample["latency_ms_p99"] == pytest.approx(20000.0)
    assert monitor.sample(task, time.time())["latency_ms_p50"] is None  # nothing new in this interval


def test_rates_per_unit_and_per_task_between_ticks():
    task = fake_task()
    monitor = Monitor(SimpleNamespace(tasks={"t": task}))
    monitor.sample(task, 1000.0)
    task.processed = 500
    task.pool.units["u1"].rows = 300
    task.pool.units["u2"].rows = 200
    task.pool.spans.append(("t:u1", 1000.5, 1000.75, 300))
    s = monitor.sample(task, 1002.0)
    assert s["rows_per_second"] == 250.0 and s["compute_pool_size"] == 2 and s["load_rate"] == 0.25
    u1, u2 = s["units"]
    assert (u1["rows_per_second"], u1["busy_fraction"], u1["keys"]) == (150.0, 0.125, 3)
    assert (u2["rows_per_second"], u2["busy_fraction"], u2["keys"]) == (100.0, 0.0, 1)


def test_the_plugin_reads_what_the_publisher_encodes():
    task = fake_task("a")
    monitor = Monitor(SimpleNamespace(tasks={"a": task}))
    plugin = DporchPlugin(history=3)
    for i in range(5):
        task.processed = 100 * i
        task.error_count = 2 * i
        task.pool.spans.append(("a:u2", 10.0 + i, 10.5 + i, 7))
        monitor.fold(task)  # the new span waits for the next event
        now = 1000.0 + i
        samples = {"a": monitor.sample(task, now)}
        event = encode_event("serve-1", now, 1.0, samples, monitor.pending_spans)
        monitor.pending_spans = []
        assert isinstance(event, str) and json.loads(event)["task_fields"] == list(TASK_FIELDS)
        plugin.log_event(TOPIC, event)
    plugin.log_event("another-topic", "{}")
    plugin.log_event(TOPIC, "{not json")  # dropped, nothing breaks
    s = plugin.series["a"]
    assert s.count == 5 and len(s.columns["time"]) == 3  # history: the last three seconds
    assert list(s.columns["errors_per_second"])[-1] == 2.0
    assert s.since(4)["time"] == [1004000.0] and s.since(0)["time"] == [1002000.0, 1003000.0, 1004000.0]
    assert [u["id"] for u in plugin.all_units()] == ["a:u1", "a:u2"]
    calls = plugin.calls_since(0)
    assert len(calls) == 5 and calls[0][:2] == ("a", "a:u2") and calls[0][3] - calls[0][2] == pytest.approx(500.0)
    assert plugin.calls_since(plugin.call_count) == []
    # the task is deleted: gone from the next event
    plugin.log_event(TOPIC, encode_event("serve-1", 1006.0, 1.0, {}, []))
    assert plugin.task_keys() == []


def wire(task: SimpleNamespace, reads: str | None = None) -> SimpleNamespace:
    """A stand-in task's input and output: rows over TCP, or the rows of task ``reads``."""
    task.config.source = None
    task.config.input = SimpleNamespace(type="task" if reads else "tcp", task=reads, follow=False, path=None)
    task.config.output = SimpleNamespace(type="none", path=None)
    return task


class FakeClient:
    """What the publisher uses of a Dask client: a scheduler with the dporch plugin."""

    status = "running"

    def __init__(self) -> None:
        self.events: list[dict] = []

    async def get_metadata(self, keys: list[str], default: object = None) -> dict:
        return {"format": 1}

    async def log_event(self, topic: str, msg: str) -> None:
        self.events.append(json.loads(msg))


def test_the_graph_is_laid_out_when_tasks_change_sent_when_new_and_drawn_by_the_page():
    import asyncio

    from dporch.dashboard.page import DporchPage
    from dporch.monitor.publish import DashboardPublisher

    tasks = {"a": wire(fake_task("a")), "b": wire(fake_task("b"), reads="a"), "c": wire(fake_task("c"))}
    monitor = Monitor(SimpleNamespace(tasks=tasks))
    monitor.watch_graph()
    monitor.watch_graph()  # nothing changed: the same graph, the same version
    assert monitor.graph_version == 1
    assert [(n["id"], n["layer"], n["row"]) for n in monitor.graph["nodes"]] == [("a", 0, 0), ("c", 0, 1),
                                                                                 ("b", 1, 0)]
    client = FakeClient()
    publisher = DashboardPublisher(monitor, lambda: client, "serve-1")

    def publish(now: float) -> dict:
        asyncio.run(publisher._send(now, {tid: monitor.sample(t, now) for tid, t in tasks.items()}, []))
        return client.events[-1]

    first, second = publish(1000.0), publish(1001.0)
    assert first["graph"] == {"nodes": [["a", "realtime", 0, 0], ["c", "realtime", 0, 1], ["b", "realtime", 1, 0]],
                              "edges": [["a", "b", "task"]]}
    assert "graph" not in second  # sent once, not every second
    tasks["c"] = wire(fake_task("c"), reads="b")  # an update makes a new task: c now reads b
    monitor.watch_graph()
    assert monitor.graph_version == 2 and publish(1002.0)["graph"]["edges"] == [["a", "b", "task"],
                                                                               ["b", "c", "task"]]
    publisher.checked = 0.0  # the next look at the scheduler's metadata: the graph goes again
    assert "graph" in publish(1003.0) and "graph" not in publish(1004.0)

    plugin = DporchPlugin()
    for ev in client.events:
        plugin.ingest(ev)
    assert plugin.graph() == {
        "nodes": [{"key": "a", "task": "a", "kind": "realtime", "layer": 0, "row": 0, "status": "running"},
                  {"key": "b", "task": "b", "kind": "realtime", "layer": 1, "row": 0, "status": "running"},
                  {"key": "c", "task": "c", "kind": "realtime", "layer": 2, "row": 0, "status": "running"}],
        "edges": [{"from": "a", "to": "b", "via": "task"}, {"from": "b", "to": "c", "via": "task"}]}
    page = DporchPage(plugin)
    nodes = page.graph_nodes.data
    assert list(nodes["key"]) == ["a", "b", "c"] and list(nodes["x"]) == [0, 1, 2]
    assert set(nodes["color"]) == {"#2e7d32"} and list(nodes["detail"])[0] == "realtime · running"
    assert list(page.graph_edges["task"].data["y1"]) == [0, 0] and not page.graph_edges["file"].data["x0"]
    assert page.graph_fig.visible
    page.graph_nodes.selected.indices = [2]  # a click on c shows c
    assert page.select.value == "c" and page.selected == "c"
    page.update()
    assert list(page.graph_nodes.data["line_width"]) == [1, 1, 3]  # the task shown has a dark outline

    # a second server: its graph goes below the first one's, tasks named "id @ server"
    other = json.loads(encode_event("serve-2", 1005.0, 1.0, {"x": monitor.sample(tasks["a"], 1005.0) | {"id": "x"}},
                                    [], {"nodes": [{"id": "x", "kind": "batch", "layer": 0, "row": 0}], "edges": []}))
    plugin.ingest(other)
    drawn = {n["key"]: (n["layer"], n["row"]) for n in plugin.graph()["nodes"]}
    assert drawn == {"a @ serve-1": (0, 0), "b @ serve-1": (1, 0), "c @ serve-1": (2, 0), "x @ serve-2": (0, 1)}
    page.update()
    assert "x @ serve-2" in list(page.graph_nodes.data["key"])
    plugin.ingest({"source": "serve-2", "time": 1006.0, "closing": True})
    assert [n["key"] for n in plugin.graph()["nodes"]] == ["a", "b", "c"]


def test_dporch_serve_publishes_to_a_scheduler_with_the_preload(dash_cluster, tmp_path):
    scheduler = dash_cluster.scheduler
    assert scheduler.get_metadata([METADATA_KEY])["page"] == "/dporch"
    plugin = scheduler.plugins["dporch"]
    s = start_console(dash_cluster.scheduler_address, tmp_path, web=None)
    try:
        from dporch.api.client import Client

        with Client("127.0.0.1", s.port) as c:
            c.create_task(seq_task(tmp_path, "pub"))
            c.start_task("pub")
            c.push_data("pub", [{"k": f"K{i % 5}", "seq": i, "x": 1} for i in range(400)])
        end = time.monotonic() + 30
        while time.monotonic() < end:  # (named "pub @ server" while another server publishes too)
            series = next((s for s in plugin.series.values() if s.task_id == "pub"), None)
            if series and series.latest.get("processed_count") == 400 and plugin.calls_since(0):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the plugin did not get the task's figures: {plugin.status()}")
        key = series.key
        assert sum(c[4] for c in plugin.calls_since(0) if c[0] == key) == 400
        assert {u["id"] for u in plugin.all_units() if u["task"] == key} == {"pub:u1", "pub:u2"}
        assert len(scheduler.get_events(TOPIC)) <= plugin.keep_events  # the scheduler's own log stays short
        [source] = [src for src in plugin.graphs if src.endswith(f":{s.port}")]
        assert plugin.graphs[source]["nodes"] == [{"id": "pub", "kind": "realtime", "layer": 0, "row": 0}]
        assert s.service.publisher.sent > 0 and s.service.publisher.enabled
    finally:
        s.stop()
