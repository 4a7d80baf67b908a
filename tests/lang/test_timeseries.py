"""Time-series access (§8): the §8.5 worked example, streams per key, built-in variables,
look-ahead, deprecated ref/offset/past/window, the ERROR block (§9.5) and §18's examples."""

from __future__ import annotations

import pytest

from dporch.lang.errors import ScriptExit, ZeroDivision

from ..conftest import run_csv

CLOSE = "close\n10\n11\n12\n13\n14\n"


def at_row2(expr: str):
    src = f"""
        -- INPUT close:number --
        -- OUTPUT ma:number, v --
        ma = close * 2
        tmp = close + 1
        v = {expr}
        return [ma, v]
    """
    return run_csv(src, CLOSE, key="none")[2][1]


@pytest.mark.parametrize("expr, value", [
    ("close[0]", 12.0), ("close", 12.0), ("close[-1]", 11.0), ("close[-3]", None), ("close[1]", 13.0),
    ("close[-2:]", [10.0, 11.0]), ("close[-2:0]", [10.0, 11.0, 12.0]), ("close[-3:-1]", [None, 10.0, 11.0]),
    ("close[-1:-1]", [11.0]), ("close[-2:2]", [10.0, 11.0, 12.0, 13.0, 14.0]), ("close[:0]", [10.0, 11.0, 12.0]),
    ("close[0:0]", [10.0, 11.0, 12.0]), ("ma[-1]", 22.0), ("ma[-2:-1]", [20.0, 22.0]), ("tmp[-1]", 12.0),
    ("close[-(2-1)]", 11.0), ("close[3:1]", []),
])
def test_worked_example_row2(expr, value):
    assert at_row2(expr) == value


def test_worked_example_row0_window_excludes_current():
    src = "-- INPUT close:number --\n-- OUTPUT v --\nreturn [close[-3:-1]]\n"
    assert run_csv(src, CLOSE, key="none")[0] == [[None, None, None]]


def test_computed_zero_bounds_are_not_the_alias():
    src = "-- INPUT close:number --\n-- OUTPUT v --\nk = 1\nreturn [close[-(k-1):0]]\n"
    assert run_csv(src, CLOSE, key="none")[2] == [[12.0]]


def test_offset_before_assignment_reads_history():
    src = """
        -- INPUT close:number --
        -- OUTPUT prev, ma --
        prev = ma[-1]
        ma = close * 2
        return [prev, ma]
    """
    rows = run_csv(src, CLOSE, key="none")
    assert [r[0] for r in rows] == [None, 20.0, 22.0, 24.0, 26.0]


def test_filtered_rows_still_count_for_offsets():
    src = """
        -- INPUT close:number --
        -- OUTPUT close, prev --
        prev = close[-1]
        if close == 11:
            return null
        return [close, prev]
    """
    rows = run_csv(src, CLOSE, key="none")
    assert rows[1] == [12.0, 11.0]


def test_array_valued_name_uses_array_semantics():
    src = """
        -- INPUT close:number --
        -- OUTPUT a, b --
        arr = [close, close + 1]
        return [arr[-1], arr[0]]
    """
    assert run_csv(src, CLOSE, key="none")[1] == [12.0, 11.0]


def test_streams_per_key_and_builtin_variables():
    data = "code,close\nA,1\nB,10\nA,2\nB,20\nA,3\n"
    src = """
        -- INPUT code:string, close:number --
        -- OUTPUT code, prev, idx, total, args, names --
        return [code, close[-1], _index, _total, _args, _args_names]
    """
    rows = run_csv(src, data, key="code")
    assert rows == [
        ["A", None, 0.0, 3.0, ["A", 1.0], ["code", "close"]],
        ["B", None, 0.0, 2.0, ["B", 10.0], ["code", "close"]],
        ["A", 1.0, 1.0, 3.0, ["A", 2.0], ["code", "close"]],
        ["B", 10.0, 1.0, 2.0, ["B", 20.0], ["code", "close"]],
        ["A", 2.0, 2.0, 3.0, ["A", 3.0], ["code", "close"]],
    ]
    # --key none: one stream across the instruments.
    assert [r[1] for r in run_csv(src, data, key="none")] == [None, 1.0, 10.0, 2.0, 20.0]


def test_stock_code_is_the_default_key():
    data = "stock_code,close\n000001,1\n000002,5\n000001,2\n"
    src = "-- INPUT stock_code:string, close:number --\n-- OUTPUT c, p --\nreturn [stock_code, close[-1]]\n"
    assert run_csv(src, data) == [["000001", None], ["000002", None], ["000001", 1.0]]


