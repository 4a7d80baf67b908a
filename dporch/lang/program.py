"""Compile pipeline: source -> parse -> packages -> check -> :class:`Program`; ``bind`` a Program
to input columns -> :class:`Bound` (the row form: ``step(S, R)``) (docs/architecture.md §2)."""

from __future__ import annotations

import itertools
import os
import re
import stat
from decimal import DecimalException
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from . import ast as A
from . import ops, rt
from .analysis import Tracking, package_param_uses, track_script
from .checker import check
from .errors import (ArgumentMismatch, CheckError, Diagnostic, DPLangError, DPRuntimeError,
                     DPTypeError, InputError, ParseError, ScriptExit, UndefinedFunction,
                     UndefinedVariable)
from .limits import headroom
from .marks import innermost, instruction_span
from .indicator_calls import any_list, dynamic_call, invalid_call, num, numc, nums, values_call
from .packages import load_imports
from .params import resolve_params, substitute_params
from .parser import parse
from .scopes import Names, PackageInfo
from .stmtgen import Emitter, generate_package, generate_step
from .stream import Stream, StreamLayout
from .values import DEC_EMAX, Lambda, display, ieee_fmod

__all__ = ["Program", "Bound", "compile_program", "locate_error"]

# Generated module filename -> (DPLang file, per-line positions, DPLang source lines).
_LINEMAPS: dict[str, tuple[str, list, list[str]]] = {}
_counter = itertools.count(1)


class _InternalError(DPRuntimeError):
    kind = "InternalError"


def _chk(v: Any, name: str) -> Any:
    if v is rt.UNSET:
        raise UndefinedVariable(f"undefined variable: {name}")
    return v


def _undefined_var(name: str) -> Any:
    raise UndefinedVariable(f"undefined variable: {name}")


def _undefined_fn(name: str) -> Any:
    raise UndefinedFunction(f"undefined function: {name}")


def _call_checked(b: Any, *args: Any, **kwargs: Any) -> Any:
    b.check_arity(len(args) + len(kwargs), tuple(kwargs))
    return b.fn(*args, **kwargs)


def _arity_error(name: str, lo: int, hi: int, given: tuple) -> Any:
    n = sum(1 for g in given if g is not _MISSING)
    raise ArgumentMismatch(f"function {name} argument count mismatch: expected {lo}-{hi}, got {n}")


def _call_pkg(fn: Any, name: str, lo: int, hi: int, S: Any, srcs: tuple, *args: Any, **kw: Any) -> Any:
    n = len(args) + len(kw)
    if not lo <= n <= hi:
        raise ArgumentMismatch(f"function {name} argument count mismatch: expected {lo}-{hi}, got {n}")
    return fn(S, srcs, *args, **kw)


def _nvl0(v: Any) -> Any:
    return 0.0 if v is None or v is rt.UNSET else v


def _series_outside(fn: str) -> Any:
    raise DPTypeError(f"{fn} can only be used while a row is processed")


def _hbuf(S: Any, src: str | None) -> Any:
    return None if S is None or src is None else S.h.get(src)


_MISSING: Any = object()

_RUNTIME: dict[str, Any] = {
    "_UNSET": rt.UNSET, "_MISSING": _MISSING, "_chk": _chk, "_undefined_var": _undefined_var,
    "_undefined_fn": _undefined_fn, "_Lambda": Lambda, "_call_value": rt.call_value,
    "_pipe_value": rt.pipe_value, "_call_checked": _call_checked, "_display": display,
    "_spread": rt.spread, "_array_index": rt.array_index, "_array_slice": rt.array_slice, "_OMIT": rt.OMIT,
    "_slice_too_large": rt.slice_too_large, "_hist_at": rt.hist_at, "_hist_tail": rt.hist_tail, "_NO_CURRENT": rt._NO_CURRENT, "_ts_at": rt.ts_at, "_hist_slice": rt.hist_slice, "_hbuf": _hbuf,
    "_index_number": rt.index_number, "_destructure": rt.destructure,
    "_result_row": rt.result_row, "_cell": rt.cell, "_apply_precision": rt.apply_precision,
    "_series_func": rt.series_func, "_series_outside": _series_outside,
    "_ind_values": values_call, "_ind_call": dynamic_call, "_ind_invalid": invalid_call, "_any_list": any_list, "_num": num,
    "_nums": nums, "_numc": numc, "_nvl0": _nvl0, "_eq": ops.eq, "_fmod": ieee_fmod,
    "_ScriptExit": ScriptExit, "_arity_error": _arity_error, "_call_pkg": _call_pkg,
}

