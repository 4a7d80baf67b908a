"""Bounded fuzzing of the language data path (issue 10): random scripts from a small grammar
full of hostile values, and random bytes as CSV/JSON input. Nothing may escape as a Python
traceback -- every failure is a DPLangError with a message -- and the row form and the column
form give the same cells wherever both run."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dporch.cli.app import app
from dporch.engine.columnar import run_columns
from dporch.engine.streaming import StreamingExecutor
from dporch.lang.errors import DPLangError
from dporch.lang.format import csv_cell
from dporch.lang.program import compile_program
from dporch.lang.vector_values import Unsupported

from ..conftest import run_csv

_LITERALS = ["0", "1", "-3", "2.5", "0.1", "1e999", "9" * 400, "1e-400", "12345678901.5", "1e22",
             "null", "true", "false", "'a'", '"b,c"', "''", '"q\\"x"']
_HISTORY = ["x[-1]", "y[-2]", "x[-1e19]", "x[1]", "s[-1]", "x[-3:0]", "y[:0]", "x[-1e9:0]",
            "x[1e999]", "x[-(1+1)]"]
_CALLS = ["abs({})", "sqrt({})", "round({}, 2)", "string({})", "number({})", "length({})",
          "coalesce({}, 0)", "is_null({})", "MA(x, {p})", "EMA(y, {p})", "RSI(x, {p})",
          "sum(x[-3:0])", "max({}, 1)", "decimal({})", "typeis({}, 'number')", "[{}, 1][0]",
          "map([{}, 2], v -> v * 2)", "filter([{}, 0], v -> v)", "({} |> abs())", 'f"<{{{}}}>"',
          "POSITION()", "_index", "safe_div({}, 0)", "BUY({})", "unique([{}, {}])"]
_PERIODS = ["0", "1", "3", "-2", "1e999", "2.7"]


_NUMERIC_LITERALS = ["0", "1", "-3", "2.5", "0.1", "1e999", "12345678901.5", "null"]
_NUMERIC_HISTORY = ["x[-1]", "y[-2]", "x[-1e19]", "x[1]", "x[-(1+1)]"]
_NUMERIC_CALLS = ["abs({})", "coalesce({}, 0)", "MA(x, {p})", "EMA(y, {p})", "sum(x[-3:0])",
                  "max({}, 1)", "is_null({})", "BUY({})"]


@st.composite
def expressions(draw, names: list[str], numeric: bool, depth: int = 0):
    """An expression over ``names``; ``numeric`` keeps to what the column form covers."""
    kinds = ["atom", "atom", "history", "binary", "binary", "compare", "logic", "ternary", "when",
             "call", "call", "neg", "chain", "deep"]
    kind = draw(st.sampled_from(kinds if depth < 3 else ["atom"]))
    sub = lambda: draw(expressions(names, numeric, depth + 1))  # noqa: E731
    if kind == "atom":
        return draw(st.sampled_from([n for n in names if not (numeric and n == "s")] +
                                    (_NUMERIC_LITERALS if numeric else _LITERALS)))
    if kind == "history":
        return draw(st.sampled_from(_NUMERIC_HISTORY if numeric else _HISTORY))
    if kind == "chain":  # long chains are flat in every pass
        op = draw(st.sampled_from([" + ", " * ", " and ", " < ", " |> abs() + "]))
        return "(" + op.join([sub()] * draw(st.integers(10, 60))) + ")"
    if kind == "deep":  # nesting near the limit (deeper is a ParseError, also fine here)
        n = draw(st.integers(20, 80))
        return "(x + " * n + sub() + ")" * n
    if kind == "binary":
        return f"({sub()} {draw(st.sampled_from(['+', '-', '*', '/', '%', '^']))} {sub()})"
    if kind == "compare":
        return f"({sub()} {draw(st.sampled_from(['<', '>=', '==', '!=']))} {sub()})"
    if kind == "logic":
        return f"({sub()} {draw(st.sampled_from(['and', 'or']))} not {sub()})"
    if kind == "ternary":
        return f"({sub()} ? {sub()} : {sub()})"
    if kind == "when":
        return f"(when {sub()} > 0 -> {sub()}, else -> {sub()})"
    if kind == "neg":
        return f"(-{sub()})"
    template = draw(st.sampled_from(_NUMERIC_CALLS if numeric else _CALLS))
    return template.format(sub(), sub(), p=draw(st.sampled_from(_PERIODS)))


@st.composite
def scripts(draw) -> str:
    names = ["x", "y", "s"]
    numeric = draw(st.booleans())
    lines = []
    for i in range(draw(st.integers(1, 4))):
        lines.append(f"v{i} = {draw(expressions(names, numeric))}")
        names.append(f"v{i}")
        if draw(st.integers(0, 5)) == 0:
            lines.append(f"if {draw(expressions(names, numeric))}:\n    return "
                         f"{draw(st.sampled_from(['null', 'v0', '[k]']))}")
        if draw(st.integers(0, 30)) == 0:
            lines.append(f"if {draw(expressions(names, numeric))}:\n    exit(\"stop\")")
    outs = [n for n in names if n.startswith("v")]
    error_block = "-- ERROR --\nreturn [k, _error.type]\n-- ERROR_END --\n" if draw(st.booleans()) else ""
    return (f"-- INPUT k:string, x:number, y:number, s:string --\n-- OUTPUT k, {', '.join(outs)} --\n"
            f"{error_block}" + "\n".join(lines) + f"\nreturn [k, {', '.join(outs)}]\n")


_CELLS = ["", "0", "1", "-2", "2.5", "1e308", "-0", "NaN", "inf", "abc", "12345678901.5", "0.1"]


@st.composite
def tables(draw) -> str:
    rows = []
    for _ in range(draw(st.integers(1, 12))):
        k = draw(st.sampled_from("AB"))
        x, y = draw(st.sampled_from(_CELLS)), draw(st.sampled_from(_CELLS))
        s = draw(st.sampled_from(["a", "", "zz", "1"]))
        rows.append(f"{k},{x},{y},{s}")
    return "k,x,y,s\n" + "\n".join(rows) + "\n"


def _cells(rows: list[list]) -> list[list[str]]:
    """Cells as the CSV output carries them (written by the row form's rules, read back)."""
    text = "".join(",".join(csv_cell(v) for v in r) + "\n" for r in rows)
    return list(csv.reader(io.StringIO(text)))


def _column_cells(program, data: str) -> list[list[str]] | None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "in.csv"
        path.write_text(data)
        out = io.BytesIO()
        try:
            run_columns(program, str(path), out, key="k")
        except Unsupported:
            return None
    return list(csv.reader(io.StringIO(out.getvalue().decode())))[1:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(src=scripts(), data=tables())
def test_random_scripts_fail_cleanly_and_forms_agree(src, data):
    try:
        program = compile_program(src, "fuzz.dp")
    except DPLangError as exc:
        assert exc.message, src
        return
    try:
        expected = _cells(run_csv(program, data, key="k"))
    except DPLangError as exc:  # the row form's error: the column form must decline
        assert exc.message and exc.line, (src, exc.format())
        assert _column_cells(program, data) is None, (src, exc.format())
        expected = None
    if expected is not None:
        got = _column_cells(program, data)
        assert got is None or got == expected, src
    ex = StreamingExecutor(program, window_size=50, key="k")
    try:
        ex.push_many(_dicts(data))
    except DPLangError as exc:  # only a run-ending error (exit(), the ERROR block) escapes
        assert exc.aborts_run, (src, exc.format())


def _dicts(data: str) -> list[dict]:
    lines = data.splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


_runner = CliRunner()
_BYTES = st.lists(st.sampled_from([b"1", b"2.5", b",", b"\n", b'"', b"\xff", b"\xe4\xb8", b"[", b"]", b"{",
                                   b"}", b":", b"a", b"\r", b" ", b"\x00", b"null", b'{"a": 1}', b"[[[[",
                                   b"\xef\xbb\xbf", b"1e" + b"9" * 30, b"\r\n", b"NaN", b";", b"-"]),
                  max_size=40).map(b"".join)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(body=_BYTES, header=st.sampled_from([b"a,b\n", b"a\n", b"", b"x,y\n", b"[", b"{"]),
       typed=st.booleans())
def test_random_input_bytes_fail_cleanly_and_forms_agree(tmp_path_factory, body, header, typed):
    d = tmp_path_factory.mktemp("fuzz")
    script = d / "s.dp"
    script.write_text(("-- INPUT a:number, b:array --\n" if typed else "-- INPUT a, b --\n")
                      + "-- OUTPUT a, b --\nreturn [a, b]\n")
    data = d / "in.csv"
    data.write_bytes(header + body)
    results = []
    for args in (["run", str(script), str(data)], ["run", "--row-form", str(script), str(data)],
                 ["daemon", str(script), str(data)]):
        r = _runner.invoke(app, args)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args[1], header + body, r.exception)
        assert r.exit_code in (0, 1, 2), (args, r.stderr)
        assert "Traceback" not in r.stderr
        results.append((r.exit_code, r.stdout))
    assert results[0] == results[1], header + body
