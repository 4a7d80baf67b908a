"""Statement code generation: the data script's ``step(S, R)`` and package modules.

Definite assignment is tracked while generating, so reads of a variable that is certainly set
compile to a plain local load; other reads check the UNSET marker (UndefinedVariable, §6.3).
Every exit of a row records history and commits indicator states (§8.1); those record blocks
are emitted as markers and expanded at the end, once every indicator site is known.
"""

from __future__ import annotations

from typing import Any

from . import ast as A
from .analysis import Tracking, assigned_names
from .exprgen import ExprGen
from .indicators import INDICATORS
from .kinds import ANY, ARR, NULL, NUM, KindOf, input_kinds, variable_kinds
from .hoist import Hoister
from .marks import MARK_OPEN, mark, strip_marks
from .scopes import Env, FuncEnv, InitEnv, Names, PackageInfo, RowEnv

__all__ = ["Emitter", "generate_step", "generate_package"]

_RECORD = "\x00RECORD"


class Emitter:
    """Generated lines plus, per line, the DPLang (line, column) of the statement it comes
    from and the spans of its marked sub-expressions (see :func:`strip_marks`), as
    ``(line, column)`` or ``(line, column, spans)``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.pos: list[tuple | None] = []
        self.indent = 0
        self.where: tuple[int, int] | None = None

    def emit(self, code: str) -> None:
        text = "    " * self.indent + code
        if MARK_OPEN in text:
            text, spans = strip_marks(text)
            where = self.where or (None, None)
            self.lines.append(text)
            self.pos.append((where[0], where[1], spans))
            return
        self.lines.append(text)
        self.pos.append(self.where)

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


class _StmtGen:
    def __init__(self, gen: ExprGen, em: Emitter, env: Env, *, in_script: bool):
        self.gen = gen
        self.em = em
        self.env = env
        self.in_script = in_script

    def block(self, stmts: list[A.Stmt]) -> bool:
        """Generate ``stmts``; True when every path through them returns."""
        for s in stmts:
            self.em.where = (s.line, s.col)
            if self.stmt(s):
                return True
        return False

    def stmt(self, s: A.Stmt) -> bool:
        gen, em, env = self.gen, self.em, self.env
        gen.env = env
        if isinstance(s, A.Assign):
            em.emit(f"{self.target(s.name)} = {gen.expr(s.value)}")
            env.mark_defined(s.name)
            return False
        if isinstance(s, A.Destructure):
            names = [n for _, n in s.patterns]
            v = s.value
            if (isinstance(v, A.Call) and v.pkg is None and v.name in INDICATORS
                    and INDICATORS[v.name].n_outputs == 3 and len(names) == 3
                    and all(k == "name" for k, _ in s.patterns)):
                # An indicator triple is always a list of 3: unpack it directly.
                targets = ", ".join(self.target(n) for n in names)
                em.emit(f"{targets} = {gen.expr(v)}")
                for n in names:
                    env.mark_defined(n)
                return False
            rest = next((i for i, (k, _) in enumerate(s.patterns) if k == "rest"), None)
            em.emit(f"_d = _destructure({gen.expr(s.value)}, {len(names)}, {rest})")
            for i, (kind, n) in enumerate(s.patterns):
                if n is not None:
                    em.emit(f"{self.target(n)} = _d[{i}]")
                    env.mark_defined(n)
            return False
        if isinstance(s, A.ExprStmt):
            em.emit(gen.expr(s.value))
            return False
        if isinstance(s, A.Return):
            self.ret(s)
            return True
        if isinstance(s, A.If):
            return self.if_stmt(s)
        raise AssertionError(f"unexpected statement {type(s).__name__}")

    def target(self, name: str) -> str:
        return self.env.target(name)  # type: ignore[attr-defined]

    def if_stmt(self, s: A.If) -> bool:
        """``if``/``elif``/``else`` as the same flat Python chain (any number of elif). A name
        is definitely set after it when every branch that does not return sets it."""
        em, env = self.em, self.env
        before = set(env.defined)  # type: ignore[attr-defined]
        chain = A.elif_chain(s)
        outcomes: list[tuple[bool, set[str]]] = []
        for i, node in enumerate(chain):
            em.where = (node.line, node.col)
            env.defined = set(before)  # type: ignore[attr-defined]
            em.emit(f"{'if' if i == 0 else 'elif'} {self.gen.expr(node.cond)}:")
            em.indent += 1
            outcomes.append((self.block(node.body), set(env.defined)))  # type: ignore[attr-defined]
            em.indent -= 1
        env.defined = set(before)  # type: ignore[attr-defined]
        orelse = chain[-1].orelse
        if orelse:
            em.where = (orelse[0].line, orelse[0].col)
            em.emit("else:")
            em.indent += 1
            outcomes.append((self.block(orelse), set(env.defined)))  # type: ignore[attr-defined]
            em.indent -= 1
        else:
            outcomes.append((False, set(before)))
        open_paths = [defined for returns, defined in outcomes if not returns]
        if not open_paths:
            return True
        env.defined = set.intersection(*open_paths)  # type: ignore[attr-defined]
        return False

    def ret(self, s: A.Return) -> None:
        em, gen = self.em, self.gen
        if not self.in_script:
            em.emit("return None" if s.value is None else f"return {gen.expr(s.value)}")
            return
        em.emit(f"_o = {self.result(s.value)}")
        em.emit(_RECORD + repr(sorted(self.env.defined)))  # type: ignore[attr-defined]

    def result(self, v: A.Expr | None) -> str:
        """Output row for ``return v`` (§9.3)."""
        n = self.n_out
        if v is None or isinstance(v, A.Null):
            return "None"
        if isinstance(v, A.ArrayLit) and not any(isinstance(x, A.Spread) for x in v.elems):
            elems = [self.gen.expr(x) if ARR not in self.gen.kind(x) else self.cell(x) for x in v.elems]
            if len(elems) <= n:
                elems += ["None"] * (n - len(elems))
                return "[" + ", ".join(elems) + "]"
        return f"_result_row({self.gen.expr(v)}, {n}, _warn_extra)"

    def cell(self, x: A.Expr) -> str:
        """An output element that may be an array: its nesting is checked (rt.cell)."""
        first, later = self.gen.bind(self.gen.expr(x))
        return f"({mark(f'_cell({later})', x.line, x.col)} if type({first}) is list else {later})"

    n_out = 0


def _prologue_preinit(em: Emitter, at: int, names: list[str]) -> None:
    lines = [f"    {py} = _UNSET" for py in names]
    em.lines[at:at] = lines
    em.pos[at:at] = [None] * len(lines)


def generate_step(script: A.Script, *, names: Names, consts: dict[str, Any],
                  packages: dict[str, PackageInfo], tracking: Tracking, schema: list[str],
                  file: str, may_decimal: bool, typed: bool = False,
                  module_names: set[str] = frozenset()) -> tuple[Emitter, ExprGen, list[str]]:  # type: ignore[assignment]
    """Python source of ``step(S, R)`` for ``script`` bound to input columns ``schema``.

    Returns the emitter, the expression generator (holding the indicator sites) and the
    names of the history buffers in ``S.hl`` order."""
    inputs = script.input_names
    col_index = {c: i for i, c in enumerate(schema)}
    assigned = set(assigned_names(script.body) + assigned_names(script.error_block or []))
    buffer_names = [n for n in tracking.lookback]
    buffers = {n: names.get("h", n) for n in buffer_names}
    kinds = _row_kinds(script, schema, typed, packages)
    gen = ExprGen(names, consts, file, packages=packages, arg_names=list(schema), kinds=kinds)
    env = RowEnv(names, inputs=inputs, schema=col_index, assigned=assigned, buffers=buffers,
                 lookback=tracking.lookback)
    em = Emitter()
    gen.em, gen.hoist = em, Hoister(set(module_names), consts)
    sg = _StmtGen(gen, em, env, in_script=True)
    sg.n_out = len(script.outputs)
    em.emit("def step(S, R):")
    em.indent = 1
    preinit_at = len(em.lines)
    for name in inputs:
        em.emit(f"{env.var(name)} = R[{col_index[name]}]")
    if buffer_names:
        em.emit(", ".join(buffers[n] for n in buffer_names) + ", = S.hl")
    em.emit("_I = S.ind")
    if script.error_block is not None:
        em.emit("try:")
        em.indent = 2
    if not sg.block(script.body):
        em.where = None
        em.emit("_o = None")
        em.emit(_RECORD + repr(sorted(env.defined)))
    if script.error_block is not None:
        em.indent = 1
        em.where = None
        em.emit("except _ScriptExit:")
        em.emit("    raise")
        em.emit("except Exception as _exc:")
        em.indent = 2
        em.emit("_err = _error_record(_exc)")
        # An error inside the ERROR block ends the run, in streaming mode too (§9.5).
        em.emit("try:")
        em.indent = 3
        env.defined = set(inputs)
        gen.error_scope = True
        if not sg.block(script.error_block):
            em.where = None
            em.emit("_o = None")
            em.emit(_RECORD + repr(sorted(env.defined)))
        gen.error_scope = False
        em.indent = 2
        em.where = None
        em.emit("except _ScriptExit:")
        em.emit("    raise")
        em.emit("except Exception as _exc2:")
        em.emit("    raise _error_block_failed(_exc2) from None")
    _expand_records(em, gen, env, script, tracking, col_index, may_decimal)
    if not gen.sites:
        at = em.lines.index("    _I = S.ind")
        del em.lines[at], em.pos[at]
    _prologue_preinit(em, preinit_at, [env.var(n) for n in sorted(env.preinit)])
    gen.hoist.emit(em)
    return em, gen, buffer_names


def _row_kinds(script: A.Script, schema: list[str], typed: bool,
               packages: dict[str, PackageInfo]) -> KindOf:
    """Static kinds for the row scope (see :mod:`.kinds`)."""
    declared = dict(script.inputs)
    base = input_kinds({c: declared.get(c) for c in schema}, typed)
    stmts = list(script.body) + list(script.error_block or [])
    special = {"_index": frozenset((NUM,)), "_total": frozenset((NUM, NULL)),
               "_args": frozenset((ARR,)), "_args_names": frozenset((ARR,))}

    def make(lookup):
        return KindOf(lambda n: special.get(n) or lookup(n))

    var = variable_kinds(stmts, base, make)
    assigned = set(var)

    def current(name: str) -> frozenset[str]:
        if name in special:
            return special[name]
        if name in var:
            return var[name]
        return base.get(name, ANY) if name in base else frozenset((NULL,))

    outputs = script.output_names
    plain = KindOf(current)
    out_kinds: dict[str, frozenset[str]] = {n: frozenset() for n in outputs}
    for s in stmts:
        for node in A.walk(s):
            if not isinstance(node, A.Return) or node.value is None:
                continue
            v = node.value
            if isinstance(v, A.ArrayLit) and not any(isinstance(x, A.Spread) for x in v.elems):
                for j, n in enumerate(outputs):
                    out_kinds[n] |= plain(v.elems[j]) if j < len(v.elems) else {NULL}
            elif isinstance(v, A.Null):
                continue
            else:
                for n in outputs:
                    out_kinds[n] = ANY

    def history(name: str) -> frozenset[str]:
        if name in base:
            return base[name] | {NULL}
        k = frozenset((NULL,))
        if name in assigned:
            k |= var[name]
        if name in out_kinds:
            k |= out_kinds[name]
        return k if (name in assigned or name in out_kinds) else ANY

    return KindOf(current, history=history)


def _final_value(name: str, env: RowEnv, defined: set[str], script: A.Script,
                 col_index: dict[str, int]) -> str:
    """H[t][name] (§8.1): input column, else script variable, else output column, else null."""
    if name in col_index:
        return env.input_value(name)
    outputs = script.output_names
    out = f"(_o[{outputs.index(name)}] if _o is not None else None)" if name in outputs else "None"
    if name in env.assigned:
        py = env.var(name)
        if name in defined:
            return py
        env.preinit.add(name)
        return f"({py} if {py} is not _UNSET else {out})"
    return out


def _expand_records(em: Emitter, gen: ExprGen, env: RowEnv, script: A.Script, tracking: Tracking,
                    col_index: dict[str, int], may_decimal: bool) -> None:
    sources = {n for site in gen.sites for n in site.sources}
    lazy = sorted(tracking.lazy_sources)
    needed = list(dict.fromkeys(list(tracking.lookback) + sorted(sources) + lazy))
    lines, pos = [], []
    for line, where in zip(em.lines, em.pos):
        stripped = line.lstrip()
        if not stripped.startswith(_RECORD):
            lines.append(line)
            pos.append(where)
            continue
        pad = line[: len(line) - len(stripped)]
        defined = set(eval(stripped[len(_RECORD):]))
        block = []
        if may_decimal and script.outputs:
            block.append(f"if _o is not None: _o = _apply_precision(_o, {script.precision})")
        fv = {n: _final_value(n, env, defined, script, col_index) for n in needed}
        temps = {}
        for i, n in enumerate(needed):
            code = fv[n]
            if code.isidentifier() or code.startswith("R[") or code == "None":
                temps[n] = code
            else:
                block.append(f"_f{i} = {code}")
                temps[n] = f"_f{i}"
        for n in tracking.lookback:
            block.append(f"{env.buffers[n]}.append({temps[n]})")
        numeric = {n: gen.kinds is not None and gen.kinds.history(n) <= {NUM, NULL} for n in sources}
        for i, site in enumerate(gen.sites):
            args = ", ".join(temps[s] if numeric[s] else f"_numc({temps[s]})" for s in site.sources)
            block.append(f"_I[{i}].commit({args})")
        if lazy:
            d = "{" + ", ".join(f"{n!r}: {temps[n]}" for n in lazy) + "}"
            block.append(f"if S.lazy: S.commit_lazy({d})")
        block.append("S.index += 1")
        block.append("return _o")
        for b in block:
            lines.append(pad + b)
            pos.append(where)
    em.lines, em.pos = lines, pos


def generate_package(pkg: A.Package, info: PackageInfo, *, names: Names, consts: dict[str, Any],
                     packages: dict[str, PackageInfo], file: str,
                     module_names: set[str] = frozenset()) -> tuple[Emitter, ExprGen]:  # type: ignore[assignment]
    """Python source of a package module: ``_init()`` evaluating the variables in order, then
    one function per package function."""
    gen = ExprGen(names, consts, file, packages=packages, own=info)
    em = Emitter()
    own = set(info.variables.values()) | set(info.func_py.values()) | {"_init"}
    gen.em, gen.hoist = em, Hoister(set(module_names) | own, consts)
    em.emit("def _init():")
    em.indent = 1
    ienv = InitEnv(info)
    declared = dict(info.variables)
    info.variables.clear()
    gen.env = ienv
    for v in pkg.variables:
        em.where = (v.line, v.col)
        py = declared[v.name]
        em.emit(f"global {py}")
        em.emit(f"{py} = {gen.expr(v.value)}")
        info.variables[v.name] = py
    em.emit("return None")
    em.indent = 0
    for f in pkg.functions:
        _package_function(f, info, gen, em, names)
    gen.hoist.emit(em)
    return em, gen


def _package_function(f: A.FuncDef, info: PackageInfo, gen: ExprGen, em: Emitter, names: Names) -> None:
    locals_ = set(assigned_names(f.body))
    env = FuncEnv(names, info, f, locals_)
    params = [env.params[p.name] for p in f.params]
    em.where = (f.line, f.col)
    pyname = info.func_py[f.name]
    em.emit(f"def {pyname}(S, srcs, " + ", ".join(f"{p}=_MISSING" for p in params) + "):")
    em.indent = 1
    required = [p for p in f.params if p.default is None]
    lo, hi = len(required), len(f.params)
    for p, py in zip(f.params, params):
        em.where = (p.line, p.col)
        if p.default is None:
            given = "(" + "".join(f"{q}, " for q in params) + ")"
            em.emit(f"if {py} is _MISSING: _arity_error({(info.qual + '.' + f.name)!r}, {lo}, {hi}, {given})")
        else:
            gen.env = env
            em.emit(f"if {py} is _MISSING: {py} = {gen.expr(p.default)}")
    preinit_at = len(em.lines)
    sg = _StmtGen(gen, em, env, in_script=False)
    if not sg.block(f.body):
        em.where = None
        em.emit("return None")
    _prologue_preinit(em, preinit_at, [env.local(n) for n in sorted(env.preinit)])
    em.indent = 0
