"""The column form (docs/architecture.md §2): a script compiled into whole-column operations over all
rows of all streams at once (numpy), identical in output to the row form.

Rows are laid out grouped by stream; ``x[-k]`` is a shift within each group, indicators run per
group in their column form (TA-Lib, bit-identical to the row states), ``a ? b : c`` and ``if``
evaluate their branches under row masks, ``return`` retires rows. Whatever the column form does
not cover raises :class:`~.vector_values.Unsupported` -- at compile time (the reason is shown by
``dporch run --explain``) or while evaluating (a zero divisor, a type error): the caller then
runs the row form, which gives the exact result or error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import ast as A
from .analysis import assigned_names, const_value
from .errors import DPLangError
from .limits import headroom
from .indicators import INDICATORS
from .program import Program
from .vector_values import (Bool, Col, Num, Str, Unsupported, arith, compare, const, equal, merge,
                            neg, null_num, truthy)

__all__ = ["Frame", "ColumnProgram", "compile_columns", "explain"]

_SIGNALS = {"BUY": "买入", "SELL": "卖出", "CLOSE": "卖出"}
_HOLD = "持有"
_AGGREGATES = ("sum", "mean", "max", "min")
_MAX_WINDOW = 256  # widest slice an aggregate evaluates as shifted columns


@dataclass
class Frame:
    """All rows of a batch, grouped by stream: ``groups`` are (start, end) slices."""

    n: int
    groups: list[tuple[int, int]]
    inputs: dict[str, Col]
    pos: np.ndarray = field(init=False)
    size: np.ndarray = field(init=False)
    vars: dict[str, tuple[Col, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pos = np.empty(self.n, dtype=np.int64)
        self.size = np.empty(self.n, dtype=np.int64)
        for s, e in self.groups:
            self.pos[s:e] = np.arange(e - s)
            self.size[s:e] = e - s

    def shift(self, c: Col, k: int) -> Col:
        """Row ``i`` gets row ``i + k`` of the same group, else null."""
        n = self.n
        k = max(-n, min(n, k))  # a shift of n or more rows is null everywhere (and fits int64)
        valid = self.pos >= -k if k < 0 else self.pos + k < self.size
        idx = np.clip(np.arange(n) + k, 0, max(n - 1, 0))
        out = c.take(idx)
        null = ~valid if out.null is None else (out.null | ~valid)
        out.null = null
        return out


Evaluator = Callable[[Frame, np.ndarray], Col]


@dataclass
class ColumnProgram:
    """A script compiled to the column form. ``run(frame)`` -> (emitted mask, output columns)."""

    program: Program
    body: Callable[[Frame], tuple[np.ndarray, list[Col]]]

    def run(self, frame: Frame) -> tuple[np.ndarray, list[Col]]:
        try:
            return self.body(frame)
        except RecursionError:  # deeply nested calls (a long pipeline): the row form runs
            raise Unsupported("expressions nested too deeply for the column form") from None


class _Compiler:
    def __init__(self, program: Program):
        self.program = program
        s = program.script
        if not s.declared_input or any(t not in ("number", "string", "bool") for _, t in s.inputs):
            raise Unsupported("the column form needs INPUT columns typed number, string or bool")
        if s.imports:
            raise Unsupported("packages are run in the row form")
        if not s.outputs:
            raise Unsupported("no OUTPUT columns (each emitted row is an empty line)")
        self.inputs = set(s.input_names)
        self.outputs = s.output_names
        assigned = assigned_names(s.body) + assigned_names(s.error_block or [])
        self.assigned = set(assigned)
        counts: dict[str, int] = {}
        for st in s.body:
            for node in A.walk(st):
                if isinstance(node, A.Assign):
                    counts[node.name] = counts.get(node.name, 0) + 1
                elif isinstance(node, A.Destructure):
                    for _, nm in node.patterns:
                        if nm:
                            counts[nm] = counts.get(nm, 0) + 1
        self.counts = counts
        # Names whose per-row final value is known when they are used as a series: inputs that
        # are never assigned, and variables assigned once, unconditionally, before any return.
        self.final: set[str] = set(self.inputs)  # an input's history is the input column
        self.returned = False

    # -- statements -------------------------------------------------------------------------------
    def block(self, stmts: list[A.Stmt], top: bool) -> Callable[[Frame, dict], None]:
        steps = [self.stmt(s, top) for s in stmts]

        def run(frame: Frame, st: dict) -> None:
            for step in steps:
                if not st["active"].any():
                    return
                step(frame, st)
        return run

    def stmt(self, s: A.Stmt, top: bool) -> Callable[[Frame, dict], None]:
        if isinstance(s, A.Assign):
            value = self.expr(s.value)
            name = s.name
            if top and not self.returned and self.counts.get(name) == 1 and name not in self.inputs:
                self.final.add(name)

            def assign(frame: Frame, st: dict) -> None:
                active = st["active"]
                col = value(frame, active)
                old = frame.vars.get(name)
                if old is None:
                    frame.vars[name] = (col, active.copy())
                else:
                    frame.vars[name] = (merge(active, col, old[0]), old[1] | active)
            return assign
        if isinstance(s, A.Destructure):
            v = s.value
            names = [nm for _, nm in s.patterns]
            if not (isinstance(v, A.Call) and v.pkg is None and v.name in INDICATORS
                    and INDICATORS[v.name].n_outputs == 3 and len(names) == 3
                    and all(k == "name" for k, _ in s.patterns)):
                raise Unsupported("destructuring other than [a, b, c] = MACD/BOLL/KDJ(...)")
            triple = self.indicator(v, outputs=3)
            if top and not self.returned:
                self.final.update(nm for nm in names if self.counts.get(nm) == 1 and nm not in self.inputs)

            def destructure(frame: Frame, st: dict) -> None:
                active = st["active"]
                cols = triple(frame, active)
                for nm, col in zip(names, cols):
                    old = frame.vars.get(nm)
                    frame.vars[nm] = (col, active.copy()) if old is None else \
                        (merge(active, col, old[0]), old[1] | active)
            return destructure
        if isinstance(s, A.ExprStmt):
            raise Unsupported("expression statements (print and the like) run in the row form")
        if isinstance(s, A.If):
            cond = self.expr(s.cond)
            body = self.block(s.body, top=False)
            orelse = self.block(s.orelse, top=False)

            def if_(frame: Frame, st: dict) -> None:
                active = st["active"]
                t = truthy(cond(frame, active))
                st["active"] = active & t
                body(frame, st)
                after_body = st["active"]
                st["active"] = active & ~t
                orelse(frame, st)
                st["active"] = after_body | st["active"]
            return if_
        if isinstance(s, A.Return):
            self.returned = True
            return self.ret(s)
        raise Unsupported(f"{type(s).__name__} statements")

    def ret(self, s: A.Return) -> Callable[[Frame, dict], None]:
        n_out = len(self.outputs)
        v = s.value
        if v is None or isinstance(v, A.Null):
            parts: list[Evaluator] | None = None
        elif isinstance(v, A.ArrayLit):
            if any(isinstance(x, A.Spread) for x in v.elems):
                raise Unsupported("spread in a returned array")
            if len(v.elems) > n_out:
                raise Unsupported("more returned values than OUTPUT columns")
            parts = [self.expr(x) for x in v.elems]
        else:  # a scalar return fills the first column (§9.3)
            parts = [self.expr(v)]
        # A scalar that is null drops the row, like `return null` (§9.3).
        scalar = parts is not None and not isinstance(v, A.ArrayLit)

        def ret(frame: Frame, st: dict) -> None:
            active = st["active"]
            if parts is not None:
                cols = [p(frame, active) for p in parts]
                emit = active if not scalar or cols[0].null is None else active & ~cols[0].null
                cols = (cols + [null_num(frame.n)] * (n_out - len(cols)))[:n_out]
                outs = st["outputs"]
                for j, c in enumerate(cols):
                    outs[j] = c if outs[j] is None else merge(active, c, outs[j])
                st["emitted"] |= emit
            st["active"] = np.zeros(frame.n, dtype=bool)
        return ret

    # -- expressions --------------------------------------------------------------------------------
    def expr(self, e: A.Expr) -> Evaluator:
        fn = getattr(self, "x_" + type(e).__name__, None)
        if fn is None:
            raise Unsupported(_describe(e))
        return fn(e)

    def x_Num(self, e: A.Num) -> Evaluator:
        return lambda f, a: const(e.value, f.n)

    def x_Str(self, e: A.Str) -> Evaluator:
        return lambda f, a: const(e.value, f.n)

    def x_Bool(self, e: A.Bool) -> Evaluator:
        return lambda f, a: const(e.value, f.n)

    def x_Null(self, e: A.Null) -> Evaluator:
        return lambda f, a: null_num(f.n)

    def x_Name(self, e: A.Name) -> Evaluator:
        name = e.id
        if name == "_index":
            return lambda f, a: Num(f.pos.astype(np.float64))
        if name == "_total":
            return lambda f, a: Num(f.size.astype(np.float64))
        if name in ("_args", "_args_names", "__error__", "_error"):
            raise Unsupported(f"{name} runs in the row form")
        if name in self.assigned:
            def var(f: Frame, active: np.ndarray) -> Col:
                entry = f.vars.get(name)
                if entry is None:
                    if name in self.inputs:
                        return f.inputs[name]
                    raise Unsupported(f"{name} may be read before it is assigned")
                col, assigned = entry
                missing = active & ~assigned
                if missing.any():
                    if name in self.inputs:
                        return merge(assigned, col, f.inputs[name])
                    raise Unsupported(f"{name} may be read before it is assigned")
                return col
            return var
        if name in self.inputs:
            return lambda f, a: f.inputs[name]
        raise Unsupported(f"the name {name}")

    def x_Unary(self, e: A.Unary) -> Evaluator:
        inner = self.expr(e.operand)
        if e.op == "-":
            return lambda f, a: neg(inner(f, a))
        return lambda f, a: Bool(~truthy(inner(f, a)))

    def x_Binary(self, e: A.Binary) -> Evaluator:
        nodes = A.spine(e)  # a + b - c ...: folded left to right, however long
        first = self.expr(nodes[-1].left)  # type: ignore[attr-defined]
        steps = [(n.op, self.expr(n.right)) for n in reversed(nodes)]  # type: ignore[attr-defined]

        def chain(f: Frame, a: np.ndarray) -> Col:
            acc = first(f, a)
            for op, ev in steps:
                acc = arith(op, acc, ev(f, a), a)
            return acc
        return chain

    def x_Compare(self, e: A.Compare) -> Evaluator:
        operands = [self.expr(x) for x in e.operands]
        ops = e.ops

        def cmp(f: Frame, active: np.ndarray) -> Col:
            result: Col | None = None
            left = operands[0](f, active)
            live = active
            for op, ev in zip(ops, operands[1:]):
                right = ev(f, live)
                if op in ("==", "!="):
                    eq = equal(left, right)
                    part: Col = Bool(eq if op == "==" else ~eq)
                else:
                    part = compare(op, left, right)
                if result is None:
                    result = part
                else:  # chains are `and`: later comparisons only run where earlier ones held
                    result = Bool(truthy(result) & truthy(part))
                live = live & truthy(result)
                left = right
            assert result is not None
            return result
        return cmp

    def x_Logic(self, e: A.Logic) -> Evaluator:
        nodes = A.spine(e)  # a and b and c ...: each operand only where it is reached
        first = self.expr(nodes[-1].left)  # type: ignore[attr-defined]
        rights = [self.expr(n.right) for n in reversed(nodes)]  # type: ignore[attr-defined]
        is_and = e.op == "and"

        def logic(f: Frame, active: np.ndarray) -> Col:
            t = truthy(first(f, active))
            for ev in rights:
                if is_and:
                    t = t & truthy(ev(f, active & t))
                else:
                    t = t | truthy(ev(f, active & ~t))
            return Bool(t)
        return logic

    def x_Ternary(self, e: A.Ternary) -> Evaluator:
        return self._choice([(e.cond, e.then)], e.other)

    def x_When(self, e: A.When) -> Evaluator:
        return self._choice(list(e.arms), e.other)

    def _choice(self, arms: list[tuple[A.Expr, A.Expr]], other: A.Expr | None) -> Evaluator:
        conds = [(self.expr(c), self.expr(r)) for c, r in arms]
        default = self.expr(other) if other is not None else (lambda f, a: null_num(f.n))

        def choice(f: Frame, active: np.ndarray) -> Col:
            remaining = active
            picks: list[tuple[np.ndarray, Col]] = []
            for cond, res in conds:
                t = truthy(cond(f, remaining)) & remaining
                picks.append((t, res(f, t)))
                remaining = remaining & ~t
            out = default(f, remaining)
            for t, col in reversed(picks):
                out = merge(t, col, out)
            return out
        return choice

    def x_Index(self, e: A.Index) -> Evaluator:
        if not isinstance(e.base, A.Name):
            raise Unsupported("indexing an array")
        k = const_value(e.index)
        if k is None or not np.isfinite(k):
            raise Unsupported("a computed time-series offset")
        name, ki = e.base.id, int(k)
        if ki == 0:
            return self.x_Name(e.base)
        if ki > 0 and (name not in self.inputs or name in self.assigned):
            return lambda f, a: null_num(f.n)  # look-ahead is for input columns only (§8.3)
        self._need_final(name)
        return lambda f, a: f.shift(self._series(f, name), ki)

    def _need_final(self, name: str) -> None:
        if name not in self.final:
            raise Unsupported(f"history of {name} (only inputs and variables assigned once, before "
                              "any return, have their history in the column form)")

    def _series(self, f: Frame, name: str) -> Col:
        """The per-row final values of ``name`` (§8.1: an input column comes first)."""
        if name in f.inputs:
            return f.inputs[name]
        if name in f.vars:
            return f.vars[name][0]
        raise Unsupported(f"history of {name} before it is assigned")

    def x_Call(self, e: A.Call) -> Evaluator:
        if e.pkg is not None or e.pipe_bare or e.kwargs or any(isinstance(a, A.Spread) for a in e.args):
            raise Unsupported(_describe(e))
        if e.name in self.assigned:
            raise Unsupported(f"calling {e.name}, a variable")
        if e.name in INDICATORS:
            if INDICATORS[e.name].n_outputs != 1:
                raise Unsupported(f"{e.name} outside [a, b, c] = {e.name}(...)")
            ind = self.indicator(e, outputs=1)
            return lambda f, a: ind(f, a)[0]
        if e.name in _SIGNALS:
            text = _SIGNALS[e.name]
            if not e.args:
                return lambda f, a: const(text, f.n)
            cond = self.expr(e.args[0])

            def signal(f: Frame, active: np.ndarray) -> Col:
                t = truthy(cond(f, active))
                return Str(np.where(t, 0, 1).astype(np.int32), [text, _HOLD])
            return signal
        if e.name in _AGGREGATES:
            return self.aggregate(e)
        if e.name == "abs" and len(e.args) == 1:
            inner = self.expr(e.args[0])

            def absolute(f: Frame, active: np.ndarray) -> Col:
                c = inner(f, active)
                if not isinstance(c, Num):
                    raise Unsupported("abs of a non-number")
                return Num(np.abs(c.v), c.null)
            return absolute
        if e.name == "is_null" and len(e.args) == 1:
            inner = self.expr(e.args[0])

            def is_null(f: Frame, active: np.ndarray) -> Col:
                c = inner(f, active)
                return Bool(c.null.copy() if c.null is not None else np.zeros(f.n, dtype=bool))
            return is_null
        if e.name in ("coalesce", "nvl", "if_null") and e.args:
            parts = [self.expr(x) for x in e.args]

            def coalesce(f: Frame, active: np.ndarray) -> Col:
                cols = [p(f, active) for p in parts]
                out = cols[-1]
                for c in reversed(cols[:-1]):
                    have = ~c.null if c.null is not None else np.ones(f.n, dtype=bool)
                    out = merge(have, c, out)
                return out
            return coalesce
        raise Unsupported(_describe(e))

    def aggregate(self, e: A.Call) -> Evaluator:
        """sum/mean/max/min over one slice of a series or over scalar arguments, evaluated as
        the row form does: left to right, nulls skipped (max/min also skip NaN)."""
        fn = e.name
        if len(e.args) == 1 and isinstance(e.args[0], A.Slice):
            sl = e.args[0]
            if not isinstance(sl.base, A.Name) or sl.zero_alias or sl.start is None:
                raise Unsupported(f"{fn} over this slice")
            a, b = const_value(sl.start), (-1.0 if sl.end is None else const_value(sl.end))
            if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
                raise Unsupported(f"{fn} over a slice with computed bounds")
            ia, ib = int(a), int(b)
            if ib - ia + 1 > _MAX_WINDOW:
                raise Unsupported(f"{fn} over more than {_MAX_WINDOW} rows (one column per row)")
            name = sl.base.id
            if ib > 0 and (name not in self.inputs or name in self.assigned):
                raise Unsupported("look-ahead slices of variables")
            if ia < 0:
                self._need_final(name)
            current = self.x_Name(sl.base)

            def items(f: Frame, active: np.ndarray) -> list[Col]:
                cols = []
                for k in range(ia, ib + 1):
                    cols.append(current(f, active) if k == 0 else f.shift(self._series(f, name), k))
                return cols
        else:
            if any(isinstance(x, A.Slice) for x in e.args) or not e.args:
                raise Unsupported(f"{fn} with these arguments")
            parts = [self.expr(x) for x in e.args]

            def items(f: Frame, active: np.ndarray) -> list[Col]:
                return [p(f, active) for p in parts]

        def agg(f: Frame, active: np.ndarray) -> Col:
            cols = items(f, active)
            for c in cols:
                if not isinstance(c, Num):
                    raise Unsupported(f"{fn} of a non-number")
            return _aggregate(fn, cols, f.n)  # type: ignore[arg-type]
        return agg

    def indicator(self, e: A.Call, outputs: int) -> Callable[[Frame, np.ndarray], list[Col]]:
        from .indicator_calls import convert_params
        from .indicators import column as indicator_column

        info = INDICATORS[e.name]
        series, params = e.args[: info.n_series], e.args[info.n_series:]
        values = [const_value(p) for p in params]
        if any(v is None for v in values):
            raise Unsupported(f"{e.name} with computed parameters")
        if not all(isinstance(s, A.Name) for s in series):
            raise Unsupported(f"{e.name} over an expression or an array")
        names = [s.id for s in series]  # type: ignore[union-attr]
        for nm in names:
            self._need_final(nm)
            if nm in self.inputs and nm in self.assigned:
                raise Unsupported(f"{e.name} of the reassigned input {nm}")
        try:
            converted = convert_params(info, tuple(values))
            info.state_class(*converted)
        except DPLangError:  # MA(x, 0): an error only on rows that evaluate the call
            def invalid(f: Frame, active: np.ndarray) -> list[Col]:
                if active.any():
                    raise Unsupported(f"{e.name} with invalid parameters (the row form reports it)")
                return [null_num(f.n)] * outputs
            return invalid

        def run(f: Frame, active: np.ndarray) -> list[Col]:
            cols = [self._series(f, nm) for nm in names]
            for c in cols:
                if not isinstance(c, Num):
                    raise Unsupported(f"{e.name} of a non-number series")
            present = np.ones(f.n, dtype=bool)
            for c in cols:
                if c.null is not None:
                    present &= ~c.null
            res = indicator_column(e.name, [c.v for c in cols], present, converted, f.groups)
            return [Num(np.where(ok, v, 0.0), ~ok) for v, ok in res]
        return run


def _aggregate(fn: str, cols: list[Num], n: int) -> Num:
    if fn in ("sum", "mean"):
        total = np.zeros(n)
        count = np.zeros(n, dtype=np.int64)
        for c in cols:
            have = ~c.null if c.null is not None else np.ones(n, dtype=bool)
            total = np.where(have, total + np.where(have, c.v, 0.0), total)
            count += have
        if fn == "sum":
            return Num(total)
        with np.errstate(all="ignore"):
            return Num(np.where(count > 0, total / np.maximum(count, 1), 0.0), count == 0)
    best = np.zeros(n)
    found = np.zeros(n, dtype=bool)
    for c in cols:
        ok = ~np.isnan(c.v)
        if c.null is not None:
            ok &= ~c.null
        better = (c.v > best) if fn == "max" else (c.v < best)
        take = ok & (~found | better)
        best = np.where(take, c.v, best)
        found |= ok
    return Num(best, ~found)


def _describe(e: A.Expr) -> str:
    if isinstance(e, A.Call):
        q = f"{e.pkg}.{e.name}" if e.pkg else e.name
        return f"the call {q}(...)"
    return {"LambdaExpr": "lambdas", "FStr": "f-strings", "ArrayLit": "array values",
            "Slice": "slices outside sum/mean/max/min", "Member": "package members",
            "Spread": "spread"}.get(type(e).__name__, type(e).__name__)


def compile_columns(program: Program) -> ColumnProgram:
    """The column form of ``program``; raises Unsupported (with the reason) if it has none."""
    try:
        with headroom():
            return _compile_columns(program)
    except RecursionError:
        raise Unsupported("expressions nested too deeply for the column form") from None


def _compile_columns(program: Program) -> ColumnProgram:
    c = _Compiler(program)
    s = program.script
    # An ERROR block never runs in the column form: a row that would fail makes the whole
    # evaluation Unsupported, and the row form (which runs the block) takes over.
    body = c.block(s.body, top=True)
    n_out = len(c.outputs)

    def run(frame: Frame) -> tuple[np.ndarray, list[Col]]:
        st: dict[str, Any] = {"active": np.ones(frame.n, dtype=bool),
                              "emitted": np.zeros(frame.n, dtype=bool),
                              "outputs": [None] * n_out}
        body(frame, st)
        outs = [o if o is not None else null_num(frame.n) for o in st["outputs"]]
        return st["emitted"], outs

    return ColumnProgram(program, run)


def explain(program: Program) -> list[str]:
    """One line per top-level statement saying whether the column form covers it (and why not),
    then which form the whole script uses."""
    lines: list[str] = []
    try:
        c = _Compiler(program)
    except Unsupported as exc:
        return [f"script: row form ({exc})"]
    first_reason = None
    for st in program.script.body:
        try:
            with headroom():
                c.stmt(st, top=True)
            lines.append(f"line {st.line}: column form")
        except (Unsupported, RecursionError) as exc:
            why = exc if isinstance(exc, Unsupported) else "expressions nested too deeply for the column form"
            lines.append(f"line {st.line}: row form ({why})")
            first_reason = first_reason or f"line {st.line}: {why}"
    if first_reason:
        lines.append(f"script: row form, because of {first_reason}")
    else:
        lines.append("script: column form when the whole input is available (a file), else row form")
    return lines