_UNBOUND_RE = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)'")


def locate_error(exc: BaseException, *, row: int | None = None, key: Any = None,
                 input_line: int | None = None, statement: bool = False) -> DPLangError:
    """Turn any exception raised by compiled code into a located DPLangError (§14.2): at the
    failing operator or call, or with ``statement`` at the start of its statement."""
    if isinstance(exc, DPLangError):
        err = exc
    elif isinstance(exc, NameError):  # UnboundLocalError is a NameError
        m = _UNBOUND_RE.search(str(exc))
        err = UndefinedVariable(f"undefined variable: {_demangle(m.group(1)) if m else '?'}")
    elif isinstance(exc, RecursionError):
        err = DPTypeError("recursion too deep (a lambda calls itself without end?)")
    elif isinstance(exc, DecimalException):
        err = DPTypeError(f"decimal result out of range ({type(exc).__name__}: decimals have at "
                          f"most 28 significant digits and exponents up to {DEC_EMAX})")
    elif isinstance(exc, TypeError) and "positional argument" in str(exc):
        err = ArgumentMismatch(f"wrong number of arguments: {exc}")
    else:
        err = _InternalError(f"internal error: {type(exc).__name__}: {exc}")
    where = None
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame of generated code with a known position
        code = tb.tb_frame.f_code
        info = _LINEMAPS.get(code.co_filename)
        if info is not None:
            pos = info[1][tb.tb_lineno - 1] if 0 < tb.tb_lineno <= len(info[1]) else None
            if pos is not None:
                where = (info, pos, code, tb.tb_lasti, tb.tb_lineno)
        tb = tb.tb_next
    if where is not None and err.line is None:
        (file, _, lines), pos, code, lasti, lineno = where
        line, col = pos[0], pos[1]
        if len(pos) > 2 and not statement:
            at = instruction_span(code, lasti, lineno)
            hit = innermost(pos[2], at) if at is not None else None
            if hit is not None:
                line, col = hit
        if line is not None:
            err.file, err.line, err.column = file, line, col
            err.source_line = lines[line - 1] if 0 < line <= len(lines) else None
    err.located(row=row, key=key, input_line=input_line)
    return err


_DEMANGLE: dict[str, str] = {}


def _demangle(py: str) -> str:
    return _DEMANGLE.get(py, py)


def _error_record(exc: BaseException) -> rt.ErrorRecord:
    """``_error`` for an ERROR block: its line is the failing statement's (§9.5)."""
    err = locate_error(exc, statement=True)
    return rt.ErrorRecord(err.kind, err.message, err.line)


def _error_block_failed(exc: BaseException) -> DPLangError:
    """An error raised by the ERROR block itself: located, and marked to end the run."""
    err = locate_error(exc)
    err.aborts_run = True
    return err


_RUNTIME["_error_record"] = _error_record
_RUNTIME["_error_block_failed"] = _error_block_failed
#: Names every generated module's namespace provides (never passed to hoisted helpers).
_MODULE_NAMES = set(_RUNTIME) | {"_ops", "_warn_extra"}


def _exec_module(em: Emitter, file: str, source: str, names: Names, ns: dict[str, Any]) -> dict[str, Any]:
    filename = f"<dplang:{next(_counter)}:{file}>"
    _LINEMAPS[filename] = (file, em.pos, source.split("\n"))
    _DEMANGLE.update(names.back)
    try:
        code = compile(em.source(), filename, "exec")
    except (SyntaxError, RecursionError, MemoryError) as exc:  # Python's own nesting limits
        raise _too_complex(exc, em, file, source) from None
    exec(code, ns)
    return ns


def _too_complex(exc: BaseException, em: Emitter, file: str, source: str) -> ParseError:
    """The statement whose generated code Python refused (the generator keeps code shallow;
    this is the last resort, e.g. deep code around a lambda that reads later variables)."""
    lineno = getattr(exc, "lineno", None) or 0
    pos = em.pos[lineno - 1] if 0 < lineno <= len(em.pos) else None
    line, col = (pos[0], pos[1]) if pos is not None and pos[0] is not None else (None, None)
    lines = source.split("\n")
    return ParseError("expression too deeply nested to compile; split it with intermediate variables",
                      file=file, line=line, column=col,
                      source_line=lines[line - 1] if line and 0 < line <= len(lines) else None)


