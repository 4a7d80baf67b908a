"""Name environments for code generation: how a DPLang name becomes a Python expression in each
context (data-script row, lambda body, package function, package initialiser)."""

from __future__ import annotations

from dataclasses import dataclass
from . import ast as A

__all__ = ["Names", "Env", "RowEnv", "LambdaEnv", "FuncEnv", "InitEnv", "PackageInfo"]


class Names:
    """DPLang names -> ASCII Python identifiers. Python NFKC-normalises Unicode identifiers,
    which would merge distinct DPLang names (``ｘ`` and ``x``), so every name is mangled."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], str] = {}
        self.back: dict[str, str] = {}

    def get(self, prefix: str, name: str) -> str:
        key = (prefix, name)
        py = self._ids.get(key)
        if py is None:
            py = f"{prefix}{len(self._ids)}"
            self._ids[key] = py
            self.back[py] = name.rsplit(":", 1)[-1]
        return py


@dataclass
class PackageInfo:
    """What code generation knows about a package: its members as Python expressions."""

    qual: str  # the import name (the qualifier in pkg.member)
    file: str
    variables: dict[str, str]  # name -> Python expression
    functions: dict[str, A.FuncDef]
    func_py: dict[str, str]  # name -> Python expression of the compiled function
    name: str = ""  # the name declared by `package NAME` (also accepted as qualifier inside)


class Env:
    """Base environment. ``raw(name)`` gives (python expression, definitely-set) for variables
    (the expression may hold the UNSET marker when not definitely set), ``source(name)`` the
    Python expression naming the stream series behind a name (or None: no history)."""

    in_row = True  # a stream (S) is available: time series, _index, indicators
    root: "Env"

    def raw(self, name: str) -> tuple[str, bool] | None:
        raise NotImplementedError

    def current(self, name: str) -> str:
        """Value at offset 0 (§8.3): the binding, else the input column, else null."""
        raise NotImplementedError

    def source(self, name: str) -> str | None:
        raise NotImplementedError

    def mark_defined(self, name: str) -> None:
        raise NotImplementedError


class RowEnv(Env):
    """The data script's row scope: INPUT names bound at row start, assigned variables."""

    def __init__(self, names: Names, *, inputs: list[str], schema: dict[str, int],
                 assigned: set[str], buffers: dict[str, str], lookback: dict[str, int | None]):
        self.names = names
        self.lookback = lookback
        self.inputs = set(inputs)
        self.schema = schema
        self.assigned = assigned
        self.buffers = buffers  # name -> local holding its history buffer
        self.defined: set[str] = set(inputs)
        self.preinit: set[str] = set()
        self.root = self

    def var(self, name: str) -> str:
        return self.names.get("v", name)

    target = var

    def raw(self, name: str) -> tuple[str, bool] | None:
        if name in self.inputs or name in self.assigned:
            if name not in self.defined:
                self.preinit.add(name)
            return self.var(name), name in self.defined
        return None

    def input_value(self, name: str) -> str:
        """The current row's input cell for ``name`` (history order: input column first)."""
        if name in self.schema:
            if name in self.inputs and name not in self.assigned:
                return self.var(name)
            return f"R[{self.schema[name]}]"
        return "None"

    def current(self, name: str) -> str:
        if name in self.assigned:
            py = self.var(name)
            if name in self.defined:
                return py
            self.preinit.add(name)
            return f"({py} if {py} is not _UNSET else {self.input_value(name)})"
        if name in self.inputs:
            return self.var(name)
        return self.input_value(name)

    def source(self, name: str) -> str | None:
        return repr(name)

    def mark_defined(self, name: str) -> None:
        self.defined.add(name)


