"""Static value kinds: a sound over-approximation of what each expression can evaluate to.

The code generator uses it to drop checks that cannot matter: an indicator result is a number
or null, so ``ma5 > ma20 and rsi < 70`` compiles to plain comparisons and Python's ``and``
instead of the general array-broadcasting logic. Anything not modelled is ``ANY``.
"""

from __future__ import annotations

from typing import Any, Callable

from . import ast as A
from .analysis import SERIES_FUNCS
from .indicators import INDICATORS

__all__ = ["NUM", "NULL", "BOOL", "STR", "DEC", "ARR", "FN", "ANY", "SCALAR", "NUMERIC",
           "input_kinds", "variable_kinds", "KindOf", "value_kind"]

NUM, NULL, BOOL, STR, DEC, ARR, FN = "num", "null", "bool", "str", "dec", "arr", "fn"
ANY = frozenset((NUM, NULL, BOOL, STR, DEC, ARR, FN))
SCALAR = ANY - {ARR}
NUMERIC = frozenset((NUM, NULL))

_TYPE_KINDS = {
    "number": frozenset((NUM, NULL)), "decimal": frozenset((DEC, NULL)),
    "string": frozenset((STR, NULL)), "bool": frozenset((BOOL, NULL)),
    "array": frozenset((ARR, NULL)), "null": frozenset((NULL,)),
    None: frozenset((NUM, BOOL, STR, NULL)),  # untyped CSV cells are inferred as these
}

# Result kinds of builtins whose result kind does not depend on the arguments' kinds.
_BUILTIN_RESULTS: dict[str, frozenset[str]] = {
    **{n: frozenset((STR,)) for n in ("BUY", "SELL", "CLOSE", "now", "today", "string", "format_time",
                                       "parse_time", "time_add", "time_sub", "from_timestamp")},
    **{n: frozenset((NUM,)) for n in ("length", "len", "count")},
    **{n: frozenset((BOOL,)) for n in ("is_null", "typeis")},
    **{n: frozenset((ARR,)) for n in ("concat", "reverse", "sort", "unique", "map", "filter", "Array",
                                       "Range")},
    "POSITION": frozenset((NUM, NULL, BOOL, STR, DEC)),
}


def value_kind(v: Any) -> frozenset[str]:
    """The kind of a known value (package constants)."""
    from decimal import Decimal
    t = type(v)
    k = {float: NUM, bool: BOOL, str: STR, list: ARR, Decimal: DEC}.get(t)
    if v is None:
        return frozenset((NULL,))
    return frozenset((k,)) if k else ANY


def input_kinds(types: dict[str, str | None], typed: bool) -> dict[str, frozenset[str]]:
    """Kinds of input columns: exact when the reader guarantees the INPUT types (CSV), else any
    (JSON values keep their own type, §9.2)."""
    if not typed:
        return {n: ANY for n in types}
    return {n: _TYPE_KINDS.get(t, ANY) for n, t in types.items()}


