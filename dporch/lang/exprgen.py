"""Expression code generation: DPLang expression -> Python expression text.

Operators inline their float fast path (``type(a) is float``) and call :mod:`.ops` otherwise;
Python's truthiness equals DPLang's (§4.2) so conditions need no conversion. Sub-expressions
used twice are bound once with ``:=`` temps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from . import ast as A
from .analysis import SERIES_FUNCS, const_value
from .builtins import BUILTINS
from .errors import DPLangError
from .indicator_calls import make_state
from .indicators import INDICATORS
from .kinds import ANY, ARR, NUM, KindOf
from .hoist import Hoister
from .marks import mark
from .rt import MAX_SLICE
from .scopes import Env, LambdaEnv, Names, PackageInfo, RowEnv
from .values import FunctionValue

__all__ = ["ExprGen", "Site"]

#: Nodes whose code can raise (an operator, a call, an index, a read of an unset variable).
_MARKED = frozenset(("Binary", "Unary", "Logic", "Call", "Index", "Slice", "Name", "Member",
                     "ArrayLit"))
_FLAT = 8  # chains longer than this are generated flat (flat_chain)
_ARITH = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "^": "pow"}
_CMP = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


@dataclass
class Site:
    """An indicator call site whose state is preallocated per stream (constant parameters)."""

    name: str
    params: tuple
    sources: tuple[str, ...]


def _is_literal(code: str) -> bool:
    if code in ("None", "True", "False"):
        return True
    try:
        float(code)
    except ValueError:
        return code[:1] in ("'", '"')
    return True


def _is_float_literal(code: str) -> bool:
    if code in ("None", "True", "False") or code[:1] in ("'", '"'):
        return False
    try:
        float(code)
    except ValueError:
        return False
    return True


@dataclass(eq=False)
class _Code(A.Expr):
    """Already generated code standing for an operand (the running value of a flat chain)."""

    code: str


def float_code(x: float) -> str:
    """Python source for a number: ``repr`` except for the infinities a literal can overflow to
    (``1e999``), whose repr ``inf`` is not a Python literal."""
    if x != x:
        return "(1e999 - 1e999)"
    if x in (math.inf, -math.inf):
        return "1e999" if x > 0 else "-1e999"
    return repr(x)


def _tuple(items: list[str]) -> str:
    return "(" + "".join(i + ", " for i in items) + ")"


class ExprGen:
    """Generates expressions for one module (a script or a package)."""

    def __init__(self, names: Names, consts: dict[str, Any], file: str, *,
                 packages: dict[str, PackageInfo], own: PackageInfo | None = None,
                 arg_names: list[str] | None = None, kinds: KindOf | None = None):
        self.names = names
        self.kinds = kinds
        self.consts = consts
        self.file = file
        self.packages = packages
        self.own = own
        self.arg_names = arg_names
        self.env: Env = None  # type: ignore[assignment]
        self.error_scope = False
        self.sites: list[Site] = []
        self._temps = 0
        self._lazy = 0
        self._uid = 0
        self.hoist: Hoister | None = None  # keeps the generated code shallow (see .hoist)
        self.em: Any = None  # the emitter: its current statement position, for hoisted code

    # -- helpers --------------------------------------------------------------------------------
    def temp(self) -> str:
        self._temps += 1
        return f"_t{self._temps}"

    def bind(self, code: str) -> tuple[str, str]:
        """(first use, later uses): a walrus temp unless ``code`` is a name or a literal."""
        if code.isidentifier() or _is_literal(code):
            return code, code
        t = self.temp()
        return f"({t} := {code})", t

    def const(self, key: str, value: Any) -> str:
        py = self.names.get("K", key)
        self.consts[py] = value
        return py

    def read(self, name: str) -> str:
        """A variable read that raises UndefinedVariable when it is unset (§6.3)."""
        env = self.env
        if not (isinstance(env, LambdaEnv) and name in env.params):
            special = self.special_name(name)
            if special is not None:
                return special
        r = env.raw(name)
        if r is None:
            return f"_undefined_var({name!r})"
        py, definite = r
        if definite:
            return py
        if isinstance(env, LambdaEnv):
            return f"({py} if {py} is not _UNSET else _chk({env.dynamic(name)}, {name!r}))"
        return f"_chk({py}, {name!r})"

    def special_name(self, name: str) -> str | None:
        if not self.env.in_row:
            return None
        if name == "_index":
            return "float(S.index)"
        if name == "_total":
            return "S.total"
        if isinstance(self.env.root, RowEnv):
            if name == "_args":
                return "list(R)"
            if name == "_args_names":
                return repr(list(self.arg_names or []))
            if self.error_scope and name == "__error__":
                return "_err.message"
        return None

    def kind(self, e: A.Expr) -> frozenset[str]:
        """Static kinds of ``e`` (row scope only; lambdas and packages are not modelled)."""
        if self.kinds is None or not isinstance(self.env, RowEnv):
            return ANY
        return self.kinds(e)

    # -- dispatch -------------------------------------------------------------------------------
    def expr(self, e: A.Expr) -> str:
        nodes = A.spine(e)
        if len(nodes) > _FLAT:
            code = self.flat_chain(nodes)
        else:
            code = getattr(self, "x_" + type(e).__name__)(e)
        if type(e).__name__ in _MARKED and not (code.isidentifier() or _is_literal(code)):
            code = mark(code, e.line, e.col)  # a runtime error here points at e
        if self.hoist is not None:
            code = self.hoist(code, self.em.where if self.em is not None else None)
        return code

    def flat_chain(self, nodes: list[A.Expr]) -> str:
        """A long chain (see :func:`~dporch.lang.ast.spine`, outermost first) as one flat
        tuple of steps ``(t := inner, t := t op b, ...)[-1]``: evaluated in the same order,
        each step as the node alone would be, without nesting the Python code."""
        t = self.temp()
        steps = [f"({t} := {self.expr(nodes[-1])})"]
        for node in reversed(nodes[:-1]):
            if isinstance(node, A.Binary):
                code = self._binary(node.op, t, self.expr(node.right), self.kind(node.left),
                                    self.kind(node.right))
            elif isinstance(node, A.Logic):
                code = self._logic(node.op, t, self.expr(node.right), ARR in self.kind(node.left),
                                   ARR in self.kind(node.right))
            else:
                code = self.x_Call(replace(node, args=[_Code(node.line, node.col, t)] + node.args[1:]))
            if not _is_literal(code):
                code = mark(code, node.line, node.col)
            if self.hoist is not None:
                code = self.hoist(code, self.em.where if self.em is not None else None)
            steps.append(f"({t} := {code})")
        return "(" + ", ".join(steps) + ")[-1]"

    def x__Code(self, e: "_Code") -> str:
        return e.code

    def x_Num(self, e: A.Num) -> str:
        return float_code(e.value)

    def x_Str(self, e: A.Str) -> str:
        return repr(e.value)

    def x_Bool(self, e: A.Bool) -> str:
        return "True" if e.value else "False"

    def x_Null(self, e: A.Null) -> str:
        return "None"

    def x_Name(self, e: A.Name) -> str:
        return self.read(e.id)

    def x_FStr(self, e: A.FStr) -> str:
        pieces = [repr(p) if isinstance(p, str) else f"_display({self.expr(p)})"
                  for p in e.parts if not (isinstance(p, str) and not p)]
        return "(" + " + ".join(pieces) + ")" if pieces else "''"

    def elem(self, x: A.Expr) -> str:
        if isinstance(x, A.Spread):
            return "*" + mark(f"_spread({self.expr(x.value)})", x.line, x.col)
        return self.expr(x)

    def x_ArrayLit(self, e: A.ArrayLit) -> str:
        return "[" + ", ".join(self.elem(x) for x in e.elems) + "]"

    def x_Unary(self, e: A.Unary) -> str:
        k = self.kind(e.operand)
        code = self.expr(e.operand)
        if e.op == "-":
            if _is_float_literal(code):
                return float_code(-float(code))
            if k <= {NUM}:
                return f"(-{code})"
            first, later = self.bind(code)
            return f"(-{later} if type({first}) is float else _ops.neg({later}))"
        if ARR not in k:
            return f"(not {code})"
        first, later = self.bind(code)
        return f"(_ops.not_({later}) if type({first}) is list else not {later})"

    def x_Binary(self, e: A.Binary) -> str:
        return self._binary(e.op, self.expr(e.left), self.expr(e.right), self.kind(e.left),
                            self.kind(e.right))

    def _binary(self, op: str, a: str, b: str, ka: frozenset[str], kb: frozenset[str]) -> str:
        """``a op b`` for operand codes a, b of static kinds ka, kb."""
        name = _ARITH[op]
        if op == "^" or (_is_float_literal(a) and _is_float_literal(b)):
            return f"_ops.{name}({a}, {b})"
        a_num = _is_float_literal(a) or ka <= {NUM}
        b_num = _is_float_literal(b) or kb <= {NUM}
        zero_check = op in "/%" and not (_is_float_literal(b) and float(b) != 0)
        # Operands used in a check are bound to temps (first use in the condition); the others
        # appear once in whichever branch runs.
        fa, la = self.bind(a) if not a_num else (a, a)
        fb, lb = self.bind(b) if not b_num or zero_check else (b, b)
        checks = []
        if not a_num:
            checks.append(f"(type({fa}) is float)")
        if not b_num or fb != lb:  # a bound operand is first evaluated in the condition
            checks.append(f"(type({fb}) is float)")
        cond = " & ".join(checks)
        if len(checks) == 2:
            cond = f"({cond})"
        if zero_check:
            cond = f"{cond} and {lb}" if cond else lb
        if op == "%":
            fast = f"_fmod({la}, {lb})"
        else:
            fast = f"({la} {op} {lb})"
        if not cond:
            return f"({fa} {op} {fb})" if op != "%" else f"_fmod({fa}, {fb})"
        return f"({fast} if {cond} else _ops.{name}({la}, {lb}))"

    def _compare(self, op: str, a: tuple[str, str], b: tuple[str, str],
                 ka: frozenset[str] = ANY, kb: frozenset[str] = ANY) -> str:
        (fa, la), (fb, lb) = a, b
        if op in ("==", "!="):
            neg = op == "!="
            if la == "None" or lb == "None":
                other, other_later = (fb, lb) if la == "None" else (fa, la)
                if _is_literal(other_later):  # null compared with a literal: a constant
                    return repr((other_later == "None") != neg)
                return f"({other} {'is not' if neg else 'is'} None)"
            if la[:1] in ("'", '"') or lb[:1] in ("'", '"'):
                # str == x in Python is exactly DPLang equality when one side is a string.
                return f"({fa} {op} {fb})"
            return f"({'not ' if neg else ''}_eq({fa}, {fb}))"
        # A check is skipped for literal numbers and for *unbound* operands known to be numbers
        # (a bound operand's first use must stay in the condition).
        checks = [f"(type({x}) is float)" for x, lit, k in ((fa, la, ka), (fb, lb, kb))
                  if not (_is_float_literal(lit) or (k <= {NUM} and x == lit))]
        if not checks:
            if _is_float_literal(la) and _is_float_literal(lb):
                return f"_ops.{_CMP[op]}({fa}, {fb})"
            return f"({fa} {op} {fb})"
        cond = checks[0] if len(checks) == 1 else f"({checks[0]} & {checks[1]})"
        return f"(({la} {op} {lb}) if {cond} else _ops.{_CMP[op]}({la}, {lb}))"

    def x_Compare(self, e: A.Compare) -> str:
        operands = [self.bind(self.expr(x)) for x in e.operands]
        kinds = [self.kind(x) for x in e.operands]
        # Chained comparisons are (a op b) and (b op c): the middle operand is bound once and
        # reused (§5.3 [REC]); the first pair evaluates it, later pairs read the temp.
        parts = []
        for i, op in enumerate(e.ops):
            left = operands[i] if i == 0 else (operands[i][1], operands[i][1])
            code = self._compare(op, left, operands[i + 1], kinds[i], kinds[i + 1])
            line, col = e.op_pos[i] if i < len(e.op_pos) else (e.line, e.col)
            parts.append(code if _is_literal(code) else mark(code, line, col))
        may_array = any(ARR in k for k in kinds)
        if not may_array and len(parts) > 1:  # (a < b) and (b < c) and ..., flat however long
            return "(True if (" + " and ".join(parts) + ") else False)"
        if len(parts) <= _FLAT:
            result = parts[0]
            for p in parts[1:]:
                result = self._logic("and", result, p, may_array, may_array)
            return result
        t = self.temp()
        steps = [f"({t} := {parts[0]})"] + [f"({t} := {self._logic('and', t, p)})" for p in parts[1:]]
        return "(" + ", ".join(steps) + ")[-1]"

    def _logic(self, op: str, a: str, b: str, a_array: bool = True, b_array: bool = True) -> str:
        if not a_array and not b_array:
            return f"(True if ({a} {op} {b}) else False)"
        if not a_array:
            if op == "and":
                return f"(_ops.truth_each({b}) if {a} else False)"
            return f"(True if {a} else _ops.truth_each({b}))"
        fa, la = self.bind(a)
        if op == "and":
            return (f"(_ops.and_arrays({la}, {b}) if type({fa}) is list else "
                    f"(_ops.truth_each({b}) if {la} else False))")
        return (f"(_ops.or_arrays({la}, {b}) if type({fa}) is list else "
                f"(True if {la} else _ops.truth_each({b})))")

    def x_Logic(self, e: A.Logic) -> str:
        return self._logic(e.op, self.expr(e.left), self.expr(e.right),
                           ARR in self.kind(e.left), ARR in self.kind(e.right))

    def x_Ternary(self, e: A.Ternary) -> str:
        arms = []
        node: A.Expr = e
        while isinstance(node, A.Ternary):  # a ? 1 : b ? 2 : c, flat
            arms.append((node.cond, node.then))
            node = node.other
        return self._choice(arms, node)

    def x_When(self, e: A.When) -> str:
        return self._choice(list(e.arms), e.other)

    def _choice(self, arms: list[tuple[A.Expr, A.Expr]], other: A.Expr | None) -> str:
        """``(r1) if (c1) else (r2) if (c2) else (d)``: Python's conditional expression is
        right-associative, so any number of arms stays flat."""
        parts = [f"({self.expr(res)}) if ({self.expr(cond)}) else " for cond, res in arms]
        return "(" + "".join(parts) + ("(None)" if other is None else f"({self.expr(other)})") + ")"

    def x_LambdaExpr(self, e: A.LambdaExpr) -> str:
        self._uid += 1
        uid = self._uid
        params = {p: self.names.get("p", f"{uid}:{p}") for p in e.params}
        outer = self.env
        inner = LambdaEnv(outer, params, self.names, uid)
        self.env = inner
        try:
            body = self.expr(e.body)
        finally:
            self.env = outer
        defaults = [f"{cvar}={default}" for cvar, default, _ in inner.captures.values()]
        args = ", ".join(list(params.values()) + defaults)
        return f"_Lambda(lambda {args}: {body}, {tuple(e.params)!r})"

    def x_Member(self, e: A.Member) -> str:
        if self.error_scope and e.pkg == "_error":
            return f"_err.{e.name}"
        pkg = self.package(e.pkg)
        if pkg is not None:
            if e.name in pkg.variables:
                return pkg.variables[e.name]
            if e.name in pkg.functions:
                return self.const(f"fn:{pkg.qual}.{e.name}", FunctionValue(f"{pkg.qual}.{e.name}"))
        return f"_undefined_var({(e.pkg + '.' + e.name)!r})"

    def package(self, qual: str | None) -> PackageInfo | None:
        if self.own is not None and qual in (self.own.qual, self.own.name):
            return self.own
        return self.packages.get(qual) if qual else None

    # -- time series (§8) and indexing (§6.9) ---------------------------------------------------
    def _series_target(self, name: str) -> tuple[str, str, str, str | None]:
        """(current value first use, later use, history buffer expr, look-ahead column) for
        a time-series access on ``name``."""
        env = self.env
        cur = env.current(name)
        first, later = self.bind(cur)
        return first, later, self.buffer(name), self.ahead_col(name)

    def buffer(self, name: str) -> str:
        src = self.env.source(name)
        if src is None:
            return "None"
        root = self.env.root
        if isinstance(root, RowEnv) and src == repr(name):
            return root.buffers.get(name, "None")
        return f"_hbuf(S, {src})"

    def ahead_col(self, name: str) -> str | None:
        root = self.env.root
        if isinstance(root, RowEnv) and name in root.schema and self.env.source(name) == repr(name):
            return str(root.schema[name])
        return None

    def x_Index(self, e: A.Index) -> str:
        if not (isinstance(e.base, A.Name) and self.env.in_row):
            return f"_array_index({self.expr(e.base)}, {self.expr(e.index)})"
        name = e.base.id
        cur_code = self.env.current(name)
        may_array = cur_code != "None" and ARR in self.kind(e.base)
        first, cur = self.bind(cur_code) if may_array else (cur_code, cur_code)
        buf, col = self.buffer(name), self.ahead_col(name)
        k = const_value(e.index)
        if k is not None and not math.isfinite(k):
            k = None  # x[1e999]: the runtime TypeError of a non-finite offset
        head = ""
        if k is not None:
            ki = int(k)
            if ki == 0:
                series = cur
            elif ki < 0:
                series = "None" if buf == "None" else (
                    f"({buf}[{ki}] if len({buf}) >= {-ki} else None)" if buf.isidentifier()
                    else f"_hist_at({buf}, {ki})")
            else:
                series = "None" if col is None else f"S.ahead({col}, {ki})"
            index = repr(float(k))
        else:
            head, index = self.bind(self.expr(e.index))
            ahead = "None" if col is None else col
            series = f"_ts_at({buf}, _index_number({index}, 'offset'), {cur}, S, {ahead})"
        body = series if not may_array else \
            f"(_array_index({cur}, {index}) if type({first}) is list else {series})"
        return body if not head or head == index else f"({head}, {body})[-1]"

    def x_Slice(self, e: A.Slice) -> str:
        if not (isinstance(e.base, A.Name) and self.env.in_row):
            s = "_OMIT" if e.start is None else self.expr(e.start)
            t = "_OMIT" if e.end is None else self.expr(e.end)
            return f"_array_slice({self.expr(e.base)}, {s}, {t})"
        first, cur, buf, col = self._series_target(e.base.id)
        s = "None" if e.start is None else self.expr(e.start)
        t = "None" if e.end is None else self.expr(e.end)
        ka, kb = const_value(e.start), const_value(e.end)
        ka = ka if ka is not None and math.isfinite(ka) else None
        kb = kb if kb is not None and math.isfinite(kb) else None
        if e.zero_alias:
            a, b = "None", "0"
        else:
            a = "None" if e.start is None else (
                str(int(ka)) if ka is not None else f"_index_number({s}, 'slice offset')")
            b = "-1" if e.end is None else (
                str(int(kb)) if kb is not None else f"_index_number({t}, 'slice offset')")
        too_large = a.lstrip("-").isdigit() and b.lstrip("-").isdigit() and \
            int(b) - int(a) + 1 > MAX_SLICE
        if too_large:  # an error when the time-series slice is evaluated, as for computed bounds
            series = f"_slice_too_large({a}, {b})"
            if cur == "None":
                return series
            return (f"(_array_slice({cur}, {s if e.start is not None else '_OMIT'}, "
                    f"{t if e.end is not None else '_OMIT'}) if type({first}) is list else {series})")
        if a.lstrip("-").isdigit() and int(a) < 0 and b in ("0", "-1") and buf.isidentifier() \
                and buf != "None":
            series = self._tail_slice(e.base.id, buf, -int(a), cur if b == "0" else None)
            if cur == "None":
                return series
            return (f"(_array_slice({cur}, {s if e.start is not None else '_OMIT'}, "
                    f"{t if e.end is not None else '_OMIT'}) if type({first}) is list else {series})")
        ahead = "None" if col is None else col
        series = f"_hist_slice({buf}, {a}, {b}, {cur}, S, {ahead})"
        if cur == "None":
            return series
        # Bounds are evaluated inside whichever branch runs (each once).
        arr = f"_array_slice({cur}, {s if e.start is not None else '_OMIT'}, {t if e.end is not None else '_OMIT'})"
        return f"({arr} if type({first}) is list else {series})"

    def _tail_slice(self, name: str, buf: str, n: int, cur: str | None) -> str:
        """``name[-n:0]`` / ``name[-n:-1]``: the last n records (and the current value)."""
        root = self.env.root
        lookback = root.lookback.get(name) if isinstance(root, RowEnv) else None
        tail = f"_hist_tail({buf}, {n}, {cur if cur is not None else '_NO_CURRENT'})"
        if lookback == n:
            fast = f"[*{buf}, {cur}]" if cur is not None else f"list({buf})"
            return f"({fast} if len({buf}) == {n} else {tail})"
        return tail

    # -- calls ------------------------------------------------------------------------------------
    def args_code(self, call: A.Call, kwnames: dict[str, str] | None = None) -> str:
        parts = [self.elem(a) for a in call.args]
        parts += [f"{(kwnames or {}).get(k, k)}={self.expr(v)}" for k, v in call.kwargs]
        return ", ".join(parts)

    def x_Call(self, e: A.Call) -> str:
        if e.pipe_bare:
            return f"_pipe_value({self.read(e.name)}, {self.expr(e.args[0])})"
        if e.pkg is not None:
            pkg = self.package(e.pkg)
            if pkg is None or e.name not in pkg.functions:
                return f"_undefined_fn({(e.pkg + '.' + e.name)!r})"
            return self.pkgfn_call(pkg, e)
        # A variable holding a lambda shadows builtins; other values do not (§6.7).
        r = self.env.raw(e.name)
        fallback = self.function_call(e, checked=r is not None)
        if r is None:
            return fallback if fallback is not None else f"_undefined_fn({e.name!r})"
        args = self.args_code(e)
        value = self.env.value(e.name) if isinstance(self.env, LambdaEnv) else r[0]
        f, l = self.bind(value)
        lam = f"_call_value({l}, {e.name!r}{', ' if args else ''}{args})"
        if fallback is None:
            fallback = f"_undefined_fn({e.name!r})"
        return f"({lam} if type({f}) is _Lambda else {fallback})"

    def function_call(self, e: A.Call, checked: bool = False) -> str | None:
        """A call of a sibling package function, a special form or a builtin; None if unknown.
        ``checked``: the static check did not verify the arity (a variable of the same name
        might have held a lambda), so check it when the call runs."""
        if self.own is not None and e.name in self.own.functions:
            return self.pkgfn_call(self.own, e)
        if e.name in INDICATORS:
            if checked:
                return f"_ind_call({e.name!r}, {self.args_code(e)})"
            return self.indicator_call(e)
        if e.name in SERIES_FUNCS:
            return self.series_call(e)
        if e.name == "POSITION":
            return self.position_call(e)
        b = BUILTINS.get(e.name)
        if b is None:
            return None
        args = self.args_code(e)
        if checked or any(isinstance(a, A.Spread) for a in e.args):
            return f"_call_checked({self.const('builtin:' + e.name, b)}, {args})"
        return f"{self.const('fn:' + e.name, b.fn)}({args})"

    def pkgfn_call(self, pkg: PackageInfo, e: A.Call) -> str:
        fdef = pkg.functions[e.name]
        params = [p.name for p in fdef.params]
        kwnames = {p: f"a{i}" for i, p in enumerate(params)}
        srcs = ["None"] * len(params)
        if self.env.in_row and not any(isinstance(a, A.Spread) for a in e.args):
            for i, a in enumerate(e.args[: len(params)]):
                if isinstance(a, A.Name):
                    srcs[i] = self.env.source(a.id) or "None"
            for k, v in e.kwargs:
                if k in params and isinstance(v, A.Name):
                    srcs[params.index(k)] = self.env.source(v.id) or "None"
        stream = "S" if self.env.in_row else "None"
        args = self.args_code(e, kwnames)
        if any(isinstance(a, A.Spread) for a in e.args):
            lo = sum(1 for p in fdef.params if p.default is None)
            label = f"{pkg.qual}.{e.name}"
            return (f"_call_pkg({pkg.func_py[e.name]}, {label!r}, {lo}, {len(params)}, {stream}, "
                    f"{_tuple(srcs)}{', ' if args else ''}{args})")
        return f"{pkg.func_py[e.name]}({stream}, {_tuple(srcs)}{', ' if args else ''}{args})"

    def position_call(self, e: A.Call) -> str:
        """POSITION(): the backtest's holdings, else the [old] rule (§13.6): the row variable
        ``position`` if assigned, else the current input column ``position`` (an empty cell is
        null), else 0."""
        env = self.env
        if isinstance(env, RowEnv):
            column = env.input_value("position") if "position" in env.schema else "0.0"
            r = env.raw("position") if "position" in env.assigned else None
            if r is None:
                fallback = column
            elif r[1]:
                fallback = r[0]
            else:
                fallback = f"({r[0]} if {r[0]} is not _UNSET else {column})"
        else:  # lambdas and package functions: their binding of position, else 0
            cur = env.current("position") if (env.raw("position") or isinstance(env.root, RowEnv)) else "None"
            fallback = f"_nvl0({cur})"
        if not env.in_row:
            return fallback
        return f"(S.position() if S.position is not None else {fallback})"

    def series_call(self, e: A.Call) -> str:
        """ref/offset/past/window (§8.8): time-series access on the series they name."""
        if not self.env.in_row:
            return f"_series_outside({e.name!r})"
        first = e.args[0]
        if isinstance(first, A.Name):
            name = first.id
            cur = self.env.current(name)
            buf = self.buffer(name)
        else:
            name = first.value  # type: ignore[union-attr]
            root = self.env.root
            cur = root.current(name) if isinstance(root, RowEnv) else "None"
            buf = root.buffers.get(name, "None") if isinstance(root, RowEnv) else "None"
        n = self.expr(e.args[1])
        return f"_series_func({e.name!r}, {buf}, {n}, {cur})"

    def indicator_call(self, e: A.Call) -> str:
        """§13.5 argument convention: arrays are series; bare names are their whole history
        (per-call-site incremental state, peeked now and committed at row end); other
        expressions are one-element series."""
        info = INDICATORS[e.name]
        if e.kwargs or any(isinstance(a, A.Spread) for a in e.args):
            return f"_ind_call({e.name!r}, {self.args_code(e)})"
        series, params = e.args[: info.n_series], e.args[info.n_series:]
        pcodes = [self.expr(p) for p in params]
        sources: list[str | None] = []
        currents: list[str] = []
        for a in series:
            src = self.env.source(a.id) if isinstance(a, A.Name) and self.env.in_row else None
            sources.append(src)
            currents.append(self.env.current(a.id) if src is not None else self.expr(a))
        ptuple = _tuple(pcodes)
        if any(s is None for s in sources):
            return f"_ind_values({e.name!r}, {_tuple(currents)}, {ptuple})"
        static = [const_value(p) for p in params]
        if all(v is not None for v in static):
            try:
                make_state(e.name, tuple(static))
            except DPLangError as exc:  # e.g. MA(x, 0): an error when (and only if) evaluated
                return f"_ind_invalid({exc.message!r}, {_tuple(currents)})"
        root = self.env.root
        if (isinstance(root, RowEnv) and all(s == repr(a.id) for s, a in zip(sources, series))
                and all(v is not None for v in static)):
            self.sites.append(Site(e.name, tuple(static), tuple(a.id for a in series)))
            state = f"_I[{len(self.sites) - 1}]"
        else:
            self._lazy += 1
            state = f"S.lazy_state({f'{self.file}#{self._lazy}'!r}, {e.name!r}, {ptuple}, {_tuple(sources)})"
        if len(currents) == 1:
            k = self.kind(series[0])
            if ARR not in k and k <= {NUM, "null"}:
                return f"{state}.peek({currents[0]})"  # already a number or null
            f, l = self.bind(currents[0])
            if ARR not in k:
                return f"{state}.peek({l} if type({f}) is float else _num({l}))"
            return (f"(_ind_values({e.name!r}, ({l},), {ptuple}) if type({f}) is list else "
                    f"{state}.peek({l} if type({l}) is float else _num({l})))")
        t = self.temp()
        return (f"(_ind_values({e.name!r}, {t}, {ptuple}) if _any_list({t} := {_tuple(currents)}) "
                f"else {state}.peek(*_nums({t})))")
