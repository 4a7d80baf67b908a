"""Static facts the code generator needs: constant folding, which names need history and how far
back (§8.1: "keep history only for names the script actually indexes"), and which builtins are
special forms that read row context (indicators, deprecated series functions, POSITION)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import ast as A
from .indicators import INDICATORS

__all__ = [
    "SERIES_FUNCS", "SPECIAL_FUNCS", "const_value", "const_int", "Tracking", "track_script",
    "ParamUse", "package_param_uses", "assigned_names",
]

#: Deprecated time-series functions (§8.8): first argument names a series.
SERIES_FUNCS = ("ref", "offset", "past", "window")
#: Builtins compiled as special forms because they read the row's context.
SPECIAL_FUNCS = frozenset(SERIES_FUNCS) | frozenset(INDICATORS) | {"POSITION"}

UNBOUNDED = None  # lookback value meaning "keep everything"
#: Offsets further back than this are never in any stream's history (always null), so they
#: need no buffer (a deque that long cannot even be created).
MAX_OFFSET = 2**40


def const_value(e: A.Expr | None) -> float | None:
    """The numeric value of a constant expression (literals and arithmetic on them), else None."""
    if isinstance(e, A.Num):
        return e.value
    if isinstance(e, A.Unary) and e.op == "-":
        v = const_value(e.operand)
        return None if v is None else -v
    if isinstance(e, A.Binary) and e.op in "+-*":
        nodes = A.spine(e)  # folded left to right (chains can be long)
        v = const_value(nodes[-1].left)  # type: ignore[attr-defined]
        for node in reversed(nodes):
            b = const_value(node.right) if node.op in "+-*" else None  # type: ignore[attr-defined]
            if v is None or b is None:
                return None
            v = v + b if node.op == "+" else v - b if node.op == "-" else v * b  # type: ignore[attr-defined]
        return v
    return None


def const_int(e: A.Expr | None) -> int | None:
    v = const_value(e)
    if v is None or math.isnan(v) or math.isinf(v):
        return None
    return int(v)


def _merge(old: int | None | bool, new: int | None) -> int | None:
    """Combine two lookback requirements (None = unbounded wins)."""
    if old is False:
        return new
    if old is None or new is None:
        return None
    return max(old, new)


@dataclass
class ParamUse:
    """How a package function uses one parameter as a series."""

    lookback: int | None | bool = False  # False: no history use; None: unbounded
    series: bool = False  # passed as an indicator series


@dataclass
class Tracking:
    """Names whose per-row values must be recorded, and why."""

    lookback: dict[str, int | None] = field(default_factory=dict)
    indicator_sources: set[str] = field(default_factory=set)
    lazy_sources: set[str] = field(default_factory=set)  # feed lazily created indicator states
    lookahead: bool = False
    uses_total: bool = False

    def need(self, name: str, lookback: int | None) -> None:
        self.lookback[name] = _merge(self.lookback.get(name, False), lookback)

    @property
    def tracked(self) -> set[str]:
        return set(self.lookback) | self.indicator_sources | self.lazy_sources


def _ts_access(node: A.Expr, t: Tracking) -> None:
    """Record what the time-series access ``node`` (Index/Slice on a Name) needs."""
    name = node.base.id  # type: ignore[union-attr]
    if isinstance(node, A.Index):
        k = const_int(node.index)
        if k is None:
            t.need(name, UNBOUNDED)
            t.lookahead = True
        elif 0 < -k <= MAX_OFFSET:
            t.need(name, -k)
        elif k > 0:
            t.lookahead = True
        return
    a = None if node.start is None else const_int(node.start)
    b = -1 if node.end is None else const_int(node.end)
    if node.zero_alias or node.start is None or (node.start is not None and a is None):
        t.need(name, UNBOUNDED)
    elif 0 < -a <= MAX_OFFSET:
        t.need(name, -a)
    if b is None or b > 0:
        t.lookahead = True
    if b is None:
        t.need(name, UNBOUNDED)


def _series_func(call: A.Call, t: Tracking) -> None:
    if not call.args:
        return
    first = call.args[0]
    name = first.id if isinstance(first, A.Name) else first.value if isinstance(first, A.Str) else None
    if name is None:
        return
    n = const_int(call.args[1]) if len(call.args) > 1 else None
    if n is None or abs(n) <= MAX_OFFSET:
        t.need(name, UNBOUNDED if n is None else abs(n))


def _visit(nodes, t: Tracking, param_uses: dict[tuple[str, str], list[ParamUse]]) -> None:
    for root in nodes:
        for node in A.walk(root):
            if isinstance(node, (A.Index, A.Slice)) and isinstance(node.base, A.Name):
                _ts_access(node, t)
            elif isinstance(node, A.Name) and node.id == "_total":
                t.uses_total = True
            elif isinstance(node, A.Call) and node.pkg is None and node.name in SERIES_FUNCS:
                _series_func(node, t)
            elif isinstance(node, A.Call) and node.pkg is None and node.name in INDICATORS:
                info = INDICATORS[node.name]
                params = node.args[info.n_series:]
                static = all(const_value(p) is not None for p in params) and not node.kwargs
                for a in node.args[: info.n_series]:
                    if isinstance(a, A.Name):
                        if static:
                            t.indicator_sources.add(a.id)
                        else:
                            t.lazy_sources.add(a.id)
                            t.need(a.id, UNBOUNDED)
            elif isinstance(node, A.Call) and node.pkg is not None:
                uses = param_uses.get((node.pkg, node.name))
                if not uses:
                    continue
                for a, use in zip(node.args, uses):
                    if isinstance(a, A.Name):
                        if use.lookback is not False:
                            t.need(a.id, use.lookback)
                        if use.series:
                            t.lazy_sources.add(a.id)
                            t.need(a.id, UNBOUNDED)


def track_script(script: A.Script, param_uses: dict[tuple[str, str], list[ParamUse]]) -> Tracking:
    t = Tracking()
    _visit(list(script.body) + list(script.error_block or []), t, param_uses)
    return t


def package_param_uses(packages: dict[str, A.Package]) -> dict[tuple[str, str], list[ParamUse]]:
    """For every package function, how each parameter is used as a series, propagated through
    calls between package functions (fixed point)."""
    uses: dict[tuple[str, str], list[ParamUse]] = {}
    for qual, pkg in packages.items():
        for f in pkg.functions:
            uses[(qual, f.name)] = [ParamUse() for _ in f.params]
    changed = True
    while changed:
        changed = False
        for qual, pkg in packages.items():
            funcs = {f.name for f in pkg.functions}
            for f in pkg.functions:
                mine = uses[(qual, f.name)]
                index = {p.name: i for i, p in enumerate(f.params)}
                t = Tracking()
                _visit(f.body, t, {})
                for name, lb in t.lookback.items():
                    if name in index:
                        changed |= _update(mine[index[name]], lookback=lb)
                for name in t.indicator_sources | t.lazy_sources:
                    if name in index:
                        changed |= _update(mine[index[name]], series=True)
                for node in (n for s in f.body for n in A.walk(s)):
                    if not isinstance(node, A.Call):
                        continue
                    callee = None
                    if node.pkg is None and node.name in funcs:
                        callee = (qual, node.name)
                    elif node.pkg == qual:
                        callee = (qual, node.name)
                    if callee is None or callee not in uses:
                        continue
                    for a, use in zip(node.args, uses[callee]):
                        if isinstance(a, A.Name) and a.id in index:
                            target = mine[index[a.id]]
                            if use.lookback is not False:
                                changed |= _update(target, lookback=use.lookback)
                            if use.series:
                                changed |= _update(target, series=True)
    return uses


def _update(use: ParamUse, *, lookback: int | None | bool = False, series: bool = False) -> bool:
    changed = False
    if lookback is not False:
        new = _merge(use.lookback, lookback)
        if new != use.lookback or use.lookback is False:
            changed = new != use.lookback
            use.lookback = new
    if series and not use.series:
        use.series = True
        changed = True
    return changed


def assigned_names(stmts: list[A.Stmt]) -> list[str]:
    """Every name assigned (or destructured) anywhere in ``stmts``, in first-assignment order."""
    out: dict[str, None] = {}
    for s in stmts:
        for node in A.walk(s):
            if isinstance(node, A.Assign):
                out.setdefault(node.name)
            elif isinstance(node, A.Destructure):
                for kind, n in node.patterns:
                    if n is not None:
                        out.setdefault(n)
    return list(out)