@dataclass
class _LoadedPackage:
    qual: str
    tree: A.Package
    ns: dict[str, Any]
    info: PackageInfo  # names inside the package's own module


@dataclass
class Program:
    """A parsed, checked data script with its packages; bind it to input columns to run."""

    script: A.Script
    file: str
    packages: dict[str, _LoadedPackage]
    warnings: list[Diagnostic]
    tracking: Tracking
    strict_null: bool = False
    on_warning: Callable[[Diagnostic], None] | None = None
    params: dict[str, Any] = field(default_factory=dict)  # every declared parameter's value (§3.7)
    _warned: set[str] = field(default_factory=set)
    _bound: dict[tuple, "Bound"] = field(default_factory=dict)

    @property
    def inputs(self) -> list[str]:
        return self.script.input_names

    @property
    def outputs(self) -> list[str]:
        return self.script.output_names

    @property
    def input_types(self) -> dict[str, str | None]:
        return dict(self.script.inputs)

    @property
    def output_types(self) -> dict[str, str | None]:
        return dict(self.script.outputs)

    @property
    def uses_lookahead(self) -> bool:
        return self.tracking.lookahead

    @property
    def uses_total(self) -> bool:
        return self.tracking.uses_total

    @property
    def is_generator(self) -> bool:
        return not self.script.declared_input

    def warn_once(self, key: str, message: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        d = Diagnostic("warning", message, self.file, 0, 0, is_error=False)
        if self.on_warning is not None:
            self.on_warning(d)
        else:
            print(f"warning: {message}", file=sys.stderr)

    def schema_for(self, columns: list[str] | None) -> list[str]:
        """The row layout R: declared INPUT columns, else the input's columns."""
        if self.script.declared_input:
            return self.inputs
        return list(columns or [])

    def bind(self, columns: list[str] | None = None, *, typed: bool = False) -> "Bound":
        """The row form for input ``columns``. ``typed``: the reader guarantees every cell has
        its INPUT type (CSV does; JSON values keep their own type), which lets the compiler
        drop checks."""
        schema = self.schema_for(columns)
        key = (tuple(schema), typed)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = Bound(self, schema, typed)
        return bound


class Bound:
    """The row form of a program for one input layout: ``step(S, R) -> out_row | None``."""

    def __init__(self, program: Program, schema: list[str], typed: bool = False):
        self.program = program
        self.schema = schema
        self.typed = typed
        names = Names()
        consts: dict[str, Any] = {}
        packages = {q: self._script_side(p, names, consts) for q, p in program.packages.items()}
        with headroom():
            em, gen, buffer_names = generate_step(
                program.script, names=names, consts=consts, packages=packages,
                tracking=program.tracking, schema=schema, file=program.file,
                may_decimal=_may_decimal(program), typed=typed, module_names=_MODULE_NAMES)
        self.source = em.source()
        ns = dict(_RUNTIME)
        ns.update(consts)
        ns["_ops"] = ops.STRICT if program.strict_null else ops.NORMAL
        ns["_warn_extra"] = self._warn_extra
        _exec_module(em, program.file, program.script.source, names, ns)
        self.step: Callable[[Stream, list], list | None] = ns["step"]
        lookback = program.tracking.lookback
        self.layout = StreamLayout(
            buffers=tuple((n, lookback[n]) for n in buffer_names),
            sites=tuple((s.name, s.params) for s in gen.sites))
        self.sites = gen.sites

    def _warn_extra(self, n: int, n_out: int) -> None:
        self.program.warn_once("extra", f"a row result has {n} values but OUTPUT declares {n_out}; "
                                        "the extra values are ignored")

    @staticmethod
    def _script_side(p: _LoadedPackage, names: Names, consts: dict[str, Any]) -> PackageInfo:
        variables = {}
        for vname, py in p.info.variables.items():
            c = names.get("X", f"{p.qual}.{vname}")
            consts[c] = p.ns[py]
            variables[vname] = c
        funcs = {}
        for fname, py in p.info.func_py.items():
            c = names.get("X", f"{p.qual}.{fname}()")
            consts[c] = p.ns[py]
            funcs[fname] = c
        return PackageInfo(p.qual, p.info.file, variables, p.info.functions, funcs)

    def new_stream(self, key: Any = None, *, window: int | None = None, total: int | None = None,
                   rows: list | None = None, position: Callable[[], float] | None = None) -> Stream:
        return Stream(self.layout, key, window=window, total=total, rows=rows, position=position)


def _may_decimal(program: Program) -> bool:
    """Whether a row result can hold decimals (PRECISION then applies, §5.6)."""
    if any(t == "decimal" for _, t in program.script.inputs):
        return True
    trees: list[Any] = list(program.script.body) + list(program.script.error_block or [])
    for p in program.packages.values():
        trees += list(p.tree.variables) + list(p.tree.functions)
    for root in trees:
        for node in A.walk(root):
            if isinstance(node, A.Call) and node.name in ("decimal", "safe_decimal"):
                return True
    # Untyped or JSON inputs may carry decimals only through these builtins.
    return False


def _compile_package(qual: str, tree: A.Package, file: str, strict: bool) -> _LoadedPackage:
    names = Names()
    consts: dict[str, Any] = {}
    info = PackageInfo(
        qual, file,
        variables={v.name: names.get("G", v.name) for v in tree.variables},
        functions={f.name: f for f in tree.functions},
        func_py={f.name: names.get("F", f.name) for f in tree.functions}, name=tree.name)
    with headroom():
        em, _ = generate_package(tree, info, names=names, consts=consts, packages={}, file=file,
                                 module_names=_MODULE_NAMES)
    ns = dict(_RUNTIME)
    ns.update(consts)
    ns["_ops"] = ops.STRICT if strict else ops.NORMAL
    _exec_module(em, file, tree.source, names, ns)
    try:
        ns["_init"]()
    except Exception as exc:  # a failing initialiser aborts before the first row
        raise locate_error(exc) from None
    return _LoadedPackage(qual, tree, ns, info)


def compile_program(source: str, file: str | None = None, *, strict_null: bool = False,
                    on_warning: Callable[[Diagnostic], None] | None = None,
                    params: Mapping[str, Any] | None = None, ignore_unknown_params: bool = False) -> Program:
    """Parse, load packages, check (§11.2) and prepare ``source``. Raises LexError,
    ParseError, PackageError, CheckError (all findings attached) or ArgumentMismatch.

    ``params``: values of the script's parameters (§3.7), as text or Python values, over the
    declared defaults; a name the script does not declare (unless ``ignore_unknown_params``)
    or a value that does not convert is a ParamError. The values become constants of the
    compiled program (``Program.params``)."""
    file = file or "<script>"
    with headroom():
        return _compile_program(source, file, strict_null, on_warning, params, ignore_unknown_params)


def _compile_program(source: str, file: str, strict_null: bool,
                     on_warning: Callable[[Diagnostic], None] | None,
                     params: Mapping[str, Any] | None = None, ignore_unknown_params: bool = False) -> Program:
    result = parse(source, file)
    tree = result.tree
    if isinstance(tree, A.Package):
        raise InputError(f"{file} is a package script; it processes no rows "
                         "(import it from a data script with -- IMPORT name --)", file=file)
    trees = load_imports(tree)
    findings = result.warnings + check(tree, trees)
    errors = [d for d in findings if d.is_error]
    if errors:
        first = errors[0]
        kind = CheckError if first.code == "CheckError" else None
        exc: DPLangError
        if kind is None:
            exc = ArgumentMismatch(first.message, file=first.file, line=first.line,
                                   column=first.column, source_line=first.source_line)
            exc.findings = findings  # type: ignore[attr-defined]
        else:
            more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
            exc = CheckError(first.message + more, findings=findings,
                             file=first.file, line=first.line, column=first.column,
                             source_line=first.source_line)
        raise exc
    values = resolve_params(tree, params, file=file, ignore_unknown=ignore_unknown_params)
    substitute_params(tree, values)
    packages = {q: _compile_package(q, t, t.file or q, strict_null) for q, t in trees.items()}
    uses = package_param_uses(trees)
    tracking = track_script(tree, uses)
    program = Program(tree, file, packages, [d for d in findings if not d.is_error], tracking,
                      strict_null, on_warning, values)
    return program


MAX_SCRIPT_BYTES = 10 << 20


def read_script(path: str) -> str:
    """A script's text; a FIFO, device or folder (which would block or never end) and files
    over 10 MiB are refused without being opened for reading."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"cannot read script {path}: not a regular file", file=path)
        if st.st_size > MAX_SCRIPT_BYTES:
            raise InputError(f"cannot read script {path}: {st.st_size:,} bytes, over the 10 MiB a script may have",
                             file=path)
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read script {path}: {exc}", file=path) from None
