"""Background coroutines that cannot fail silently.

Every coroutine the orchestrator starts without awaiting it goes through :func:`spawn`: the
task object is kept alive until it ends, and an exception it ends with is handed to
``on_error`` (or logged with its traceback) instead of becoming "Task exception was never
retrieved" long after the fact.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine

__all__ = ["spawn", "Background"]

log = logging.getLogger("dporch")
_alive: set[asyncio.Task] = set()


def spawn(coro: Coroutine[Any, Any, Any], *, name: str,
          on_error: Callable[[BaseException], None] | None = None) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _alive.add(task)

    def done(t: asyncio.Task) -> None:
        _alive.discard(t)
        if t.cancelled():
            return
        exc = t.exception()
        if exc is None:
            return
        if on_error is not None:
            try:
                on_error(exc)
                return
            except Exception:  # noqa: BLE001 - the handler failed too: log both
                log.exception("%s: error handler failed", name)
        log.error("%s failed", name, exc_info=exc)

    task.add_done_callback(done)
    return task


class Background:
    """The background coroutines of one owner, to cancel and await together."""

    def __init__(self, owner: str, on_error: Callable[[BaseException], None] | None = None):
        self.owner = owner
        self.on_error = on_error
        self.tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task:
        task = spawn(coro, name=f"{self.owner}: {what}", on_error=self.on_error)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def cancel(self) -> None:
        tasks = [t for t in self.tasks if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
