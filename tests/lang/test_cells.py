"""Input cell typing (docs/language.md §9.2)."""

from __future__ import annotations

import math
import re
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dporch.lang.cells import (
    NUMERAL_RE,
    TYPE_NAMES,
    CellError,
    infer_cell,
    json_cell,
    json_loads,
    make_converter,
    parse_cell,
)
from dporch.lang.format import csv_cell
from dporch.lang.values import parse_number_text

NAN = math.nan
INF = math.inf


def same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is D:
        return str(a) == str(b)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_type_names():
    assert TYPE_NAMES == ("number", "decimal", "string", "bool", "array", "null")


@pytest.mark.parametrize("type_name", [*TYPE_NAMES, None])
@pytest.mark.parametrize("text", ["", "null"])
def test_empty_and_null_text_are_null_for_every_type(type_name, text):
    assert parse_cell(text, type_name) is None
    assert make_converter(type_name)(text) is None


TYPED = [
    # number: the §4.3 string conversion
    ("number", "1e3", 1000.0),
    ("number", "000001", 1.0),
    ("number", "-2.5", -2.5),
    ("number", "+1", 1.0),
    ("number", "1.", 1.0),
    ("number", ".5", 0.5),
    ("number", "-0", -0.0),
    ("number", "inf", INF),
    ("number", "-inf", -INF),
    ("number", "Infinity", INF),
    ("number", "NaN", NAN),
    ("number", "-nan", NAN),
    ("number", "1E-3", 0.001),
    ("number", "12.34", 12.34),
    ("number", "1e999", INF),
    # decimal: exact, keeping the written scale
    ("decimal", "10.50", D("10.50")),
    ("decimal", "-0.001", D("-0.001")),
    ("decimal", "000010.5", D("10.5")),
    ("decimal", "1e3", D("1E+3")),
    ("decimal", "+3", D("3")),
    ("decimal", "12345678901234567890.123456789", D("12345678901234567890.123456789")),
    # string: text as is
    ("string", "000001", "000001"),
    ("string", " x ", " x "),
    ("string", "NULL", "NULL"),
    ("string", "true", "true"),
    ("string", "1e3", "1e3"),
    ("string", "涨幅", "涨幅"),
    # bool: case-insensitive
    ("bool", "true", True),
    ("bool", "TRUE", True),
    ("bool", "False", False),
    ("bool", "fAlSe", False),
    # array: [e1; e2] or [e1, e2], elements inferred
    ("array", "[90; 120; 150]", [90.0, 120.0, 150.0]),
    ("array", "[1, 2]", [1.0, 2.0]),
    ("array", "[]", []),
    ("array", "[ ]", []),
    ("array", "[a; true; ; null]", ["a", True, None, None]),
    ("array", "[000001; inf; x y]", [1.0, "inf", "x y"]),
    ("array", "[a; b,c]", ["a", "b,c"]),
    ("array", "[1; ]", [1.0, None]),
    ("array", '[x; "y,z"]', ["x", "y,z"]),
    ("array", '["a;b"; "q""uote"]', ["a;b", 'q"uote']),
    ("array", '["[1; 2]"; "[3]"]', [[1.0, 2.0], [3.0]]),
    ("array", "[[1, 2], [3]]", [[1.0, 2.0], [3.0]]),
    ("array", "[[1; 2]; []]", [[1.0, 2.0], []]),
    ("array", '["1"]', ["1"]),
    ("array", "[1]]", ["1]"]),
    ("array", "[a[b; c]]", ["a[b", "c]"]),
    ("array", '[a, "x;y"]', ["a", "x;y"]),
    ("array", "[a, [1; 2]]", ["a", [1.0, 2.0]]),
    ("array", '[[a; "b]"]; c]', [["a", "b]"], "c"]),
    # null: always null
    ("null", "anything", None),
    ("null", "1", None),
]