def test_lookahead_is_per_stream():
    data = "code,close\nA,1\nB,10\nA,2\nB,20\n"
    src = "-- INPUT code:string, close:number --\n-- OUTPUT n --\nreturn [close[1]]\n"
    assert run_csv(src, data, key="code") == [[2.0], [20.0], [None], [None]]


def test_undeclared_inputs_reachable_through_history_only():
    src = "-- OUTPUT v, p, args --\nreturn [volume[0], volume[-1], _args]\n"
    rows = run_csv(src, "a,volume\nx,5\ny,6\n", key="none")
    assert rows == [[5.0, None, ["x", 5.0]], [6.0, 5.0, ["y", 6.0]]]


@pytest.mark.parametrize("expr, value", [
    ('ref("close", 1)', 11.0), ("ref(close, 2)", 10.0), ("offset(close, -1)", 11.0),
    ("past(close, 2)", [10.0, 11.0]), ("window(close, 2)", [11.0, 12.0]), ("window(close, 1)", [12.0]),
    ("past(close, 0)", []), ("ref(close, 0)", 12.0),
])
def test_deprecated_series_functions(expr, value):
    assert at_row2(expr) == value


def test_error_block_conformance_example():
    src = """
        -- INPUT x:number --
        -- OUTPUT r:number --
        -- ERROR --
        return _error.type == "ZeroDivision" ? [0] : null
        -- ERROR_END --
        r = 10 / x
        return [r]
    """
    assert run_csv(src, "x\n2\n0\n5\n") == [[5.0], [0.0], [2.0]]


def test_error_block_sees_variables_and_message():
    src = """
        -- INPUT x:number --
        -- OUTPUT a, msg, line --
        -- ERROR --
        return [a, __error__, _error.line]
        -- ERROR_END --
        a = x * 2
        b = 1 / 0
        return [a]
    """
    assert run_csv(src, "x\n3\n") == [[6.0, "division by zero", 7.0]]


def test_error_block_falling_off_drops_the_row_and_exit_aborts():
    src = """
        -- INPUT x:number --
        -- OUTPUT r --
        -- ERROR --
        y = 1
        -- ERROR_END --
        if x < 0:
            exit("negative input")
        return [10 / x]
    """
    assert run_csv(src, "x\n0\n2\n") == [[5.0]]
    with pytest.raises(ScriptExit, match="negative input"):
        run_csv(src, "x\n2\n-1\n")


def test_runtime_error_aborts_with_row_and_key():
    src = "-- INPUT k:string, x:number --\n-- OUTPUT r --\nr = 10 / x\nreturn [r]\n"
    with pytest.raises(ZeroDivision) as e:
        run_csv(src, "k,x\nA,1\nB,0\n", key="k")
    err = e.value
    # The caret is at the failing operator; the input line is where the row is in the input.
    assert (err.line, err.column, err.row, err.key, err.input_line) == (3, 8, 1, "B", 3)
    assert err.header() == "ZeroDivision at t.dp:3:8 (row 1, key B, input line 3): division by zero"


def test_conformance_example_ma_signal():
    src = """
        -- INPUT code:string, close:number --
        -- OUTPUT code:string, ma5:number, chg:number, signal:string --

        ma5 = MA(close, 5)
        prev = close[-1]
        chg = prev == null ? 0 : (close - prev) / prev * 100
        signal = when ma5 == null -> "观望",
                      close > ma5 and ma5 > ma5[-1] -> BUY(),
                      close < ma5 -> SELL(),
                      else -> "持有"
        return [code, ma5, chg, signal]
    """
    closes = [10, 11, 12, 13, 14, 15, 13, 12]
    rows = run_csv(src, "code,close\n" + "".join(f"X,{c}\n" for c in closes), key="code")
    assert [r[1] for r in rows[:4]] == [None] * 4
    assert rows[4][1] == 12.0 and rows[4][3] == "持有"  # ma5[-1] is null on row 4
    assert rows[5][1] == 13.0 and rows[5][3] == "买入"
    assert rows[6][3] == "卖出"


def test_conformance_example_pipeline_total():
    src = """
        -- INPUT prices:array --
        -- OUTPUT total:number --
        total = prices
            |> filter(p -> p > 100)
            |> map(p -> p - 100)
            |> reduce((acc, p) -> acc + p, 0)
        return total
    """
    assert run_csv(src, "prices\n[90; 120; 150]\n") == [[70.0]]


def test_generator_script_runs_once_on_empty_input():
    src = "-- OUTPUT i, t --\nreturn [_index, _total]\n"
    assert run_csv(src, "") == [[0.0, 1.0]]
    # A header-only file: zero executions.
    assert run_csv("-- INPUT a --\n-- OUTPUT i --\nreturn [_index]\n", "a\n") == []
