"""AST of DPLang (docs/language.md §17). Nodes are plain dataclasses carrying their 1-based position."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "Node", "Expr", "Stmt", "Num", "Str", "FStr", "Bool", "Null", "Name", "ArrayLit", "Spread",
    "Unary", "Binary", "Compare", "Logic", "Ternary", "When", "LambdaExpr", "Call", "Index",
    "Slice", "Member", "Assign", "Destructure", "If", "Return", "ExprStmt", "Param", "FuncDef",
    "PkgVar", "ParamDecl", "Script", "Package", "walk", "spine", "elif_chain",
]


@dataclass(eq=False)
class Node:
    line: int
    col: int


class Expr(Node):
    pass


class Stmt(Node):
    pass


@dataclass(eq=False)
class Num(Expr):
    value: float


@dataclass(eq=False)
class Str(Expr):
    value: str


@dataclass(eq=False)
class FStr(Expr):
    parts: list[Union[str, Expr]]


@dataclass(eq=False)
class Bool(Expr):
    value: bool


@dataclass(eq=False)
class Null(Expr):
    pass


@dataclass(eq=False)
class Name(Expr):
    id: str


@dataclass(eq=False)
class Spread(Expr):
    """``...expr``: only as an array element or a call argument."""

    value: Expr


@dataclass(eq=False)
class ArrayLit(Expr):
    elems: list[Expr]  # may contain Spread


@dataclass(eq=False)
class Unary(Expr):
    op: str  # '-' or 'not'
    operand: Expr


@dataclass(eq=False)
class Binary(Expr):
    op: str  # + - * / % ^
    left: Expr
    right: Expr


@dataclass(eq=False)
class Compare(Expr):
    """Chained comparison ``a < b <= c``: operands evaluated once each."""

    ops: list[str]
    operands: list[Expr]
    op_pos: list[tuple[int, int]] = field(default_factory=list)  # (line, col) of each operator


@dataclass(eq=False)
class Logic(Expr):
    op: str  # 'and' | 'or'
    left: Expr
    right: Expr


@dataclass(eq=False)
class Ternary(Expr):
    cond: Expr
    then: Expr
    other: Expr


@dataclass(eq=False)
class When(Expr):
    arms: list[tuple[Expr, Expr]]
    other: Expr | None


@dataclass(eq=False)
class LambdaExpr(Expr):
    params: list[str]
    body: Expr


@dataclass(eq=False)
class Call(Expr):
    """``name(args)`` or ``pkg.name(args)``. ``pipe_bare`` marks ``v |> f`` (f must hold a
    lambda at runtime)."""

    name: str
    pkg: str | None
    args: list[Expr]  # may contain Spread
    kwargs: list[tuple[str, Expr]] = field(default_factory=list)
    pipe_bare: bool = False


@dataclass(eq=False)
class Index(Expr):
    base: Expr
    index: Expr


@dataclass(eq=False)
class Slice(Expr):
    base: Expr
    start: Expr | None
    end: Expr | None
    zero_alias: bool = False  # written literally as [0:0] (§8.4)


@dataclass(eq=False)
class Member(Expr):
    pkg: str
    name: str


@dataclass(eq=False)
class Assign(Stmt):
    name: str
    value: Expr


@dataclass(eq=False)
class Destructure(Stmt):
    patterns: list[tuple[str, str | None]]  # ('name', n) | ('skip', None) | ('rest', n)
    value: Expr


@dataclass(eq=False)
class If(Stmt):
    cond: Expr
    body: list[Stmt]
    orelse: list[Stmt]
    is_elif: bool = False


@dataclass(eq=False)
class Return(Stmt):
    value: Expr | None


@dataclass(eq=False)
class ExprStmt(Stmt):
    value: Expr


@dataclass(eq=False)
class Param(Node):
    name: str
    type: str | None
    default: Expr | None


@dataclass(eq=False)
class FuncDef(Stmt):
    name: str
    params: list[Param]
    ret_type: str | None
    body: list[Stmt]


@dataclass(eq=False)
class PkgVar(Stmt):
    name: str
    value: Expr
    mut: bool = False


@dataclass(eq=False)
class ParamDecl(Node):
    """A script parameter of ``-- PARAMS name:type = default --`` (§3.7)."""

    name: str
    type: str  # number decimal string bool
    default: Any


@dataclass(eq=False)
class Script:
    """A data script: header declarations and the body."""

    file: str | None
    source: str
    inputs: list[tuple[str, str | None]]
    outputs: list[tuple[str, str | None]]
    imports: list[tuple[str, int, int]]  # name, line, col
    precision: int
    error_block: list[Stmt] | None
    body: list[Stmt]
    declared_input: bool  # an INPUT declaration with at least one column
    decl_lines: dict[str, int] = field(default_factory=dict)
    params: list[ParamDecl] = field(default_factory=list)

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def input_names(self) -> list[str]:
        return [n for n, _ in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [n for n, _ in self.outputs]


@dataclass(eq=False)
class Package:
    file: str | None
    source: str
    name: str
    variables: list[PkgVar]
    functions: list[FuncDef]


def children(node: Node):
    """Direct child nodes of ``node`` (expressions and statements)."""
    if isinstance(node, (Num, Str, Bool, Null, Name, Member)):
        return
    if isinstance(node, FStr):
        for p in node.parts:
            if isinstance(p, Node):
                yield p
    elif isinstance(node, (Spread,)):
        yield node.value
    elif isinstance(node, ArrayLit):
        yield from node.elems
    elif isinstance(node, Unary):
        yield node.operand
    elif isinstance(node, (Binary, Logic)):
        yield node.left
        yield node.right
    elif isinstance(node, Compare):
        yield from node.operands
    elif isinstance(node, Ternary):
        yield node.cond
        yield node.then
        yield node.other
    elif isinstance(node, When):
        for c, r in node.arms:
            yield c
            yield r
        if node.other is not None:
            yield node.other
    elif isinstance(node, LambdaExpr):
        yield node.body
    elif isinstance(node, Call):
        yield from node.args
        for _, v in node.kwargs:
            yield v
    elif isinstance(node, Index):
        yield node.base
        yield node.index
    elif isinstance(node, Slice):
        yield node.base
        if node.start is not None:
            yield node.start
        if node.end is not None:
            yield node.end
    elif isinstance(node, (Assign, Destructure, ExprStmt, PkgVar)):
        yield node.value
    elif isinstance(node, Return):
        if node.value is not None:
            yield node.value
    elif isinstance(node, If):
        yield node.cond
        yield from node.body
        yield from node.orelse
    elif isinstance(node, FuncDef):
        for p in node.params:
            if p.default is not None:
                yield p.default
        yield from node.body


def walk(node: Node):
    """``node`` and all its descendants, depth first, in source order."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(list(children(n))))


