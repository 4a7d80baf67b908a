"""The JSON-lines TCP API server (docs/api.md): the TCP transport of the protocol. Each
connection is served by its own coroutine, so a slow or dead client never blocks the others or
the tasks; requests on one connection are answered in order. What a request does is the
:class:`~.dispatch.Dispatcher`'s business, shared with the web console's WebSocket."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from ..orchestration.manager import TaskManager
from .dispatch import Dispatcher, Session
from .protocol import MAX_LINE, encode, error

__all__ = ["APIServer"]

log = logging.getLogger("dporch.api")


class APIServer:
    def __init__(self, manager: TaskManager, *, host: str = "127.0.0.1", port: int = 8888,
                 token: str | None = None, data_dirs: list[str] | None = None,
                 info: Callable[[], dict[str, Any]] | None = None, monitor: Any = None):
        self.host = host
        self.port = port
        extra = info or (lambda: {})
        self.dispatcher = Dispatcher(manager, token=token, data_dirs=data_dirs, monitor=monitor,
                                     info=lambda: {"api": f"{self.host}:{self.port}", **extra()})
        self.server: asyncio.base_events.Server | None = None

    @property
    def manager(self) -> TaskManager:
        return self.dispatcher.manager

    @property
    def data_dirs(self) -> list[str]:
        return self.dispatcher.data_dirs

    @property
    def connections(self) -> int:
        return self.dispatcher.sessions.get("tcp", 0)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_LINE + 1)
        sock = self.server.sockets[0] if self.server.sockets else None
        if sock is not None:
            self.port = sock.getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    # -- connections ------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send(msg: dict[str, Any]) -> None:
            writer.write(encode(msg))
            await writer.drain()

        session = Session(send, transport="tcp")
        self.dispatcher.opened(session)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial.strip():
                        break
                    line = exc.partial
                except asyncio.LimitOverrunError:
                    await self._discard_line(reader)
                    await session.send(error("too_large", f"request lines are limited to {MAX_LINE} bytes; "
                                                          "split the data into several push_data requests"))
                    continue
                except ValueError:  # the limit was exceeded without a separator in sight
                    await self._discard_line(reader)
                    await session.send(error("too_large", f"request lines are limited to {MAX_LINE} bytes"))
                    continue
                if not line.strip():
                    continue
                await session.send(await self.dispatcher.request(line, session))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.dispatcher.closed(session)
            writer.close()

    async def _discard_line(self, reader: asyncio.StreamReader) -> None:
        """Skip the rest of an oversized line without holding it in memory."""
        while True:
            try:
                await reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await reader.readexactly(exc.consumed)
            except ValueError:
                buffered = len(reader._buffer)  # type: ignore[attr-defined]
                await reader.readexactly(max(1, buffered))
            except asyncio.IncompleteReadError:
                return
