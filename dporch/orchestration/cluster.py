"""The link to the Dask cluster: one asynchronous client, and a watch on the scheduler.

Dask's client reconnects by itself for a while when the scheduler goes away, then closes.
The link notices both (the client's status), tells its listeners the cluster is down, keeps
trying the same address (a new client once the old one has closed), and tells them when a
scheduler with at least one worker is back. Compute units live on workers, so everything that
needs one asks :meth:`Cluster.workers` first and gets :class:`ClusterUnavailable` when there is
none.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from .aio import Background
from .errors import ClusterUnavailable

__all__ = ["Cluster"]

log = logging.getLogger("dporch.cluster")
WORKER_WAIT = 20.0  # seconds a new compute unit waits for a worker to join

Listener = Callable[[bool], Awaitable[None]]  # called with False when down, True when back


class Cluster:
    def __init__(self, client: Any, *, poll: float = 0.5):
        self.client = client
        self.address: str = client.scheduler.address
        self.poll = poll
        self.up = True
        self.listeners: list[Listener] = []
        self._bg = Background("cluster watch")

    def start(self) -> None:
        self._bg.spawn(self._watch(), "watch")

    async def close(self) -> None:
        await self._bg.cancel()

    def connected(self) -> bool:
        return getattr(self.client, "status", "running") == "running"

    async def workers(self, wait: float = WORKER_WAIT) -> list[str]:
        """Addresses of the workers (waiting up to ``wait`` seconds for one to join: workers
        started with the scheduler take a moment); ClusterUnavailable: no scheduler, or still
        no worker."""
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while True:
            if not self.connected():
                raise ClusterUnavailable(f"the Dask scheduler at {self.address} cannot be reached")
            try:
                info = await asyncio.wait_for(self.client.scheduler.identity(), 10)
            except (OSError, asyncio.TimeoutError) as exc:
                raise ClusterUnavailable(f"the Dask scheduler at {self.address} does not answer ({exc})") from None
            workers = sorted(info.get("workers", {}))
            if workers:
                return workers
            if loop.time() >= end:
                raise ClusterUnavailable(f"the Dask scheduler at {self.address} has no worker to run compute units "
                                         f"on (waited {wait:g} s); start one (dask worker {self.address})")
            await asyncio.sleep(0.2)

    async def _notify(self, up: bool) -> None:
        self.up = up
        for fn in list(self.listeners):
            try:
                await fn(up)
            except Exception:  # noqa: BLE001 - one listener must not stop the others
                log.exception("cluster listener failed")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            if self.up and not self.connected():
                log.warning("lost the Dask scheduler at %s", self.address)
                await self._notify(False)
            elif not self.up and await self._reconnect():
                log.warning("the Dask scheduler at %s is back", self.address)
                await self._notify(True)

    async def _reconnect(self) -> bool:
        """Whether a scheduler with a worker answers at the address (a new client if needed)."""
        if getattr(self.client, "status", None) in ("closed", "closing"):
            from dask.distributed import Client

            try:
                client = await asyncio.wait_for(
                    Client(self.address, asynchronous=True, direct_to_workers=True), 5)
            except (OSError, asyncio.TimeoutError):
                return False
            old, self.client = self.client, client
            try:
                await old.close()
            except Exception:  # noqa: BLE001 - it is closed already
                pass
        if not self.connected():
            return False
        try:
            await self.workers(wait=0)
        except ClusterUnavailable:
            return False
        return True
