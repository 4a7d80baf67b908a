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
    script: str


def _invoke(args: list[str]) -> Run:
    r = runner.invoke(app, args)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a Python traceback escaped: the test fails with it
    return Run(r.exit_code, r.stdout, r.stderr, args[-2] if args[0] == "run" else args[1])


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


def failed(runs: dict[str, Run], out: str, message: str) -> None:
    """Batch forms abort with exit 1 after the rows before the failing one; ``message`` is the
    first line of the error report ({} stands for the script path)."""
    for form in ("column", "row"):
        r = runs[form]
        assert (form, r.code, r.out) == (form, 1, out), r.err
        assert r.err.splitlines()[0] == message.format(r.script), (form, r.err)


# -- 2. number literals, ^, invalid indicator parameters ---------------------------------------

def test_overflowing_literals_are_infinite(tmp_path):
    big = "9" * 400
    runs = forms(tmp_path, f"-- INPUT x:number --\n-- OUTPUT a, b, c --\nreturn [1e999, {big}, -1e999 * x]\n",
                 "x\n1\n")
    same_output(runs, "a,b,c\ninf,inf,-inf\n")


def test_power_of_a_negative_base_with_a_fraction_is_nan(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT a, b, c, d --\n"
                           "return [x ^ 1000.5, x ^ 1001, 2.5 ^ x, (-x) ^ 0.5]\n",
                 "x\n-3\n2.5\n")
    same_output(runs, "a,b,c,d\nNaN,-inf,0.064,1.7320508075688772\n"
                      "inf,inf,9.882117688026186,NaN\n")


def test_ieee_pow_matches_c99_on_special_values():
    import itertools
    import math

    from dporch.lang.values import ieee_pow
    special = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1000.5, 1001.0, -1001.0,
               1e308, -1e308, math.inf, -math.inf, math.nan]
    for x, y in itertools.product(special, special):
        try:
            want = math.pow(x, y)
        except (ValueError, OverflowError):
            continue  # the cases ieee_pow decides itself, checked below
        got = ieee_pow(x, y)
        assert (got == want and math.copysign(1, got) == math.copysign(1, want)) or \
            (got != got and want != want), (x, y)
    assert math.isnan(ieee_pow(-3.0, 1000.5)) and math.isnan(ieee_pow(-2.0, 0.5))
    assert ieee_pow(-2.0, 2001.0) == -math.inf and ieee_pow(2.0, 2000.0) == math.inf
    assert ieee_pow(-0.0, -1.0) == -math.inf and ieee_pow(0.0, -2.0) == math.inf


def test_invalid_indicator_period_in_a_branch_never_taken(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT r --\nif x > 100:\n    return [MA(x, 0)]\nreturn [x]\n",
                 "x\n1\n2\n")
    same_output(runs, "r\n1\n2\n")


def test_invalid_indicator_period_is_a_type_error_where_evaluated(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT r --\nif x > 1:\n    return [MA(x, 0)]\nreturn [x]\n",
                 "x\n1\n2\n3\n")
    failed(runs, "r\n1\n", "TypeError at {}:4:13 (row 1, input line 3): MA period must be ≥ 1, got 0")
    d = runs["daemon"]
    assert d.code == 0 and d.out == "r\n1\n"
    assert "MA period must be ≥ 1, got 0" in d.err and "errors 2" in d.err


# -- 5. huge offsets, slices and decimals -------------------------------------------------------

def test_offsets_beyond_any_history_are_null(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT a, b, c --\n"
                           "return [x[-1e19], x[1e19], length(x[-1e15:-1e15])]\n", "x\n1\n2\n")
    same_output(runs, "a,b,c\n,,1\n,,1\n")


