"""Hostile input (issue 10, language part): fuzzer and user reproductions, each checked in the
three forms that must agree -- the column form (`dporch run` on a CSV file), the row form
(`dporch run --row-form`) and the streaming daemon (`dporch daemon`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from dporch.cli.app import app

runner = CliRunner()


@dataclass
class Run:
    code: int
    out: str
    err: str


def _invoke(args: list[str]) -> Run:
    r = runner.invoke(app, args)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a Python traceback escaped: the test fails with it
    return Run(r.exit_code, r.stdout, r.stderr)


def forms(tmp_path: Path, script: str, data: str | bytes, *, daemon_args: tuple[str, ...] = ()) -> dict[str, Run]:
    """Run ``script`` over ``data`` in the column form, the row form and the daemon."""
    s = tmp_path / "s.dp"
    s.write_text(script, encoding="utf-8")
    d = tmp_path / "d.csv"
    if isinstance(data, bytes):
        d.write_bytes(data)
    else:
        d.write_text(data, encoding="utf-8")
    return {
        "column": _invoke(["run", str(s), str(d)]),
        "row": _invoke(["run", "--row-form", str(s), str(d)]),
        "daemon": _invoke(["daemon", str(s), str(d), *daemon_args]),
    }


def same_output(runs: dict[str, Run], expected: str) -> None:
    for form, r in runs.items():
        assert (form, r.code, r.out) == (form, 0, expected), r.err


# -- 1. output formatting ------------------------------------------------------------------------

def test_large_numbers_never_use_an_exponent(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT r --\nreturn [x]\n",
                 "x\n12345678901.5\n1e10\n-2187810373376.886\n1e22\n0.00001\n")
    same_output(runs, "r\n12345678901.5\n10000000000\n-2187810373376.886\n"
                      "10000000000000000000000\n0.00001\n")


def test_a_null_scalar_return_drops_the_row(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT r --\nreturn x[-1]\n", "x\n1\n2\n3\n")
    same_output(runs, "r\n1\n2\n")


def test_no_output_columns_write_one_empty_line_per_row(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\nreturn x[-1]\n", "x\n1\n2\n3\n")
    same_output(runs, "\n\n\n")
