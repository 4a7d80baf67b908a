"""Builtin functions of docs/language.md §13 (13.1–13.4, 13.6, 13.7, 13.9)."""

from __future__ import annotations

import calendar
import math
import re
from datetime import datetime
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dporch.lang.builtins import BUILTINS, Builtin
from dporch.lang.errors import ArgumentMismatch, DPTypeError, ScriptExit
from dporch.lang.values import FunctionValue, Lambda, display

NAN = math.nan
INF = math.inf


def call(name: str, *args, **kwargs):
    """Call a builtin the way the runtime does: arity (keywords included) first."""
    b = BUILTINS[name]
    b.check_arity(len(args) + len(kwargs), tuple(kwargs))
    return b.fn(*args, **kwargs)


def lam(fn, *params):
    return Lambda(fn, tuple(params))


def same(a, b) -> bool:
    """Exact equality including kind, NaN == NaN, the sign of zero and decimal scale."""
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


def check(name, args, kwargs, expected):
    got = call(name, *args, **kwargs)
    assert same(got, expected), f"{name}{args}{kwargs}: got {got!r}, expected {expected!r}"


def test_registry_exports():
    assert isinstance(BUILTINS["sum"], Builtin)


# --- arity table -----------------------------------------------------------------------------

ARITY = {
    "sum": (0, None), "max": (1, None), "min": (1, None), "mean": (1, None),
    "median": (1, None), "length": (1, 1), "len": (1, 1), "count": (2, 2), "concat": (0, None),
    "first": (1, 1), "last": (1, 1), "reverse": (1, 1), "sort": (1, 2), "unique": (1, 1),
    "is_null": (1, 1), "print": (0, None),
    "map": (2, 2), "filter": (2, 2), "reduce": (2, 3), "Array": (2, 2), "Range": (2, 3),
    "safe_div": (2, 3), "safe_get": (2, 3), "safe_number": (1, 2), "safe_decimal": (1, 2),
    "coalesce": (1, None), "nvl": (2, 2), "if_null": (2, 2), "nullif": (2, 2),
    "BUY": (0, 1), "SELL": (0, 1), "CLOSE": (0, 1),
    "now": (0, 0), "today": (0, 0), "parse_time": (1, 2), "format_time": (2, 2),
    "time_diff": (2, 3), "time_add": (3, 3), "time_sub": (3, 3), "year": (1, 1),
    "month": (1, 1), "day": (1, 1), "hour": (1, 1), "minute": (1, 1), "second": (1, 1),
    "weekday": (1, 1), "timestamp": (1, 1), "from_timestamp": (1, 1),
    "abs": (1, 1), "sqrt": (1, 1), "exp": (1, 1), "log": (1, 1), "log10": (1, 1),
    "pow": (2, 2), "floor": (1, 1), "ceil": (1, 1), "int": (1, 1), "round": (1, 2),
    "number": (1, 1), "decimal": (1, 1), "string": (1, 1), "typeis": (2, 2), "exit": (1, 1),
}


@pytest.mark.parametrize("name,rng", sorted(ARITY.items()))
def test_arity(name, rng):
    b = BUILTINS[name]
    assert (b.min_args, b.max_args) == rng


def test_keywords_registered():
    for name in ("safe_div", "safe_get", "safe_number", "safe_decimal"):
        assert BUILTINS[name].keywords == ("default",)
    assert BUILTINS["sort"].keywords == ("desc",)
    assert BUILTINS["sum"].keywords == ()


@pytest.mark.parametrize(
    "name,n,kw",
    [("max", 0, ()), ("mean", 0, ()), ("min", 0, ()), ("coalesce", 0, ()), ("length", 2, ()),
     ("first", 0, ()), ("BUY", 2, ()), ("now", 1, ()), ("nvl", 1, ()), ("nullif", 3, ()),
     ("Range", 4, ()), ("safe_div", 4, ("default",)), ("safe_div", 2, ("dflt",)),
     ("sort", 2, ("reverse",)), ("map", 1, ()), ("reduce", 4, ())],
)
def test_wrong_arity_is_argument_mismatch(name, n, kw):
    with pytest.raises(ArgumentMismatch):
        BUILTINS[name].check_arity(n, kw)


# --- §13.1 aggregates ------------------------------------------------------------------------

