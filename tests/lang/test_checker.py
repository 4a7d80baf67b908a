"""Static check (§11.2): every finding with its code, line and column."""

from __future__ import annotations

import pytest

from dporch.lang.errors import ArgumentMismatch, CheckError

from ..conftest import compile_src, dedent


def findings(src: str):
    try:
        p = compile_src(src)
        return [(d.code, d.line, d.column, d.message) for d in p.warnings]
    except (CheckError, ArgumentMismatch) as exc:
        return [(d.code, d.line, d.column, d.message) for d in exc.findings]


def codes(src: str):
    return [(c, line) for c, line, _, _ in findings(src)]


def test_e1_undefined_variable_reports_every_finding():
    src = """
        -- INPUT a:number --
        -- OUTPUT r --
        x = b + 1
        y = c
        return [x + y]
    """
    f = findings(src)
    assert ("CheckError", 3, 5, "undefined variable: b") in f
    assert ("CheckError", 4, 5, "undefined variable: c") in f


def test_e1_textual_order_and_exceptions():
    ok = """
        -- INPUT a:number --
        -- OUTPUT r --
        -- ERROR --
        return [late, _error.message, __error__]
        -- ERROR_END --
        prev = late[-1]
        f = v -> v + late
        if a > 0:
            late = 1
        else:
            late = 2
        r = f(late) + r[-1] + _index
        return [r]
    """
    assert [c for c in codes(ok) if c[0] == "CheckError"] == []
    bad = "-- INPUT a --\n-- OUTPUT r --\nr = later\nlater = 1\nreturn [r]\n"
    assert ("CheckError", 3) in codes(bad)


def test_e1_undeclared_column_history_needs_input_declaration():
    src = "-- INPUT a --\n-- OUTPUT r --\nreturn [volume[-1]]\n"
    assert any("declare it in -- INPUT --" in m for *_, m in findings(src))
    assert findings("-- OUTPUT r --\nreturn [volume[-1]]\n") == []


def test_e1_builtin_name_used_as_a_value():
    assert any("sum is a function" in m for *_, m in findings("-- INPUT a --\n-- OUTPUT r --\nr = sum\nreturn [r]\n"))


def test_e2_unknown_function_and_e6_arity():
    src = """
        -- INPUT a --
        -- OUTPUT r --
        x = nosuch(1)
        y = sum()
        z = length(1, 2)
        w = safe_div(1, 2, fallback=0)
        v = MA(a)
        return [x, y, z, w, v]
    """
    f = findings(src)
    assert ("CheckError", 3, 5, "undefined function: nosuch") in f
    kinds = {(c, line) for c, line, _, _ in f}
    assert ("ArgumentMismatch", 5) in kinds and ("ArgumentMismatch", 6) in kinds and ("ArgumentMismatch", 7) in kinds
    assert ("ArgumentMismatch", 4) not in kinds  # sum() with no args is allowed (0)


def test_e6_raises_argument_mismatch_kind_when_only_arity_errors():
    with pytest.raises(ArgumentMismatch) as e:
        compile_src("-- INPUT a --\n-- OUTPUT r --\nreturn [length(1, 2)]\n")
    assert e.value.line == 3


def test_e5_assignment_to_builtin_variable():
    assert ("CheckError", 3) in codes("-- INPUT a --\n-- OUTPUT r --\n_index = 1\nreturn [a]\n")


def test_e3_unknown_package():
    assert any("unknown package: pkg" in m for *_, m in findings("-- INPUT a --\n-- OUTPUT r --\nreturn [pkg.x]\n"))


def test_series_function_first_argument_must_name_a_series():
    f = findings("-- INPUT a --\n-- OUTPUT r --\nreturn [ref(a + 1, 1)]\n")
    assert any("must name a series" in m for *_, m in f)
    assert any(c == "W6" for c, *_ in findings("-- INPUT a --\n-- OUTPUT r --\nreturn [ref(a, 1)]\n"))


def test_warnings():
    src = """
        -- INPUT a:number --
        -- OUTPUT r, s --
        x = 1
        x = 2
        a = 5
        unused = 3
        f = a -> a + 1
        if a > 1:
            x = 3
        r = f(x)
        return [r]
        s = 1
    """
    c = codes(src)
    assert ("W1", 4) in c          # x reassigned on the same path
    assert ("W1", 5) in c          # assigning an INPUT name counts as re-assignment
    assert ("W1", 9) not in c      # override inside an if is allowed
    assert ("W3", 6) in c          # unused
    assert ("W2", 7) in c          # lambda parameter shadows a
    assert ("W4", 11) in c         # returned 1 value for 2 OUTPUT columns
    assert ("W5", 12) in c         # unreachable


def test_warnings_do_not_abort():
    p = compile_src("-- INPUT a --\n-- OUTPUT r --\nx = 1\nx = 2\nreturn [x]\n")
    assert [w.code for w in p.warnings] == ["W1"]


def test_check_display_form_has_caret():
    with pytest.raises(CheckError) as e:
        compile_src("-- INPUT a --\n-- OUTPUT r --\nr = a + bogus\nreturn [r]\n")
    text = e.value.format()
    assert text.splitlines() == [
        "CheckError at t.dp:3:9: undefined variable: bogus",
        "  r = a + bogus",
        "          ^",
    ]


def test_function_definitions_are_package_only():
    from dporch.lang.errors import ParseError
    with pytest.raises(ParseError, match="functions can only be defined in packages"):
        compile_src(dedent("""
            f(x):
                return x
        """))
