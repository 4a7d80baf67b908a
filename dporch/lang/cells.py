"""Input cell typing (docs/language.md §9.2): CSV cell text and JSON values -> DPLang values.

* Declared columns are typed by their INPUT annotation (``number decimal string bool array
  null``); a cell that does not fit raises :class:`CellError` (the caller turns it into null plus
  a warning in batch mode, or skips the line in streaming mode).
* Undeclared or untyped columns (``type_name=None``) use inference: finite numerals
  (``[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?``) become numbers, exactly
  ``true``/``false`` bools, empty text or ``null`` null, anything else stays a string.
* For every type, an empty cell or the exact text ``null`` is null.

The cell text is used as given: trimming of unquoted CSV cells is the reader's job.

JSON input: decode with :func:`json_loads` (or ``json.loads(text, parse_float=Decimal,
parse_int=json_int)``) so JSON numbers with a fraction or exponent arrive as ``Decimal`` holding
their exact JSON text, then type each value with :func:`json_cell`. This lets a ``decimal``
column keep the written scale (``10.50``); everywhere else such numbers become floats (the
correctly rounded float of the same text, i.e. what ``float(text)`` gives).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from .values import decimal_in_range, decimal_range_error, number_to_decimal

__all__ = [
    "TYPE_NAMES",
    "CellError",
    "parse_cell",
    "infer_cell",
    "make_converter",
    "json_cell",
    "json_loads",
    "check_unicode",
    "json_int",
    "NUMERAL_RE",
    "MAX_NESTING",
]

TYPE_NAMES = ("number", "decimal", "string", "bool", "array", "null")

#: The untyped-inference numeral (§9.2).
NUMERAL_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


class CellError(ValueError):
    """A cell of a declared column does not fit its type."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_NUM_FIRST = frozenset("0123456789+-.")
_NUM_LAST = frozenset("0123456789.")


def infer_cell(
    text: str,
    _first: frozenset[str] = _NUM_FIRST,
    _last: frozenset[str] = _NUM_LAST,
    _float: Callable[[str], float] = float,
) -> Any:
    """Type an undeclared/untyped cell by its content (§9.2 [REC] inference)."""
    if text:
        # Equivalent to NUMERAL_RE.fullmatch + float(): the first/last character, ASCII and
        # underscore tests exclude everything else float() accepts (whitespace, inf/nan,
        # "1_000", non-ASCII digits).
        if text[0] in _first and text[-1] in _last and "_" not in text and text.isascii():
            try:
                return _float(text)
            except ValueError:
                pass
        if text == "true":
            return True
        if text == "false":
            return False
        if text == "null":
            return None
        return text
    return None


def _to_number(text: str, _float: Callable[[str], float] = float) -> Any:
    """§4.3 string conversion of a ``number`` cell (``1e3``, ``inf``, ``NaN`` are numbers)."""
    try:
        x = _float(text)
    except ValueError:
        if text == "" or text == "null":
            return None
        raise CellError(f"not a number: {text!r}") from None
    # float() also accepts surrounding whitespace, underscores and non-ASCII digits; §4.3 not.
    # (str.strip returns the same object when there is nothing to strip: a cheap test.)
    if "_" in text or not text.isascii() or text.strip() != text:
        raise CellError(f"not a number: {text!r}")
    return x


def _to_decimal(text: str) -> Any:
    if text == "" or text == "null":
        return None
    if "_" not in text and text.isascii() and text == text.strip():
        try:
            d = Decimal(text)
        except (InvalidOperation, ValueError):
            d = None
        if d is not None and d.is_finite():
            # Bounded exponents, so "1e999999999" cannot expand into a gigabyte of digits.
            if not decimal_in_range(d):
                raise CellError(decimal_range_error(repr(text)))
            return d
    raise CellError(f"not a decimal: {text!r}")


def _to_string(text: str) -> Any:
    if text == "" or text == "null":
        return None
    return text


def _to_bool(text: str) -> Any:
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if text == "" or text == "null":
        return None
    raise CellError(f"not a bool: {text!r}")


def _to_null(text: str) -> None:
    return None


def _split_top(inner: str) -> list[str]:
    """Split the inside of ``[...]`` into element texts at the top-level separator: ``;`` when
    one occurs outside quotes and nested arrays, else ``,``.

    Double quotes delimit quoted text (``""`` inside is a quote); a ``[`` opens a nested array
    only at the start of an element (after optional spaces), elsewhere brackets are plain text.
    Raises CellError on an unclosed quote or nested array."""
    cuts: dict[str, list[int]] = {";": [], ",": []}
    depth = 0
    in_quotes = False
    at_start = True
    i, n = 0, len(inner)
    while i < n:
        c = inner[i]
        if in_quotes:
            if c == '"':
                if i + 1 < n and inner[i + 1] == '"':
                    i += 1
                else:
                    in_quotes = False
        elif c == '"':
            in_quotes = True
            at_start = False
        elif depth:
            if c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
        elif c == ";" or c == ",":
            cuts[c].append(i)
            at_start = True
        elif at_start:
            if c == "[":
                depth = 1
                at_start = False
            elif c != " " and c != "\t":
                at_start = False
        i += 1
    if in_quotes:
        raise CellError("unclosed quote in array cell")
    if depth:
        raise CellError("unclosed '[' in array cell")
    out, start = [], 0
    for k in cuts[";"] or cuts[","]:
        out.append(inner[start:k])
        start = k + 1
    out.append(inner[start:])
    return out


