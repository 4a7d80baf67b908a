"""`dporch run` / `dporch check` through typer's CliRunner and a real subprocess (§16)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dporch.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

SCRIPT = """-- INPUT stock_code:string, close:number --
-- OUTPUT stock_code:string, close:number, prev:number, note:string --
prev = close[-1]
note = f"{stock_code}: {close}"
return [stock_code, close, prev, note]
"""
DATA = "stock_code,close\n000001,10\n000002,20.5\n000001,11\n"


@pytest.fixture
def files(tmp_path):
    s = tmp_path / "s.dp"
    s.write_text(SCRIPT, encoding="utf-8")
    d = tmp_path / "d.csv"
    d.write_text(DATA, encoding="utf-8")
    return s, d


def test_run_csv_with_default_stock_code_key(files):
    s, d = files
    r = runner.invoke(app, ["run", str(s), str(d)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ("stock_code,close,prev,note\n000001,10,,000001: 10\n000002,20.5,,000002: 20.5\n"
                        "000001,11,10,000001: 11\n")
    assert "partitioning streams by column stock_code" in r.stderr


def test_run_key_none_and_json_output(files):
    s, d = files
    r = runner.invoke(app, ["run", str(s), str(d), "--key", "none", "--format", "json"])
    assert r.exit_code == 0
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["prev"] for row in rows] == [None, 10, 20.5]
    assert list(rows[0]) == ["stock_code", "close", "prev", "note"]
    assert r.stderr == ""


def test_run_reads_stdin_and_writes_output_file(files, tmp_path):
    s, d = files
    out = tmp_path / "o.csv"
    r = runner.invoke(app, ["run", str(s), "-", "-o", str(out)], input=DATA)
    assert r.exit_code == 0 and r.stdout == ""
    assert out.read_text().splitlines()[3] == "000001,11,10,000001: 11"


def test_run_json_lines_input(files):
    s, _ = files
    lines = '{"stock_code": "000001", "close": 10}\n{"stock_code": "000001", "close": 12.5}\n'
    r = runner.invoke(app, ["run", str(s), "-"], input=lines)
    assert r.exit_code == 0
    assert r.stdout.splitlines()[2] == "000001,12.5,10,000001: 12.5"


def test_missing_key_column_is_a_usage_error(files):
    s, d = files
    r = runner.invoke(app, ["run", str(s), str(d), "--key", "nope"])
    assert r.exit_code == 2
    assert "--key column 'nope' is not in the input" in r.stderr


def test_missing_files_exit_2(files, tmp_path):
    s, d = files
    assert runner.invoke(app, ["run", str(tmp_path / "none.dp"), str(d)]).exit_code == 2
    r = runner.invoke(app, ["run", str(s), str(tmp_path / "none.csv")])
    assert r.exit_code == 2 and "InputError" in r.stderr


def test_runtime_error_exit_1_keeps_earlier_rows(tmp_path):
    s = tmp_path / "div.dp"
    s.write_text("-- INPUT x:number --\n-- OUTPUT r --\nr = 10 / x\nreturn [r]\n")
    d = tmp_path / "d.csv"
    d.write_text("x\n2\n5\n0\n1\n")
    r = runner.invoke(app, ["run", str(s), str(d)])
    assert r.exit_code == 1
    assert r.stdout == "r\n5\n2\n"
    assert r.stderr.splitlines() == [f"ZeroDivision at {s}:3:8 (row 2, input line 4): division by zero",
                                     "  r = 10 / x", "         ^"]


def test_check_reports_all_findings(tmp_path):
    s = tmp_path / "bad.dp"
    s.write_text("-- INPUT a --\n-- OUTPUT r --\nx = b\ny = 1\ny = 2\nreturn [c]\n")
    r = runner.invoke(app, ["check", str(s)])
    assert r.exit_code == 1
    err = r.stderr
    assert f"CheckError at {s}:3:5: undefined variable: b" in err
    assert f"CheckError at {s}:6:9: undefined variable: c" in err
    assert f"W1 at {s}:5:1:" in err
    assert "2 error(s), " in err


def test_check_ok_and_package(tmp_path):
    s = tmp_path / "ok.dp"
    s.write_text("-- INPUT a:number --\n-- OUTPUT r --\nreturn [a * 2]\n")
    assert runner.invoke(app, ["check", str(s)]).exit_code == 0
    p = tmp_path / "pkg.dp"
    p.write_text("package pkg\nK = 1\nf(x):\n    return x + K\n")
    assert runner.invoke(app, ["check", str(p)]).exit_code == 0
    r = runner.invoke(app, ["run", str(p), "-"], input="a\n1\n")
    assert r.exit_code == 2 and "package script" in r.stderr


def test_subprocess_run_on_the_examples():
    for script in ("momentum.dp", "window.dp", "indicators.dp", "ma_cross.dp"):
        proc = subprocess.run([sys.executable, "-m", "dporch.cli", "run", str(ROOT / "workflows" / script),
                               str(ROOT / "data" / "sample_ticks.csv")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 301
        proc = subprocess.run([sys.executable, "-m", "dporch.cli", "check", str(ROOT / "workflows" / script)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
