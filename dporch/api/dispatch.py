"""Request handling of the API, whatever carries it (docs/api.md): one :class:`Dispatcher` turns
a request into its answer and streams subscription events to a :class:`Session`. The JSON-lines
TCP server (:mod:`.server`) and the web console's WebSocket (``dporch.web``) are transports that
only move messages to and from it, so both speak exactly the same protocol."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from typing import Any, Awaitable, Callable

from .. import __version__
from ..lang.cells import check_unicode
from ..orchestration.config import ConfigError, task_to_dict
from ..orchestration.errors import IllegalTransition, NotFound, OrchestrationError
from ..orchestration.inputs import LineSplitter
from ..orchestration.manager import TaskManager
from ..orchestration.paths import inside
from ..orchestration.states import TaskState
from ..orchestration.workflow import build_graph, layout
from .protocol import ACTIONS, APIError, error, ok, to_json_value
from .toml_text import field_line, task_from_toml

__all__ = ["Dispatcher", "Session", "decode_request"]

log = logging.getLogger("dporch.api")
_CHUNK = 1 << 16
_MAX_INT = 2 ** 31 - 1  # counts, offsets and limits beyond this are mistakes
SEND_TIMEOUT = 30.0  # a subscriber that takes no event for this long is dropped


def decode_request(line: bytes) -> dict[str, Any]:
    """One request (a line, a WebSocket message) -> its JSON object, or APIError("bad_request")
    saying what is wrong."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError("bad_request", f"a request is UTF-8 text; byte {exc.start + 1} of the line is not") from None
    try:
        req = json.loads(text)
    except RecursionError:
        raise APIError("bad_request", "the request is nested too deep to read; send flat JSON") from None
    except ValueError as exc:
        raise APIError("bad_request", f"malformed JSON: {exc}; send one JSON object per line, "
                                      'like {"action": "ping", "params": {}}') from None
    if not isinstance(req, dict):
        raise APIError("bad_request", "a request is a JSON object with an action and params")
    if "\\u" in text:
        try:
            check_unicode(req)
        except ValueError as exc:
            raise APIError("bad_request", str(exc)) from None
    return req


def _param(params: dict[str, Any], name: str, kind: type | tuple = str, default: Any = ..., ) -> Any:
    if name not in params:
        if default is ...:
            raise APIError("bad_request", f"missing parameter: {name}")
        return default
    v = params[name]
    if not isinstance(v, kind) or (isinstance(v, bool) and kind in (int, (int, float))):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise APIError("bad_request", f"parameter {name} must be {want}, got {type(v).__name__}")
    if kind is int and not 0 <= v <= _MAX_INT:
        raise APIError("bad_request", f"parameter {name} must be between 0 and {_MAX_INT}, got {v}")
    if isinstance(v, str) and "\x00" in v:
        raise APIError("bad_request", f"parameter {name} must not contain a NUL character")
    return v


class Session:
    """One client connection on any transport: ``send`` delivers one message to it (raising
    ConnectionError once it is gone); its subscriptions end with it. ``authenticated``: the
    transport checked the token already (the web console's session cookie), so requests need
    not carry it."""

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]], *, transport: str = "tcp",
                 authenticated: bool = False):
        self._send = send
        self.transport = transport
        self.authenticated = authenticated
        self.lock = asyncio.Lock()
        self.subscriptions: dict[str, tuple[Any, asyncio.Task]] = {}
        self.skipped: dict[str, int] = {}  # events a subscription's max_rate left out

    async def send(self, msg: dict[str, Any]) -> None:
        async with self.lock:
            await self._send(msg)