AGGREGATES = [
    ("sum", [[1.0, 2.0, 3.0]], 6.0),
    ("sum", [1.0, "2"], 3.0),
    ("sum", [[1.0, None, 3.0]], 4.0),
    ("sum", [], 0.0),
    ("sum", [[]], 0.0),
    ("sum", [[None, None]], 0.0),
    ("sum", [[1.0, 2.0], 100.0], 3.0),  # first arg an array: other args ignored
    ("sum", [True, 2.0, False], 3.0),
    ("sum", [["1.5", "1e1"]], 11.5),
    ("sum", [[D("1.10"), D("2.205")]], D("3.305")),
    ("sum", [[D("1.10"), None, D("2")]], D("3.10")),
    ("sum", [[D("1.5"), 1.0]], 2.5),
    ("sum", [[1.0, NAN]], NAN),
    ("max", [3.0, 1.0, 2.0], 3.0),
    ("max", [[1.0, None, 5.0]], 5.0),
    ("max", [[]], None),
    ("max", [[None]], None),
    ("max", [None], None),
    ("max", [[NAN, 1.0]], 1.0),
    ("max", [[NAN, NAN]], None),
    ("max", [["10", 9.0]], 10.0),
    ("max", [[-INF, -1.0]], -1.0),
    ("max", [[D("1.5"), D("2.50")]], D("2.50")),
    ("max", [[D("1.5"), 2.0]], 2.0),
    ("min", [3.0, 1.0, 2.0], 1.0),
    ("min", [[1.0, None, -5.0]], -5.0),
    ("min", [[]], None),
    ("min", [[NAN]], None),
    ("min", [[NAN, 4.0, 7.0]], 4.0),
    ("min", [True, 2.0], 1.0),
    ("mean", [[1.0, 2.0, 3.0, 4.0]], 2.5),
    ("mean", [1.0, 2.0], 1.5),
    ("mean", [[1.0, None, 3.0]], 2.0),
    ("mean", [[]], None),
    ("mean", [[None]], None),
    ("mean", [[D("1"), D("2")]], D("1.5")),
    ("mean", [[1.0, NAN]], NAN),
    ("median", [[3.0, 1.0, 2.0]], 2.0),
    ("median", [[4.0, 1.0, 3.0, 2.0]], 2.5),
    ("median", [5.0, None, 1.0], 3.0),
    ("median", [[]], None),
    ("median", [[D("1"), D("4"), D("2"), D("3")]], D("2.5")),
    ("median", [[1.0, NAN, 3.0]], NAN),
]


@pytest.mark.parametrize("name,args,expected", AGGREGATES)
def test_aggregates(name, args, expected):
    check(name, args, {}, expected)


def test_aggregates_return_floats_not_ints():
    assert type(call("sum", [1.0, 2.0])) is float
    assert type(call("sum")) is float
    assert type(call("max", True, False)) is float
    assert type(call("length", [1.0])) is float


@pytest.mark.parametrize(
    "name,args",
    [("sum", [[[1.0]]]), ("sum", ["abc"]), ("max", [[1.0, [2.0]]]), ("mean", [["x"]]),
     ("min", [[lam(lambda x: x, "x")]]), ("median", [["1", "b"]]), ("sum", [FunctionValue("f")])],
)
def test_aggregates_type_errors(name, args):
    with pytest.raises(DPTypeError):
        call(name, *args)


def test_sum_error_message_names_conversion():
    with pytest.raises(DPTypeError, match="cannot convert to number"):
        call("sum", 1.0, "abc")


# --- §13.1 array utilities -------------------------------------------------------------------

LAMBDA = lam(lambda x: x, "x")
FUNC = FunctionValue("pkg.f")

UTILITIES = [
    ("length", [[1.0, 2.0, 3.0]], 3.0),
    ("length", ["涨幅"], 2.0),
    ("length", [""], 0.0),
    ("length", [[]], 0.0),
    ("len", [[1.0, None]], 2.0),
    ("len", ["abc"], 3.0),
    ("count", [[1.0, 2.0, 1.0, "1", True], 1.0], 2.0),
    ("count", [[D("1.0"), 1.0, D("2")], 1.0], 2.0),
    ("count", [[None, 1.0, None], None], 2.0),
    ("count", [[[1.0, 2.0], [1.0], [1.0, 2.0]], [1.0, 2.0]], 2.0),
    ("count", [[NAN], NAN], 0.0),
    ("count", [[], 1.0], 0.0),
    ("concat", [[1.0, 2.0], [3.0], 4.0], [1.0, 2.0, 3.0, 4.0]),
    ("concat", [], []),
    ("concat", [[[1.0]], 2.0], [[1.0], 2.0]),
    ("concat", [None, [None]], [None, None]),
    ("concat", ["a", "b"], ["a", "b"]),
    ("first", [[1.0, 2.0, 3.0]], 1.0),
    ("first", [[]], None),
    ("last", [[1.0, 2.0, 3.0]], 3.0),
    ("last", [[]], None),
    ("reverse", [[1.0, "a", None]], [None, "a", 1.0]),
    ("reverse", [[]], []),
    ("is_null", [None], True),
    ("is_null", [0.0], False),
    ("is_null", [""], False),
    ("is_null", [[]], False),
]


@pytest.mark.parametrize("name,args,expected", UTILITIES)
def test_array_utilities(name, args, expected):
    check(name, args, {}, expected)


@pytest.mark.parametrize(
    "name,args",
    [("length", [5.0]), ("length", [None]), ("length", [True]), ("len", [D("1")]),
     ("first", ["abc"]), ("first", [None]), ("last", [3.0]), ("reverse", ["abc"]),
     ("count", ["abc", "a"]), ("sort", ["abc"]), ("sort", [None]), ("unique", [1.0])],
)
def test_array_utility_type_errors(name, args):
    with pytest.raises(DPTypeError):
        call(name, *args)


def test_reverse_returns_new_array():
    xs = [1.0, 2.0]
    assert call("reverse", xs) == [2.0, 1.0]
    assert xs == [1.0, 2.0]


def test_sort_total_order():
    xs = ["b", 2.0, None, True, [1.0], 1.0, "a", False, NAN, D("1.5"), LAMBDA, [0.0, 5.0], -INF]
    expected = [None, False, True, -INF, 1.0, D("1.5"), 2.0, NAN, "a", "b", [0.0, 5.0], [1.0],
                LAMBDA]
    got = call("sort", xs)
    assert same(got[:-1], expected[:-1]) and got[-1] is LAMBDA
    assert xs[0] == "b"  # input untouched


