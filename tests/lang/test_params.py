"""Script parameters, ``-- PARAMS name:type = default --`` (docs/language.md §3.7): declaration
rules, checks, values set from outside, and the same results in the row, streaming and column
forms for every value."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dporch.cli.app import app
from dporch.engine.streaming import StreamingExecutor
from dporch.lang.errors import CheckError, ParamError, ParseError
from dporch.lang.program import compile_program

from ..conftest import compile_src, run_csv
from ..engine.test_parity import cells, column_cells

MA = """\
-- INPUT k:string, close:number --
-- PARAMS fast:number = 2, slow:number = 3, tag:string = "a,b" --
-- OUTPUT k, f:number, s:number, w:number, t:string --
f = MA(close, fast)
s = EMA(close, slow)
w = sum(close[-(slow - 1):0])
return [k, f, s, w, tag]
"""

DATA = "k,close\nA,10\nB,20\nA,11\nA,13\nB,18\nA,12\nB,21\nA,15\nB,25\nA,14\n"


def test_defaults_are_typed_constants():
    p = compile_src("""
        -- PARAMS n:number = -5, d:decimal = 10.50, s:string = "x, \\"y\\"", b:bool = false --
        -- OUTPUT n, d, s, b --
        return [n, d, s, b]
        """)
    assert p.params == {"n": -5.0, "d": Decimal("10.50"), "s": 'x, "y"', "b": False}
    assert run_csv(p, "x\n1\n", key="none") == [[-5.0, Decimal("10.50"), 'x, "y"', False]]


def test_values_set_from_outside_are_converted_like_cells():
    p = compile_program(MA, "ma.dp", params={"fast": "3", "tag": "zz"})
    assert p.params == {"fast": 3.0, "slow": 3.0, "tag": "zz"}
    p = compile_program(MA, "ma.dp", params={"fast": 4, "slow": 5.0})  # Python / TOML values
    assert p.params["fast"] == 4.0 and p.params["slow"] == 5.0
    b = compile_src("-- PARAMS on:bool = true, d:decimal = 1 --\n-- OUTPUT r --\nreturn [on]\n",
                    params={"on": "FALSE", "d": "2.50"})
    assert b.params == {"on": False, "d": Decimal("2.50")}


@pytest.mark.parametrize("given, message", [
    ({"fsat": "3"}, "ParamError at ma.dp:2: the script has no parameter fsat (its parameters: fast:number, "
                    "slow:number, tag:string)"),
    ({"fast": "abc"}, "ParamError at ma.dp:2: parameter fast expects a number (5, -0.5, 1e3): not a number: 'abc'"),
    ({"fast": ""}, "parameter fast expects a number (5, -0.5, 1e3): a parameter cannot be null"),
    ({"tag": 5}, "parameter tag expects a string (any text): got 5"),
    ({"fast": True}, "parameter fast expects a number (5, -0.5, 1e3): got True"),
])
def test_bad_values_name_the_parameter_and_its_type(given, message):
    with pytest.raises(ParamError) as e:
        compile_program(MA, "ma.dp", params=given)
    assert message in e.value.format()


def test_a_script_without_params_refuses_any_value():
    with pytest.raises(ParamError, match=r"the script has no parameter n \(it declares no -- PARAMS --\)"):
        compile_src("-- OUTPUT r --\nreturn [1]\n", params={"n": "1"})


@pytest.mark.parametrize("header, message, col", [
    ("-- PARAMS n:number --", "parameter n needs a default value: n:number = ...", 11),
    ("-- PARAMS n = 3 --", "parameter n needs a type and a default: n:number = 5", 11),
    ("-- PARAMS 3x:number = 3 --", "parameter format error: '3x:number = 3' is not name:type = value", 11),
    ("-- PARAMS n:array = 3 --", "unknown parameter type: array (a parameter is a number, decimal, string or bool)", 11),
    ('-- PARAMS n:number = "3" --', 'the default of parameter n must be a number literal, got "3"', 11),
    ("-- PARAMS s:string = abc --", "the default of parameter s must be a string literal, got abc", 11),
    ("-- PARAMS b:bool = 1 --", "the default of parameter b must be a bool literal, got 1", 11),
    ("-- PARAMS n:number = 1, m:number = 2, n:number = 3 --", "duplicate parameter: n", 39),
])
def test_declaration_errors_are_parse_errors_at_the_item(header, message, col):
    with pytest.raises(ParseError) as e:
        compile_src(header + "\n-- OUTPUT r --\nreturn [1]\n")
    assert e.value.message == message and (e.value.line, e.value.column) == (1, col)


def test_a_parameter_that_is_an_input_column_and_a_second_declaration():
    with pytest.raises(ParseError, match="parameter close is also an INPUT column") as e:
        compile_src("-- INPUT close:number --\n-- OUTPUT r --\n-- PARAMS close:number = 1 --\nreturn [close]\n")
    assert e.value.line == 3
    with pytest.raises(ParseError, match="duplicate declaration: -- PARAMS --"):
        compile_src("-- PARAMS a:number = 1 --\n-- PARAMS b:number = 1 --\nreturn [a]\n")


@pytest.mark.parametrize("body, message", [
    ("fast = 4\nreturn [fast]", "cannot assign to the parameter fast: parameters are constants of a run"),
    ("[fast, x] = [1, 2]\nreturn [x]", "cannot assign to the parameter fast"),
    ("return [fast[-1]]", "parameter fast has no history: it has the same value on every row"),
    ("return [ref(fast, 1)]", "parameter fast has no history"),
    ("return [fast(1)]", "fast is a script parameter (a number), not a function"),
])
def test_parameters_are_immutable_and_have_no_history(body, message):
    with pytest.raises(CheckError) as e:
        compile_src(f"-- INPUT close:number --\n-- PARAMS fast:number = 3 --\n-- OUTPUT r --\n{body}\n")
    assert message in e.value.message


def test_a_lambda_parameter_of_the_same_name_is_the_lambdas():
    p = compile_src("""
        -- PARAMS n:number = 10 --
        -- OUTPUT a, b --
        f = n -> n + 1
        g = x -> x * n
        return [f(1), g(2)]
        """)
    assert run_csv(p, "x\n1\n", key="none") == [[2.0, 20.0]]


@pytest.mark.parametrize("values", [{}, {"fast": "1", "slow": "1"}, {"fast": "3", "slow": "5"},
                                    {"fast": "5", "slow": "2"}])
def test_row_streaming_and_column_forms_agree_for_every_value(values):
    program = compile_program(MA, "ma.dp", params={**values, "tag": "x"})
    expected = cells(run_csv(program, DATA, key="k"))
    ex = StreamingExecutor(program, window_size=100, key="k")
    streamed = [list(o.values()) for row in csv.DictReader(io.StringIO(DATA)) if (o := ex.push(row)) is not None]
    assert cells(streamed) == expected
    assert column_cells(program, DATA) == expected
    fast = int(program.params["fast"])
    a = [float(r.split(",")[1]) for r in DATA.splitlines()[1:] if r.startswith("A")]
    first_ma = sum(a[:fast]) / fast
    assert float([r for r in expected if r[0] == "A"][fast - 1][1]) == pytest.approx(first_ma)


def test_dporch_run_and_check_with_set(tmp_path):
    script = tmp_path / "ma.dp"
    script.write_text(MA)
    data = tmp_path / "d.csv"
    data.write_text(DATA)
    r = CliRunner().invoke(app, ["run", str(script), str(data), "--set", "fast=1", "--set", "tag=q"])
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[1] == ["A", "10", "", "10", "q"]  # EMA(close, 3) needs 3 values
    bad = CliRunner().invoke(app, ["run", str(script), str(data), "--set", "fast=x"])
    assert bad.exit_code == 2 and "parameter fast expects a number" in bad.output
    bad = CliRunner().invoke(app, ["run", str(script), str(data), "--set", "fast"])
    assert bad.exit_code == 2 and "--set expects NAME=VALUE" in bad.output
    ok = CliRunner().invoke(app, ["check", str(script), "--set", "slow=7"])
    assert ok.exit_code == 0
    assert 'parameters: fast:number = 2, slow:number = 7 (set), tag:string = "a,b"' in ok.output
    bad = CliRunner().invoke(app, ["check", str(script), "--set", "nope=1"])
    assert bad.exit_code == 2 and "the script has no parameter nope" in bad.output


def test_task_params_reach_the_compiled_scripts(tmp_path):
    from dporch.orchestration.config import load_config
    from dporch.orchestration.manager import compile_chain
    from dporch.orchestration.unit import ComputeUnit

    (tmp_path / "ma.dp").write_text(MA)
    toml = tmp_path / "tasks.toml"
    body = ('[[task]]\nid = "t"\nscripts = ["ma.dp"]\nparams = {{ {} }}\n'
            '[task.input]\ntype = "file"\npath = "d.csv"\n[task.routing]\nenabled = false\n')
    toml.write_text(body.format('fast = 4, tag = "zz"'))
    loaded = load_config(toml)
    assert not loaded.issues and loaded.tasks[0].params == {"fast": 4, "tag": "zz"}
    issues: list = []
    programs = compile_chain(loaded.tasks[0], issues)
    assert not issues and programs[0].params == {"fast": 4.0, "slow": 3.0, "tag": "zz"}
    unit = ComputeUnit([(p.script.source, p.file, p.params) for p in programs], 10)
    assert unit.executors[0].program.params == programs[0].params
    for given, field, message in [('fast = "x"', "params", "parameter fast expects a number"),
                                  ("nope = 1", "params.nope", "no script of the task declares this parameter"),
                                  ("fast = [1]", "params.fast", "must be a number, a string or true/false")]:
        toml.write_text(body.format(given))
        loaded = load_config(toml)
        issues = list(loaded.issues)
        for t in loaded.tasks:
            compile_chain(t, issues)
        assert [(i.field, message in i.message) for i in issues] == [(field, True)], issues


def test_the_reference_example_of_section_3_7():
    import re

    import dporch

    text = (Path(__file__).resolve().parents[2] / "docs" / "language.md").read_text(encoding="utf-8")
    source = re.search(r"```text\n(-- INPUT stock_code:string, close:number --\n-- PARAMS .*?)```", text, re.S).group(1)
    closes = [10, 9, 8, 9, 11, 12, 11, 9, 8]
    rows = [{"stock_code": "A", "close": c} for c in closes]
    out = dporch.compile(source, params={"fast": 2, "slow": 3}).run(rows)
    # MA2 crosses above MA3 at row 4 (8.5 <= 8.67 on row 3, then 10 > 9.33) and below at row 7.
    assert [r["signal"] for r in out] == ["hold"] * 4 + ["买入", "hold", "hold", "卖出", "hold"]
    assert dporch.compile(source).params == {"fast": 5.0, "slow": 20.0, "mode": "sma"}