def _array_element(text: str, depth: int) -> Any:
    e = text.strip()
    if len(e) >= 2 and e[0] == '"' and e[-1] == '"':
        body = e[1:-1]
        if '"' in body.replace('""', ""):
            raise CellError(f"badly quoted array element: {e}")
        body = body.replace('""', '"')
        if body[:1] == "[" and body[-1:] == "]":
            return _parse_array(body, depth + 1)
        return body
    if e[:1] == "[" and e[-1:] == "]":
        return _parse_array(e, depth + 1)
    return infer_cell(e)


def _parse_array(text: str, depth: int = 1) -> list[Any]:
    if depth > MAX_NESTING:
        raise CellError("array " + _too_deep())
    s = text.strip()
    if len(s) < 2 or s[0] != "[" or s[-1] != "]":
        raise CellError(f"not an array: {text!r}")
    inner = s[1:-1]
    if not inner.strip():
        return []
    return [_array_element(p, depth) for p in _split_top(inner)]


def _to_array(text: str) -> Any:
    if text == "" or text == "null":
        return None
    return _parse_array(text)


_CONVERTERS: dict[str | None, Callable[[str], Any]] = {
    None: infer_cell,
    "number": _to_number,
    "decimal": _to_decimal,
    "string": _to_string,
    "bool": _to_bool,
    "array": _to_array,
    "null": _to_null,
}


def make_converter(type_name: str | None) -> Callable[[str], Any]:
    """A fast ``text -> value`` function for one column (raises :class:`CellError`)."""
    try:
        return _CONVERTERS[type_name]
    except KeyError:
        raise ValueError(f"unknown column type: {type_name!r}") from None


def parse_cell(text: str, type_name: str | None) -> Any:
    """Type one cell's text for a column declared ``type_name`` (None: undeclared/untyped)."""
    return make_converter(type_name)(text)


# ---------------------------------------------------------------------------------------------
# JSON


def json_int(text: str) -> Any:
    """``parse_int`` hook: an int, except ``-0`` which keeps its sign as ``Decimal('-0')``."""
    if text == "-0":
        return Decimal("-0")
    return int(text)


#: Deepest nesting of arrays (and objects) in an input cell or JSON value.
MAX_NESTING = 100


def _too_deep() -> str:
    return (f"nested more than {MAX_NESTING} levels deep (flatten the value, or pass it as "
            "several columns)")


def json_loads(text: str) -> Any:
    """Decode JSON keeping the exact text of non-integer numbers (as ``Decimal``). Raises
    ValueError (``json.JSONDecodeError`` with its position for malformed text) also for
    values nested more than :data:`MAX_NESTING` levels deep."""
    try:
        value = json.loads(text, parse_float=Decimal, parse_int=json_int)
    except RecursionError:
        raise ValueError(_too_deep()) from None
    except ArithmeticError:  # Decimal refuses the number (an exponent beyond its range)
        raise ValueError("a number too large to read (its exponent is out of range)") from None
    if text.count("[") + text.count("{") > MAX_NESTING and _depth(value) > MAX_NESTING:
        raise ValueError(_too_deep())
    if "\\u" in text:
        check_unicode(value)
    return value


def check_unicode(value: Any) -> None:
    """ValueError when a decoded JSON value holds a lone UTF-16 surrogate (``"\\ud800"``):
    such text cannot be written as UTF-8 anywhere (files, sockets, the registry)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            for c in v:
                if "\ud800" <= c <= "\udfff":
                    raise ValueError(f"a lone UTF-16 surrogate (\\u{ord(c):04x}) in {v[:40]!r}: "
                                     "send valid Unicode") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (iterative: the value may be deep)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _json_plain(v: Any) -> Any:
    """A JSON value by its own JSON type (numbers -> float, arrays recursively)."""
    t = type(v)
    if t is float or t is str or t is bool or v is None:
        return v
    if t is Decimal:
        return float(v)
    if t is int:
        return float(v)
    if t is list:
        return [_json_plain(x) for x in v]
    if t is dict:
        raise CellError("JSON objects are not supported as cell values")
    raise CellError(f"unsupported JSON value: {v!r}")


def json_cell(value: Any, type_name: str | None) -> Any:
    """Type one JSON-decoded value for a column declared ``type_name`` (§9.2 JSON paragraph).

    A JSON string in a declared column is typed like a CSV cell with that text; a JSON number in
    a ``decimal`` column comes from its JSON text (pass values decoded by :func:`json_loads`; a
    plain float goes through its shortest text); a ``null`` column is always null; any other
    JSON value keeps its JSON type (numbers become floats, arrays are typed element by element,
    objects raise :class:`CellError`)."""
    if value is None:
        return None
    t = type(value)
    if type_name is None:
        return _json_plain(value)
    if t is str:
        return make_converter(type_name)(value)
    if type_name == "null":
        return None
    if type_name == "decimal":
        if t is Decimal:
            if not value.is_finite():
                raise CellError(f"not a decimal: {value}")
            if not decimal_in_range(value):
                raise CellError(decimal_range_error(str(value)))
            return value
        if t is int:
            d = Decimal(value)
            if not decimal_in_range(d):
                raise CellError(decimal_range_error(str(value)))
            return d
        if t is float:
            if value != value or value in (float("inf"), float("-inf")):
                raise CellError(f"not a decimal: {value!r}")
            return number_to_decimal(value)
    return _json_plain(value)

