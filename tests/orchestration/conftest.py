"""A real Dask LocalCluster (worker processes) shared by the orchestration and API tests."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_async(coro_fn: Callable[..., Awaitable[Any]], scheduler: str, *args: Any, timeout: float = 120) -> Any:
    """Run ``coro_fn(manager, client, *args)`` with a fresh async client and task manager."""
    from dask.distributed import Client

    from dporch.orchestration.manager import TaskManager

    async def main() -> Any:
        async with Client(scheduler, asynchronous=True, direct_to_workers=True) as client:
            manager = TaskManager(client)
            try:
                return await asyncio.wait_for(coro_fn(manager, client, *args), timeout)
            finally:
                await manager.shutdown()

    return asyncio.run(main())


async def wait_until(pred: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def send_tcp(port: int, text: str) -> None:
    _, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(text.encode())
    await w.drain()
    w.close()


SEQ_SCRIPT = """-- INPUT k:string, seq:number, x:number --
-- OUTPUT k:string, seq:number, prev:number, idx:number --
return [k, seq, seq[-1], _index]
"""


@pytest.fixture
def seq_script(tmp_path) -> Path:
    p = tmp_path / "seq.dp"
    p.write_text(SEQ_SCRIPT)
    return p


def seq_task(tid: str, script: Path, port: int | None, out: Path, **over: Any) -> dict[str, Any]:
    """A task whose outputs carry each row's sequence number and its key's previous one."""
    cfg: dict[str, Any] = {
        "id": tid, "scripts": [str(script)],
        "schema": {"columns": [{"name": "k", "type": "string", "required": True},
                               {"name": "seq", "type": "number"}, {"name": "x", "type": "number"}]},
        "routing": {"enabled": True, "key_column": "k", "strategy": "hash"},
        "compute_pool": {"initial_size": 2, "max_size": 4, "batch_size": 50, "batch_ms": 2},
        "input": {"type": "tcp", "port": port} if port else {"type": "stdin"},
        "output": {"type": "file", "path": str(out / "{k}.csv"), "mode": "split"},
    }
    for section, values in over.items():
        if isinstance(values, dict) and isinstance(cfg.get(section), dict):
            cfg[section].update(values)
        else:
            cfg[section] = values
    return cfg


def seq_task_in(tmp_path: Path, tid: str, *, initial_size: int, max_size: int, port: int | None = None,
                **extra: Any) -> dict[str, Any]:
    """:func:`seq_task` named 测试任务, its script written under ``tmp_path``, a TCP input (a free
    port by default) and output under ``tmp_path/out/tid``; ``extra`` replaces whole sections."""
    script = tmp_path / "seq.dp"
    script.write_text(SEQ_SCRIPT)
    cfg = seq_task(tid, script, port or free_port(), tmp_path / "out" / tid, name="测试任务",
                   compute_pool={"initial_size": initial_size, "max_size": max_size, "batch_size": 1000})
    cfg.update(extra)
    return cfg


def seq_task_toml(tid: str, script: str, input_table: str, out: str, *, name: str = "") -> str:
    """The seq task of :func:`seq_task` as a tasks-file table; ``input_table`` holds the lines
    of its [task.input] table."""
    return f"""
[[task]]
id = "{tid}"
name = "{name or tid}"
scripts = ["{script}"]
[task.schema]
columns = [{{ name = "k", type = "string", required = true }}, {{ name = "seq", type = "number" }},
           {{ name = "x", type = "number" }}]
[task.routing]
enabled = true
key_column = "k"
[task.input]
{input_table}
[task.output]
type = "file"
path = "{out}/{{k}}.csv"
mode = "split"
"""


def rows_text(n: int, keys: str = "ABCD", start: int = 0, header: bool = True) -> str:
    lines = ["k,seq,x"] if header else []
    for i in range(start, start + n):
        lines.append(f"{keys[i % len(keys)]},{i},{i * 0.5}")
    return "\n".join(lines) + "\n"


def read_split(out: Path) -> dict[str, list[list[str]]]:
    import csv

    return {p.stem: list(csv.reader(p.open()))[1:] for p in sorted(out.glob("*.csv"))}


def check_sequences(out: Path, n: int) -> None:
    """Every row exactly once; per key in input order with continuous history."""
    files = read_split(out)
    seen = sorted(int(float(r[1])) for rows in files.values() for r in rows)
    assert seen == list(range(n))
    for key, rows in files.items():
        seqs = [int(float(r[1])) for r in rows]
        assert seqs == sorted(seqs), key
        prevs = [r[2] for r in rows]
        assert prevs[0] == "" and [int(float(p)) for p in prevs[1:]] == seqs[:-1], key
        assert [int(float(r[3])) for r in rows] == list(range(len(rows)))
