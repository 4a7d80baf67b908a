"""Differential test: random scripts over random interleaved multi-key data give the same cells
in the row form (batch, ``dporch run --key``), pushed tick by tick into a StreamingExecutor, and
in the column form (when the script and data allow it; otherwise it must say so)."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dporch.engine.columnar import run_columns
from dporch.engine.streaming import StreamingExecutor
from dporch.lang.vector_values import Unsupported
from dporch.lang.format import csv_cell

from ..conftest import compile_src, run_csv

INPUTS = ["x", "y"]


@st.composite
def scripts(draw) -> str:
    names = list(INPUTS)
    lines = []
    n_vars = draw(st.integers(2, 6))

    def atom() -> str:
        kind = draw(st.sampled_from(["name", "name", "lit", "hist", "null"]))
        if kind == "lit":
            return draw(st.sampled_from(["0", "1", "2.5", "-3", "100"]))
        if kind == "null":
            return "null"
        name = draw(st.sampled_from(names))
        if kind == "hist":
            return f"{name}[-{draw(st.integers(1, 3))}]"
        return name

    def expr() -> str:
        kind = draw(st.sampled_from(["arith", "arith", "tern", "ind", "window", "when", "atom", "coalesce"]))
        if kind == "arith":
            return f"{atom()} {draw(st.sampled_from(['+', '-', '*', '/']))} {atom()}"
        if kind == "tern":
            return f"{atom()} {draw(st.sampled_from(['>', '<', '==', '!=']))} {atom()} ? {atom()} : {atom()}"
        if kind == "ind":
            fn = draw(st.sampled_from(["MA", "EMA", "RSI", "WMA"]))
            return f"{fn}({draw(st.sampled_from(names))}, {draw(st.integers(1, 5))})"
        if kind == "window":
            return f"sum({draw(st.sampled_from(names))}[-{draw(st.integers(1, 4))}:0])"
        if kind == "when":
            return f"when {atom()} > {atom()} -> {atom()}, {atom()} == null -> 0, else -> {atom()}"
        if kind == "coalesce":
            return f"coalesce({atom()}, {atom()}, 0)"
        return atom()

    for i in range(n_vars):
        lines.append(f"v{i} = {expr()}")
        names.append(f"v{i}")
        if draw(st.booleans()) and draw(st.booleans()):
            lines.append(f"if {atom()} > {atom()}:\n    return null")
    outs = [f"v{i}" for i in range(n_vars)]
    header = (f"-- INPUT k:string, x:number, y:number --\n-- OUTPUT k, {', '.join(outs)} --\n"
              "-- ERROR --\nreturn [k, _error.type]\n-- ERROR_END --\n")
    return header + "\n".join(lines) + f"\nreturn [k, {', '.join(outs)}]\n"


@st.composite
def datasets(draw) -> str:
    n = draw(st.integers(1, 60))
    value = st.one_of(st.just(""), st.sampled_from(["0", "1", "-2", "3.5", "10", "0.1"]),
                      st.floats(-50, 50, allow_nan=False).map(lambda f: f"{f:.3f}"))
    rows = [f"{draw(st.sampled_from('ABC'))},{draw(value)},{draw(value)}" for _ in range(n)]
    return "k,x,y\n" + "\n".join(rows) + "\n"


def cells(rows: list[list]) -> list[list[str]]:
    return [[csv_cell(v) for v in r] for r in rows]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(src=scripts(), data=datasets())
def test_streaming_equals_batch(src, data):
    program = compile_src(src)
    expected = run_csv(program, data, key="k")
    ex = StreamingExecutor(program, window_size=100, key="k")
    got = [list(o.values()) for row in csv.DictReader(io.StringIO(data)) if (o := ex.push(row)) is not None]
    assert cells(got) == cells(expected), src


def column_cells(program, data: str, key: str = "k") -> list[list[str]] | None:
    """Output cells of the column form, or None when it declines (Unsupported)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "in.csv"
        path.write_text(data)
        out = io.BytesIO()
        try:
            run_columns(program, str(path), out, key=key)
        except Unsupported:
            return None
    rows = list(csv.reader(io.StringIO(out.getvalue().decode())))
    return rows[1:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(src=scripts(), data=datasets())
def test_column_form_equals_row_form(src, data):
    program = compile_src(src)
    try:
        expected = cells(run_csv(program, data, key="k"))
    except Exception as exc:  # noqa: BLE001 - a row-form error: the column form must decline
        assert column_cells(program, data) is None, (src, exc)
        return
    got = column_cells(program, data)
    if got is not None:
        assert got == expected, src