class KindOf:
    """Computes kinds of expressions given the kinds of names (``lookup``)."""

    def __init__(self, lookup: Callable[[str], frozenset[str]],
                 member: Callable[[str, str], frozenset[str]] | None = None,
                 history: Callable[[str], frozenset[str]] | None = None):
        self.lookup = lookup  # kinds of a name's current value
        self.history = history or (lambda n: ANY)  # kinds of a name's past records (§8.1)
        self.member = member or (lambda p, n: ANY)
        self._memo: dict[int, frozenset[str]] = {}

    def __call__(self, e: A.Expr) -> frozenset[str]:
        key = id(e)
        k = self._memo.get(key)
        if k is None:
            k = self._memo[key] = self._kind(e)
        return k

    def _kind(self, e: A.Expr) -> frozenset[str]:
        if isinstance(e, A.Num):
            return frozenset((NUM,))
        if isinstance(e, (A.Str, A.FStr)):
            return frozenset((STR,))
        if isinstance(e, A.Bool):
            return frozenset((BOOL,))
        if isinstance(e, A.Null):
            return frozenset((NULL,))
        if isinstance(e, (A.ArrayLit, A.Slice)):
            return frozenset((ARR,))
        if isinstance(e, A.Name):
            return self.lookup(e.id)
        if isinstance(e, A.Index):
            if isinstance(e.base, A.Name):
                base = self.lookup(e.base.id)
                return ANY if ARR in base else base | self.history(e.base.id) | {NULL}
            return ANY
        if isinstance(e, A.Unary):
            k = self(e.operand)
            if e.op == "not":
                return frozenset((BOOL, ARR)) if ARR in k else frozenset((BOOL,))
            return frozenset(k & {NUM, NULL, DEC, ARR})
        if isinstance(e, A.Binary):
            nodes = A.spine(e)  # a chain of any length, folded left to right
            k = self(nodes[-1].left)  # type: ignore[attr-defined]
            for node in reversed(nodes):
                k = self._memo[id(node)] = self._arith(node.op, k, self(node.right))  # type: ignore[attr-defined]
            return k
        if isinstance(e, A.Compare):
            ks = [self(x) for x in e.operands]
            out = {BOOL}
            if any(ARR in k for k in ks):
                out.add(ARR)
            ordering = any(op not in ("==", "!=") for op in e.ops)
            if ordering and any(NULL in k for k in ks) and len(e.ops) == 1:
                out.add(NULL)
            return frozenset(out)
        if isinstance(e, A.Logic):
            nodes = A.spine(e)
            array = ARR in self(nodes[-1].left)  # type: ignore[attr-defined]
            for node in reversed(nodes):
                array = array or ARR in self(node.right)  # type: ignore[attr-defined]
                self._memo[id(node)] = frozenset((BOOL, ARR)) if array else frozenset((BOOL,))
            return self._memo[id(e)]
        if isinstance(e, A.Ternary):
            return self(e.then) | self(e.other)
        if isinstance(e, A.When):
            out = frozenset().union(*(self(r) for _, r in e.arms))
            return out | (self(e.other) if e.other is not None else {NULL})
        if isinstance(e, A.LambdaExpr):
            return frozenset((FN,))
        if isinstance(e, A.Member):
            return self.member(e.pkg, e.name)
        if isinstance(e, A.Call):
            return self._call(e)
        return ANY

    def _call(self, e: A.Call) -> frozenset[str]:
        if e.pkg is not None or e.pipe_bare:
            return ANY
        if self.lookup(e.name) & {FN} and e.name not in INDICATORS:
            return ANY  # a variable that may hold a lambda shadows the builtin
        info = INDICATORS.get(e.name)
        if info is not None:
            return frozenset((ARR,)) if info.n_outputs == 3 else NUMERIC
        if e.name in SERIES_FUNCS:
            return ANY
        return _BUILTIN_RESULTS.get(e.name, ANY)

    @staticmethod
    def _arith(op: str, a: frozenset[str], b: frozenset[str]) -> frozenset[str]:
        out: set[str] = set()
        if NULL in a or NULL in b:
            out.add(NULL)
        if ARR in a or ARR in b:
            out.add(ARR)
        numeric = {NUM, DEC}
        if a & numeric and b & numeric:
            out.add(NUM)
            if DEC in a or DEC in b:
                out.add(DEC)
        if op == "+" and STR in a and STR in b:
            out.add(STR)
        return frozenset(out)


def variable_kinds(body: list[A.Stmt], base: dict[str, frozenset[str]],
                   make: Callable[[Callable[[str], frozenset[str]]], KindOf]) -> dict[str, frozenset[str]]:
    """Kinds of script variables: the union over all their assignments (flow-insensitive),
    to a fixed point. ``base`` holds the input columns' kinds."""
    assigns: list[tuple[str, A.Expr | None, A.Expr | None]] = []  # name, value, indicator-triple
    for s in body:
        for node in A.walk(s):
            if isinstance(node, A.Assign):
                assigns.append((node.name, node.value, None))
            elif isinstance(node, A.Destructure):
                for _, n in node.patterns:
                    if n is not None:
                        assigns.append((n, None, node.value))
    kinds: dict[str, frozenset[str]] = {n: base.get(n, frozenset()) for n, _, _ in assigns}

    def lookup(name: str) -> frozenset[str]:
        if name in kinds:
            return kinds[name]
        return base.get(name, ANY)

    for _ in range(20):
        changed = False
        k_of = make(lookup)
        for name, value, triple in assigns:
            if value is not None:
                new = kinds[name] | k_of(value)
            elif isinstance(triple, A.Call) and triple.pkg is None and triple.name in INDICATORS \
                    and INDICATORS[triple.name].n_outputs == 3:
                new = kinds[name] | NUMERIC
            else:
                new = ANY
            if new != kinds[name]:
                kinds[name] = new
                changed = True
        if not changed:
            return kinds
    return {n: ANY for n in kinds}
