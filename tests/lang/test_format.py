"""Output formatting (docs/language.md §9.4) and the display form (§6.16)."""

from __future__ import annotations

import csv
import io
import json
import math
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dporch.lang.format import csv_cell, csv_header, csv_line, csv_quote, json_line, json_value
from dporch.lang.values import FunctionValue, Lambda, display, nested_display, number_text

LAMBDA = Lambda(lambda x, y: x, ("x", "y"))
FUNC = FunctionValue("area")

# §9.4 number table
NUMBERS = [
    (10.0, "10"),
    (2.5, "2.5"),
    (0.1 + 0.2, "0.30000000000000004"),
    (1e21, "1000000000000000000000"),
    (1e-7, "0.0000001"),
    (2.0**60, "1152921504606847000"),
    (-0.0, "-0"),
    (math.nan, "NaN"),
    (math.inf, "inf"),
    (-math.inf, "-inf"),
    # a few more around the repr switch points
    (0.0, "0"),
    (100.0, "100"),
    (-3.25, "-3.25"),
    (1e16, "10000000000000000"),
    (1.5e-5, "0.000015"),
    (123456789.125, "123456789.125"),
    (1e-4, "0.0001"),
    (5e-324, "0." + "0" * 323 + "5"),
    (1.7976931348623157e308, "17976931348623157" + "0" * 292),
]


@pytest.mark.parametrize("x,text", NUMBERS)
def test_number_cells(x, text):
    assert csv_cell(x) == text
    assert number_text(x) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_cell_round_trips_without_exponent(x):
    text = csv_cell(x)
    assert "e" not in text and "E" not in text
    assert float(text) == x
    assert math.copysign(1, float(text)) == math.copysign(1, x)
    if "." in text:
        assert not text.endswith("0") and not text.endswith(".")


CELLS = [
    (None, ""),
    (True, "true"),
    (False, "false"),
    (D("15.86"), "15.86"),
    (D("10.50"), "10.50"),
    (D("1E+3"), "1000"),
    (D("-0.00"), "-0.00"),
    (D("0.0000001"), "0.0000001"),
    ("plain", "plain"),
    ("", ""),
    ("a,b", '"a,b"'),
    ('say "hi"', '"say ""hi"""'),
    ("line1\nline2", '"line1\nline2"'),
    ("cr\rhere", '"cr\rhere"'),
    ("涨幅", "涨幅"),
    (" spaced ", " spaced "),
    ("semi;colon", "semi;colon"),
    (LAMBDA, "<lambda>"),
    (FUNC, "<function>"),
    ([], '"[]"'),
    (["a", 1.0, None, True], '"[a; 1; ; true]"'),
    ([[1.0, 2.0], [3.0]], '"[""[1; 2]""; ""[3]""]"'),
    (["x", "y,z"], '"[x; ""y,z""]"'),
    (['q"'], '"[""q""""""]"'),
    ([D("1.50"), math.nan, -0.0, LAMBDA], '"[1.50; NaN; -0; <lambda>]"'),
]


@pytest.mark.parametrize("v,text", CELLS)
def test_cells(v, text):
    assert csv_cell(v) == text


def test_csv_line_and_header():
    assert csv_line([1.0, "a,b", None, True, [1.0, 2.0]]) == '1,"a,b",,true,"[1; 2]"\n'
    assert csv_line([]) == "\n"
    assert csv_header(["code", "ma5", "a,b", 'q"']) == 'code,ma5,"a,b","q"""\n'
    assert csv_quote("x\ny") == '"x\ny"'


@pytest.mark.parametrize("v", [["a", 1.0, None, True], [[1.0, 2.0], [3.0]], ["x", "y,z"],
                               [["a;b", 'q"'], ["", None]]])
def test_array_cell_parses_back_with_csv_module(v):
    row = next(csv.reader(io.StringIO(csv_line([v, "end"]))))
    assert row[1] == "end"
    assert row[0].startswith("[") and row[0].endswith("]")


# --- a property: any strings survive the CSV round trip through Python's csv module ----------

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(st.lists(_text, min_size=1, max_size=6))
def test_csv_line_round_trip(cells):
    line = csv_line(cells)
    assert line.endswith("\n")
    rows = list(csv.reader(io.StringIO(line, newline=""), strict=True))
    # one row unless every cell is empty, which the csv module reads as a single empty field
    if cells == [""]:
        assert rows == [[]]  # an empty line: inherent CSV ambiguity
        return
    assert rows == [cells]