def test_sort_desc_keyword():
    assert call("sort", [3.0, 1.0, 2.0], desc=True) == [3.0, 2.0, 1.0]
    assert call("sort", [3.0, 1.0, 2.0], desc=False) == [1.0, 2.0, 3.0]
    got = call("sort", [None, "a", 1.0, True], desc=True)
    assert got == ["a", 1.0, True, None]


def test_sort_numbers_and_strings():
    assert call("sort", [10.0, 9.0, 100.0]) == [9.0, 10.0, 100.0]
    assert call("sort", ["b", "B", "a", "é", "aa"]) == ["B", "a", "aa", "b", "é"]
    assert call("sort", [[1.0, 2.0], [1.0], [0.0, 5.0], []]) == [[], [0.0, 5.0], [1.0], [1.0, 2.0]]


def test_sort_is_stable_for_equal_values():
    a, b, c = D("1.0"), 1.0, D("1")
    got = call("sort", [a, b, c])
    assert same(got, [a, b, c])
    got = call("sort", [2.0, a, b, c], desc=True)
    assert same(got, [2.0, a, b, c])
    z = call("sort", [0.0, -0.0])
    assert same(z, [0.0, -0.0])


def test_sort_decimal_vs_number_numeric():
    # 0.1 (number) and decimal 0.1 are equal (§4.4) so they keep their order; 0.09 sorts first.
    got = call("sort", [0.1, D("0.1"), D("0.09")])
    assert same(got, [D("0.09"), 0.1, D("0.1")])


def test_unique():
    xs = [1.0, 1.0, "1", True, None, None, D("1.00"), NAN, NAN, [1.0], [1.0], -0.0, 0.0, False,
          "a", "a", [D("1")]]
    got = call("unique", xs)
    assert same(got, [1.0, "1", True, None, NAN, NAN, [1.0], -0.0, False, "a"])


def test_unique_lambdas_by_identity():
    l2 = lam(lambda x: x, "x")
    got = call("unique", [LAMBDA, LAMBDA, l2])
    assert got[0] is LAMBDA and got[1] is l2 and len(got) == 2


def test_print_to_stderr_display_form(capsys):
    assert call("print", "a", 1.0, None, [1.0, "x"], D("1.50"), True) is None
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == 'a 1 null [1, "x"] 1.50 true\n'
    call("print")
    assert capsys.readouterr().err == "\n"


# --- §13.2 higher-order ----------------------------------------------------------------------

DOUBLE = lam(lambda x: x * 2, "x")
INDEX = lam(lambda v, i: i, "v", "i")
ADD = lam(lambda a, b: a + b, "acc", "x")
EVEN = lam(lambda x: math.fmod(x, 2) == 0, "x")


def test_map():
    assert call("map", [1.0, 2.0, 3.0], DOUBLE) == [2.0, 4.0, 6.0]
    assert call("map", [], DOUBLE) == []
    got = call("map", [10.0, 20.0], INDEX)
    assert got == [0.0, 1.0] and all(type(x) is float for x in got)
    assert call("map", ["a", "b"], lam(lambda v, i: f"{v}{display(i)}", "v", "i")) == ["a0", "b1"]


def test_filter():
    assert call("filter", [1.0, 2.0, 3.0, 4.0], EVEN) == [2.0, 4.0]
    truthy = call("filter", [0.0, 1.0, "", "a", None, [], [0.0], NAN, D("0"), False],
                  lam(lambda x: x, "x"))
    assert same(truthy, [1.0, "a", [0.0], NAN])
    assert call("filter", [5.0, 6.0, 7.0], lam(lambda v, i: i >= 1, "v", "i")) == [6.0, 7.0]


@pytest.mark.parametrize(
    "name,args,msg",
    [("map", [5.0, DOUBLE], "map's first argument must be an array"),
     ("map", [None, DOUBLE], "map's first argument must be an array"),
     ("map", [[1.0], 3.0], "must be a lambda"),
     ("map", [[1.0], lam(lambda: 1, )], "lambda"),
     ("map", [[1.0], lam(lambda a, b, c: 1, "a", "b", "c")], "lambda"),
     ("filter", ["abc", EVEN], "filter's first argument must be an array"),
     ("filter", [[1.0], None], "must be a lambda"),
     ("reduce", [[1.0, 2.0], DOUBLE], "exactly 2 parameters"),
     ("reduce", [[1.0, 2.0], 3.0], "lambda"),
     ("reduce", [[1.0], 3.0, 4.0], "lambda"),
     ("reduce", [5.0, ADD], "must be an array"),
     ("reduce", [[], ADD], "reduce on an empty array needs an initial value"),
     ("Array", [2.0, ADD], "lambda"),
     ("Range", [0.0, 1.0, 0.0], "Range step cannot be 0"),
     ("Range", [0.0, 1.0, -0.0], "Range step cannot be 0"),
     ("Range", [None, 3.0], "null cannot be converted to number"),
     ("Range", ["a", 3.0], "cannot convert to number"),
     ("Array", [None, 1.0], "null cannot be converted to number")],
)
def test_higher_order_type_errors(name, args, msg):
    with pytest.raises(DPTypeError, match=re.escape(msg)):
        call(name, *args)


