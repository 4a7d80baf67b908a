"""`make serve` (bin/serve.sh) on a terminal: it prints the dashboard address Dask really took,
keeps the scheduler, workers and dashboard on loopback, and a Ctrl-C stops everything in order
and exits 0 (no "make: *** [serve] Error 130")."""

from __future__ import annotations

import re
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import pexpect
import psutil
import pytest

from ..orchestration.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something else already listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def serve_env(tmp_path: Path, dashboard_port: int) -> dict[str, str]:
    config = tmp_path / "tasks.toml"
    config.write_text("[global]\ndefault_pool_size = 1\n")
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "dumb",
            "LANG": "C.UTF-8", "DPORCH_SCHEDULER_PORT": str(free_port()), "DPORCH_DASHBOARD_PORT": str(dashboard_port),
            "DPORCH_API_PORT": str(free_port()), "DPORCH_WEB": f"127.0.0.1:{free_port()}",
            "DPORCH_WORKERS": "1", "DPORCH_CONFIG": str(config),
            "DPORCH_STATE_DIR": str(tmp_path / "state")}


def listening(pid: int) -> list[str]:
    """Addresses the process and its descendants listen on."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    found = []
    for p in procs:
        try:
            found += [c.laddr.ip for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    return found


def start(command: str, args: list[str], env: dict[str, str]) -> tuple[pexpect.spawn, str]:
    child = pexpect.spawn(command, args, cwd=str(ROOT), env=env, encoding="utf-8", timeout=120)
    child.expect(r"dashboard (http://\S+)")
    dashboard = child.match.group(1)
    child.expect("dporch serve: API on")
    return child, dashboard


def stop(child: pexpect.spawn) -> str:
    child.sendintr()
    child.expect(pexpect.EOF)
    text = child.before
    child.close()
    return text


def test_serve_script_reports_the_real_dashboard_stays_on_loopback_and_exits_0(tmp_path, taken_port):
    child, dashboard = start("bin/serve.sh", [], serve_env(tmp_path, taken_port))
    try:
        port = int(re.search(r":(\d+)/", dashboard).group(1))
        assert port != taken_port and dashboard.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(dashboard, timeout=10) as page:
            assert page.status == 200
            assert 'href="dporch"' in page.read().decode()  # the preload put dporch in the top menu
        with urllib.request.urlopen(dashboard.replace("/status", "/dporch"), timeout=30) as page:
            assert page.status == 200
        addresses = listening(child.pid)
        assert addresses and set(addresses) <= {"127.0.0.1", "::1"}, addresses
    finally:
        text = stop(child)
    assert "dporch serve: stopped" in text and "Traceback" not in text
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus, text)


def test_make_serve_ctrl_c_is_not_an_error(tmp_path):
    child, _ = start("make", ["serve"], serve_env(tmp_path, free_port()))
    text = stop(child)
    assert "dporch serve: stopped" in text
    assert "Error" not in text and "Traceback" not in text, text
