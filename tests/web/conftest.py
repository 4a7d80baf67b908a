"""A `dporch serve` with its web console, joined to a Dask cluster whose scheduler loaded the
dporch preload (so its dashboard has the dporch page), and helpers to talk to the console."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from dporch.dashboard import PRELOAD

from ..api.conftest import Running, start_service
from ..orchestration.conftest import seq_task_in

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dash_cluster():
    """One worker, a dashboard on a free port, the dporch preload."""
    from dask.distributed import LocalCluster

    c = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                     silence_logs=40, scheduler_kwargs={"preload": [PRELOAD]})
    yield c
    c.close()


def start_console(scheduler: str, base: Path, **kw: Any) -> Running:
    data = base / "data"
    data.mkdir(exist_ok=True)
    kw.setdefault("web", "127.0.0.1:0")
    return start_service(scheduler, base / "state", data_dirs=[str(data)], **kw)


@pytest.fixture
def console(dash_cluster, tmp_path) -> Iterator[Running]:
    s = start_console(dash_cluster.scheduler_address, tmp_path)
    try:
        yield s
    finally:
        s.stop()


def web_url(running: Running) -> str:
    assert running.service is not None and running.service.web is not None
    return running.service.web.url


def seq_task(tmp_path: Path, tid: str = "t1", port: int | None = None, **extra: Any) -> dict[str, Any]:
    """A task over SEQ_SCRIPT (one output row per input row) with a split file output."""
    return seq_task_in(tmp_path, tid, initial_size=2, max_size=2, port=port, **extra)


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 20) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body), also for error statuses; redirects are not followed."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a: Any, **k: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class WS:
    """A WebSocket client of the console (tornado's), driven from a test thread."""

    def __init__(self, url: str, headers: dict[str, str] | None = None):
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        self.loop = asyncio.new_event_loop()
        self.seq = 0
        self.events: dict[str, int] = {}  # events skipped by call(), by kind
        ws_url = url.replace("http://", "ws://").rstrip("/") + "/ws"
        request = HTTPRequest(ws_url, headers={"Origin": url.rstrip("/"), **(headers or {})})
        async def connect() -> Any:
            return await websocket_connect(request)

        self.conn = self.loop.run_until_complete(connect())

    def send_raw(self, text: str) -> None:
        async def send() -> None:
            await self.conn.write_message(text)

        self.loop.run_until_complete(send())

    def read(self, timeout: float = 30) -> dict[str, Any]:
        async def receive() -> Any:
            return await asyncio.wait_for(self.conn.read_message(), timeout)

        msg = self.loop.run_until_complete(receive())
        assert msg is not None, "the WebSocket closed"
        return json.loads(msg)

    def call(self, action: str, params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """The answer to one request (events that arrive first are skipped)."""
        self.seq += 1
        rid = extra.pop("id", f"r{self.seq}")
        self.send_raw(json.dumps({"action": action, "params": params or {}, "id": rid, **extra}))
        while True:
            msg = self.read()
            if msg.get("id") == rid and "event" not in msg:
                return msg
            if "event" in msg:
                self.events[msg["event"]] = self.events.get(msg["event"], 0) + 1

    def close(self) -> None:
        async def close() -> None:
            self.conn.close()
            await asyncio.sleep(0.01)

        self.loop.run_until_complete(close())
        self.loop.close()


def browser_or_skip() -> None:
    """Browser tests need Chromium and chromedriver (.ci/run installs them); without them they
    are skipped, unless DPORCH_REQUIRE_BROWSER=1 (CI) makes that a failure."""
    from dporch.web.headless import ChromiumMissing, find_chromium

    try:
        find_chromium()
    except ChromiumMissing as exc:
        if os.environ.get("DPORCH_REQUIRE_BROWSER") == "1":
            raise
        pytest.skip(str(exc))