class LambdaEnv(Env):
    """A lambda body (§6.12): its parameters, then the copy of variables taken when the lambda
    was created (Python default arguments), then the creating scope's variables at call time
    (Python closure cells) for names that were unset at creation."""

    def __init__(self, parent: Env, params: dict[str, str], names: Names, uid: int):
        self.parent = parent
        self.params = params
        self.names = names
        self.uid = uid
        self.in_row = parent.in_row
        self.root = parent.root
        self.captures: dict[str, tuple[str, str, bool]] = {}  # name -> (cvar, default, definite)

    def raw(self, name: str) -> tuple[str, bool] | None:
        if name in self.params:
            return self.params[name], True
        if name in self.captures:
            cvar, _, definite = self.captures[name]
            return cvar, definite
        r = self.parent.raw(name)
        if r is None:
            return None
        cvar = self.names.get("c", f"{self.uid}:{name}")
        self.captures[name] = (cvar, r[0], r[1])
        return cvar, r[1]

    def value(self, name: str) -> str | None:
        """The variable's value without the unset check (captured, else the creating scope's
        current variable), or None if it is not a variable."""
        r = self.raw(name)
        if r is None:
            return None
        if r[1]:
            return r[0]
        return f"({r[0]} if {r[0]} is not _UNSET else {self.dynamic(name)})"

    def dynamic(self, name: str) -> str:
        """The creating scope's variable, read at call time."""
        r = self.parent.raw(name)
        return r[0] if r else "_UNSET"

    def current(self, name: str) -> str:
        if name in self.params:
            return self.params[name]
        r = self.raw(name)
        if r is None:
            return self.parent.current(name)
        if r[1]:
            return r[0]
        return f"({r[0]} if {r[0]} is not _UNSET else {self.parent.current(name)})"

    def source(self, name: str) -> str | None:
        if name in self.params:
            return None
        return self.parent.source(name)

    def mark_defined(self, name: str) -> None:  # pragma: no cover - lambdas cannot assign
        raise AssertionError("assignment inside a lambda")


class FuncEnv(Env):
    """A package function body (§12.4): parameters and locals, then package members."""

    def __init__(self, names: Names, pkg: PackageInfo, fdef: A.FuncDef, locals_: set[str]):
        self.names = names
        self.pkg = pkg
        # Parameters are named by position so that callers compiled elsewhere can pass keywords.
        self.params = {p.name: f"a{i}" for i, p in enumerate(fdef.params)}
        self.param_index = {p.name: i for i, p in enumerate(fdef.params)}
        self.locals = locals_ - set(self.params)
        self.defined: set[str] = set()
        self.preinit: set[str] = set()
        self.fname = fdef.name
        self.root = self

    def local(self, name: str) -> str:
        return self.names.get("l", f"{self.pkg.qual}.{self.fname}:{name}")

    def target(self, name: str) -> str:
        return self.params[name] if name in self.params else self.local(name)

    def raw(self, name: str) -> tuple[str, bool] | None:
        if name in self.params:
            return self.params[name], True
        if name in self.locals:
            if name not in self.defined:
                self.preinit.add(name)
            return self.local(name), name in self.defined
        if name in self.pkg.variables:
            return self.pkg.variables[name], True
        return None

    def current(self, name: str) -> str:
        r = self.raw(name)
        if r is None:
            return "None"
        return r[0] if r[1] else f"({r[0]} if {r[0]} is not _UNSET else None)"

    def source(self, name: str) -> str | None:
        if name in self.param_index:
            return f"srcs[{self.param_index[name]}]"
        return None

    def mark_defined(self, name: str) -> None:
        self.defined.add(name)


class InitEnv(Env):
    """A package variable initialiser: earlier package variables and builtins only (§12.3)."""

    in_row = False

    def __init__(self, pkg: PackageInfo):
        self.pkg = pkg
        self.root = self

    def raw(self, name: str) -> tuple[str, bool] | None:
        if name in self.pkg.variables:
            return self.pkg.variables[name], True
        return None

    def current(self, name: str) -> str:
        r = self.raw(name)
        return r[0] if r else "None"

    def source(self, name: str) -> str | None:
        return None

    def mark_defined(self, name: str) -> None:  # pragma: no cover
        raise AssertionError("assignment in an initialiser")

