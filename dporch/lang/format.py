"""Output formatting of row results (docs/language.md §9.4): CSV cells and lines, JSON lines.

CSV: null -> empty; bools ``true``/``false``; numbers by :func:`~dporch.lang.values.number_text`
(shortest round-trip digits, never an exponent, ``NaN``/``inf``/``-inf``); decimals with their
scale; strings quoted RFC-4180 style when they contain ``,``, ``"``, CR or LF; arrays as
``[a; b]`` (elements formatted by these same rules) always wrapped in quotes with inner quotes
doubled; lambdas ``<lambda>``, package functions ``<function>``.

JSON lines: one object per row, keys in the given order, Python's default separators
(``{"a": 1, "b": "x"}``); finite numbers written with the number text, NaN/±inf as the strings
``"NaN"``/``"inf"``/``"-inf"``, decimals as JSON numbers with their decimal text, strings without
escaping non-ASCII characters.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Iterable, Sequence

from .values import FunctionValue, Lambda, number_text

__all__ = ["csv_cell", "csv_line", "csv_header", "csv_quote", "json_value", "json_line"]


def csv_quote(s: str) -> str:
    """``s`` as a CSV field: quoted (inner quotes doubled) when it holds ``,``, ``"``, CR or LF."""
    if '"' in s:
        return '"' + s.replace('"', '""') + '"'
    if "," in s or "\n" in s or "\r" in s:
        return '"' + s + '"'
    return s


def csv_cell(v: Any) -> str:
    """The CSV text of one output cell (§9.4)."""
    t = type(v)
    if t is float:
        r = repr(v)
        if r[-2:] == ".0":
            return r[:-2]
        if "e" in r or r == "nan":
            return number_text(v)
        return r  # includes "inf" / "-inf"
    if t is str:
        if '"' in v:
            return '"' + v.replace('"', '""') + '"'
        if "," in v or "\n" in v or "\r" in v:
            return '"' + v + '"'
        return v
    if v is None:
        return ""
    if t is bool:
        return "true" if v else "false"
    if t is Decimal:
        return format(v, "f")
    if t is list:
        inner = "[" + "; ".join([csv_cell(x) for x in v]) + "]"
        return '"' + inner.replace('"', '""') + '"'
    if t is Lambda:
        return "<lambda>"
    if t is FunctionValue:
        return "<function>"
    if t is int:  # host-provided ints
        return number_text(float(v))
    return csv_quote(str(v))


def csv_line(values: Iterable[Any]) -> str:
    """One CSV line (cells joined by ``,``) with its ``\\n`` terminator."""
    return ",".join([csv_cell(v) for v in values]) + "\n"


def csv_header(names: Iterable[str]) -> str:
    """The header line: column names quoted by the cell rule, ``\\n``-terminated."""
    return ",".join([csv_quote(n) for n in names]) + "\n"


_json_str = json.JSONEncoder(ensure_ascii=False).encode


def json_value(v: Any) -> str:
    """The JSON text of one value (§9.4 JSON lines)."""
    t = type(v)
    if t is float:
        if v != v:
            return '"NaN"'
        if v == float("inf"):
            return '"inf"'
        if v == float("-inf"):
            return '"-inf"'
        return number_text(v)
    if t is str:
        return _json_str(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is Decimal:
        if not v.is_finite():  # not produced by the language; keep the output valid JSON
            return _json_str(str(v))
        return format(v, "f")
    if t is list:
        return "[" + ", ".join([json_value(x) for x in v]) + "]"
    if t is Lambda:
        return '"<lambda>"'
    if t is FunctionValue:
        return '"<function>"'
    if t is int:
        return json_value(float(v))
    return _json_str(str(v))


def json_line(names: Sequence[str], values: Sequence[Any]) -> str:
    """One JSON object (keys in the order of ``names``) on its own ``\\n``-terminated line.
    Missing trailing values are written as null."""
    n = len(values)
    parts = [
        _json_str(name) + ": " + (json_value(values[i]) if i < n else "null")
        for i, name in enumerate(names)
    ]
    return "{" + ", ".join(parts) + "}\n"
