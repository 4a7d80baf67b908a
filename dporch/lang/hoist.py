"""Keep generated Python shallow: Python's tokenizer refuses more than 200 nested brackets and
its compiler recurses on nesting, while DPLang allows deeper expressions (see :mod:`.limits`).

A sub-expression whose code nests more than :data:`HOIST_DEPTH` brackets is moved into a
module-level helper ``def _hN(a, b): return <code>`` and replaced by the call ``_hN(a, b)``,
its free local names passed as arguments. The call is evaluated exactly where the code was
(same order, same laziness); arguments are read at that moment, which is when the code would
have read them. Code that creates a lambda is never moved: a lambda body reads some variables
of its creating scope when it is called, not when it is created, so code holding such a lambda
stays in place (a lambda that reads only its parameters and captures moves with its code).
"""

from __future__ import annotations

import builtins
import re
import symtable
from dataclasses import dataclass, field

from .marks import strip_marks

__all__ = ["HOIST_DEPTH", "bracket_depth", "Hoister"]

HOIST_DEPTH = 40

_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_BRACKETS = re.compile(r"[()\[\]{}]")
_BUILTINS = frozenset(dir(builtins))


def bracket_depth(code: str) -> int:
    """Deepest bracket nesting of Python ``code`` (string literals ignored)."""
    if len(code) < 2 * HOIST_DEPTH:
        return 0
    depth = deepest = 0
    for ch in _BRACKETS.findall(_STRINGS.sub("", code)):
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _scopes(code: str) -> tuple[list[str], set[str]]:
    """(names ``code`` reads but does not assign, names its lambdas' bodies read from outside
    ``code`` when they are called)."""
    table = symtable.symtable(f"def _f():\n    return {code}\n", "<hoist>", "exec")
    func = table.get_children()[0]
    free = sorted(sym.get_name() for sym in func.get_symbols() if sym.is_referenced() and sym.is_global())
    late: set[str] = set()
    stack = list(func.get_children())
    while stack:
        inner = stack.pop()
        late.update(sym.get_name() for sym in inner.get_symbols() if sym.is_referenced() and sym.is_global())
        stack.extend(inner.get_children())
    return free, late


@dataclass
class Hoister:
    """Collects helpers for one generated module. ``module_names``: what the module's
    namespace provides (runtime helpers, constants, package members): never passed."""

    module_names: set[str]
    consts: dict = field(default_factory=dict)  # the module's constants (filled while generating)
    helpers: list[tuple[str, list[str], str, tuple[int, int] | None]] = field(default_factory=list)

    def __call__(self, code: str, where: tuple[int, int] | None) -> str:
        """``code`` itself, or a call of a new helper holding it when it nests too deeply."""
        if bracket_depth(code) <= HOIST_DEPTH:
            return code
        plain, _ = strip_marks(code)
        free, late = _scopes(plain)
        own = {h[0] for h in self.helpers}

        def local(n: str) -> bool:
            return not (n in self.module_names or n in self.consts or n in own or n in _BUILTINS)

        if any(local(n) for n in late):  # a lambda reading the row's variables when called
            return code
        name = f"_h{len(self.helpers) + 1}"
        params = [n for n in free if local(n)]
        self.helpers.append((name, params, code, where))
        return f"{name}({', '.join(params)})"

    def emit(self, em: "Emitter") -> None:  # type: ignore[name-defined]  # noqa: F821
        """Append the helpers to the module (they are looked up when first called)."""
        for name, params, code, where in self.helpers:
            em.indent, em.where = 0, where
            em.emit(f"def {name}({', '.join(params)}):")
            em.indent = 1
            em.emit(f"return {code}")
        em.indent = 0
