"""Regressions from a review of the implementation against docs/language.md (one test per finding)."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest

from dporch.lang.errors import ArgumentMismatch, CheckError, DPTypeError, ParseError
from dporch.lang.program import compile_program

from ..conftest import compile_src, expr_value, run_csv


def test_history_of_an_unknown_name_in_a_package_is_a_check_error(tmp_path):
    (tmp_path / "bad.dp").write_text("package bad\nf(x):\n    return foo[-1]\n")
    main = tmp_path / "s.dp"
    main.write_text("-- IMPORT bad --\n-- INPUT a --\n-- OUTPUT r --\nreturn [bad.f(1)]\n")
    with pytest.raises(CheckError) as e:
        compile_program(main.read_text(), str(main))
    assert "undefined variable: foo" in e.value.message and e.value.file.endswith("bad.dp")


def test_lambda_variable_shadows_a_builtin_of_another_arity():
    assert expr_value("length(1, 2)", prelude="length = (a, b) -> a + b") == 3.0
    assert expr_value("MA(4)", prelude="MA = v -> v * 2") == 8.0
    # A variable that does not hold a lambda falls back to the builtin, arity checked at run time.
    with pytest.raises(ArgumentMismatch):
        expr_value("length(1, 2)", prelude="length = 5")


def test_number_to_decimal_uses_the_number_text():
    rows = run_csv("-- INPUT p:decimal --\n-- OUTPUT a, b, c --\nreturn [p * 2, decimal(3), decimal(\"1.1\") * 3]\n",
                   "p\n10.50\n")
    assert rows == [[Decimal("21.00"), Decimal("3"), Decimal("3.3")]]


def test_fstring_placeholder_minus_minus():
    assert expr_value('f"{--3}"') == "3"


def test_package_arity_through_spread(tmp_path):
    (tmp_path / "m.dp").write_text("package m\nscale(x, k = 10):\n    return x * k\n")
    main = tmp_path / "s.dp"
    main.write_text("-- IMPORT m --\n-- INPUT a --\n-- OUTPUT r --\nreturn [m.scale(...[2, 3, 4])]\n")
    p = compile_program(main.read_text(), str(main))
    with pytest.raises(ArgumentMismatch, match="function m.scale argument count mismatch: expected 1-2, got 3"):
        run_csv(p, "a\n1\n")


def test_string_form_of_ref_is_checked():
    with pytest.raises(CheckError, match="undefined variable: zz"):
        compile_src('-- INPUT c --\n-- OUTPUT r --\nreturn [ref("zz", 1)]\n')


def test_bare_error_record_is_a_check_error():
    with pytest.raises(CheckError, match="_error is a record"):
        compile_src(textwrap.dedent("""
            -- INPUT a --
            -- OUTPUT r --
            -- ERROR --
            return [string(_error)]
            -- ERROR_END --
            return [1 / 0]
        """).lstrip())


def test_null_slice_bound_is_a_type_error():
    with pytest.raises(DPTypeError, match="slice index must be a number"):
        expr_value("[1, 2, 3][:null]")
    assert expr_value("[1, 2, 3][:2]") == [1.0, 2.0]


def test_decimal_overflow_is_a_type_error():
    with pytest.raises(DPTypeError, match="decimal result out of range"):
        expr_value('decimal("9e6144") * 10')


def test_reserved_word_as_keyword_argument():
    with pytest.raises(ParseError, match="reserved"):
        compile_src("-- INPUT a --\n-- OUTPUT r --\nreturn [sort([1], for=1)]\n")


def test_position_counts_as_reading_position():
    p = compile_src("-- INPUT a --\n-- OUTPUT r --\nposition = 3\nreturn [POSITION()]\n")
    assert not [w for w in p.warnings if w.code == "W3"]
    assert run_csv(p, "a\n1\n") == [[3.0]]
