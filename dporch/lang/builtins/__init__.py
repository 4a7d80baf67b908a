"""DPLang builtin functions (docs/language.md §13).

Importing this package registers every plain builtin in :data:`BUILTINS` (name -> :class:`Builtin`).
Keyword arguments (``default=`` of the ``safe_*`` functions, ``desc=`` of ``sort``) are passed to
``Builtin.fn`` as Python keyword arguments; they count toward the arity checked by
:meth:`Builtin.check_arity`.
"""

from __future__ import annotations

from . import core, higher_order, mathfuncs, safe, timefuncs, trading  # noqa: F401  (registration)
from .registry import BUILTINS, Builtin, builtin

__all__ = ["BUILTINS", "Builtin", "builtin"]
