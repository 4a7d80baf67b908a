"""Start-up stays light (issue 13): each command, run in a fresh interpreter, imports only what
its path needs. Not a timing test: it names the modules that must not be loaded (bench/bench_startup.py
gives the times), and checks that `dporch run` picks the form by the input's size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dporch.cli import lang_commands
from dporch.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample_ticks.csv"  # 300 rows: far under the column form's threshold

# Runs one command in-process and writes the names of the loaded modules to a file.
_PROBE = """
import json, sys
out, force, args = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
sys.argv = ["dporch", *args]
if force:
    from dporch.cli import lang_commands
    lang_commands.COLUMN_FORM_MIN_BYTES = 0
from dporch.cli.app import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""

# Never needed by `dporch run` on a small file, `check` or `--help`.
HEAVY = {"numpy", "pandas", "pyarrow", "talib", "dask", "distributed", "streamz", "bokeh", "asyncio",
         "prompt_toolkit", "dporch.orchestration", "dporch.api.client", "dporch.backtest"}


def loaded(tmp_path: Path, *args: str, force_columns: bool = False) -> set[str]:
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(out), "1" if force_columns else "0", *args],
                          capture_output=True, text=True, cwd=tmp_path)
    result = json.loads(out.read_text())
    assert result["code"] in (0, None), proc.stderr
    return set(result["modules"])


def top(modules: set[str]) -> set[str]:
    """Every loaded module and each of its parent packages (``a.b.c`` -> a, a.b, a.b.c)."""
    names = set()
    for m in modules:
        parts = m.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return names


def test_help_loads_neither_the_compiler_nor_the_engines(tmp_path):
    mods = top(loaded(tmp_path, "--help"))
    assert mods & HEAVY == set()
    assert {"dporch.lang.program", "dporch.engine", "pydantic"} & mods == set()


def test_check_loads_the_compiler_only(tmp_path):
    mods = top(loaded(tmp_path, "check", str(ROOT / "workflows" / "indicators.dp")))
    assert "dporch.lang.program" in mods
    assert mods & (HEAVY | {"rich", "dporch.engine"}) == set()


@pytest.mark.parametrize("script", ["momentum.dp", "indicators.dp"])
def test_run_on_a_small_file_takes_the_row_form_without_numpy_or_arrow(tmp_path, script):
    mods = top(loaded(tmp_path, "run", str(ROOT / "workflows" / script), str(SAMPLE), "-o", str(tmp_path / "o.csv")))
    assert mods & (HEAVY | {"rich", "dporch.engine.columnar", "dporch.lang.vector"}) == set()
    assert (tmp_path / "o.csv").read_text().count("\n") == 301


def test_the_column_form_does_not_load_pandas(tmp_path):
    """TA-Lib would import pandas to wrap its Series; the column form passes numpy arrays."""
    mods = top(loaded(tmp_path, "run", str(ROOT / "workflows" / "indicators.dp"), str(SAMPLE),
                      "-o", str(tmp_path / "o.csv"), force_columns=True))
    assert {"dporch.engine.columnar", "pyarrow", "talib"} <= mods
    assert mods & {"pandas", "polars", "dask", "distributed", "asyncio"} == set()


def test_importing_dporch_loads_no_engine(tmp_path):
    code = "import sys, dporch; print(' '.join(sorted(m for m in sys.modules if m.startswith('dporch'))))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert names == ["dporch"]
    code = "import dporch; s = dporch.compile('-- INPUT a --\\n-- OUTPUT a --\\nreturn [a]\\n'); print(s.run([{'a': 1}]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[{'a': 1.0}]"


def test_run_picks_the_form_by_input_size(tmp_path, monkeypatch):
    """Under COLUMN_FORM_MIN_BYTES the row form runs (its start is cheaper); from it on, the column
    form. The output is the same."""
    script = str(ROOT / "workflows" / "indicators.dp")
    size = SAMPLE.stat().st_size
    monkeypatch.setattr(lang_commands, "COLUMN_FORM_MIN_BYTES", size + 1)
    small = CliRunner().invoke(app, ["run", script, str(SAMPLE), "--explain"])
    assert small.exit_code == 0
    assert f"using the row form: the input has {size:,} bytes" in small.stderr
    monkeypatch.setattr(lang_commands, "COLUMN_FORM_MIN_BYTES", size)
    large = CliRunner().invoke(app, ["run", script, str(SAMPLE), "--explain"])
    assert large.exit_code == 0 and "used the column form" in large.stderr
    assert large.stdout == small.stdout
