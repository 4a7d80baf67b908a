"""File and stdin inputs end to end: a followed file that grows while the task runs, and a
stdin task of a real `dporch serve` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from .conftest import check_sequences, read_split, rows_text, run_async, seq_task, seq_task_toml, wait_until


def test_followed_file_is_read_as_it_grows(tmp_path, seq_script, scheduler):
    data, out = tmp_path / "ticks.csv", tmp_path / "out"
    data.write_text(rows_text(100))

    async def body(m, client):
        t = m.create(seq_task("follow", seq_script, None, out,
                              input={"type": "file", "path": str(data), "follow": True}))
        await m.start("follow")
        await wait_until(lambda: t.processed == 100)
        more = rows_text(60, start=100, header=False)
        with open(data, "a") as f:  # a row split across two writes is read once it is whole
            f.write(more[:-7])
            f.flush()
            await wait_until(lambda: t.processed == 159)
            f.write(more[-7:])
        await wait_until(lambda: t.processed == 160)
        assert t.state.value == "running" and not t.input.done.is_set()
        await m.stop("follow")

    run_async(body, scheduler)
    check_sequences(out, 160)


def test_stdin_task_of_dporch_serve(tmp_path, seq_script, scheduler):
    out = tmp_path / "out"
    (tmp_path / "tasks.toml").write_text(seq_task_toml("from-stdin", str(seq_script), 'type = "stdin"', str(out)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dporch.cli", "serve", "--config", str(tmp_path / "tasks.toml"), "--port", "0",
         "--scheduler", scheduler, "--state-dir", str(tmp_path / "state"), "--no-web"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    try:
        assert proc.stdin is not None
        proc.stdin.write(rows_text(300).encode())
        proc.stdin.close()
        deadline = time.monotonic() + 60
        while sum(map(len, read_split(out).values())) < 300:
            assert proc.poll() is None and time.monotonic() < deadline, "the rows did not reach the files"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert proc.returncode == 0, err
    check_sequences(out, 300)