@pytest.mark.parametrize("type_name,text,expected", TYPED)
def test_declared_types(type_name, text, expected):
    got = parse_cell(text, type_name)
    assert same(got, expected), (type_name, text, got)
    assert same(make_converter(type_name)(text), expected)


BAD = [
    ("number", "abc"), ("number", " 1"), ("number", "1 "), ("number", "1_000"),
    ("number", "١٢"), ("number", "0x10"), ("number", "1e"), ("number", "NULL"), ("number", "--1"),
    ("number", "1,5"), ("number", "\t2"), ("number", "true"),
    ("decimal", "abc"), ("decimal", "NaN"), ("decimal", "inf"), ("decimal", "Infinity"),
    ("decimal", " 1"), ("decimal", "1_0"), ("decimal", "١٢"), ("decimal", "1.2.3"),
    ("decimal", "sNaN"), ("decimal", "1e999999999"), ("decimal", "1e-999999999"),
    ("bool", "yes"), ("bool", "1"), ("bool", "0"), ("bool", " true"), ("bool", "NULL"),
    ("array", "1;2"), ("array", "[unclosed"), ("array", "[1; 2"),
    ("array", '["open; 1]'), ("array", "x"), ("array", "[1; [2]"),
]


@pytest.mark.parametrize("type_name,text", BAD)
def test_declared_type_failures_raise_cell_error(type_name, text):
    with pytest.raises(CellError):
        parse_cell(text, type_name)
    with pytest.raises(ValueError):  # CellError is a ValueError
        make_converter(type_name)(text)


def test_unknown_type_name():
    with pytest.raises(ValueError):
        make_converter("integer")


UNTYPED = [
    ("000001", 1.0),
    ("1e3", 1000.0),
    ("-1", -1.0),
    ("+.5", 0.5),
    ("1.", 1.0),
    ("1.e5", 100000.0),
    ("-0", -0.0),
    ("12.34", 12.34),
    ("1E-2", 0.01),
    ("inf", "inf"),
    ("-inf", "-inf"),
    ("NaN", "NaN"),
    ("nan", "nan"),
    ("Infinity", "Infinity"),
    ("true", True),
    ("false", False),
    ("TRUE", "TRUE"),
    ("True", "True"),
    ("", None),
    ("null", None),
    ("NULL", "NULL"),
    ("abc", "abc"),
    ("1.5.3", "1.5.3"),
    (".e5", ".e5"),
    ("1e", "1e"),
    ("e5", "e5"),
    (" 1", " 1"),
    ("1 ", "1 "),
    ("1_000", "1_000"),
    ("١٢", "١٢"),
    ("1٢", "1٢"),
    ("-", "-"),
    (".", "."),
    ("+", "+"),
    ("0x10", "0x10"),
    ("1,5", "1,5"),
    ("[1; 2]", "[1; 2]"),
    ("2024-01-05", "2024-01-05"),
]


@pytest.mark.parametrize("text,expected", UNTYPED)
def test_untyped_inference(text, expected):
    assert same(parse_cell(text, None), expected)
    assert same(make_converter(None)(text), expected)
    assert same(infer_cell(text), expected)


def _reference_infer(text: str):
    if text == "" or text == "null":
        return None
    if NUMERAL_RE.fullmatch(text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    return text


_numeric_text = st.text(alphabet="0123456789+-.eE_ naifINFty\t١", max_size=8)


@given(st.one_of(_numeric_text, st.text(max_size=8)))
def test_inference_matches_the_spec_regex(text):
    assert same(infer_cell(text), _reference_infer(text))


@given(st.one_of(_numeric_text, st.text(max_size=8)))
def test_number_converter_matches_section_4_3(text):
    conv = make_converter("number")
    ref = parse_number_text(text)
    if text in ("", "null"):
        assert conv(text) is None
    elif ref is None:
        with pytest.raises(CellError):
            conv(text)
    else:
        assert same(conv(text), ref)


@given(st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                          st.none(),
                          st.text(alphabet="ab ,;\"[]x", max_size=5)), max_size=5))
