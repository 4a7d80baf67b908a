"""Trading signal builtins (docs/language.md §13.6). ``POSITION`` is handled by the compiler."""

from __future__ import annotations

from typing import Any

from .registry import builtin

BUY_TEXT = "买入"
SELL_TEXT = "卖出"
HOLD_TEXT = "持有"

_MISSING = object()


@builtin("BUY", 0, 1)
def BUY(cond: Any = _MISSING) -> str:
    if cond is _MISSING or cond:
        return BUY_TEXT
    return HOLD_TEXT


@builtin("SELL", 0, 1)
def SELL(cond: Any = _MISSING) -> str:
    if cond is _MISSING or cond:
        return SELL_TEXT
    return HOLD_TEXT


@builtin("CLOSE", 0, 1)
def CLOSE(cond: Any = _MISSING) -> str:
    """Closing a position is selling (same as ``SELL``)."""
    return SELL(cond)
