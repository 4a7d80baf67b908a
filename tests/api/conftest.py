"""A real `dporch serve` service (API on a loopback port) on the shared LocalCluster."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from dporch.api.app import ServeOptions, Service

ROOT = Path(__file__).resolve().parents[2]


class Running:
    """A Service in a background thread with its own event loop."""

    def __init__(self, opts: ServeOptions):
        self.opts = opts
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.service: Service | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(60):
            raise RuntimeError("the service did not start")
        if self.error:
            raise self.error

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            self.service = Service(self.opts)
            try:
                await self.service.start()
            except BaseException as exc:  # noqa: BLE001
                self.error = exc
                self.ready.set()
                return
            self.ready.set()
            await self.stop_event.wait()
            await self.service.stop()
        asyncio.run(main())

    @property
    def port(self) -> int:
        assert self.service is not None and self.service.api is not None
        return self.service.api.port

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the service's loop."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        if self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(60)


def start_service(scheduler: str, state_dir: Path, **kw: Any) -> Running:
    """A service whose tasks may use the test's temporary folder (the state dir's parent)."""
    kw.setdefault("allow_paths", [str(state_dir.parent)])
    opts = ServeOptions(config=kw.pop("config", None), host="127.0.0.1", port=0, scheduler=scheduler,
                        state_dir=state_dir, **kw)
    return Running(opts)


@pytest.fixture
def server(scheduler, tmp_path) -> Iterator[Running]:
    data = tmp_path / "data"
    data.mkdir()
    s = start_service(scheduler, tmp_path / "state", data_dirs=[str(data)])
    try:
        yield s
    finally:
        s.stop()