def test_array_cell_round_trip_through_csv_cell(values):
    """An array written by csv_cell (outer CSV quoting removed) reads back through the array
    type."""
    # Ambiguities of the §9.4 array text itself: a string holding ";" is written unquoted, as
    # is one starting with "[", and surrounding spaces are trimmed on reading.
    def plain(v):
        if not isinstance(v, str):
            return True
        return v == v.strip() and v != "" and ";" not in v and not v.startswith("[")

    if not all(plain(v) for v in values) or values == [None]:  # [null] is written "[]"
        return
    cell = csv_cell(values)
    assert cell[0] == '"' and cell[-1] == '"'
    inner = cell[1:-1].replace('""', '"')
    assert same(parse_cell(inner, "array"), values)


# --- JSON typing ----------------------------------------------------------------------------

def _j(text: str, type_name):
    return json_cell(json_loads(text), type_name)


JSON_TYPED = [
    # undeclared: JSON types map directly
    ("12.5", None, 12.5),
    ("10", None, 10.0),
    ("-0", None, -0.0),
    ("1e400", None, INF),
    ('"000001"', None, "000001"),
    ('"12"', None, "12"),
    ("true", None, True),
    ("null", None, None),
    ('[1, "a", null, [2.5, true]]', None, [1.0, "a", None, [2.5, True]]),
    ('""', None, ""),
    # declared: a JSON string is typed like a CSV cell with that text
    ('"12.5"', "number", 12.5),
    ('"inf"', "number", INF),
    ('""', "number", None),
    ('"null"', "string", None),
    ('"000001"', "string", "000001"),
    ('"10.50"', "decimal", D("10.50")),
    ('"TRUE"', "bool", True),
    ('"[1; 2]"', "array", [1.0, 2.0]),
    ('"x"', "null", None),
    # a JSON number in a decimal column comes from its JSON text
    ("10.50", "decimal", D("10.50")),
    ("10", "decimal", D("10")),
    ("-0.000", "decimal", D("-0.000")),
    ("1.5e2", "decimal", D("1.5E+2")),
    ("-0", "decimal", D("-0")),
    # any other JSON value keeps its JSON type
    ("12.5", "number", 12.5),
    ("10", "number", 10.0),
    ("-0", "number", -0.0),
    ("5", "string", 5.0),
    ("true", "number", True),
    ("1", "bool", 1.0),
    ("[1, 2]", "array", [1.0, 2.0]),
    ("[1, 2]", "number", [1.0, 2.0]),
    ("null", "decimal", None),
    ("3", "null", None),
]


@pytest.mark.parametrize("text,type_name,expected", JSON_TYPED)
def test_json_typing(text, type_name, expected):
    assert same(_j(text, type_name), expected)


def test_json_float_precision_same_as_float_text():
    for text in ["0.1", "0.30000000000000004", "1.7976931348623157e308", "5e-324", "123456.789"]:
        assert _j(text, None) == float(text)
        assert _j(text, "number") == float(text)


def test_json_plain_float_in_decimal_column_goes_through_shortest_text():
    assert same(json_cell(0.1, "decimal"), D("0.1"))
    assert same(json_cell(10, "decimal"), D("10"))


@pytest.mark.parametrize(
    "text,type_name",
    [('{"a": 1}', None), ('{"a": 1}', "string"), ('[1, {"a": 1}]', None), ('"abc"', "number"),
     ('"yes"', "bool"), ('"1;2"', "array"), ("NaN", "decimal"), ('"NaN"', "decimal")],
)
def test_json_typing_errors(text, type_name):
    with pytest.raises(CellError):
        _j(text, type_name)


def test_json_loads_keeps_decimal_text():
    obj = json_loads('{"p": 10.50, "n": 3, "s": "x"}')
    assert str(obj["p"]) == "10.50" and obj["n"] == 3 and obj["s"] == "x"
    assert re.fullmatch(r"\d+", str(obj["n"]))