def test_lambda_body_arity_is_argument_mismatch():
    with pytest.raises(ArgumentMismatch):
        DOUBLE.call(1.0, 2.0)


REDUCE = [
    ([[1.0, 2.0, 3.0], ADD], 6.0),
    ([[1.0, 2.0, 3.0], ADD, 10.0], 16.0),
    ([[1.0, 2.0, 3.0], 10.0, ADD], 16.0),  # documented order reduce(arr, init, f)
    ([[], ADD, 5.0], 5.0),
    ([[], 5.0, ADD], 5.0),
    ([[7.0], ADD], 7.0),
    ([["a", "b", "c"], ADD, ""], "abc"),
    ([["a", "b", "c"], "", ADD], "abc"),
    ([["b", "c"], ADD, "a"], "abc"),
]


@pytest.mark.parametrize("args,expected", REDUCE)
def test_reduce(args, expected):
    check("reduce", args, {}, expected)


def test_reduce_acc_first_and_init_null():
    seen = []
    f = lam(lambda acc, x: (seen.append((acc, x)), x)[1], "acc", "x")
    assert call("reduce", [1.0, 2.0, 3.0], f, None) == 3.0
    assert seen == [(None, 1.0), (1.0, 2.0), (2.0, 3.0)]


def test_reduce_both_lambdas_second_arg_is_function():
    f = lam(lambda acc, x: acc, "acc", "x")
    got = call("reduce", [1.0], f, ADD)
    assert got is ADD


def test_array():
    assert call("Array", 3.0, 0.0) == [0.0, 0.0, 0.0]
    sq = call("Array", 3.0, lam(lambda i: i * i, "i"))
    assert sq == [0.0, 1.0, 4.0] and all(type(x) is float for x in sq)
    assert call("Array", 2.9, "x") == ["x", "x"]
    assert call("Array", -1.0, 1.0) == []
    assert call("Array", NAN, 1.0) == []
    assert call("Array", "2", 1.0) == [1.0, 1.0]
    assert call("Array", True, None) == [None]
    assert call("Array", 0.0, 1.0) == []
    assert call("Array", 2.0, [1.0]) == [[1.0], [1.0]]


def test_array_infinite_size_is_type_error():
    with pytest.raises(DPTypeError):
        call("Array", INF, 1.0)


RANGES = [
    ([1.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]),
    ([0.0, 1.0, 0.25], [0.0, 0.25, 0.5, 0.75, 1.0]),
    ([5.0, 1.0, -2.0], [5.0, 3.0, 1.0]),
    ([1.0, 5.0, -1.0], []),
    ([5.0, 1.0], []),
    ([3.0, 3.0], [3.0]),
    (["1", "3"], [1.0, 2.0, 3.0]),
    ([1.0, 2.5], [1.0, 2.0]),
    ([True, 2.0], [1.0, 2.0]),
    ([NAN, 2.0], []),
    # repeated addition: drift is kept and 0.9999999999999999 <= 1 is included
    ([0.0, 1.0, 0.1], [0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7,
                       0.7999999999999999, 0.8999999999999999, 0.9999999999999999]),
]


@pytest.mark.parametrize("args,expected", RANGES)
def test_range(args, expected):
    check("Range", args, {}, expected)


def test_range_unbounded_is_type_error():
    with pytest.raises(DPTypeError):
        call("Range", 0.0, INF)
    with pytest.raises(DPTypeError):
        call("Range", 1e16, 1e16 + 10, 0.5)  # step too small to progress


# --- §13.3 safe functions --------------------------------------------------------------------

