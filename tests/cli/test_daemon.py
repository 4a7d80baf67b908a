"""`dporch daemon`: split/merge outputs, append safety, bad lines, follow mode, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from dporch.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
SCRIPT = """-- INPUT stock_code:string, close:number --
-- OUTPUT stock_code:string, close:number, prev:number --
return [stock_code, close, close[-1]]
"""


def script(tmp_path: Path, text: str = SCRIPT) -> Path:
    p = tmp_path / "s.dp"
    p.write_text(text)
    return p


def test_split_files_header_once_and_append_safe(tmp_path):
    s = script(tmp_path)
    data = tmp_path / "in.csv"
    data.write_text("stock_code,close\nA,1\nB,2\nA,3\n")
    out = tmp_path / "out"
    for _ in range(2):
        r = runner.invoke(app, ["daemon", str(s), str(data), "--split", "--out", str(out)])
        assert r.exit_code == 0, r.stderr
    assert (out / "A.csv").read_text() == "stock_code,close,prev\nA,1,\nA,3,1\nA,1,\nA,3,1\n"
    assert (out / "B.csv").read_text() == "stock_code,close,prev\nB,2,\nB,2,\n"
    assert "rows in 3, rows out 3, errors 0" in r.stderr


def test_split_refuses_a_file_with_another_header(tmp_path):
    s = script(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "A.csv").write_text("other,header\n1,2\n")
    r = runner.invoke(app, ["daemon", str(s), "-", "--split", "--out", str(out)], input="stock_code,close\nA,1\n")
    assert r.exit_code == 2 and "different header" in r.stderr
    assert (out / "A.csv").read_text() == "other,header\n1,2\n"


def test_merge_to_stdout_with_bad_lines_reported(tmp_path):
    s = script(tmp_path)
    text = "stock_code,close\nA,1\nA,x\nA,2,3\nB,5\nA,4\n"
    r = runner.invoke(app, ["daemon", str(s), "-"], input=text)
    assert r.exit_code == 0
    assert r.stdout == "stock_code,close,prev\nA,1,\nB,5,\nA,4,1\n"
    assert "input line 3" in r.stderr and "column close" in r.stderr
    assert "input line 4" in r.stderr and "expected 2 cells, got 3" in r.stderr
    assert "rows in 5, rows out 3, errors 2" in r.stderr


def test_runtime_errors_skip_the_row_and_continue(tmp_path):
    s = script(tmp_path, "-- INPUT k:string, x:number --\n-- OUTPUT r --\nreturn [10 / x]\n")
    r = runner.invoke(app, ["daemon", str(s), "-", "--key", "k"], input="k,x\nA,2\nA,0\nA,5\n")
    assert r.exit_code == 0
    assert r.stdout == "r\n5\n2\n"
    assert "ZeroDivision" in r.stderr and "input line 3" in r.stderr and "row 1, key A" in r.stderr


def test_json_lines_input(tmp_path):
    s = script(tmp_path)
    lines = '{"stock_code": "000001", "close": 10}\nnot json\n{"stock_code": "000001", "close": 11}\n'
    r = runner.invoke(app, ["daemon", str(s), "-"], input=lines)
    assert r.stdout == "stock_code,close,prev\n000001,10,\n000001,11,10\n"
    assert "input line 2" in r.stderr


def _start(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dporch.cli", "daemon", *args], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, **kw)


def _wait_for(predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_follow_a_growing_file_and_flush_on_sigint(tmp_path):
    s = script(tmp_path)
    data = tmp_path / "grow.csv"
    data.write_text("stock_code,close\nA,1\n")
    out = tmp_path / "merged.csv"
    proc = _start([str(s), str(data), "--follow", "--out", str(out), "--buffer", "1000"])
    try:
        _wait_for(lambda: out.exists() and out.read_text().count("\n") == 2)  # flushed when idle
        with open(data, "a") as f:
            for i in range(2, 6):
                f.write(f"A,{i}\n")
        _wait_for(lambda: out.read_text().count("\n") == 6)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert out.read_text().splitlines()[-1] == "A,5,4"
    assert "rows in 5, rows out 5" in err


def test_sigterm_loses_no_accepted_row(tmp_path):
    s = script(tmp_path)
    out = tmp_path / "split"
    proc = _start([str(s), "-", "--split", "--out", str(out), "--buffer", "100000"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write("stock_code,close\n")
    for i in range(3000):
        proc.stdin.write(f"{'AB'[i % 2]},{i}\n")
    proc.stdin.flush()
    _wait_for(lambda: out.exists() and (out / "A.csv").exists())
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    rows = (out / "A.csv").read_text().splitlines()[1:] + (out / "B.csv").read_text().splitlines()[1:]
    assert len(rows) == 3000, err
    assert "rows in 3000, rows out 3000" in err


def test_parallel_workers_write_the_same_files(tmp_path):
    s = ROOT / "workflows" / "indicators.dp"
    data = ROOT / "data" / "sample_ticks.csv"
    text = data.read_text().replace("000002,2015-01-07", "000002,2015-01-07,extra", 1)
    bad = tmp_path / "in.csv"
    bad.write_text(text)
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = runner.invoke(app, ["daemon", str(s), str(bad), "--split", "--out", str(one)])
    p = subprocess.run([sys.executable, "-m", "dporch.cli", "daemon", str(s), str(bad), "--split", "--out", str(two),
                        "--workers", "2"], capture_output=True, text=True)
    assert r1.exit_code == 0 and p.returncode == 0, p.stderr
    assert sorted(x.name for x in one.iterdir()) == sorted(x.name for x in two.iterdir())
    for f in one.iterdir():
        assert f.read_text() == (two / f.name).read_text()
    bad_line = next(i + 1 for i, line in enumerate(text.splitlines()) if ",extra," in line)
    assert f"input line {bad_line}" in r1.stderr and f"input line {bad_line}" in p.stderr
    assert "rows in 300, rows out 299, errors 1" in p.stderr


def test_workers_need_split(tmp_path):
    r = runner.invoke(app, ["daemon", str(script(tmp_path)), "-", "--workers", "2"], input="stock_code,close\n")
    assert r.exit_code == 2 and "--workers needs --split" in r.stderr
