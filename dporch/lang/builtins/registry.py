"""The table of builtin functions: name -> callable plus the arity the checker enforces (§11.2 E6).

A builtin is a plain Python function over DPLang values (see :mod:`dporch.lang.values`). It raises
:class:`~dporch.lang.errors.DPTypeError` for bad argument values; the arity check is done before
the call (by the static checker when the call is visible, else by :meth:`Builtin.check_arity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ArgumentMismatch

__all__ = ["Builtin", "BUILTINS", "builtin"]


@dataclass(frozen=True)
class Builtin:
    name: str
    fn: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: variadic
    keywords: tuple[str, ...] = field(default=())

    def arity_text(self) -> str:
        if self.max_args is None:
            return f"at least {self.min_args}"
        if self.min_args == self.max_args:
            return str(self.min_args)
        return f"{self.min_args}-{self.max_args}"

    def accepts(self, n: int) -> bool:
        return n >= self.min_args and (self.max_args is None or n <= self.max_args)

    def check_arity(self, n: int, keywords: tuple[str, ...] = ()) -> None:
        for k in keywords:
            if k not in self.keywords:
                raise ArgumentMismatch(f"{self.name} has no keyword argument '{k}'")
        if not self.accepts(n):
            raise ArgumentMismatch(
                f"{self.name} expects {self.arity_text()} argument(s), got {n}"
            )


#: Every plain builtin, filled by the modules of this package as they are imported.
BUILTINS: dict[str, Builtin] = {}


def builtin(name: str, min_args: int, max_args: int | None, keywords: tuple[str, ...] = ()):
    """Decorator registering ``fn`` as the builtin ``name``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in BUILTINS:
            raise ValueError(f"builtin {name} registered twice")
        BUILTINS[name] = Builtin(name, fn, min_args, max_args, keywords)
        return fn

    return deco