SAFE = [
    ("safe_div", [10.0, 2.0], {}, 5.0),
    ("safe_div", [1.0, 0.0], {}, 0.0),
    ("safe_div", [1.0, -0.0], {}, 0.0),
    ("safe_div", [0.0, 0.0], {}, 0.0),
    ("safe_div", [1.0, 0.0, -1.0], {}, -1.0),
    ("safe_div", [1.0, 0.0], {"default": -1.0}, -1.0),
    ("safe_div", [1.0, 0.0], {"default": None}, None),
    ("safe_div", [None, 2.0], {}, 0.0),
    ("safe_div", [1.0, None], {}, 0.0),
    ("safe_div", [1.0, None], {"default": None}, None),
    ("safe_div", [None, None, 7.0], {}, 7.0),
    ("safe_div", ["6", "3"], {}, 2.0),
    ("safe_div", [True, 2.0], {}, 0.5),
    ("safe_div", [1.0, 0.0, "5"], {}, 5.0),
    ("safe_div", [D("1"), D("4")], {}, D("0.25")),
    ("safe_div", [D("1"), D("3")], {}, D("0.3333333333333333333333333333")),
    ("safe_div", [D("1"), 4.0], {}, D("0.25")),
    ("safe_div", [D("1"), D("0.00")], {}, 0.0),
    ("safe_div", [INF, 2.0], {}, INF),
    ("safe_get", [[1.0, 2.0, 3.0], 1.0], {}, 2.0),
    ("safe_get", [[1.0, 2.0, 3.0], -1.0], {}, 3.0),
    ("safe_get", [[1.0, 2.0, 3.0], -3.0], {}, 1.0),
    ("safe_get", [[1.0, 2.0, 3.0], -4.0], {"default": 9.0}, 9.0),
    ("safe_get", [[1.0, 2.0, 3.0], 5.0], {}, None),
    ("safe_get", [[1.0, 2.0, 3.0], 5.0, 0.0], {}, 0.0),
    ("safe_get", [[1.0, 2.0, 3.0], 1.9], {}, 2.0),
    ("safe_get", [[1.0, 2.0, 3.0], -1.9], {}, 3.0),
    ("safe_get", [[1.0, 2.0, 3.0], "2"], {}, 3.0),
    ("safe_get", [[1.0, 2.0, 3.0], None, "d"], {}, "d"),
    ("safe_get", [[1.0, 2.0, 3.0], NAN, "d"], {}, "d"),
    ("safe_get", [5.0, 0.0, "d"], {}, "d"),
    ("safe_get", [None, 0.0], {}, None),
    ("safe_get", ["abc", 0.0], {"default": "z"}, "z"),
    ("safe_get", [[], 0.0], {}, None),
    ("safe_number", ["3.5"], {}, 3.5),
    ("safe_number", ["1e3"], {}, 1000.0),
    ("safe_number", ["abc"], {}, 0.0),
    ("safe_number", [None], {}, 0.0),
    ("safe_number", ["abc", -1.0], {}, -1.0),
    ("safe_number", ["abc"], {"default": None}, None),
    ("safe_number", [[1.0]], {}, 0.0),
    ("safe_number", [LAMBDA], {}, 0.0),
    ("safe_number", [" 1"], {}, 0.0),
    ("safe_number", [True], {}, 1.0),
    ("safe_number", [D("2.5")], {}, 2.5),
    ("safe_number", [7.0, 0.0], {}, 7.0),
    ("safe_decimal", ["10.50"], {}, D("10.50")),
    ("safe_decimal", [0.1], {}, D("0.1")),
    ("safe_decimal", [2.0], {}, D("2")),
    ("safe_decimal", [D("1.000")], {}, D("1.000")),
    ("safe_decimal", ["x"], {}, None),
    ("safe_decimal", ["x"], {"default": D("0")}, D("0")),
    ("safe_decimal", [None, 1.0], {}, 1.0),
    ("safe_decimal", [NAN], {}, None),
    ("safe_decimal", [INF], {}, None),
    ("safe_decimal", [True], {}, None),
    ("safe_decimal", [[1.0]], {}, None),
    ("safe_decimal", ["NaN"], {}, None),
]


@pytest.mark.parametrize("name,args,kwargs,expected", SAFE)
def test_safe_functions(name, args, kwargs, expected):
    check(name, args, kwargs, expected)


@pytest.mark.parametrize("args", [["x", 1.0], [1.0, [2.0]], [1.0, "y"], [1.0, 0.0, "n/a"]])
def test_safe_div_unconvertible_is_type_error(args):
    with pytest.raises(DPTypeError):
        call("safe_div", *args)


# --- §13.4 null helpers ----------------------------------------------------------------------

NULLS = [
    ("coalesce", [None, None, 3.0, 4.0], 3.0),
    ("coalesce", [None], None),
    ("coalesce", [None, None], None),
    ("coalesce", [0.0, 1.0], 0.0),
    ("coalesce", [False, 1.0], False),
    ("coalesce", ["", "x"], ""),
    ("nvl", [None, 5.0], 5.0),
    ("nvl", [0.0, 5.0], 0.0),
    ("nvl", ["", 5.0], ""),
    ("nvl", [None, None], None),
    ("if_null", [None, "d"], "d"),
    ("if_null", [[], "d"], []),
    ("nullif", [1.0, 1.0], None),
    ("nullif", [1.0, 2.0], 1.0),
    ("nullif", [D("1.5"), 1.5], None),
    ("nullif", [D("1.0"), D("1.00")], None),
    ("nullif", ["1", 1.0], "1"),
    ("nullif", [1.0, True], 1.0),
    ("nullif", [None, None], None),
    ("nullif", [NAN, NAN], NAN),
    ("nullif", [[1.0, 2.0], [1.0, 2.0]], None),
    ("nullif", [0.0, -0.0], None),
]


@pytest.mark.parametrize("name,args,expected", NULLS)
def test_null_helpers(name, args, expected):
    check(name, args, {}, expected)


# --- §13.6 trading ---------------------------------------------------------------------------

TRADING = [
    ("BUY", [], "买入"), ("BUY", [True], "买入"), ("BUY", [False], "持有"), ("BUY", [None], "持有"),
    ("BUY", [1.0], "买入"), ("BUY", [0.0], "持有"), ("BUY", ["持有"], "买入"),
    ("SELL", [], "卖出"), ("SELL", [True], "卖出"), ("SELL", [0.0], "持有"), ("SELL", [[]], "持有"),
    ("CLOSE", [], "卖出"), ("CLOSE", [True], "卖出"), ("CLOSE", [None], "持有"),
]


@pytest.mark.parametrize("name,args,expected", TRADING)
def test_trading(name, args, expected):
    check(name, args, {}, expected)


def test_position_not_a_plain_builtin():
    assert "POSITION" not in BUILTINS


# --- §13.7 date/time -------------------------------------------------------------------------

