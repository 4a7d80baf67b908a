"""Static check (docs/language.md §11.2): every finding, errors and warnings, before any row runs."""

from __future__ import annotations

import difflib

from . import ast as A
from .analysis import SERIES_FUNCS, assigned_names
from .builtins import BUILTINS
from .errors import Diagnostic
from .indicator_calls import arity as indicator_arity
from .indicators import INDICATORS

__all__ = ["check", "BUILTIN_VARS", "did_you_mean"]

BUILTIN_VARS = frozenset(("_index", "_total", "_args", "_args_names"))


def _arity(name: str) -> tuple[int, int | None, tuple[str, ...]] | None:
    if name in INDICATORS:
        lo, hi = indicator_arity(INDICATORS[name])
        return lo, hi, ()
    if name in SERIES_FUNCS:
        return 2, 2, ()
    if name == "POSITION":
        return 0, 0, ()
    b = BUILTINS.get(name)
    if b is None:
        return None
    return b.min_args, b.max_args, b.keywords


def _arity_text(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"at least {lo}"
    return str(lo) if lo == hi else f"{lo}-{hi}"


class _Scope:
    """Names known at a point: ``known`` (usable), plus context flags."""

    def __init__(self, known: set[str], *, lenient: set[str] | None = None, callees: set[str] | None = None):
        self.known = known
        self.lenient = lenient or set()  # also allowed (lambda bodies, ERROR block)
        self.callees = callees or set()  # package siblings


class _Checker:
    def __init__(self, source: str, file: str | None, packages: dict[str, A.Package]):
        self.lines = source.split("\n")
        self.file = file
        self.packages = packages
        self.out: list[Diagnostic] = []
        self.reads: set[str] = set()
        self.history_reads: set[str] = set()
        self.own: A.Package | None = None
        self.own_quals: set[str] = set()  # the import name and the declared package name
        self.deprecation_warned = False

    def add(self, code: str, node: A.Node, message: str, *, error: bool) -> None:
        line = node.line
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        self.out.append(Diagnostic(code, message, self.file, line, node.col, src, is_error=error))

    def error(self, node: A.Node, message: str, code: str = "CheckError") -> None:
        self.add(code, node, message, error=True)

    def warn(self, code: str, node: A.Node, message: str) -> None:
        self.add(code, node, message, error=False)

    # -- expressions ------------------------------------------------------------------------------
    def expr(self, e: A.Expr, scope: _Scope, ctx: dict) -> None:
        if isinstance(e, (A.Binary, A.Logic, A.Call)):
            nodes = A.spine(e)
            if len(nodes) > 1:  # a chain (any length): operands in order, without recursing
                self.chain(nodes, scope, ctx)
                return
        if isinstance(e, A.Name):
            self.name(e, e.id, scope, ctx)
        elif isinstance(e, A.LambdaExpr):
            for p in e.params:
                if p in scope.known and p not in ctx.get("lambda_params", set()):
                    self.warn("W2", e, f"lambda parameter '{p}' has the same name as a variable in scope")
            inner = _Scope(scope.known | set(e.params), lenient=scope.lenient | ctx["all_assigned"],
                           callees=scope.callees)
            sub = dict(ctx, lambda_params=ctx.get("lambda_params", set()) | set(e.params))
            self.expr(e.body, inner, sub)
        elif isinstance(e, (A.Index, A.Slice)) and isinstance(e.base, A.Name):
            self.series_base(e.base, scope, ctx)
            for child in A.children(e):
                if child is not e.base:
                    self.expr(child, scope, ctx)
        elif isinstance(e, A.Call):
            self.call(e, scope, ctx)
        elif isinstance(e, A.Member):
            self.member(e, ctx)
        else:
            for child in A.children(e):
                self.expr(child, scope, ctx)

    def chain(self, nodes: list[A.Expr], scope: _Scope, ctx: dict) -> None:
        """A chain from :func:`~dporch.lang.ast.spine`, innermost first."""
        inner = nodes[-1]
        if isinstance(inner, A.Call):
            self.call(inner, scope, ctx)
            for node in reversed(nodes[:-1]):
                self.call(node, scope, ctx, first_done=True)  # type: ignore[arg-type]
            return
        self.expr(inner.left, scope, ctx)  # type: ignore[attr-defined]
        for node in reversed(nodes):
            self.expr(node.right, scope, ctx)  # type: ignore[attr-defined]

    def name(self, node: A.Node, name: str, scope: _Scope, ctx: dict) -> None:
        self.reads.add(name)
        if name in scope.known or name in scope.lenient:
            return
        if ctx.get("row") and name in BUILTIN_VARS:
            return
        if ctx.get("error_scope") and name == "__error__":
            return
        if ctx.get("error_scope") and name == "_error":
            self.error(node, "_error is a record: use _error.type, _error.message or _error.line")
            return
        if name in BUILTINS or name in INDICATORS or name in SERIES_FUNCS or name == "POSITION":
            self.error(node, f"undefined variable: {name} ({name} is a function; call it, or wrap it in a lambda)")
        elif name in self.packages or name in self.own_quals:
            self.error(node, f"undefined variable: {name} ({name} is a package; use {name}.member)")
        else:
            self.error(node, f"undefined variable: {name}{self.variable_hint(name, scope, ctx)}")

    def variable_hint(self, name: str, scope: _Scope, ctx: dict) -> str:
        """`` (did you mean close?)`` for a misspelt name, from the names usable here."""
        names = set(scope.known) | scope.lenient
        if ctx.get("row"):
            names |= BUILTIN_VARS | set(ctx.get("all_assigned") or ())
        return did_you_mean(name, names)

    @staticmethod
    def is_param(name: str, ctx: dict) -> bool:
        """``name`` is a script parameter here (not a lambda parameter of the same name)."""
        return name in ctx.get("params", ()) and name not in ctx.get("lambda_params", ())

    def series_base(self, node: A.Name, scope: _Scope, ctx: dict) -> None:
        """A bare identifier used as a time-series base (§11.2 E1 exception)."""
        name = node.id
        self.reads.add(name)
        self.history_reads.add(name)
        if self.is_param(name, ctx):
            self.error(node, f"parameter {name} has no history: it has the same value on every row (use {name} itself)")
            return
        if name in scope.known or name in scope.lenient:
            return
        if ctx.get("row"):
            if name in ctx["all_assigned"] or name in (ctx.get("outputs") or ()) or not ctx["declared_input"]:
                return
            if name in BUILTIN_VARS:
                return
            hint = did_you_mean(name, set(scope.known) | set(ctx["all_assigned"]) | set(ctx.get("outputs") or ()))
            self.error(node, f"undefined variable: {name}{hint or ' (declare it in -- INPUT -- to read its history)'}")
            return
        self.name(node, name, scope, ctx)

    def member(self, e: A.Member, ctx: dict) -> None:
        if e.pkg == "_error" and ctx.get("error_scope"):
            if e.name not in ("type", "message", "line"):
                self.error(e, f"_error has no member '{e.name}' (use type, message or line)")
            return
        pkg = self.packages.get(e.pkg)
        if pkg is None and e.pkg in self.own_quals:
            pkg = self.own
        if pkg is None:
            self.error(e, f"unknown package: {e.pkg} (add -- IMPORT {e.pkg} -- to the header)")
            return
        members = {v.name for v in pkg.variables} | {f.name for f in pkg.functions}
        if e.name not in members:
            self.error(e, f"package {e.pkg} has no member '{e.name}'{did_you_mean(e.name, members)}")
        elif e.name.startswith("_") and pkg is not self.own:
            self.error(e, f"'{e.pkg}.{e.name}' is private to its package", code="CheckError")

    def call(self, e: A.Call, scope: _Scope, ctx: dict, first_done: bool = False) -> None:
        """Arguments, then the callee. ``first_done``: the first argument (the inner call of
        a chain) was checked already."""
        for a in e.args:
            if a is e.args[0] and (first_done or (e.name in SERIES_FUNCS and e.pkg is None)):
                continue
            self.expr(a.value if isinstance(a, A.Spread) else a, scope, ctx)
        for _, v in e.kwargs:
            self.expr(v, scope, ctx)
        has_spread = any(isinstance(a, A.Spread) for a in e.args)
        n = len(e.args) + len(e.kwargs)
        if e.pkg is None and self.is_param(e.name, ctx):
            self.reads.add(e.name)
            self.error(e, f"{e.name} is a script parameter (a {ctx['params'][e.name]}), not a function")
            return
        if e.pipe_bare:
            self.name(e, e.name, scope, ctx)
            return
        if e.pkg is not None:
            self.package_call(e, n, has_spread, ctx)
            return
        name = e.name
        if name in scope.known or name in scope.lenient:
            self.reads.add(name)
            return  # a variable (maybe holding a lambda) shadows builtins: checked at run time
        if self.own is not None and name in scope.callees:
            fdef = next(f for f in self.own.functions if f.name == name)
            self.check_params(e, fdef, n, has_spread, f"{name}")
            return
        spec = _arity(name)
        if spec is None:
            if name in scope.known or name in scope.lenient:
                return
            callable_names = set(BUILTINS) | set(INDICATORS) | set(SERIES_FUNCS) | {"POSITION"} | scope.callees
            self.error(e, f"undefined function: {name}{did_you_mean(name, callable_names)}")
            return
        lo, hi, keywords = spec
        if name == "POSITION":
            self.reads.add("position")
        if name in SERIES_FUNCS:
            self.series_call(e, scope, ctx)
        for k, _ in e.kwargs:
            if k not in keywords:
                self.error(e, f"{name} has no keyword argument '{k}'", code="ArgumentMismatch")
        if not has_spread and not (n >= lo and (hi is None or n <= hi)):
            self.error(e, f"{name} expects {_arity_text(lo, hi)} argument(s), got {n}", code="ArgumentMismatch")

    def series_call(self, e: A.Call, scope: _Scope, ctx: dict) -> None:
        if not self.deprecation_warned:
            self.deprecation_warned = True
            self.warn("W6", e, f"{e.name}() is deprecated; use time-series access "
                               "(ref(x, n) = x[-n], past(x, n) = x[-n:-1], window(x, n) = x[-(n-1):0])")
        if not e.args:
            return
        first = e.args[0]
        if isinstance(first, A.Name):
            self.series_base(first, scope, ctx)
        elif isinstance(first, A.Str):
            self.series_base(A.Name(first.line, first.col, first.value), scope, ctx)
        else:
            self.error(first, f"{e.name}'s first argument must name a series (a name or a string literal)")

    def package_call(self, e: A.Call, n: int, has_spread: bool, ctx: dict) -> None:
        pkg = self.packages.get(e.pkg)  # type: ignore[arg-type]
        if pkg is None and e.pkg in self.own_quals:
            pkg = self.own
        if pkg is None:
            self.error(e, f"unknown package: {e.pkg} (add -- IMPORT {e.pkg} -- to the header)")
            return
        fdef = next((f for f in pkg.functions if f.name == e.name), None)
        if fdef is None:
            if any(v.name == e.name for v in pkg.variables):
                what = " (a variable, not a function)"
            else:
                what = did_you_mean(e.name, {f.name for f in pkg.functions}) or " (no such function)"
            self.error(e, f"undefined function: {e.pkg}.{e.name}{what}")
            return
        if e.name.startswith("_") and pkg is not self.own:
            self.error(e, f"'{e.pkg}.{e.name}' is private to its package")
        self.check_params(e, fdef, n, has_spread, f"{e.pkg}.{e.name}")

    def check_params(self, e: A.Call, fdef: A.FuncDef, n: int, has_spread: bool, label: str) -> None:
        names = [p.name for p in fdef.params]
        for k, _ in e.kwargs:
            if k not in names:
                self.error(e, f"function {label} has no parameter '{k}'", code="ArgumentMismatch")
            elif names.index(k) < len(e.args):
                self.error(e, f"function {label}: parameter '{k}' given twice", code="ArgumentMismatch")
        lo = sum(1 for p in fdef.params if p.default is None)
        hi = len(fdef.params)
        if not has_spread and not lo <= n <= hi:
            self.error(e, f"function {label} argument count mismatch: expected {lo}-{hi}, got {n}",
                       code="ArgumentMismatch")

    # -- statements -------------------------------------------------------------------------------
    def block(self, stmts: list[A.Stmt], known: set[str], scope_extra: dict, ctx: dict,
              assigned_here: set[str]) -> set[str]:
        """Check ``stmts``; returns the names known after them (textual order, any nesting)."""
        returned = False
        for s in stmts:
            if returned:
                self.warn("W5", s, "unreachable code after return")
                returned = False  # report once per block
            known = self.stmt(s, known, scope_extra, ctx, assigned_here)
            if isinstance(s, A.Return):
                returned = True
        return known

    def stmt(self, s: A.Stmt, known: set[str], scope_extra: dict, ctx: dict,
             assigned_here: set[str]) -> set[str]:
        scope = _Scope(known, lenient=scope_extra.get("lenient"), callees=scope_extra.get("callees"))
        if isinstance(s, A.Assign):
            self.expr(s.value, scope, ctx)
            self.assign(s, s.name, known, ctx, assigned_here)
            return known | {s.name}
        if isinstance(s, A.Destructure):
            self.expr(s.value, scope, ctx)
            new = {n for _, n in s.patterns if n is not None}
            for n in new:
                self.assign(s, n, known, ctx, assigned_here)
            return known | new
        if isinstance(s, A.ExprStmt):
            self.expr(s.value, scope, ctx)
            return known
        if isinstance(s, A.Return):
            if s.value is not None:
                self.expr(s.value, scope, ctx)
                self.check_return(s, ctx)
            return known
        if isinstance(s, A.If):  # if, its elif branches (in a loop: any number), else
            chain = A.elif_chain(s)
            for node in chain:
                self.expr(node.cond, _Scope(known, lenient=scope_extra.get("lenient"),
                                            callees=scope_extra.get("callees")), ctx)
                known = self.block(node.body, known, scope_extra, ctx, set())
            return self.block(chain[-1].orelse, known, scope_extra, ctx, set())
        return known

    def assign(self, s: A.Stmt, name: str, known: set[str], ctx: dict, assigned_here: set[str]) -> None:
        if ctx.get("row") and name in BUILTIN_VARS:
            self.error(s, f"cannot assign to the built-in variable {name}")
            return
        if name in ctx.get("params", ()):
            self.error(s, f"cannot assign to the parameter {name}: parameters are constants of a run "
                          f"(set them from outside, e.g. dporch run --set {name}=VALUE)")
            return
        if name in assigned_here:
            self.warn("W1", s, f"'{name}' is assigned again on the same path (variables are meant to be assigned once)")
        assigned_here.add(name)
        ctx["assigned_at"].setdefault(name, s)

    def check_return(self, s: A.Return, ctx: dict) -> None:
        outputs = ctx.get("outputs")
        if outputs is None:
            return
        if not outputs and not ctx.get("warned_no_output"):
            ctx["warned_no_output"] = True
            self.warn("W4", s, "the script returns values but declares no -- OUTPUT -- columns")
        elif isinstance(s.value, A.ArrayLit) and not any(isinstance(x, A.Spread) for x in s.value.elems) \
                and outputs and len(s.value.elems) != len(outputs):
            self.warn("W4", s, f"returned array has {len(s.value.elems)} values but OUTPUT declares {len(outputs)}")

    # -- entry points -----------------------------------------------------------------------------
    def script(self, script: A.Script) -> None:
        inputs = set(script.input_names)
        params = {p.name: p.type for p in script.params}
        body_assigned = set(assigned_names(script.body))
        all_assigned = body_assigned | set(assigned_names(script.error_block or []))
        ctx = {"row": True, "all_assigned": all_assigned, "outputs": script.output_names,
               "declared_input": script.declared_input, "assigned_at": {}, "params": params}
        if script.error_block is not None:
            ectx = dict(ctx, error_scope=True)
            self.block(script.error_block, inputs | set(params), {"lenient": body_assigned}, ectx, set())
        self.block(script.body, inputs | set(params), {}, ctx, set(inputs))
        statements = list(script.body) + list(script.error_block or [])
        if not any(isinstance(n, A.Return) for s in statements for n in A.walk(s)):
            first = script.body[0] if script.body else A.Return(1, 1, None)
            self.warn("W7", first, "the script has no return statement, no rows will be written "
                                   "(end it with return [values...] for the OUTPUT columns)")
        exempt = inputs | set(script.output_names) | self.history_reads
        for name, node in ctx["assigned_at"].items():
            if name not in self.reads and name not in exempt:
                self.warn("W3", node, f"'{name}' is assigned but never read")

    def package(self, qual: str, pkg: A.Package) -> None:
        self.own, self.own_quals = pkg, {qual, pkg.name}
        known: set[str] = set()
        funcs = {f.name for f in pkg.functions}
        for v in pkg.variables:
            ctx = {"row": False, "all_assigned": set(), "outputs": None, "assigned_at": {}}
            self.expr(v.value, _Scope(set(known)), ctx)
            known.add(v.name)
        for f in pkg.functions:
            params = {p.name for p in f.params}
            ctx = {"row": True, "all_assigned": set(assigned_names(f.body)) | params, "outputs": None,
                   "declared_input": True, "assigned_at": {}}
            pknown = known | set()
            for p in f.params:
                if p.default is not None:
                    self.expr(p.default, _Scope(pknown | params, callees=funcs), ctx)
            self.block(f.body, known | params, {"callees": funcs}, ctx, set())


def did_you_mean(name: str, candidates: set[str]) -> str:
    """`` (did you mean X?)`` naming the closest candidate (same letters in another case
    first), or "" when nothing is close."""
    same_case = [c for c in candidates if c.lower() == name.lower() and c != name]
    close = same_case or difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def check(script: A.Script, packages: dict[str, A.Package]) -> list[Diagnostic]:
    """All findings for ``script`` and the packages it imports (packages first)."""
    out: list[Diagnostic] = []
    for qual, pkg in packages.items():
        c = _Checker(pkg.source, pkg.file, packages={})
        c.package(qual, pkg)
        out += c.out
    c = _Checker(script.source, script.file, packages)
    c.script(script)
    out += c.out
    return out
