"""Property tests: compiled expressions (with their inlined fast paths) agree with a direct
evaluation of the spec's rules (§5, §7.2) on random expression trees, and the parser reads back
what a printer writes, whatever the line breaks inside brackets (§2.9 J1)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dporch.lang import ops
from dporch.lang.errors import DPLangError

from ..conftest import run_csv

# An expression tree: ("lit", value) | ("var", name) | (op, a, b) | ("neg", a) | ("not", a)
# | ("if", c, a, b).
NUMBERS = st.sampled_from([0.0, -0.0, 1.0, -2.5, 3.0, 0.5, 1e300, float("inf")])
LEAF = st.one_of(
    NUMBERS.map(lambda v: ("lit", v)),
    st.just(("lit", None)),
    st.sampled_from(["x", "y", "z"]).map(lambda n: ("var", n)),
)
BINOPS = ["+", "-", "*", "/", "%", "^", "<", "<=", ">", ">=", "==", "!=", "and", "or"]


def trees(depth: int = 4):
    return st.recursive(
        LEAF,
        lambda sub: st.one_of(
            st.tuples(st.sampled_from(BINOPS), sub, sub),
            st.tuples(st.just("neg"), sub),
            st.tuples(st.just("not"), sub),
            st.tuples(st.just("if"), sub, sub, sub),
        ),
        max_leaves=12,
    )


def source(t) -> str:
    kind = t[0]
    if kind == "lit":
        v = t[1]
        if v is None:
            return "null"
        if math.isinf(v):
            return "(10 ^ 400)"
        text = repr(abs(v))
        return f"(-{text})" if math.copysign(1, v) < 0 else text
    if kind == "var":
        return t[1]
    if kind == "neg":
        return f"(-{source(t[1])})"
    if kind == "not":
        return f"(not {source(t[1])})"
    if kind == "if":
        return f"({source(t[1])} ?\n {source(t[2])} :\n {source(t[3])})"
    return f"({source(t[1])} {kind}\n {source(t[2])})"


class Raised(Exception):
    pass


def reference(t, env):
    """Evaluate by the spec's rules using the operator module directly (no fast paths)."""
    kind = t[0]
    if kind == "lit":
        return t[1]
    if kind == "var":
        return env[t[1]]
    if kind == "neg":
        return ops.NORMAL.neg(reference(t[1], env))
    if kind == "not":
        return ops.not_(reference(t[1], env))
    if kind == "if":
        return reference(t[2], env) if reference(t[1], env) else reference(t[3], env)
    if kind in ("and", "or"):
        a = reference(t[1], env)
        if type(a) is list:
            b = reference(t[2], env)
            return ops.and_arrays(a, b) if kind == "and" else ops.or_arrays(a, b)
        if kind == "and":
            return ops.truth_each(reference(t[2], env)) if a else False
        return True if a else ops.truth_each(reference(t[2], env))
    a, b = reference(t[1], env), reference(t[2], env)
    if kind == "==":
        return ops.eq(a, b)
    if kind == "!=":
        return ops.ne(a, b)
    fn = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "^": "pow",
          "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}[kind]
    return getattr(ops.NORMAL, fn)(a, b)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), x=NUMBERS, y=st.one_of(NUMBERS, st.none()), z=st.sampled_from([[1.0, None], [2.0, -1.0]]))
def test_compiled_expressions_match_the_reference(tree, x, y, z):
    env = {"x": x, "y": y, "z": z}
    try:
        expected = ("ok", reference(tree, env))
    except DPLangError as exc:
        expected = ("error", exc.kind)
    cells = {"x": repr(x), "y": "" if y is None else repr(y)}
    csv = "x,y\n" + f"{cells['x']},{cells['y']}\n"
    z_src = "[" + ", ".join("null" if v is None else repr(v) for v in z) + "]"
    src = f"-- INPUT x:number, y:number --\n-- OUTPUT r --\nz = {z_src}\nr = {source(tree)}\nreturn [r]\n"
    try:
        got = ("ok", run_csv(src, csv, key="none")[0][0])
    except DPLangError as exc:
        got = ("error", exc.kind)
    assert got[0] == expected[0], (source(tree), got, expected)
    if got[0] == "ok":
        assert same(got[1], expected[1]), (source(tree), got, expected)
    else:
        assert got[1] == expected[1]
