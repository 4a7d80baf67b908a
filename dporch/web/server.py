"""The web console's HTTP server (tornado, on the ``dporch serve`` event loop).

Routes: ``/`` the task list, ``/tasks/<id>`` a task's page (one page shell, ``static/console.js``
draws either), ``/ws`` the WebSocket, ``/metrics`` Prometheus, ``/static/...`` the console's
own files, ``/login`` when the server has a token. Every asset comes from this package: the
console works offline.

The WebSocket is a transport of the API: each text message is one request of docs/api.md,
handed to the same :class:`~dporch.api.dispatch.Dispatcher` as the TCP server's lines; answers
and subscription events come back as text messages. Requests of one WebSocket are handled
concurrently (at most :data:`IN_FLIGHT` at a time; answers carry the request's ``id``), so a
``stop_task`` that drains for seconds does not hold up the page's other requests.

Access: with a token, nothing but the login form is served without the session cookie the form
sets (or an ``Authorization: Bearer <token>`` header, for Prometheus); the cookie holds an HMAC
of the token, not the token. Without a token the console listens on loopback only, and
requests whose ``Host`` is not a loopback name are refused (DNS rebinding), as are WebSocket
handshakes from pages of another origin (tornado's origin check)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import ipaddress
import logging
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tornado import httpserver, netutil, web, websocket

from ..api.dispatch import Dispatcher, Session
from ..api.protocol import MAX_LINE, encode
from ..monitor.prometheus import CONTENT_TYPE_LATEST, exposition, make_registry
from ..monitor.sampler import Monitor

__all__ = ["WebConsole", "parse_address", "loopback"]

log = logging.getLogger("dporch.web")
STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "dporch_console"
IN_FLIGHT = 16  # requests of one WebSocket handled at the same time
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` -> (host, port); ValueError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or default_host
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)") from None
    if not 0 <= p <= 65535:
        raise ValueError(f"port {p} is out of range (0-65535)")
    return host, p


class _Base(web.RequestHandler):
    console: "WebConsole"

    def initialize(self, console: "WebConsole") -> None:
        self.console = console

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

    def prepare(self) -> None:
        if not self.console.host_allowed(self.request.host_name):
            raise web.HTTPError(403, "this console answers only to its loopback address")
        if not self.console.authorized(self):
            self.refuse()

    def refuse(self) -> None:
        raise web.HTTPError(401)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}\n")


class _Page(_Base):
    def refuse(self) -> None:
        self.redirect("/login?next=" + quote(self.request.uri or "/"))
        raise web.Finish()

    def get(self, *_: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(self.console.shell)


class _Static(_Base, web.StaticFileHandler):
    def initialize(self, console: "WebConsole", path: str) -> None:  # type: ignore[override]
        self.console = console
        web.StaticFileHandler.initialize(self, path)


class _Metrics(_Base):
    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(exposition(self.console.registry))


_LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>dporch · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>
body{{font:15px system-ui,sans-serif;background:#f4f6f8;display:flex;justify-content:center;margin-top:12vh}}
form{{background:#fff;padding:28px 32px;border-radius:8px;box-shadow:0 1px 4px #0002;width:320px}}
h1{{font-size:20px;margin:0 0 16px}}input{{width:100%;box-sizing:border-box;padding:8px;margin:6px 0 14px;font-size:15px}}
button{{padding:8px 18px;font-size:15px;background:#1565c0;color:#fff;border:0;border-radius:4px}}
.err{{color:#c62828;margin:0 0 10px}}</style></head><body><form method="post" action="/login">
<h1>dporch console</h1>{error}<label for="token">This server needs its token (dporch serve --token)</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<input type="hidden" name="next" value="{next}"><button type="submit">Sign in</button></form></body></html>"""


class _Login(web.RequestHandler):
    def initialize(self, console: "WebConsole") -> None:
        self.console = console

    def set_default_headers(self) -> None:
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Content-Security-Policy",
                        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")

    def prepare(self) -> None:
        if not self.console.host_allowed(self.request.host_name):
            raise web.HTTPError(403)

    def _next(self) -> str:
        nxt = self.get_argument("next", "/")
        return nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"

    def get(self) -> None:
        if self.console.token is None:
            self.redirect("/")
            return
        self.finish(_LOGIN.format(error="", next=html.escape(self._next())))

    def post(self) -> None:
        if self.console.token is None:
            self.redirect("/")
            return
        given = self.get_body_argument("token", "")
        if not self.console.dispatcher.check_token(given):
            self.set_status(401)
            self.finish(_LOGIN.format(error='<p class="err">That is not the token.</p>', next=html.escape(self._next())))
            return
        self.set_cookie(COOKIE, self.console.session_value(), httponly=True, samesite="Strict", path="/")
        self.redirect(self._next())


