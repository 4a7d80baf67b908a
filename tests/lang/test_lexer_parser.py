"""Lexer layout (§2.8), line joining (§2.9), declarations (§3), precedence (§5.1), grammar (§17)."""

from __future__ import annotations

import pytest

from dporch.lang import ast as A
from dporch.lang.errors import LexError, ParseError
from dporch.lang.lexer import tokenize
from dporch.lang.parser import parse, parse_expression

from ..conftest import dedent, expr_value, run_csv


def kinds(src: str) -> list[str]:
    return [t.kind for t in tokenize(src)[0]]


def test_block_header_directly_followed_by_body():
    # [BUG] fixed: no blank line needed between `if …:` and its body.
    rows = run_csv("""
        -- INPUT x:number --
        -- OUTPUT r:string --
        if x > 1:
            r = "big"
        elif x > 0:
            r = "small"
        else:
            r = "neg"
        return [r]
    """, "x\n5\n1\n-1\n")
    assert rows == [["big"], ["small"], ["neg"]]


def test_layout_tokens_and_dedent_at_eof():
    src = "if a:\n    b = 1\nc = 2\n"
    assert kinds(src) == ["if", "IDENT", ":", "NEWLINE", "INDENT", "IDENT", "=", "NUM", "NEWLINE",
                          "DEDENT", "IDENT", "=", "NUM", "NEWLINE", "EOF"]


def test_blank_and_comment_lines_do_not_affect_layout():
    src = "if a:\n\n    # note\n        \n    b = 1\n"
    assert kinds(src).count("INDENT") == 1


def test_inconsistent_dedent_is_a_lex_error_at_the_line():
    with pytest.raises(LexError) as e:
        tokenize("if a:\n    if b:\n        c = 1\n  d = 2\n")
    assert e.value.message == "inconsistent dedent"
    assert (e.value.line, e.value.column) == (4, 3)


def test_indented_first_line_is_unexpected_indent():
    with pytest.raises(ParseError) as e:
        parse("   x = 1\n")
    assert "unexpected indent" in e.value.message
    assert e.value.line == 1


def test_indent_only_after_block_header():
    with pytest.raises(ParseError) as e:
        parse("x = 1\n    y = 2\n")
    assert "unexpected indent" in e.value.message
    assert e.value.line == 2


@pytest.mark.parametrize("src", [
    "x = reduce(\n    [1, 2],\n    (a, b) -> a + b,\n    0)\n",          # J1 brackets
    "x = 1 +\n    2\n",                                                  # J2 operator at end
    "x = true ?\n    1 :\n    2\n",                                      # J2 '?' then J3 ':'
    "x = [1, 2]\n    |> map(v -> v * 2)\n    |> sum()\n",                # J4 leading |>
    "x = 1\n    + 2\n",                                                  # J4 leading +
    "x = when false -> 1,\n         else -> 2\n",                        # J2 trailing comma
])
def test_implicit_line_joining(src):
    tree = parse(src).tree
    assert len(tree.body) == 1 and isinstance(tree.body[0], A.Assign)


def test_multi_line_ternary_value():
    assert expr_value("true ?\n    1 :\n    2") == 1.0


def test_leading_minus_does_not_join():
    tree = parse("x = 1\n-2\n").tree
    assert len(tree.body) == 2


def test_statements_need_line_ends():
    with pytest.raises(ParseError) as e:
        parse("x = 1 y = 2\n")
    assert "expected end of line" in e.value.message


def test_double_minus_inside_a_line_is_two_minuses():
    assert expr_value("5--3") == 8.0


def test_declaration_keyword_matching():
    tree = parse("-- input a:number --\n-- Output b:string --\n").tree
    assert tree.inputs == [("a", "number")] and tree.outputs == [("b", "string")]
    # [BUG] fixed: the first word decides, so this is an OUTPUT with column input_price.
    tree = parse("-- OUTPUT input_price:number --\n").tree
    assert tree.outputs == [("input_price", "number")] and tree.inputs == []


@pytest.mark.parametrize("src, kind, msg", [
    ("-- INPUT a:number\n", ParseError, "declaration not closed with --"),
    ("-- INPUT a:number -- x = 1\n", ParseError, "unexpected text after"),
    ("-- FOO --\n", LexError, "unknown special declaration"),
    ("-- INPUT a:money --\n", ParseError, "unknown type: money"),
    ("-- OUTPUT a, a --\n", ParseError, "duplicate column: a"),
    ("-- INPUT a --\n-- INPUT b --\n", ParseError, "duplicate declaration"),
    ("x = 1\n-- INPUT a --\n", ParseError, "before the script body"),
])
def test_declaration_errors(src, kind, msg):
    with pytest.raises(kind) as e:
        parse(src)
    assert msg in e.value.message
    assert e.value.line is not None and e.value.line >= 1


def test_declaration_error_reports_its_line():
    with pytest.raises(ParseError) as e:
        parse("# header\n-- OUTPUT a:number, b:nope --\n")
    assert e.value.line == 2


def test_untyped_input_params_and_precision_warning():
    res = parse("-- INPUT a, b:number --\n-- PRECISION decimal --\n")
    assert res.tree.inputs == [("a", None), ("b", "number")]
    assert res.tree.precision == 6
    assert any("PRECISION" in w.message for w in res.warnings)


