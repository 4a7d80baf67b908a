"""Value semantics: operators (§5), nulls (§7), equality (§4.4), decimals (§4.6, §5.6),
lambdas (§6.10-6.12), spread (§6.2), destructuring (§10.2), row results (§9.3)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from dporch.lang.errors import DPTypeError, NullReference, UndefinedVariable, ZeroDivision

from ..conftest import compile_src, expr_value, run_csv


@pytest.mark.parametrize("expr, value", [
    ("7 / 2", 3.5), ("-7 % 3", -1.0), ("7 % -3", 1.0), ("5.5 % 2", 1.5), ("0 ^ 0", 1.0),
    ("2 ^ -1", 0.5), ("0 ^ -1", math.inf), ("10 ^ 400", math.inf), ('"a" + "b"', "ab"),
    ("[1, 2] + [10, 20]", [11.0, 22.0]), ("[1, 2] * 2", [2.0, 4.0]), ("10 - [1, 2]", [9.0, 8.0]),
    ('"b" + ["a"]', ["ba"]), ("[[1, 2], [3]] + 1", [[2.0, 3.0], [4.0]]), ("[7, 8] % 3", [1.0, 2.0]),
    ("[2, 3] ^ 2", [4.0, 9.0]), ("-[1, -2]", [-1.0, 2.0]), ("1 + 2 == 3", True),
])
def test_arithmetic(expr, value):
    assert expr_value(expr) == value


def test_negative_zero_and_nan():
    assert math.copysign(1, expr_value("-0.5 % 0.25")) == -1
    assert math.isnan(expr_value("(-8) ^ 0.5"))


@pytest.mark.parametrize("expr, msg", [
    ('"1" + 1', "cannot add"), ("true + 1", "cannot add"), ("[1, 2] + [1]", "array length mismatch"),
    ('"a" - "b"', "cannot subtract"), ("-true", "cannot negate"), ("1 < \"a\"", "cannot compare"),
    ("true < false", "cannot compare"),
])
def test_type_errors(expr, msg):
    with pytest.raises(DPTypeError) as e:
        expr_value(expr)
    assert msg in e.value.message


@pytest.mark.parametrize("expr", ["1 / 0", "0 / 0", "1 % 0", "1 / -0"])
def test_zero_division(expr):
    with pytest.raises(ZeroDivision):
        expr_value(expr)


@pytest.mark.parametrize("expr, value", [
    ("null + 1", None), ("null / 0", None), ("-null", None), ("[1, null] + 1", [2.0, None]),
    ("null < 1", None), ('"a" + null', None), ("not null", True), ("null == null", True),
    ("1 == null", False), ("null and 1 / 0", False), ("1 or 1 / 0", True),
    ("null ? 1 : 2", 2.0), ("(null < 1) ? 1 : 2", 2.0),
])
def test_null_semantics(expr, value):
    assert expr_value(expr) == value


def test_strict_null_mode():
    src = "-- INPUT x:number --\n-- OUTPUT r --\nr = x + 1\nreturn [r]\n"
    with pytest.raises(NullReference):
        run_csv(src, "x\nnull\n", strict_null=True)
    assert run_csv(src, "x\nnull\n") == [[None]]


@pytest.mark.parametrize("expr, value", [
    ("1 == 1.0", True), ("0 == -0", True), ("1 == true", False), ('1 == "1"', False),
    ("[1, 2] == [1, 2]", True), ('[1, "a"] != [1, "b"]', True), ("(0/1 - 0/1) == 0", True),
    ('decimal("1.5") == 1.5', True), ('decimal("0.1") == 0.1', True), ('decimal("1.0") == decimal("1.00")', True),
    ("[1, 2, 3] >= 2", [False, True, True]), ("[1, 2] < [2, 2]", [True, False]),
    ('"abc" < "abd"', True), ("null >= null", None),
])
def test_comparison_and_equality(expr, value):
    assert expr_value(expr) == value


def test_nan_is_not_equal_to_itself():
    assert expr_value("n == n", prelude='n = number("NaN")') is False


def test_chained_comparison():
    assert expr_value("0 < x < 10", prelude="x = 5") is True
    assert expr_value("0 < x < 3", prelude="x = 5") is False
    # The middle operand is evaluated once: a counting lambda would show a second call.
    assert expr_value("0 < [1, 5] < 3") == [True, False]


@pytest.mark.parametrize("expr, value", [
    ("[true, false] and true", [True, False]), ("[1, 0] or [0, 0]", [True, False]),
    ("true and [1, 0]", [True, False]), ("false or [1, 0]", [True, False]), ("not [1, 0]", [False, True]),
    ("1 and 2", True), ("0 or \"\"", False),
])
def test_logic(expr, value):
    assert expr_value(expr) == value


def test_short_circuit_guards_division():
    rows = run_csv("""
        -- INPUT d:number, n:number --
        -- OUTPUT r --
        r = d != 0 and n / d > 1
        return [r]
    """, "d,n\n0,5\n2,5\n", key="none")
    assert rows == [[False], [True]]


@pytest.mark.parametrize("expr, value", [
    ("[false] ? 1 : 2", 1.0), ("[] ? 1 : 2", 2.0), ('"0" ? 1 : 2', 1.0), ('"" ? 1 : 2', 2.0),
    ("0 ? 1 : 2", 2.0), ("n ? 1 : 2", 1.0),
])
def test_truthiness(expr, value):
    assert expr_value(expr, prelude='n = number("NaN")') == value


def test_decimal_arithmetic_and_precision():
    rows = run_csv("""
        -- INPUT p:decimal, q:decimal --
        -- OUTPUT prod, sum2, mixed, plain --
        -- PRECISION 2 --
        return [p * q, p + q, p + 0.1, 1.0 / 3]
    """, "p,q\n10.123,1.567\n1.5,2.25\n", key="none")
    assert rows[0] == [Decimal("15.86"), Decimal("11.69"), Decimal("10.22"), 1 / 3]
    # No zero padding: 1.5 stays 1.5 at scale 2; only values with more digits are rounded.
    assert rows[1][1] == Decimal("3.75") and rows[1][2] == Decimal("1.6")


def test_decimal_division_and_remainder():
    assert expr_value('string(decimal("1") / decimal("3"))') == "0.3333333333333333333333333333"
    assert expr_value('decimal("1") / decimal("3")') == Decimal("0.333333")  # PRECISION 6 on output
    assert expr_value('decimal("-7") % decimal("3")') == Decimal("-1")
    assert expr_value('decimal("2") ^ 2') == 4.0


def test_spread_flattens():
    assert expr_value("[...[1, 2], 3]") == [1.0, 2.0, 3.0]
    assert expr_value("max(...[1, 5, 2])") == 5.0
    assert expr_value("[...null, 1]") == [1.0]
    with pytest.raises(DPTypeError, match="spread requires an array"):
        expr_value("[...1]")


def test_array_indexing_and_slices():
    pre = "xs = [10, 20, 30, 40]"
    assert expr_value("xs[0]", pre) == 10.0
    assert expr_value("xs[-1]", pre) == 40.0
    assert expr_value("xs[1.7]", pre) == 20.0
    assert expr_value("xs[9]", pre) is None
    assert expr_value("xs[1:]", pre) == [20.0, 30.0, 40.0]
    assert expr_value("xs[-2:]", pre) == [30.0, 40.0]
    assert expr_value("xs[:2]", pre) == [10.0, 20.0]
    assert expr_value("xs[3:1]", pre) == []
    assert expr_value("[1, 2][0]") == 1.0
    with pytest.raises(DPTypeError, match="index must be a number"):
        expr_value('xs["a"]', pre)
    with pytest.raises(DPTypeError, match="indexing requires an array"):
        expr_value('("abc")[0]')


def test_destructuring():
    assert expr_value("[a, b, c]", prelude="[a, b, c] = [1, 2]") == [1.0, 2.0, None]
    assert expr_value("[a, rest]", prelude="[a, _, ...rest] = [1, 2, 3, 4]") == [1.0, [3.0, 4.0]]
    assert expr_value("[a, b]", prelude="[a, b] = null") == [None, None]
    with pytest.raises(DPTypeError, match="cannot destructure a non-array value"):
        expr_value("a", prelude="[a, b] = 5")


def test_lambda_captures_copy_and_dynamic_fallback():
    prelude = "\n".join([
        "k = 1",
        "f = v -> v + k + later",   # `later` does not exist yet: found at call time
        "later = 100",
        "k2 = f(0)",
    ])
    assert expr_value("k2", prelude=prelude) == 101.0


def test_lambda_recursion_through_its_own_variable():
    assert expr_value("fact(5)", prelude="fact = n -> n <= 1 ? 1 : n * fact(n - 1)") == 120.0


def test_lambda_arity_error():
    from dporch.lang.errors import ArgumentMismatch
    with pytest.raises(ArgumentMismatch, match="expected 1, got 2"):
        expr_value("f(1, 2)", prelude="f = v -> v")


def test_variable_lambda_shadows_builtin():
    assert expr_value("sum([1, 2])", prelude="sum = xs -> 0") == 0.0


def test_pipelines():
    assert expr_value("[1, 2, 3] |> map(v -> v * 2) |> sum()") == 12.0
    assert expr_value("3 |> double", prelude="double = v -> v * 2") == 6.0
    with pytest.raises(DPTypeError, match="pipe right-hand side must be a function call"):
        expr_value("3 |> k", prelude="k = 1")


def test_undefined_variable_only_assigned_in_a_branch():
    src = """
        -- INPUT x:number --
        -- OUTPUT r --
        if x > 0:
            y = 1
        r = y
        return [r]
    """
    assert run_csv(src, "x\n1\n") == [[1.0]]
    with pytest.raises(UndefinedVariable, match="undefined variable: y") as e:
        run_csv(src, "x\n1\n-1\n")
    assert e.value.line == 5 and e.value.row == 1


@pytest.mark.parametrize("ret, expected", [
    ("return [1, 2]", [[1.0, 2.0, None]]),
    ("return 5", [[5.0, None, None]]),
    ("return null", []),
    ("x = 1", []),
    ("return", []),
])
def test_row_results(ret, expected):
    src = f"-- INPUT a --\n-- OUTPUT p, q, r --\n{ret}\n"
    assert run_csv(src, "a\n1\n") == expected


def test_extra_values_are_ignored():
    src = "-- INPUT a --\n-- OUTPUT p --\nreturn [1, 2]\n"
    assert run_csv(src, "a\n1\n") == [[1.0]]


def test_fstring_display_forms():
    assert expr_value('f"{1.0} {0.1 + 0.2} {null} {true} {[1, "a", null]} {decimal("1.50")}"') == \
        '1 0.30000000000000004 null true [1, "a", null] 1.50'


def test_program_reports_inputs_and_outputs():
    p = compile_src("-- INPUT a:number, b --\n-- OUTPUT c:number --\nreturn [a]\n")
    assert p.inputs == ["a", "b"] and p.outputs == ["c"] and p.input_types == {"a": "number", "b": None}
