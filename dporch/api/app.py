"""`dporch serve`: one asyncio process with the Dask client, the task manager, the persistent
registry, the API server, the monitor and the web console (docs/architecture.md)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..orchestration.config import ConfigError, ConfigIssue, GlobalConfig, LoadedConfig, load_config
from ..orchestration.manager import TaskManager
from ..orchestration.paths import PathPolicy
from ..orchestration.states import TaskState
from .server import APIServer

__all__ = ["ServeOptions", "Service", "serve", "connect", "open_manager", "read_config"]

log = logging.getLogger("dporch.serve")


@dataclass
class ServeOptions:
    config: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8888
    scheduler: str | None = None
    workers: int = 2
    state_dir: Path = Path(".dporch")
    token: str | None = None
    dashboard: str = ":8787"
    restore_running: bool = True
    data_dirs: list[str] = field(default_factory=list)
    output_dir: Path | None = None  # where API tasks write (default: ./output)
    allow_paths: list[str] = field(default_factory=list)  # more folders every task may use
    web: str | None = None  # the web console's HOST:PORT (the command's default: 127.0.0.1:8080); None: none
    dashboard_page: bool = True  # the local cluster's scheduler loads the dporch dashboard page


async def connect(opts: ServeOptions) -> tuple[Any, Any]:
    """(asynchronous Dask client, the LocalCluster started for it or None)."""
    from dask.distributed import Client, LocalCluster

    if opts.scheduler:
        return await Client(opts.scheduler, asynchronous=True, direct_to_workers=True), None
    from ..dashboard import PRELOAD

    cluster = await LocalCluster(n_workers=opts.workers, threads_per_worker=1, processes=True, asynchronous=True,
                                 dashboard_address=opts.dashboard, silence_logs=logging.WARNING,
                                 scheduler_kwargs={"preload": [PRELOAD]} if opts.dashboard_page else {})
    return await Client(cluster, asynchronous=True, direct_to_workers=True), cluster


def read_config(path: Path | None) -> LoadedConfig:
    """The tasks file; a file that cannot be read or parsed is a ConfigError, a task with
    issues is only left out (its issues come back with the others)."""
    if path is None:
        return LoadedConfig(GlobalConfig(), [], [])
    if not path.exists():
        print(f"config: {path} not found; starting with no tasks from it", file=sys.stderr)
        return LoadedConfig(GlobalConfig(), [], [])
    loaded = load_config(path)
    fatal = [i for i in loaded.issues if i.field in ("file", "syntax")]
    if fatal:
        raise ConfigError(fatal)
    return loaded


def open_manager(opts: ServeOptions, client: Any, *, strict: bool = False) -> tuple[TaskManager, list[str]]:
    """The task manager of the options' tasks file and state directory, with the folders its
    tasks may use; (manager, data folders). Tasks with issues are reported and left out
    (``strict``: any issue is a ConfigError)."""
    opts.state_dir.mkdir(parents=True, exist_ok=True)
    loaded = read_config(opts.config)
    project = Path.cwd()
    folders = [project, *([opts.config.resolve().parent] if opts.config is not None else [])]
    data_dirs = opts.data_dirs or loaded.global_.data_dirs or [str(project / "data")]
    paths = PathPolicy(folders, data=data_dirs, output=opts.output_dir or project / "output",
                       allow=opts.allow_paths, state=opts.state_dir)
    manager = TaskManager(client, state_dir=opts.state_dir, paths=paths)
    issues = manager.load(loaded)
    if strict and issues:
        raise ConfigError(issues)
    for issue in issues:
        print(f"config: {issue}", file=sys.stderr)
    return manager, data_dirs


class Service:
    """The running server; ``start()`` then ``wait()``; ``stop()`` drains everything."""

    def __init__(self, opts: ServeOptions):
        self.opts = opts
        self.cluster: Any = None
        self.client: Any = None
        self.manager: TaskManager | None = None
        self.api: APIServer | None = None
        self.monitor: Any = None  # dporch.monitor.Monitor
        self.publisher: Any = None  # dporch.monitor.publish.DashboardPublisher
        self.web: Any = None  # dporch.web.WebConsole
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        opts = self.opts
        self.client, self.cluster = await connect(opts)
        self.manager, data_dirs = open_manager(opts, self.client)
        for note in await self.manager.restore(restore_running=opts.restore_running):
            print(f"registry: {note}", file=sys.stderr)
        from ..monitor import Monitor

        self.monitor = Monitor(self.manager)
        self.api = APIServer(self.manager, host=opts.host, port=opts.port, token=opts.token,
                             data_dirs=data_dirs, info=self._info, monitor=self.monitor)
        await self.api.start()
        await self._start_monitoring()
        # Everything alive now (Dask, Bokeh, compiled scripts) lives as long as the server:
        # keep it out of the cyclic collector, so a full collection stays short (tick latency).
        gc.freeze()

    async def _start_monitoring(self) -> None:
        """Sample the tasks once a second; publish to the Dask scheduler (for the dashboard's
        dporch page, when the scheduler has it); serve the web console and /metrics."""
        from ..monitor.publish import DashboardPublisher

        assert self.monitor is not None and self.manager is not None and self.api is not None
        self.monitor.start()
        manager = self.manager
        self.publisher = DashboardPublisher(self.monitor, lambda: manager.client, f"{self.opts.host}:{self.api.port}")
        self.publisher.start()
        if self.opts.web:
            from ..web import WebConsole, parse_address

            host, port = parse_address(self.opts.web)
            self.web = WebConsole(self.api.dispatcher, self.monitor, host=host, port=port, token=self.opts.token)
            await self.web.start()

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"scheduler": self.client.scheduler.address if self.client else None}
        try:
            info["dashboard"] = self.client.dashboard_link if self.client else None
        except Exception:  # noqa: BLE001 - no dashboard
            info["dashboard"] = None
        info["web"] = self.web.url if self.web is not None else None
        return info

    def banner(self) -> str:
        assert self.api is not None and self.manager is not None
        tasks = self.manager.tasks.values()
        running = sum(1 for t in tasks if t.state == TaskState.RUNNING)
        lines = [f"dporch serve: API on {self.opts.host}:{self.api.port} (JSON lines), "
                 f"{len(tasks)} task(s), {running} running"]
        try:
            lines.append(f"  Dask scheduler {self.client.scheduler.address}, dashboard {self.client.dashboard_link}")
        except Exception:  # noqa: BLE001
            lines.append(f"  Dask scheduler {self.client.scheduler.address}")
        if self.web is not None:
            moved = (f" (port {self.web.moved_from} was in use)" if self.web.moved_from else "")
            lines.append(f"  web console {self.web.url}{moved}, metrics {self.web.url}metrics")
        for t in tasks:
            where = t.input.describe() if t.input else t.config.input.type
            lines.append(f"  task {t.config.id}: {t.state.value}, input {where}")
        return "\n".join(lines)

    async def stop(self) -> None:
        """Drain and flush every task, release everything; the registry remembers which ran."""
        if self.manager is not None:
            await self.manager.shutdown()
        if self.web is not None:
            await self.web.close()
        if self.publisher is not None:
            await self.publisher.close()
        if self.monitor is not None:
            await self.monitor.close()
        if self.api is not None:
            await self.api.close()
        if self.client is not None:
            await self.client.close()
        if self.cluster is not None:
            await self.cluster.close()


async def serve(opts: ServeOptions) -> None:
    service = Service(opts)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if opts.host not in ("127.0.0.1", "localhost", "::1") and not opts.token:
        raise ConfigError([ConfigIssue(None, None, "--host", f"the API would listen on {opts.host} without a token, "
                                       "and anyone who can reach it could run tasks: pass --token (or DPORCH_TOKEN), "
                                       "or listen on 127.0.0.1")])
    if opts.web:
        from ..web import parse_address
        from ..web.server import loopback

        try:
            web_host, _ = parse_address(opts.web)
        except ValueError as exc:
            raise ConfigError([ConfigIssue(None, None, "--web", str(exc))]) from None
        if not loopback(web_host) and not opts.token:
            raise ConfigError([ConfigIssue(None, None, "--web", f"the web console would listen on {web_host} without "
                                           "a token: pass --token (or DPORCH_TOKEN), or listen on 127.0.0.1")])
    try:
        await service.start()
        print(service.banner(), file=sys.stderr, flush=True)
        await stop.wait()
        print("dporch serve: stopping (draining tasks, flushing outputs)...", file=sys.stderr, flush=True)
    finally:
        await service.stop()
        print("dporch serve: stopped", file=sys.stderr, flush=True)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("distributed", "bokeh", "tornado", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "warning")
