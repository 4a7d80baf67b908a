"""Shared helpers: compile a script from text and run it over CSV text or rows."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dporch.engine.batch import AUTO_KEY, run_batch
from dporch.engine.readers import read_records
from dporch.lang.program import Program, compile_program


def dedent(src: str) -> str:
    return textwrap.dedent(src).lstrip("\n")


def compile_src(src: str, file: str = "t.dp", **kw: Any) -> Program:
    return compile_program(dedent(src), file, **kw)


def run_csv(src: str, csv_text: str, key: Any = AUTO_KEY, **kw: Any) -> list[list]:
    """Output rows of ``src`` over ``csv_text`` (batch mode)."""
    program = src if isinstance(src, Program) else compile_src(src, **kw)
    rows: list[list] = []
    records = read_records(io.StringIO(dedent(csv_text)))
    run_batch(program, records, rows.append, key=key, write_block=rows.extend)
    return rows


def run_values(src: str, column: str, values: list[str], key: Any = AUTO_KEY, **kw: Any) -> list[list]:
    """Run over a one-column CSV built from ``values`` (cell texts)."""
    text = column + "\n" + "".join(v + "\n" for v in values)
    return run_csv(src, text, key=key, **kw)


def expr_value(expr: str, prelude: str = "", inputs: str = "") -> Any:
    """Evaluate one DPLang expression in a one-row script and return its value."""
    src = f"-- INPUT {inputs} --\n-- OUTPUT r --\n{prelude}\nr = {expr}\nreturn [r]\n"
    rows = run_csv(src, "x\n1\n", key="none")
    return rows[0][0]


def wait_for(pred: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``pred`` (blocking) until it holds; AssertionError after ``timeout`` seconds."""
    import time

    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"{what} not reached in {timeout:g} s")
        time.sleep(0.05)


@pytest.fixture
def run():
    return run_csv


@pytest.fixture(scope="session")
def cluster():
    from dask.distributed import LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                     silence_logs=40)
    yield c
    c.close()


@pytest.fixture
def scheduler(cluster) -> str:
    return cluster.scheduler_address


# -- repeated backtest tests (CI: make test runs tests/backtest 20 times) ---------------------------


def pytest_addoption(parser):
    parser.addoption("--repeat-backtests", type=int, default=1, metavar="N",
                     help="run every test of tests/backtest N times (a flaky backtest fails one of them)")


_BACKTEST_TESTS = Path(__file__).resolve().parent / "backtest"


def pytest_generate_tests(metafunc):
    n = metafunc.config.getoption("repeat_backtests")
    if n > 1 and _BACKTEST_TESTS in Path(metafunc.definition.path).resolve().parents:
        metafunc.fixturenames.append("_repeat")
        metafunc.parametrize("_repeat", range(n), ids=[f"run{i + 1}" for i in range(n)])


@pytest.fixture(autouse=True)
def _column_form_at_any_size(monkeypatch):
    """`dporch run` keeps inputs under 1 MiB in the row form (its start is cheaper); the tests'
    files are small and a plain ``run`` in them means the column form wherever it applies, as
    ``--row-form`` means the row form. tests/cli/test_startup.py checks the size rule itself."""
    from dporch.cli import lang_commands

    monkeypatch.setattr(lang_commands, "COLUMN_FORM_MIN_BYTES", 0)