TIME = [
    ("parse_time", ["2024-01-05 09:30:00"], "2024-01-05 09:30:00"),
    ("parse_time", ["2024-01-05 09:30"], "2024-01-05 09:30:00"),
    ("parse_time", ["2024/01/05 09:30:15"], "2024-01-05 09:30:15"),
    ("parse_time", ["2024/01/05 09:30"], "2024-01-05 09:30:00"),
    ("parse_time", ["2024-01-05"], "2024-01-05"),
    ("parse_time", ["2024/01/05"], "2024-01-05"),
    ("parse_time", ["20240105"], "2024-01-05"),
    ("parse_time", ["2024-1-5 9:05:07"], "2024-01-05 09:05:07"),
    ("parse_time", ["2024-02-29"], "2024-02-29"),
    ("parse_time", ["05.01.2024", "%d.%m.%Y"], "2024-01-05"),
    ("parse_time", ["05.01.2024 7:05", "%d.%m.%Y %H:%M"], "2024-01-05 07:05:00"),
    ("parse_time", ["2024-01-05T09:30:00", "%Y-%m-%dT%H:%M:%S"], "2024-01-05 09:30:00"),
    ("format_time", ["2024-01-05 09:30:00", "%Y%m%d"], "20240105"),
    ("format_time", ["2024-01-05", "%H:%M"], "00:00"),
    ("format_time", ["2024/03/09 14:05", "%d/%m/%Y %H-%M-%S"], "09/03/2024 14-05-00"),
    ("time_diff", ["2024-01-10", "2024-01-05"], 5.0),
    ("time_diff", ["2024-01-10", "2024-01-05", "days"], 5.0),
    ("time_diff", ["2024-01-10", "2024-01-05", "hours"], 120.0),
    ("time_diff", ["2024-01-05 00:10:30", "2024-01-05", "minutes"], 10.0),
    ("time_diff", ["2024-01-05 00:10:30", "2024-01-05", "seconds"], 630.0),
    ("time_diff", ["2024-01-05 00:00:00", "2024-01-06 12:00:00"], -1.0),  # -1.5 truncated
    ("time_diff", ["2024-01-05 11:59:59", "2024-01-05", "hours"], 11.0),
    ("time_diff", ["2024-01-05", "2024-01-05 00:00:01", "minutes"], 0.0),
    ("time_add", ["2024-01-31", 1.0, "days"], "2024-02-01 00:00:00"),
    ("time_add", ["2024-01-05 09:30:00", 90.0, "minutes"], "2024-01-05 11:00:00"),
    ("time_add", ["2024-01-05 09:30:00", 1.9, "hours"], "2024-01-05 10:30:00"),
    ("time_add", ["2024-01-05 09:30:00", -1.9, "hours"], "2024-01-05 08:30:00"),
    ("time_add", ["2024-01-05", 2.0, "weeks"], "2024-01-19 00:00:00"),
    ("time_add", ["2024-01-05 00:00:00", 61.0, "seconds"], "2024-01-05 00:01:01"),
    ("time_add", ["2024-01-05", "3", "days"], "2024-01-08 00:00:00"),
    ("time_sub", ["2024-03-01", 1.0, "days"], "2024-02-29 00:00:00"),
    ("time_sub", ["2024-01-01 00:00:00", 1.0, "seconds"], "2023-12-31 23:59:59"),
    ("year", ["2024-03-09 14:05:07"], 2024.0),
    ("month", ["2024-03-09 14:05:07"], 3.0),
    ("day", ["2024-03-09 14:05:07"], 9.0),
    ("hour", ["2024-03-09 14:05:07"], 14.0),
    ("minute", ["2024-03-09 14:05:07"], 5.0),
    ("second", ["2024-03-09 14:05:07"], 7.0),
    ("hour", ["2024-03-09"], 0.0),
    ("weekday", ["2024-01-01"], 0.0),  # Monday
    ("weekday", ["2024-01-07"], 6.0),  # Sunday
    ("weekday", ["20240103"], 2.0),
    ("timestamp", ["1970-01-01 00:00:00"], 0.0),
    ("timestamp", ["1970-01-02"], 86400.0),
    ("timestamp", ["2024-01-05 09:30:00"], 1704447000.0),
    ("timestamp", ["1969-12-31 23:59:59"], -1.0),
    ("from_timestamp", [0.0], "1970-01-01 00:00:00"),
    ("from_timestamp", [1704447000.0], "2024-01-05 09:30:00"),
    ("from_timestamp", [86400.9], "1970-01-02 00:00:00"),
    ("from_timestamp", [-1.0], "1969-12-31 23:59:59"),
    ("from_timestamp", ["86400"], "1970-01-02 00:00:00"),
]


@pytest.mark.parametrize("name,args,expected", TIME)
def test_time_functions(name, args, expected):
    check(name, args, {}, expected)


