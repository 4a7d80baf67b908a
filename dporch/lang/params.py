"""Script parameters (docs/language.md §3.7): ``-- PARAMS fast:number = 5, mode:string = "ema" --``.

A parameter is a named constant of a whole run. Its value is the declared default unless set
from outside (``dporch run --set fast=10``, ``dporch backtest --sweep``, ``params = {...}`` of a
task, ``compile_program(..., params={...})``). Values set from outside are converted to the
declared type like input cells of that type (§9.2); a name that is not declared or a value that
does not convert is a :class:`ParamError`, before any row is read.

Compiling substitutes each parameter's value for the names that read it, as a literal (a
negative number as ``-literal``, a decimal as ``decimal("text")``). Both forms (row and column)
therefore compile the same constants: ``MA(close, fast)`` has a fixed period, ``close[-fast:0]``
a fixed window, and constant folding applies.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Iterable, Mapping

from . import ast as A
from .cells import CellError, parse_cell
from .errors import ParamError
from .values import number_text

__all__ = ["resolve_params", "substitute_params", "parse_assignments", "param_text", "declared_params"]


def _type_help(typ: str) -> str:
    return {"number": "a number (5, -0.5, 1e3)", "decimal": "a decimal (10.50)",
            "string": "a string (any text)", "bool": "a bool (true or false)"}[typ]


def _convert(decl: A.ParamDecl, value: Any) -> Any:
    """``value`` (text, or a Python/TOML value) as the declared type of ``decl``."""
    typ = decl.type
    if isinstance(value, str):
        if value == "" or value == "null":
            raise ValueError("a parameter cannot be null")
        try:
            out = parse_cell(value, typ)
        except CellError as exc:
            raise ValueError(exc.message) from None
        return out
    if typ == "number" and isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return float(value)
    if typ == "decimal" and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        d = Decimal(value)
        if d.is_finite():
            return d
    if typ == "decimal" and isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    if typ == "bool" and isinstance(value, bool):
        return value
    raise ValueError(f"got {value!r}")


def declared_params(script: A.Script) -> dict[str, A.ParamDecl]:
    return {p.name: p for p in script.params}


def resolve_params(script: A.Script, given: Mapping[str, Any] | None, *, file: str | None = None,
                   ignore_unknown: bool = False) -> dict[str, Any]:
    """Every declared parameter's value: ``given`` (converted) over the defaults. Raises
    ParamError naming the parameter and the accepted type."""
    decls = declared_params(script)
    values = {name: d.default for name, d in decls.items()}
    line = decls[next(iter(decls))].line if decls else script.decl_lines.get("PARAMS")
    for name, raw in (given or {}).items():
        decl = decls.get(name)
        if decl is None:
            if ignore_unknown:
                continue
            known = ", ".join(f"{d.name}:{d.type}" for d in decls.values())
            raise ParamError(f"the script has no parameter {name} "
                             + (f"(its parameters: {known})" if known else "(it declares no -- PARAMS --)"),
                             file=file, line=line)
        try:
            values[name] = _convert(decl, raw)
        except ValueError as exc:
            raise ParamError(f"parameter {name} expects {_type_help(decl.type)}: {exc}",
                             file=file, line=decl.line) from None
    return values


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["fast=10", "mode=ema"]`` -> ``{"fast": "10", "mode": "ema"}`` (the text after the
    first ``=``, as given). Raises ParamError for an item without ``=``."""
    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ParamError(f"--set expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value
    return out


def param_text(value: Any) -> str:
    """A parameter value as it would be written in -- PARAMS --."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number_text(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _literal(value: Any, at: A.Name) -> A.Expr:
    line, col = at.line, at.col
    if isinstance(value, bool):
        return A.Bool(line, col, value)
    if isinstance(value, Decimal):
        return A.Call(line, col, "decimal", None, [A.Str(line, col, str(value))])
    if isinstance(value, str):
        return A.Str(line, col, value)
    x = float(value)
    if x < 0 or (x == 0 and math.copysign(1.0, x) < 0):
        return A.Unary(line, col, "-", A.Num(line, col, -x))
    return A.Num(line, col, x)


def substitute_params(script: A.Script, values: Mapping[str, Any]) -> None:
    """Replace, in place, every name that reads a parameter with its value's literal (names
    bound by an enclosing lambda's parameters are not parameters)."""
    if not values:
        return
    stack: list[tuple[A.Node, frozenset[str]]] = [(s, frozenset()) for s in script.body]
    stack += [(s, frozenset()) for s in script.error_block or []]

    def swap(child: Any, shadow: frozenset[str]) -> Any:
        if isinstance(child, A.Name) and child.id in values and child.id not in shadow:
            return _literal(values[child.id], child)
        if isinstance(child, A.Node):
            stack.append((child, shadow))
        return child

    while stack:
        node, shadow = stack.pop()
        if isinstance(node, A.LambdaExpr):
            shadow = shadow | frozenset(node.params)
        for name in node.__dataclass_fields__:
            if name in ("line", "col"):
                continue
            v = getattr(node, name)
            if isinstance(v, A.Node):
                setattr(node, name, swap(v, shadow))
            elif isinstance(v, list):
                for i, item in enumerate(v):
                    if isinstance(item, A.Node):
                        v[i] = swap(item, shadow)
                    elif isinstance(item, tuple) and any(isinstance(x, A.Node) for x in item):
                        v[i] = tuple(swap(x, shadow) if isinstance(x, A.Node) else x for x in item)