class _Socket(websocket.WebSocketHandler):
    def initialize(self, console: "WebConsole") -> None:
        self.console = console
        self.session: Session | None = None
        self.slots = asyncio.Semaphore(IN_FLIGHT)
        self.requests: set[asyncio.Task] = set()

    def prepare(self) -> None:
        if not self.console.host_allowed(self.request.host_name) or not self.console.authorized(self):
            raise web.HTTPError(403)

    def open(self, *_: Any) -> None:
        self.session = Session(self._send, transport="websocket", authenticated=True)
        self.console.dispatcher.opened(self.session)
        self.console.sockets.add(self)

    async def _send(self, msg: dict[str, Any]) -> None:
        try:
            await self.write_message(encode(msg).decode("utf-8").rstrip("\n"))
        except websocket.WebSocketClosedError:
            raise ConnectionError("the WebSocket is closed") from None

    async def on_message(self, message: str | bytes) -> None:
        data = message.encode("utf-8", "surrogatepass") if isinstance(message, str) else message
        await self.slots.acquire()
        task = asyncio.ensure_future(self._answer(data))
        self.requests.add(task)
        task.add_done_callback(self.requests.discard)

    async def _answer(self, data: bytes) -> None:
        try:
            assert self.session is not None
            answer = await self.console.dispatcher.request(data, self.session)
            await self.session.send(answer)
        except ConnectionError:
            pass
        finally:
            self.slots.release()

    def on_close(self) -> None:
        self.console.sockets.discard(self)
        if self.session is not None:
            self.console.dispatcher.closed(self.session)
            self.session = None
        for task in list(self.requests):
            task.cancel()


class WebConsole:
    """The console on ``host:port`` (port 0: any free port; a port in use: a free one, said in
    ``moved_from``), serving ``dispatcher``'s protocol and ``monitor``'s metrics."""

    def __init__(self, dispatcher: Dispatcher, monitor: Monitor, *, host: str = "127.0.0.1", port: int = 8080,
                 token: str | None = None, dashboard: Any = None):
        self.dispatcher = dispatcher
        self.monitor = monitor
        self.host = host
        self.port = port
        self.token = token
        self.dashboard = dashboard  # () -> the Dask dashboard's address, for a link
        self.registry = make_registry(monitor)
        self.shell = (STATIC / "console.html").read_text(encoding="utf-8")
        self.moved_from: int | None = None
        self.server: httpserver.HTTPServer | None = None
        self.sockets: set[_Socket] = set()  # open WebSockets (tornado's server lets them go)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def session_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"dporch web console session", hashlib.sha256).hexdigest()

    def authorized(self, handler: web.RequestHandler) -> bool:
        if self.token is None:
            return True
        auth = handler.request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and self.dispatcher.check_token(auth[7:].strip()):
            return True
        cookie = handler.get_cookie(COOKIE)
        return bool(cookie) and hmac.compare_digest(cookie.encode("ascii", "replace"), self.session_value().encode())

    def host_allowed(self, host_name: str) -> bool:
        """Without a token, a loopback console answers only requests addressed to loopback."""
        return self.token is not None or not loopback(self.host) or loopback(host_name)

    def application(self) -> web.Application:
        kw = {"console": self}
        return web.Application([
            (r"/", _Page, kw),
            (r"/tasks/([^/]+)", _Page, kw),
            (r"/ws", _Socket, kw),
            (r"/metrics", _Metrics, kw),
            (r"/login", _Login, kw),
            (r"/static/(.*)", _Static, {**kw, "path": str(STATIC)}),
        ], websocket_max_message_size=MAX_LINE, xsrf_cookies=False, compress_response=True)

    async def start(self) -> None:
        try:
            sockets = netutil.bind_sockets(self.port, self.host, family=socket.AF_UNSPEC)
        except OSError:
            if self.port == 0:
                raise
            self.moved_from = self.port
            sockets = netutil.bind_sockets(0, self.host, family=socket.AF_UNSPEC)
        self.port = sockets[0].getsockname()[1]
        self.server = httpserver.HTTPServer(self.application(), max_buffer_size=MAX_LINE + 1024,
                                            xheaders=False)
        self.server.add_sockets(sockets)

    async def close(self) -> None:
        for sock in list(self.sockets):
            sock.close(1001, "the server is stopping")
            sock.on_close()
        if self.server is not None:
            self.server.stop()
            try:
                await asyncio.wait_for(self.server.close_all_connections(), 5)
            except asyncio.TimeoutError:
                pass
            self.server = None
