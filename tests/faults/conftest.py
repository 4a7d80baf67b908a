"""Real processes to kill: a `dask scheduler`, `dask worker`s without nannies (a killed worker
stays dead until a test starts another), and `dporch serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from ..conftest import wait_for  # noqa: F401 - the tests here import it from this module

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class DaskProcesses:
    """A scheduler on a fixed port and named workers, each its own process."""

    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.start_scheduler()

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.base / f"{name}.log", "ab")
        return subprocess.Popen([str(BIN / "dask"), *args], stdout=log, stderr=log, env=ENV,
                                start_new_session=True)

    def start_scheduler(self) -> None:
        # (its HTTP server starts even without the dashboard: a free port, not a user's :8787)
        self.scheduler = self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                     "--no-dashboard", "--dashboard-address", "127.0.0.1:0")
        wait_port(self.port)

    def add_worker(self, name: str) -> None:
        self.workers[name] = self._spawn(name, "worker", self.address, "--no-nanny", "--nthreads", "1",
                                         "--name", name, "--host", "127.0.0.1", "--no-dashboard",
                                         "--death-timeout", "60")

    def start_workers(self, n: int) -> None:
        """Workers w1..wn, and wait until the scheduler has them all."""
        for i in range(1, n + 1):
            self.add_worker(f"w{i}")
        self.wait_workers(len(self.workers))

    def wait_workers(self, n: int, timeout: float = 60) -> None:
        from dask.distributed import Client

        with Client(self.address, timeout=30) as c:
            c.wait_for_workers(n, timeout=timeout)

    def kill(self, proc: subprocess.Popen | None) -> None:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def kill_worker(self, name: str) -> None:
        self.kill(self.workers.pop(name))

    def close(self) -> None:
        for p in [*self.workers.values(), self.scheduler]:
            self.kill(p)


@pytest.fixture
def dask_procs(tmp_path) -> Iterator[DaskProcesses]:
    procs = DaskProcesses(tmp_path)
    try:
        yield procs
    finally:
        procs.close()


class Serve:
    """`dporch serve` as its own process, joined to a Dask scheduler, with an API client."""

    def __init__(self, base: Path, scheduler: str, config: Path, state: Path, port: int | None = None):
        self.base, self.scheduler, self.config, self.state = base, scheduler, config, state
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> "Serve":
        from dporch.api.client import Client

        self.runs += 1
        log = open(self.base / f"serve-{self.runs}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dporch.cli", "serve", "--scheduler", self.scheduler, "--config", str(self.config),
             "--state-dir", str(self.state), "--port", str(self.port), "--allow-path", str(ROOT / "workflows"),
             "--no-web"],
            stdout=log, stderr=log, env=ENV, cwd=self.base, start_new_session=True)
        wait_port(self.port)
        self.api = Client("127.0.0.1", self.port)
        return self

    def task(self, tid: str) -> dict:
        return self.api.get_task(tid)

    def kill(self) -> None:
        self.api.close()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGINT: the clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.api.close()
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)

    def log(self) -> str:
        return "".join((self.base / f"serve-{i}.log").read_text() for i in range(1, self.runs + 1))