class Dispatcher:
    """Every action of the protocol. ``monitor`` (a ``dporch.monitor.Monitor``) serves
    ``subscribe_stats``; ``info`` adds to ``server_info``."""

    def __init__(self, manager: TaskManager, *, token: str | None = None, data_dirs: list[str] | None = None,
                 info: Callable[[], dict[str, Any]] | None = None, monitor: Any = None):
        self.manager = manager
        self.token = token
        self.data_dirs = [os.path.realpath(d) for d in (data_dirs or [os.path.join(os.getcwd(), "data")])]
        self.info = info or (lambda: {})
        self.monitor = monitor
        self.started = time.time()
        self.sessions: dict[str, int] = {}  # open sessions per transport
        self._sub_ids = 0

    # -- sessions ---------------------------------------------------------------------------------
    def opened(self, session: Session) -> None:
        self.sessions[session.transport] = self.sessions.get(session.transport, 0) + 1

    def closed(self, session: Session) -> None:
        """The session's connection is gone: its subscriptions end."""
        for sub, task in session.subscriptions.values():
            sub.close()
            task.cancel()
        session.subscriptions.clear()
        self.sessions[session.transport] = self.sessions.get(session.transport, 1) - 1

    def check_token(self, token: Any) -> bool:
        return self.token is None or (isinstance(token, str) and
                                      hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self.token.encode()))

    # -- requests ---------------------------------------------------------------------------------
    async def request(self, line: bytes, session: Session) -> dict[str, Any]:
        """The answer to one request (never raises: every failure is an error answer)."""
        rid = None
        try:
            req = decode_request(line)
            rid = req.get("id")
            if not session.authenticated and not self.check_token(req.get("token")):
                raise APIError("unauthorized", "this server needs a token: add \"token\": \"...\" to each request "
                                               "(dporch --token or DPORCH_TOKEN)")
            action = req.get("action")
            if not isinstance(action, str):
                raise APIError("bad_request", "missing action (a string), e.g. {\"action\": \"list_tasks\"}")
            if action not in ACTIONS:
                raise APIError("unknown_action", f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
            params = req.get("params", {})
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise APIError("bad_request", "params must be a JSON object")
            handler: Callable[..., Awaitable[tuple[Any, str]]] = getattr(self, "_" + action)
            data, message = await handler(params, session=session, rid=rid)
            return ok(data, message, rid)
        except APIError as exc:
            return error(exc.code, exc.message, rid)
        except ConfigError as exc:
            return error("invalid_config", "invalid task configuration: " + "; ".join(str(i) for i in exc.issues), rid,
                         [self._issue(i, getattr(exc, "toml", None)) for i in exc.issues])
        except NotFound as exc:
            return error("not_found", str(exc), rid)
        except IllegalTransition as exc:
            return error("invalid_state", str(exc), rid)
        except OrchestrationError as exc:
            return error(exc.code if exc.code != "internal" else "internal", str(exc), rid)
        except Exception as exc:  # noqa: BLE001 - the connection stays usable
            log.exception("request failed")
            return error("internal", f"internal error: {type(exc).__name__}: {exc}", rid)

    @staticmethod
    def _issue(issue: Any, toml: str | None) -> dict[str, Any]:
        out = {"file": issue.file, "task": issue.task, "field": issue.field, "message": issue.message}
        if toml is not None:
            out["line"] = getattr(issue, "line", None) or field_line(toml, issue.field)
        return out

    # -- task management ---------------------------------------------------------------------------
    def _task(self, params: dict[str, Any]) -> Any:
        return self.manager.get(_param(params, "task_id"))

    async def _create_task(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        text = params.get("toml") if set(params) == {"toml"} else None
        if text is None:
            task = self.manager.create(params, source=None, base_dir=os.getcwd())
            return {"task_id": task.config.id}, "task created"
        text = _param(params, "toml")
        try:
            task = self.manager.create(task_from_toml(text), source=None, base_dir=os.getcwd())
        except ConfigError as exc:
            exc.toml = text  # type: ignore[attr-defined]  # the answer names each issue's line
            raise
        return {"task_id": task.config.id}, "task created"

    async def _delete_task(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        tid = _param(params, "task_id")
        await self.manager.delete(tid)
        return None, "task deleted"

    async def _update_task(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        tid = _param(params, "task_id")
        updates = _param(params, "updates", dict)
        task, applied = await self.manager.update(tid, updates)
        return {"task_id": tid, "applied": applied, "status": task.state.value}, "task updated"

    async def _list_tasks(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        return {"tasks": [t.summary() for t in self.manager.tasks.values()]}, "task list"

    async def _get_task(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        task = self._task(params)
        cfg = task_to_dict(task.config)
        return {"id": task.config.id, "name": task.config.name, "status": task.state.value,
                "allowed_actions": task.allowed(), "config": cfg,
                "columns": {"input": dict(task.types), "output": task.programs[-1].output_types},
                "stats": to_json_value(task.stats())}, "task details"

    async def _action(self, params: dict[str, Any], fn: Callable[[str], Awaitable[Any]], done: str) -> tuple[Any, str]:
        tid = _param(params, "task_id")
        await fn(tid)
        return {"task_id": tid, "status": self.manager.get(tid).state.value}, done

    async def _start_task(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        fresh = _param(params, "fresh", bool, False)

        async def start(tid: str) -> None:
            await self.manager.start(tid, fresh=fresh)
        return await self._action(params, start, "task started" + (" with empty history" if fresh else ""))

    async def _pause_task(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        return await self._action(params, self.manager.pause, "task paused")

    async def _resume_task(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        return await self._action(params, self.manager.resume, "task resumed")

    async def _stop_task(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        return await self._action(params, self.manager.stop, "task stopped")

    async def _reset_task(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        async def reset(tid: str) -> None:
            self.manager.reset(tid)
        return await self._action(params, reset, "task reset")

    # -- data ----------------------------------------------------------------------------------------
    async def _push_data(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        task = self._task(params)
        rows = _param(params, "data", list)
        if task.state == TaskState.PAUSED:
            raise IllegalTransition(f"task {task.config.id!r} is paused: it takes no new data; resume it first")
        accepted, errors = await task.push(rows)
        return {"accepted_count": accepted, "errors": to_json_value(errors)}, "data pushed"

    def _confined(self, path: str) -> str:
        real = os.path.realpath(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
        if not inside(real, self.data_dirs):
            raise APIError("bad_request", f"file {path!r} is outside the data directories the server allows "
                                          f"({', '.join(self.data_dirs)}); copy it there")
        return real

    async def _attach_file(self, params: dict[str, Any], *, session: Session, rid: Any) -> tuple[Any, str]:
        path = self._confined(_param(params, "file_path"))
        task = self._task(params)
        if not os.path.isfile(path):
            raise APIError("bad_request", f"no such file: {path}")
        task.check("push")
        fmt = params.get("format") or task.config.input.format
        split = LineSplitter(fmt if fmt in ("csv", "json") else "csv", f"attach:{path}")
        total = os.path.getsize(path)
        done = 0
        errors_before = task.error_count
        seq_before = task.next_seq
        last_report = time.monotonic()
        loop = asyncio.get_running_loop()
        with open(path, "rb") as f:
            while True:
                data = await loop.run_in_executor(None, f.read, _CHUNK * 16)
                chunk = split.feed(data, final=not data)
                if chunk:
                    await task.push_chunk(chunk)
                done += len(data)
                if time.monotonic() - last_report > 0.5 and data:
                    last_report = time.monotonic()
                    await session.send({"status": "ok", "event": "progress", "id": rid,
                                        "data": {"bytes": done, "total_bytes": total,
                                                 "rows": task.next_seq - seq_before}})
                if not data:
                    break
        return {"processed_count": task.next_seq - seq_before, "error_count": task.error_count - errors_before,
                "bytes": total}, "file data processed"

    async def _fetch_output(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        limit = _param(params, "limit", int, 100)
        offset = _param(params, "offset", int, 0)
        task = self._task(params)
        rows = task.buffer.page(offset, limit)
        return {"total_count": task.buffer.total, "first_index": task.buffer.first_index,
                "rows": to_json_value(rows)}, "output rows"

    # -- subscriptions ---------------------------------------------------------------------------------
    def _subscribe(self, session: Session, rid: Any, sub: Any, event: str, max_rate: float | None = None) -> str:
        """Stream what arrives in ``sub.queue`` to the session as ``event`` messages; with
        ``max_rate``, at most that many a second (a burst of one second's worth), the others
        skipped and counted with the dropped ones."""
        self._sub_ids += 1
        sid = f"s{self._sub_ids}"
        loop = asyncio.get_running_loop()

        async def pump() -> None:
            sent_dropped = skipped = 0
            allowance, last = max_rate or 0.0, loop.time()
            try:
                while True:
                    item = await sub.queue.get()
                    if max_rate is not None:
                        now = loop.time()
                        allowance = min(max_rate, allowance + (now - last) * max_rate)
                        last = now
                        if allowance < 1:
                            skipped += 1
                            session.skipped[sid] = skipped
                            continue
                        allowance -= 1
                    msg = {"status": "ok", "event": event, "data": to_json_value(item), "subscription": sid}
                    if rid is not None:
                        msg["id"] = rid
                    if sub.dropped + skipped != sent_dropped:
                        msg["dropped"] = sent_dropped = sub.dropped + skipped
                    await asyncio.wait_for(session.send(msg), timeout=SEND_TIMEOUT)
            except (asyncio.TimeoutError, ConnectionError):
                sub.close()  # a subscriber that stopped reading is dropped
            except asyncio.CancelledError:
                pass

        session.subscriptions[sid] = (sub, asyncio.create_task(pump()))
        return sid

    async def _subscribe_output(self, params: dict[str, Any], *, session: Session, rid: Any) -> tuple[Any, str]:
        task = self._task(params)
        filt = _param(params, "filter", dict, {})
        max_rate = _param(params, "max_rate", (int, float), None)
        if max_rate is not None and not 0 < max_rate <= 1_000_000:
            raise APIError("bad_request", f"parameter max_rate must be a number of rows per second in (0, 1000000], "
                                          f"got {max_rate}")
        sid = self._subscribe(session, rid, task.buffer.subscribe(filt), "output", max_rate)
        data = {"subscription": sid, "task_id": task.config.id, "filter": filt}
        if max_rate is not None:
            data["max_rate"] = max_rate
        return data, "subscribed; send unsubscribe to stop"

    async def _subscribe_stats(self, params: dict[str, Any], *, session: Session, rid: Any) -> tuple[Any, str]:
        tid = _param(params, "task_id", str, None)
        if tid is not None:
            self.manager.get(tid)
        if self.monitor is None:
            raise APIError("bad_request", "this server keeps no live statistics")
        sid = self._subscribe(session, rid, self.monitor.subscribe(tid), "stats")
        return ({"subscription": sid, "task_id": tid, "interval": self.monitor.interval},
                "subscribed; a stats event follows every second; send unsubscribe to stop")

    async def _unsubscribe(self, params: dict[str, Any], *, session: Session, **_: Any) -> tuple[Any, str]:
        sid = params.get("subscription")
        ids = [sid] if sid else list(session.subscriptions)
        dropped = 0
        for s in ids:
            entry = session.subscriptions.pop(s, None)
            if entry is None:
                raise APIError("not_found", f"no subscription {s!r} on this connection")
            entry[0].close()
            entry[1].cancel()
            dropped += entry[0].dropped + session.skipped.pop(s, 0)
        return {"unsubscribed": ids, "dropped": dropped}, "unsubscribed"

    async def _get_errors(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        limit = _param(params, "limit", int, 100)
        task = self._task(params)
        errs = [e.to_dict() for e in list(task.errors)[-limit:]] if limit else []
        return {"error_count": task.error_count, "errors": to_json_value(errs)}, "error records"

    async def _get_graph(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        tasks = dict(self.manager.tasks)
        graph, issues = build_graph([t.config for t in tasks.values()])
        drawn = layout(graph)
        for node in drawn["nodes"]:
            task = tasks[node["id"]]
            node["name"] = task.config.name
            node["status"] = task.state.value
        return {**drawn, "issues": [self._issue(i, None) for i in issues]}, "task graph"

    async def _ping(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        return {"pong": True}, "pong"

    async def _server_info(self, params: dict[str, Any], **_: Any) -> tuple[Any, str]:
        tasks = self.manager.tasks.values()
        return {"version": __version__, "uptime_seconds": round(time.time() - self.started, 1),
                "connections": sum(self.sessions.values()),
                "tasks": len(tasks), "running": sum(1 for t in tasks if t.state == TaskState.RUNNING),
                "data_dirs": self.data_dirs, **self.info()}, "server info"