@pytest.mark.parametrize(
    "name,args,msg",
    [("parse_time", ["yesterday"], "cannot parse time string: yesterday"),
     ("parse_time", ["2024-02-30"], "cannot parse time string: 2024-02-30"),
     ("parse_time", ["2024-01-05 25:00:00"], "cannot parse time string"),
     ("parse_time", [" 2024-01-05"], "cannot parse time string"),
     ("parse_time", ["2024-01-05T09:30:00"], "cannot parse time string"),
     ("parse_time", ["2024-01-05", "%d.%m.%Y"], "cannot parse time string"),
     ("parse_time", [20240105.0], "time string"),
     ("parse_time", [None], "time string"),
     ("parse_time", ["2024-01-05", 5.0], "format must be a string"),
     ("year", [2024.0], "time string"),
     ("month", [None], "time string"),
     ("weekday", ["not a date"], "cannot parse time string"),
     ("format_time", ["2024-01-05", None], "format must be a string"),
     ("format_time", ["x", "%Y"], "cannot parse time string: x"),
     ("time_diff", ["2024-01-05", "2024-01-01", "weeks"], "unsupported time unit"),
     ("time_diff", ["2024-01-05", "2024-01-01", "day"], "unsupported time unit"),
     ("time_diff", ["2024-01-05", 3.0], "time string"),
     ("time_add", ["2024-01-05", 1.0, "months"], "unsupported time unit"),
     ("time_add", ["2024-01-05", NAN, "days"], "finite"),
     ("time_add", ["9999-12-31", 1.0, "days"], "out of range"),
     ("time_sub", ["2024-01-05", 1.0, None], "unsupported time unit"),
     ("timestamp", [0.0], "time string"),
     ("from_timestamp", [NAN], "finite"),
     ("from_timestamp", [1e300], "out of range"),
     ("from_timestamp", ["x"], "cannot convert to number")],
)
def test_time_errors(name, args, msg):
    with pytest.raises(DPTypeError, match=re.escape(msg)):
        call(name, *args)


def test_now_and_today_shapes():
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", call("now"))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", call("today"))


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_from_timestamp_inverts_timestamp(dt):
    t = dt.replace(microsecond=0).strftime("%Y-%m-%d %H:%M:%S")
    t = f"{dt.year:04d}" + t[t.index("-"):]
    ts = call("timestamp", t)
    assert ts == float(calendar.timegm(dt.replace(microsecond=0).timetuple()))
    assert call("from_timestamp", ts) == t
    assert call("parse_time", t) == t


# --- §13.9 conversion and math ---------------------------------------------------------------

MATH = [
    ("abs", [-2.5], 2.5), ("abs", [-0.0], 0.0), ("abs", [D("-1.50")], D("1.50")),
    ("abs", [None], None), ("abs", [-INF], INF),
    ("sqrt", [16.0], 4.0), ("sqrt", [-1.0], NAN), ("sqrt", [D("2.25")], 1.5),
    ("sqrt", [-0.0], -0.0), ("sqrt", [None], None), ("sqrt", [INF], INF),
    ("exp", [0.0], 1.0), ("exp", [1000.0], INF), ("exp", [-INF], 0.0), ("exp", [None], None),
    ("exp", [D("0")], 1.0),
    ("log", [1.0], 0.0), ("log", [0.0], -INF), ("log", [-0.0], -INF), ("log", [-1.0], NAN),
    ("log", [math.e], 1.0), ("log", [INF], INF), ("log", [None], None),
    ("log10", [1000.0], 3.0), ("log10", [0.0], -INF), ("log10", [-5.0], NAN),
    ("log10", [D("100")], 2.0), ("log10", [NAN], NAN),
    ("pow", [2.0, 10.0], 1024.0), ("pow", [2.0, -1.0], 0.5), ("pow", [0.0, 0.0], 1.0),
    ("pow", [-8.0, 1.0 / 3.0], NAN), ("pow", [0.0, -1.0], INF), ("pow", [10.0, 400.0], INF),
    ("pow", [-10.0, 401.0], -INF), ("pow", [-2.0, 3.0], -8.0),
    ("pow", [None, 2.0], None), ("pow", [2.0, None], None),
    ("pow", [D("1.5"), 2.0], 2.25), ("pow", [D("2"), D("3")], 8.0),
    ("pow", [[1.0, 2.0, 3.0], 2.0], [1.0, 4.0, 9.0]), ("pow", [2.0, [1.0, 2.0]], [2.0, 4.0]),
    ("pow", [[2.0, 3.0], [3.0, 2.0]], [8.0, 9.0]), ("pow", [[1.0, None], 2.0], [1.0, None]),
    ("floor", [2.7], 2.0), ("floor", [-2.1], -3.0), ("floor", [-0.0], -0.0),
    ("floor", [D("2.50")], D("2")), ("floor", [D("-2.5")], D("-3")), ("floor", [INF], INF),
    ("floor", [NAN], NAN), ("floor", [None], None), ("floor", [1e300], 1e300),
    ("ceil", [2.1], 3.0), ("ceil", [-0.5], -0.0), ("ceil", [D("2.01")], D("3")),
    ("ceil", [None], None),
    ("int", [2.7], 2.0), ("int", [-2.7], -2.0), ("int", [-0.5], -0.0),
    ("int", [D("-2.7")], D("-2")), ("int", [None], None),
    ("round", [2.675, 2.0], 2.68), ("round", [2.5], 3.0), ("round", [-2.5], -3.0),
    ("round", [0.5], 1.0), ("round", [1.5], 2.0), ("round", [1.005, 2.0], 1.01),
    ("round", [1234.5678, -2.0], 1200.0), ("round", [1250.0, -2.0], 1300.0),
    ("round", [-1250.0, -2.0], -1300.0), ("round", [1.23456, 3.0], 1.235),
    ("round", [1.5, 2.0], 1.5), ("round", [-0.4], -0.0), ("round", [0.1 + 0.2, 1.0], 0.3),
    ("round", [1e300, 2.0], 1e300), ("round", [123.0, -500.0], 0.0),
    ("round", [2.675, 2.9], 2.68), ("round", [NAN, 2.0], NAN), ("round", [INF], INF),
    ("round", [D("2.675"), 2.0], D("2.68")), ("round", [D("2.665"), 2.0], D("2.67")),
    ("round", [D("-2.5")], D("-3")), ("round", [D("1.5"), 2.0], D("1.5")),
    ("round", [D("1250"), -2.0], D("1.3E+3")), ("round", [D("15.862741"), 2.0], D("15.86")),
    ("round", [None], None), ("round", [1.23, None], None), ("round", [2.5, D("0")], 3.0),
    ("number", ["1e3"], 1000.0), ("number", [True], 1.0), ("number", [False], 0.0),
    ("number", ["inf"], INF), ("number", ["NaN"], NAN), ("number", ["+1"], 1.0),
    ("number", ["1."], 1.0), ("number", [".5"], 0.5), ("number", [D("1.5")], 1.5),
    ("number", [None], None), ("number", [2.0], 2.0),
    ("decimal", [0.1], D("0.1")), ("decimal", ["10.50"], D("10.50")), ("decimal", [None], None),
    ("decimal", [D("1.0")], D("1.0")), ("decimal", [100.0], D("100")), ("decimal", [0.1], D("0.1")), ("decimal", [1e21], D("1000000000000000000000")),
    ("decimal", ["1e3"], D("1E+3")),
    ("string", [1.0], "1"), ("string", [0.30000000000000004], "0.30000000000000004"),
    ("string", [1e21], "1000000000000000000000"), ("string", [-0.0], "-0"),
    ("string", [NAN], "NaN"), ("string", ["x"], "x"), ("string", [True], "true"),
    ("string", [D("15.862741")], "15.862741"), ("string", [[1.0, "a", None]], '[1, "a", null]'),
    ("string", [None], None), ("string", [LAMBDA], "<lambda(x)>"),
    ("string", [FUNC], "<function f>"),
    ("typeis", [1.0, "number"], True), ("typeis", [D("1"), "decimal"], True),
    ("typeis", [D("1"), "number"], False), ("typeis", ["1", "string"], True),
    ("typeis", [True, "bool"], True), ("typeis", [True, "number"], False),
    ("typeis", [None, "null"], True), ("typeis", [0.0, "null"], False),
    ("typeis", [[], "array"], True), ("typeis", [LAMBDA, "lambda"], True),
    ("typeis", [FUNC, "function"], True), ("typeis", [FUNC, "lambda"], False),
]