_GROUPS = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2}


def _continues(node: Node, inner: Node) -> bool:
    if isinstance(node, Binary):
        return isinstance(inner, Binary) and _GROUPS.get(inner.op, 0) == _GROUPS.get(node.op, -1)
    if isinstance(node, Logic):
        return isinstance(inner, Logic) and inner.op == node.op
    return isinstance(inner, Call)


def spine(e: Expr) -> list[Expr]:
    """The nodes of the left-associative chain ``e`` heads, outermost first: ``a + b - c``
    (one precedence level of + - or * / %), ``a and b and c`` (one operator), or a call whose
    first argument is a call (pipelines: ``x |> f() |> g()`` is ``g(f(x))``). Chains are
    unlimited in length, so passes walk them with this instead of recursing."""
    nodes = [e]
    if not isinstance(e, (Binary, Logic, Call)):
        return nodes
    while True:
        node = nodes[-1]
        if isinstance(node, Call) and not node.args:
            return nodes
        inner = node.args[0] if isinstance(node, Call) else node.left  # type: ignore[attr-defined]
        if not _continues(node, inner):
            return nodes
        nodes.append(inner)


def elif_chain(s: If) -> list[If]:
    """An ``if`` and its ``elif`` branches (each the else branch of the one before)."""
    chain = [s]
    while len(chain[-1].orelse) == 1 and isinstance(chain[-1].orelse[0], If) and chain[-1].orelse[0].is_elif:
        chain.append(chain[-1].orelse[0])  # type: ignore[arg-type]
    return chain