@pytest.mark.parametrize("src, msg", [
    ("x = 1;\n", "unexpected character: ;"),
    ("x = !a\n", "unexpected character: !"),
    ("x = 1e\n", "invalid number: 1e"),
    ("x = 1e+\n", "invalid number: 1e+"),
    ('x = "abc\n', "unclosed string"),
    ('x = f"a{b"\n', "unclosed"),
])
def test_lexer_errors(src, msg):
    with pytest.raises(LexError) as e:
        tokenize(src)
    assert msg in e.value.message
    assert e.value.line == 1


def test_unclosed_string_reported_at_opening_quote():
    with pytest.raises(LexError) as e:
        tokenize('x = 1\ny = "abc\n')
    assert (e.value.line, e.value.column) == (2, 5)


@pytest.mark.parametrize("text, value", [
    ("-2 ^ 2", -4.0), ("2 ^ 3 ^ 2", 512.0), ("2 ^ -1", 0.5), ("-x ^ 2", -9.0),
    ("1 + 2 * 3", 7.0), ("(1 + 2) * 3", 9.0), ("10 - 4 - 3", 3.0), ("not 1 == 2", True),
    ("not x > 3", True), ("1 < 2 < 3", True), ("3 > 2 > 2", False), ("true ? 1 : false ? 2 : 3", 1.0),
])
def test_precedence(text, value):
    assert expr_value(text, prelude="x = 3") == value


def test_one_and_zero_dot_numbers_are_parse_errors():
    with pytest.raises(ParseError):
        parse("x = 1.\n")
    with pytest.raises(ParseError):
        parse("x = .5\n")


@pytest.mark.parametrize("word", ["for", "while", "let", "fn", "import"])
def test_reserved_words(word):
    with pytest.raises(ParseError) as e:
        parse(f"{word} = 1\n")
    assert "reserved" in e.value.message


def test_cjk_identifiers_and_fullwidth_digits():
    assert expr_value("涨幅２ * 2", prelude="涨幅２ = 21") == 42.0


def test_crlf_and_bom_are_normalised():
    rows = run_csv("\ufeff-- INPUT x:number --\r\n-- OUTPUT y --\r\nif x > 0:\r\n    y = 1\r\n\r\nelse:\r\n    y = 2\r\nreturn [y]\r\n",
                   "x\n1\n-1\n")
    assert rows == [[1.0], [2.0]]


def test_lambda_forms():
    assert expr_value("reduce([1, 2, 3], (a, b) -> a + b)") == 6.0
    assert expr_value("Array(3, i -> i * i)") == [0.0, 1.0, 4.0]
    assert expr_value("f()", prelude="f = () -> 7") == 7.0
    assert expr_value("g(4)", prelude="g = v -> v * 2") == 8.0


def test_when_condition_bare_identifier_is_not_a_lambda():
    assert expr_value("when flag -> 1, else -> 0", prelude="flag = true") == 1.0


def test_when_trailing_comma_is_an_error():
    with pytest.raises(ParseError):
        parse("x = when a -> 1,\n")


def test_when_without_else_inside_arguments_needs_parentheses():
    with pytest.raises(ParseError):
        parse("x = f(when a -> 1, b)\n")
    assert isinstance(parse("x = max((when true -> 1), 2)\n").tree.body[0], A.Assign)


@pytest.mark.parametrize("src, msg", [
    ("x = f(1)(2)\n", "only functions or methods can be called"),
    ("x = (y)(1)\n", "only functions or methods can be called"),
    ("x = a.b.c\n", "one level"),
    ("x = [1][0](1)\n", "only functions or methods can be called"),
    ("x = f(a=1, 2)\n", "positional argument follows keyword argument"),
    ("x = ...y\n", "spread"),
    ("x = v |> 3\n", "pipe right-hand side must be a function call"),
    ("[a, ...b, c] = [1]\n", "rest pattern must be last"),
    ("x[0] = 1\n", "only a name"),
    ("f(x):\n    return x\n", "functions can only be defined in packages"),
    ("mut x = 1\n", "mut"),
    ("x = {1}\n", "object literals"),
])
def test_parse_errors(src, msg):
    with pytest.raises(ParseError) as e:
        parse(src)
    assert msg in e.value.message


def test_fstring_placeholders_and_escapes():
    assert expr_value('f"{x + 1} and {{literal}} }"', prelude="x = 1") == "2 and {literal} }"
    assert expr_value('f"{"a" + "b"}"') == "ab"
    with pytest.raises(ParseError) as e:
        parse('x = f"{}"\n')
    assert "invalid expression in f-string" in e.value.message
    with pytest.raises(ParseError):
        parse('x = f"{a = 1}"\n')


def test_parse_expression_helper():
    e = parse_expression("a |> f(1) |> g")
    assert isinstance(e, A.Call) and e.pipe_bare and e.name == "g"


def test_package_script_shape():
    tree = parse(dedent("""
        package 工具包
        RATE = 0.5
        mut 计数 = 0
        scale(x, k = 10) -> number:
            return x * k * RATE
    """)).tree
    assert isinstance(tree, A.Package)
    assert [v.name for v in tree.variables] == ["RATE", "计数"]
    assert tree.functions[0].params[1].default is not None


def test_package_default_parameter_order():
    with pytest.raises(ParseError):
        parse("package p\nf(a = 1, b):\n    return a\n")
