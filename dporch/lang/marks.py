"""Source positions inside generated lines, so a runtime error points at the failing operator
or call rather than at its statement (docs/language.md §14.2).

The expression generator wraps the Python code of each node that can fail in markers carrying
the node's DPLang line and column; the emitter strips them and keeps, per generated line, the
UTF-8 byte span each node occupies. When compiled code raises, the failing instruction's span
(``co_positions``, byte offsets as well) picks the innermost node containing it.
"""

from __future__ import annotations

import re
from types import CodeType

__all__ = ["MARK_OPEN", "mark", "strip_marks", "innermost", "instruction_span"]

# Control characters never occur in generated code otherwise: repr() escapes them in literals.
MARK_OPEN = "\x01"
_MID = "\x02"
MARK_CLOSE = "\x03"
_TOKENS = re.compile("(\x01[0-9]+,[0-9]+\x02|\x03)")

Span = tuple[int, int, int, int]  # start byte, end byte, DPLang line, DPLang column


def mark(code: str, line: int, col: int) -> str:
    """``code`` wrapped in markers for the DPLang position (line, col)."""
    return f"{MARK_OPEN}{line},{col}{_MID}{code}{MARK_CLOSE}"


def strip_marks(text: str) -> tuple[str, tuple[Span, ...]]:
    """The line without markers, and the byte span of every marked node in it."""
    out: list[str] = []
    spans: list[Span] = []
    stack: list[tuple[int, int, int]] = []
    size = 0
    for piece in _TOKENS.split(text):
        if not piece:
            continue
        if piece[0] == MARK_OPEN:
            line, col = piece[1:-1].split(",")
            stack.append((size, int(line), int(col)))
        elif piece == MARK_CLOSE:
            start, line, col = stack.pop()
            spans.append((start, size, line, col))
        else:
            out.append(piece)
            size += len(piece.encode("utf-8"))
    return "".join(out), tuple(spans)


def instruction_span(code: CodeType, lasti: int, lineno: int) -> tuple[int, int] | None:
    """Byte columns (start, end) on line ``lineno`` of the instruction at ``lasti``."""
    if lasti < 0:
        return None
    for i, (start_line, end_line, col, end_col) in enumerate(code.co_positions()):
        if i == lasti // 2:
            if start_line != lineno or col is None or end_col is None:
                return None
            return col, (end_col if end_line == lineno else 1 << 30)
    return None


def innermost(spans: tuple[Span, ...], at: tuple[int, int]) -> tuple[int, int] | None:
    """DPLang (line, column) of the smallest marked node containing the byte span ``at``."""
    best: Span | None = None
    for s in spans:
        if s[0] <= at[0] and at[1] <= s[1] and (best is None or s[1] - s[0] < best[1] - best[0]):
            best = s
    return None if best is None else (best[2], best[3])
