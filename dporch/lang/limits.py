"""Nesting limits of DPLang source and the recursion headroom the compiler needs for them.

Chains of one operator (``a + b + c``, ``a and b``, pipelines, ``when`` arms, ``elif``
branches) are flat and unlimited: every pass walks them iteratively and the generated Python
keeps them flat. What nests -- brackets, calls, f-string placeholders, prefix operators, ``^``
exponents, ternary branches, lambda bodies -- is limited to :data:`MAX_NESTING` levels, and
``if``/``else`` blocks to :data:`MAX_BLOCK_DEPTH` levels; deeper source is a ParseError at the
token that goes too deep (split it with intermediate variables).
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["MAX_NESTING", "MAX_BLOCK_DEPTH", "NESTING_MESSAGE", "BLOCK_MESSAGE", "headroom"]

MAX_NESTING = 100
MAX_BLOCK_DEPTH = 50

NESTING_MESSAGE = (f"expression nested too deeply (more than {MAX_NESTING} levels of brackets, "
                   "calls, f-strings or prefix operators); split it with intermediate variables")
BLOCK_MESSAGE = (f"blocks nested too deeply (more than {MAX_BLOCK_DEPTH} levels of if/else); "
                 "use elif, or split the conditions into variables")

# The recursive-descent parser spends about 15 Python frames per nesting level; the other
# passes fewer. This leaves room for MAX_NESTING levels on top of the caller's own stack.
_NEEDED = 4 * 1000 + 20 * MAX_NESTING

_lock = threading.Lock()
_users = 0
_saved = 0


@contextmanager
def headroom() -> Iterator[None]:
    """Raise the interpreter's recursion limit while compiling (pure-Python frames use no C
    stack since Python 3.11); restored when the last concurrent user leaves."""
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = sys.getrecursionlimit()
            if _saved < _NEEDED:
                sys.setrecursionlimit(_NEEDED)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and sys.getrecursionlimit() == max(_saved, _NEEDED):
                sys.setrecursionlimit(_saved)