@pytest.mark.parametrize("name,args,expected", MATH)
def test_math_and_conversions(name, args, expected):
    check(name, args, {}, expected)


@pytest.mark.parametrize(
    "name,args,msg",
    [("abs", ["1"], "abs requires a number"), ("abs", [True], "abs requires a number"),
     ("sqrt", [[4.0]], "requires a number"), ("exp", ["x"], "requires a number"),
     ("log", [False], "requires a number"), ("floor", ["2.5"], "requires a number"),
     ("round", ["2.5"], "requires a number"), ("round", [2.5, "1"], "requires a number"),
     ("round", [2.5, NAN], "finite"), ("int", [LAMBDA], "requires a number"),
     ("pow", ["2", 2.0], "cannot raise"), ("pow", [True, 2.0], "cannot raise"),
     ("pow", [[2.0, 3.0], [2.0]], "array length mismatch"),
     ("number", ["abc"], "cannot convert to number"), ("number", [" 1"], "cannot convert"),
     ("number", ["1_000"], "cannot convert"), ("number", [[1.0]], "cannot convert"),
     ("decimal", [True], "cannot convert to decimal"), ("decimal", ["abc"], "cannot convert"),
     ("decimal", [NAN], "cannot convert to decimal"), ("decimal", ["inf"], "cannot convert"),
     ("decimal", ["١٢"], "cannot convert"), ("decimal", [[1.0]], "cannot convert"),
     ("typeis", [1.0, "integer"], "unknown type name"), ("typeis", [1.0, None], "unknown type")],
)
def test_math_errors(name, args, msg):
    with pytest.raises(DPTypeError, match=re.escape(msg)):
        call(name, *args)


def test_math_results_are_floats():
    for name, args in [("floor", [2.5]), ("ceil", [2.5]), ("int", [2.5]), ("round", [2.5]),
                       ("abs", [-1.0]), ("pow", [2.0, 2.0]), ("sqrt", [4.0])]:
        assert type(call(name, *args)) is float, name


def test_exit_raises_script_exit_with_display_text():
    with pytest.raises(ScriptExit) as ei:
        call("exit", "bad data")
    assert ei.value.message == "bad data"
    assert ei.value.kind == "ScriptExit"
    with pytest.raises(ScriptExit) as ei:
        call("exit", 1.5)
    assert ei.value.message == "1.5"


@pytest.mark.parametrize(
    "name,args,kwargs",
    [("safe_div", [1.0], {"default": 0.0}), ("safe_get", [[1.0]], {"default": 0.0}),
     ("safe_number", [], {"default": 0.0}), ("safe_decimal", [], {"default": None}),
     ("sort", [], {"desc": True})],
)
def test_keyword_in_place_of_a_positional_is_argument_mismatch(name, args, kwargs):
    with pytest.raises(ArgumentMismatch):
        call(name, *args, **kwargs)