@given(st.lists(st.one_of(_text, st.floats(), st.none(), st.booleans()), min_size=1, max_size=6))
def test_csv_line_mixed_round_trip(values):
    rows = list(csv.reader(io.StringIO(csv_line(values), newline=""), strict=True))
    expected = [csv_cell(v) if not isinstance(v, str) else v for v in values]
    if expected == [""]:
        assert rows == [[]]  # an empty line: inherent CSV ambiguity
        return
    assert rows == [expected]


# --- JSON lines -----------------------------------------------------------------------------

JSON_VALUES = [
    (None, "null"),
    (True, "true"),
    (False, "false"),
    (2.5, "2.5"),
    (10.0, "10"),
    (-0.0, "-0"),
    (1e21, "1000000000000000000000"),
    (1e-7, "0.0000001"),
    (math.nan, '"NaN"'),
    (math.inf, '"inf"'),
    (-math.inf, '"-inf"'),
    (D("10.50"), "10.50"),
    (D("-0.5"), "-0.5"),
    ("涨幅", '"涨幅"'),
    ('a"b\\c\n', '"a\\"b\\\\c\\n"'),
    ([1.0, "a", None, [D("1.0")]], '[1, "a", null, [1.0]]'),
    ([], "[]"),
    (LAMBDA, '"<lambda>"'),
    (FUNC, '"<function>"'),
]


@pytest.mark.parametrize("v,text", JSON_VALUES)
def test_json_values(v, text):
    assert json_value(v) == text
    json.loads(text)  # valid JSON


def test_json_line_keys_in_order_and_valid():
    names = ["z", "a", "m", "名"]
    line = json_line(names, [D("10.50"), math.nan, [1.0, None], "股票"])
    assert line.endswith("\n") and line.count("\n") == 1
    obj = json.loads(line, parse_float=D)
    assert list(obj) == names
    assert obj == {"z": D("10.50"), "a": "NaN", "m": [1, None], "名": "股票"}
    assert "股票" in line  # not escaped
    assert json.loads(json_line(["a", "b"], [1.0])) == {"a": 1, "b": None}


@given(st.lists(st.one_of(st.floats(), st.text(), st.none(), st.booleans(),
                          st.decimals(allow_nan=False, allow_infinity=False),
                          st.lists(st.floats(), max_size=3)), max_size=5))
def test_json_line_always_valid(values):
    names = [f"c{i}" for i in range(len(values))]
    obj = json.loads(json_line(names, values))
    assert list(obj) == names
    for v, got in zip(values, obj.values()):
        if isinstance(v, float) and not (math.isnan(v) or math.isinf(v)):
            assert float(got) == v  # integer-looking texts decode as int
        elif isinstance(v, str):
            assert got == v


# --- §6.16 display form ---------------------------------------------------------------------

DISPLAY = [
    ("text", "text"),
    (100.0, "100"),
    (0.1 + 0.2, "0.30000000000000004"),
    (1e21, "1000000000000000000000"),
    (-0.0, "-0"),
    (math.nan, "NaN"),
    (math.inf, "inf"),
    (D("15.862741"), "15.862741"),
    (True, "true"),
    (False, "false"),
    (None, "null"),
    ([1.0, "a", None], '[1, "a", null]'),
    ([[1.0, True], []], "[[1, true], []]"),
    (LAMBDA, "<lambda(x, y)>"),
    (FUNC, "<function area>"),
]


@pytest.mark.parametrize("v,text", DISPLAY)
def test_display_form(v, text):
    assert display(v) == text


def test_nested_display_quotes_strings():
    assert nested_display("a") == '"a"'
    assert display(["a"]) == '["a"]'


def test_column_formatting_matches_cell_formatting():
    """The writer formats float columns in bulk (Arrow for large blocks); the text must be
    exactly what csv_cell gives for every value."""
    import random

    from dporch.engine.writers import csv_column

    rng = random.Random(7)
    values = [rng.uniform(-1e6, 1e6) for _ in range(400)] + [rng.random() * 10 ** rng.randint(-30, 30) for _ in range(400)]
    values += [0.0, -0.0, 1e21, 1e-7, 2.0 ** 60, float("nan"), float("inf"), float("-inf"), None, 100.0, 0.1 + 0.2]
    for col in (values, values[:50]):
        assert csv_column(col) == [csv_cell(v) for v in col]
    strings = ["a", "b,c", 'q"', "line\nbreak", "plain"]
    assert csv_column(strings) == [csv_cell(v) for v in strings]
    mixed = [1.0, "x", None, True, [1.0, "a"]]
    assert csv_column(mixed) == [csv_cell(v) for v in mixed]