def test_a_non_finite_offset_is_a_type_error(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT a --\nreturn [x[1e999]]\n", "x\n1\n")
    failed(runs, "a\n", "TypeError at {}:3:10 (row 0, input line 2): offset must be a finite number, got inf")


def test_a_slice_is_bounded_like_array_and_range(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT a --\nreturn [length(x[-1e9:0])]\n", "x\n1\n")
    failed(runs, "a\n", "TypeError at {}:3:17 (row 0, input line 2): slice too large: offsets "
                        "-1000000000 to 0 give 1000000001 values (at most 50000000); use a shorter window")
    assert "slice too large" in runs["daemon"].err


def test_decimal_exponents_are_bounded(tmp_path):
    runs = forms(tmp_path, '-- INPUT x:number --\n-- OUTPUT a --\nreturn [decimal("1e999999999") + x]\n', "x\n1\n")
    failed(runs, "a\n", 'TypeError at {}:3:9 (row 0, input line 2): cannot convert to decimal: decimal out '
                        'of range: "1e999999999" (decimals have at most 28 significant digits and '
                        'exponents from -6176 to 6144)')


def test_hist_slice_equals_the_definition():
    from collections import deque

    from dporch.lang.rt import hist_slice

    class Stream:
        def ahead(self, col, k):
            return ("ahead", k)

    def reference(buf, a, b):
        n = len(buf) if buf is not None else 0
        a = -n if a is None else a
        return [(buf[k] if buf is not None and -k <= n else None) if k < 0 else
                "cur" if k == 0 else ("ahead", k) for k in range(a, b + 1)]

    for buf in (None, [], [1], [1, 2, 3], deque([1, 2, 3, 4], maxlen=4)):
        for a in [None, *range(-7, 4)]:
            for b in range(-7, 4):
                assert hist_slice(buf, a, b, "cur", Stream(), 0) == reference(buf, a, b), (buf, a, b)


# -- 9. messages: where, and how to fix ----------------------------------------------------------

def test_runtime_errors_point_at_the_failing_operator_or_call(tmp_path):
    script = ("-- INPUT x:number, s:string --\n-- OUTPUT r --\n"
              "y = x + 1\nr = y * 2 + s / (x - 1) + length(y)\nreturn [r]\n")
    runs = forms(tmp_path, script, "x,s\n1,a\n")
    for form in ("column", "row"):
        assert runs[form].err.splitlines() == [
            f"TypeError at {runs[form].script}:4:15 (row 0, input line 2): cannot divide: \"a\" / 0",
            "  r = y * 2 + s / (x - 1) + length(y)",
            "                ^"], form
    assert runs["daemon"].err.splitlines()[0] == \
        f"warning: TypeError at {runs['daemon'].script}:4:15 (row 0, input line 2): cannot divide: \"a\" / 0"


def test_errors_in_lambda_bodies_and_comparisons_point_inside_them(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT r --\nf = v -> v / (v - 1)\n"
                           "return [map([x], f)]\n", "x\n1\n")
    assert runs["row"].err.splitlines()[:3] == [
        f"ZeroDivision at {runs['row'].script}:3:12 (row 0, input line 2): division by zero",
        "  f = v -> v / (v - 1)", "             ^"]
    runs = forms(tmp_path, '-- INPUT x:number --\n-- OUTPUT r --\nreturn [0 < x < "a"]\n', "x\n1\n")
    failed(runs, "r\n", 'TypeError at {}:3:15 (row 0, input line 2): cannot compare: 1 < "a"')


def test_error_record_line_is_the_failing_statement(tmp_path):
    script = ("-- INPUT x:number --\n-- OUTPUT q, t --\n-- ERROR --\nreturn [_error.line, _error.type]\n"
              "-- ERROR_END --\nq = 1 +\n    x / 0\nreturn [q]\n")
    same_output(forms(tmp_path, script, "x\n1\n"), "q,t\n6,ZeroDivision\n")


def test_a_script_without_return_warns_that_no_rows_will_be_written(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT r --\nr = x * 2\n", "x\n1\n2\n")
    same_output(runs, "r\n")
    for form, r in runs.items():
        assert r.err.splitlines()[0] == (f"W7 at {r.script}:3:1: the script has no return statement, no rows "
                                         "will be written (end it with return [values...] for the OUTPUT columns)"), form


def test_undefined_names_suggest_the_closest_one(tmp_path):
    script = ("-- INPUT close:number, volume:number --\n-- OUTPUT r --\n"
              "ma5 = MA(clsoe, 5)\nr = ma(close, 3) + Volume + sum(ma50)\nreturn [r, ma5]\n")
    runs = forms(tmp_path, script, "close,volume\n1,2\n")
    for form, r in runs.items():
        assert r.code == 1 and r.out == "", form
        errors = [line.split(": ", 1)[1] for line in r.err.splitlines() if line.startswith("CheckError")]
        assert errors == ["undefined variable: clsoe (did you mean close?)",
                          "undefined function: ma (did you mean MA?)",
                          "undefined variable: Volume (did you mean volume?)",
                          "undefined variable: ma50 (did you mean ma5?)"], form
    from dporch.lang.checker import did_you_mean
    assert did_you_mean("zzz", {"close", "volume"}) == ""


# -- 3, 7. exit(), errors inside the ERROR block, function values --------------------------------

EXIT_AT_3 = "-- INPUT x:number --\n-- OUTPUT r --\nif x == 3:\n    exit(\"stop\")\nreturn [x]\n"


def test_exit_writes_the_rows_before_it_and_ends_every_form(tmp_path):
    runs = forms(tmp_path, EXIT_AT_3, "x\n1\n2\n3\n4\n", daemon_args=("--buffer", "1"))
    for form, r in runs.items():
        assert (form, r.code, r.out) == (form, 1, "r\n1\n2\n"), r.err
        assert r.err.splitlines()[:3] == [f"ScriptExit at {r.script}:4:5 (row 2, input line 4): stop",
                                          '      exit("stop")', "      ^"], form


def test_exit_in_the_parallel_daemon_ends_the_run(tmp_path):
    s = tmp_path / "s.dp"
    s.write_text(EXIT_AT_3)
    d = tmp_path / "d.csv"
    d.write_text("x\n1\n2\n3\n")
    out = tmp_path / "out"
    r = _invoke(["daemon", str(s), str(d), "--split", "--out", str(out), "--workers", "2", "--key", "x"])
    assert r.code == 1 and f"ScriptExit at {s}:4:5 (row 2, key 3, input line 4): stop" in r.err
    assert {p.name: p.read_text() for p in out.iterdir()} == {"1.csv": "r\n1\n", "2.csv": "r\n2\n"}


def test_an_error_inside_the_error_block_ends_every_form(tmp_path):
    script = ("-- INPUT x:number --\n-- OUTPUT r --\n-- ERROR --\nreturn [1 / (x - 2)]\n-- ERROR_END --\n"
              "return [10 / (x - 2)]\n")
    runs = forms(tmp_path, script, "x\n1\n2\n3\n")
    for form, r in runs.items():
        assert (form, r.code, r.out) == (form, 1, "r\n-10\n"), r.err
        assert r.err.splitlines()[0] == f"ZeroDivision at {r.script}:4:11 (row 1, input line 3): division by zero"


def test_streaming_executor_raises_on_exit_with_the_rows_before_it():
    import pytest

    from dporch.engine.streaming import StreamingExecutor
    from dporch.lang.errors import ScriptExit

    ex = StreamingExecutor(EXIT_AT_3, key="none")
    with pytest.raises(ScriptExit) as e:
        ex.push_many([{"x": 1.0}, {"x": 3.0}, {"x": 4.0}])
    assert e.value.partial_result.rows == [[1.0]] and (ex.rows_in, ex.rows_out) == (2, 1)


def test_a_package_function_value_displays_its_name(tmp_path):
    (tmp_path / "util.dp").write_text("package util\nf(x):\n    return x\n")
    runs = forms(tmp_path, "-- IMPORT util --\n-- INPUT x:number --\n-- OUTPUT r, s --\n"
                           "return [string(util.f), f\"{util.f}\"]\n", "x\n1\n")
    same_output(runs, "r,s\n<function f>,<function f>\n")


# -- 8. POSITION() outside backtests ---------------------------------------------------------------

def test_position_reads_the_position_cell_and_an_empty_one_is_null(tmp_path):
    data = "position,x\n5,1\n,2\n3,3\n"
    same_output(forms(tmp_path, "-- INPUT position:number, x:number --\n-- OUTPUT r --\nreturn [POSITION()]\n",
                      data), "r\n5\n\n3\n")
    # assigned in the row: that value (null too); no variable and no column: 0
    same_output(forms(tmp_path, "-- INPUT position:number, x:number --\n-- OUTPUT r --\n"
                                "if x > 1:\n    position = 7\nreturn [POSITION()]\n", data), "r\n5\n7\n7\n")
    same_output(forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT r --\nif x > 1:\n    position = null\n"
                                "return [POSITION()]\n", data), "r\n0\n\n\n")


# -- 10. INPUT columns the input lacks ------------------------------------------------------------

def test_an_input_without_any_input_column_is_refused(tmp_path):
    runs = forms(tmp_path, "-- INPUT a:number, b:number --\n-- OUTPUT r --\nreturn [a]\n", "x,y\n1,2\n")
    for form, r in runs.items():
        assert r.code == 2 and r.err.splitlines()[0] == (
            f"InputError at {tmp_path / 'd.csv'}: the input has none of the INPUT columns (a, b); its "
            "columns are x, y. Fix the input's header or the -- INPUT -- declaration"), form
    assert runs["column"].out == runs["row"].out == ""


def test_input_columns_partly_missing_read_as_null_with_a_warning(tmp_path):
    runs = forms(tmp_path, "-- INPUT a:number, b:number --\n-- OUTPUT r, s --\nreturn [a, b]\n", "a,y\n1,2\n")
    same_output(runs, "r,s\n1,\n")
    for form, r in runs.items():
        assert "warning: the input has no column b (declared in -- INPUT --); it reads as null" in r.err, form


def test_script_run_refuses_a_frame_without_input_columns():
    import pandas as pd
    import pytest

    from dporch.engine.batch import MissingColumnsError
    from dporch.engine.script import Script

    script = Script.compile("-- INPUT a:number --\n-- OUTPUT r --\nreturn [a]\n")
    with pytest.raises(MissingColumnsError, match=r"none of the INPUT columns \(a\); its columns are x"):
        script.run(pd.DataFrame({"x": [1]}))


# -- 11. Script.run on pandas data ----------------------------------------------------------------

def test_script_run_reads_numeric_pandas_columns_declared_string_as_text():
    import io

    import pandas as pd

    from dporch.engine.script import Script

    df = pd.read_csv(io.StringIO("stock_code,close\n600001,10\n,11\n600001,12.5\n000003,1\n"))
    assert str(df["stock_code"].dtype) == "float64"  # what pandas makes of codes with a gap
    script = Script.compile("-- INPUT stock_code:string, close:number --\n-- OUTPUT code, close, prev, t --\n"
                            "return [stock_code, close, close[-1], typeis(stock_code, \"string\")]\n")
    out = script.run(df)
    rows = [[None if isinstance(v, float) and v != v else v for v in r] for r in out.values.tolist()]
    assert rows == [["600001", 10.0, None, True], [None, 11.0, None, False],
                                   ["600001", 12.5, 10.0, True], ["3", 1.0, None, True]]


# -- 6. unreadable input ---------------------------------------------------------------------------

UTF8_FIX = "convert it to UTF-8 (for example: iconv -f GBK -t UTF-8 {0} > {0}.utf8)"


def test_invalid_utf8_is_an_input_error_with_its_line(tmp_path):
    runs = forms(tmp_path, "-- INPUT a:number --\n-- OUTPUT a --\nreturn [a]\n", b"a\n1\n\xff\n2\n")
    d = tmp_path / "d.csv"
    for form in ("column", "row"):
        r = runs[form]
        assert r.code == 2 and r.err.splitlines() == [
            f"InputError at {d}:3:1: the input is not valid UTF-8 (byte 0xff); " + UTF8_FIX.format(d)], form
    # streaming mode reports the line and skips it (§9.2)
    r = runs["daemon"]
    assert (r.code, r.out) == (0, "a\n1\n2\n")
    assert "warning: InputError (input line 3): not valid UTF-8 (byte 0xff at column 1); line skipped" in r.err


def test_invalid_utf8_on_stdin_gives_the_line(tmp_path):
    s = tmp_path / "s.dp"
    s.write_text("-- INPUT a:number --\n-- OUTPUT a --\nreturn [a]\n")
    r = runner.invoke(app, ["run", str(s), "-"], input=b"a\n1\n\xff\n")
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.splitlines() == [(
        "InputError at stdin:3: the input is not valid UTF-8 (byte 0xff); convert the input to UTF-8 "
        "(for example with iconv -f GBK -t UTF-8)")]


def test_a_bad_json_array_is_an_input_error_at_its_position(tmp_path):
    s = tmp_path / "s.dp"
    s.write_text("-- INPUT x --\n-- OUTPUT x --\nreturn [x]\n")
    fix = ("JSON input is one flat object per line (JSON lines) or one array of such objects: fix the "
           "JSON, or check that the file is the one meant")
    cases = {'[{"x":1} {"x":2}]\n': "1:10: invalid JSON array: Expecting ',' delimiter",
             "[" * 5000 + "]" * 5000 + "\n": "1: invalid JSON array: nested more than 100 levels deep "
                                             "(flatten the value, or pass it as several columns)",
             '{"x": ' + "[" * 5000 + "]" * 5000 + "}\n": "1: invalid JSON: nested more than 100 levels deep "
                                                       "(flatten the value, or pass it as several columns)",
             '{"x": 1}\n[1, 2]\n': None}
    for text, where in cases.items():
        d = tmp_path / "d.json"
        d.write_text(text)
        for extra in ([], ["--row-form"]):
            r = _invoke(["run", *extra, str(s), str(d)])
            if where is None:  # a later line that is not an object: skipped with a warning
                assert (r.code, r.out) == (0, "x\n1\n") and "line 2" in r.err
            else:
                assert r.code == 2 and r.err.splitlines() == [f"InputError at {d}:{where}; {fix}"], text[:20]
        assert _invoke(["daemon", str(s), str(d)]).code == 0  # streaming: reported and skipped


def test_a_deeply_nested_array_cell_is_null_with_a_warning(tmp_path):
    runs = forms(tmp_path, "-- INPUT a:array, b:number --\n-- OUTPUT n --\nreturn [b]\n",
                 "a,b\n" + "[" * 300 + "]" * 300 + ",1\n[1; 2],2\n")
    assert runs["row"].out == runs["column"].out == "n\n1\n2\n"
    assert "array nested more than 100 levels deep" in runs["row"].err
    assert runs["daemon"].out == "n\n2\n"  # streaming: a cell that does not parse skips the line


# -- 4. long chains and deep nesting ---------------------------------------------------------------

def _sum(n: int) -> str:
    return " + ".join(["x"] * n)


def test_long_operator_chains_compile_flat(tmp_path):
    h = "-- INPUT x:number --\n-- OUTPUT a, b, c, d, e --\n"
    script = (h + f"return [{_sum(42)}, {_sum(1000)}, {' * '.join(['x'] * 1100)}, "
                  f"{' and '.join(['x'] * 1000)}, {' < '.join(['x'] * 1000)}]\n")
    same_output(forms(tmp_path, script, "x\n1\n2\n"),
                "a,b,c,d,e\n42,1000,1,true,false\n84,2000,inf,true,false\n")


def test_long_pipelines_when_and_elif_chains_compile(tmp_path):
    h = "-- INPUT x:number --\n-- OUTPUT r --\n"
    same_output(forms(tmp_path, h + "return [-x" + " |> abs()" * 500 + "]\n", "x\n1\n"), "r\n1\n")
    arms = ", ".join(f"x == {i} -> {i * 10}" for i in range(300))
    same_output(forms(tmp_path, h + f"return [when {arms}, else -> -1]\n", "x\n7\n299\n300\n"),
                "r\n70\n2990\n-1\n")
    branches = "".join(("if" if i == 0 else "elif") + f" x == {i}:\n    return [{i * 10}]\n" for i in range(1000))
    same_output(forms(tmp_path, h + branches + "else:\n    return [-1]\n", "x\n7\n999\n1000\n"),
                "r\n70\n9990\n-1\n")


def test_deep_but_allowed_nesting_compiles(tmp_path):
    h = "-- INPUT x:number --\n-- OUTPUT a, b, c, d --\n"
    parens = "(" * 90 + "x + 1" + ")" * 90
    plus = "(x + " * 90 + "1" + ")" * 90
    fstr = 'f"{' * 70 + "x" + '}"' * 70
    arrays = "length(" + "[" * 80 + "x" + "]" * 80 + ")"
    same_output(forms(tmp_path, h + f"return [{parens}, {plus}, {fstr}, {arrays}]\n", "x\n2\n"),
                "a,b,c,d\n3,181,2,1\n")


def test_deep_code_keeps_lambda_scoping(tmp_path):
    # a lambda reading a variable assigned after it, inside deeply nested code (hoisted helpers)
    body = "(v + " * 60 + "later" + ")" * 60
    script = f"-- INPUT x:number --\n-- OUTPUT r --\nf = v -> {body}\nlater = x * 10\nreturn [f(1)]\n"
    same_output(forms(tmp_path, script, "x\n1\n2\n"), "r\n70\n80\n")


def test_a_runtime_error_deep_inside_points_at_its_operator(tmp_path):
    script = "-- INPUT x:number --\n-- OUTPUT r --\nreturn [" + "(x + " * 60 + "1 / (x - 1)" + ")" * 60 + "]\n"
    runs = forms(tmp_path, script, "x\n1\n")
    failed(runs, "r\n", "ZeroDivision at {}:3:311 (row 0, input line 2): division by zero")


def test_excessive_nesting_is_a_parse_error_with_its_place(tmp_path):
    too_deep = ("ParseError at {}:3:%d: expression nested too deeply (more than 100 levels of brackets, "
                "calls, f-strings or prefix operators); split it with intermediate variables")
    # the error is at the token opening level 101 (the return's array is level 1)
    cases = {"(" * 101 + "x" + ")" * 101: 108, "-" * 101 + "x": 107, "abs(" * 101 + "x" + ")" * 101: 404,
             "[x]" + "[0]" * 101: 306, 'f"{' * 101 + "x" + '}"' * 101: 306}
    for expr, col in cases.items():
        runs = forms(tmp_path, f"-- INPUT x:number --\n-- OUTPUT r --\nreturn [{expr}]\n", "x\n1\n")
        for form, r in runs.items():
            assert r.code == 1 and r.out == "", form
            assert r.err.splitlines()[0] == (too_deep % col).format(r.script), (form, expr[:10])
    blocks = "".join("    " * i + "if x > 0:\n" for i in range(51)) + "    " * 51 + "return [x]\n"
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT r --\n" + blocks, "x\n1\n")
    for form, r in runs.items():
        assert r.code == 1 and r.err.splitlines()[0] == (
            f"ParseError at {r.script}:54:205: blocks nested too deeply (more than 50 levels of if/else); "
            "use elif, or split the conditions into variables"), form


def test_an_output_value_nested_too_deep_is_an_error_not_an_exponential_cell(tmp_path):
    runs = forms(tmp_path, "-- INPUT x:number --\n-- OUTPUT r --\nreturn [" + "[" * 30 + "x" + "]" * 30 + "]\n",
                 "x\n1\n")
    failed(runs, "r\n", "TypeError at {}:3:9 (row 0, input line 2): an output value nests arrays more than "
                        "16 levels deep (the CSV array form doubles its quotes at each level); flatten it "
                        "before returning it")


# -- found by tests/lang/test_fuzz.py -----------------------------------------------------------------

def test_a_json_number_beyond_decimal_range_is_an_input_error(tmp_path):
    s = tmp_path / "s.dp"
    s.write_text("-- INPUT x --\n-- OUTPUT x --\nreturn [x]\n")
    d = tmp_path / "d.json"
    d.write_text("[1e" + "9" * 40 + "]\n")
    r = _invoke(["run", str(s), str(d)])
    assert r.code == 2 and r.err.startswith(f"InputError at {d}:1: invalid JSON array: a number too large to read")
    d.write_text('{"x": 1}\n{"x": 1e' + "9" * 40 + "}\n")
    r = _invoke(["run", str(s), str(d)])
    assert (r.code, r.out) == (0, "x\n1\n") and r.err == ("warning: line 2: invalid JSON: a number too large to read "
                                                      "(its exponent is out of range); line skipped\n")


def test_a_time_format_strptime_cannot_compile_is_a_type_error(tmp_path):
    runs = forms(tmp_path, '-- INPUT x:number --\n-- OUTPUT r --\nreturn [parse_time("2020", "%Y%Y")]\n', "x\n1\n")
    failed(runs, "r\n", 'TypeError at {}:3:9 (row 0, input line 2): invalid time format "%Y%Y": redefinition '
                        "of group name 'Y' as group 2; was group 1 at position 19")
