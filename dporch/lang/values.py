"""DPLang runtime values and the value-level rules every layer shares (docs/language.md §4, §6.16).

Representation (chosen so that Python's own truthiness equals DPLang's, §4.2):

=========  ===========================  =========
DPLang     Python                       notes
=========  ===========================  =========
number     ``float``                    always float, never int (bool is an int in Python)
decimal    ``decimal.Decimal``
string     ``str``
bool       ``bool``
null       ``None``
array      ``list``
lambda     :class:`Lambda`
function   :class:`FunctionValue`       a package function named without a call
=========  ===========================  =========
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any, Callable

from .errors import ArgumentMismatch, DPTypeError

__all__ = [
    "DEC",
    "DEC_EMAX",
    "DEC_ETINY",
    "decimal_in_range",
    "decimal_range_error",
    "Lambda",
    "FunctionValue",
    "kind_of",
    "is_number",
    "dp_equal",
    "to_number",
    "to_decimal",
    "number_to_decimal",
    "number_text",
    "display",
    "nested_display",
    "parse_number_text",
]

#: Exponent range of decimals (IEEE decimal128's): a value's adjusted exponent is at most
#: DEC_EMAX and its last digit is no finer than 10^DEC_ETINY. Without a bound a decimal such
#: as 1e999999999 is cheap to create but is written out (never with an exponent, §9.4) or
#: aligned for an addition as a billion digits.
DEC_EMAX = 6144
DEC_ETINY = -6176

#: Decimal context of the language: 28 significant digits, round half even (§4.6); results
#: beyond DEC_EMAX raise Overflow (a TypeError "decimal result out of range").
DEC = Context(prec=28, rounding=ROUND_HALF_EVEN, Emax=DEC_EMAX, Emin=DEC_ETINY + 27)


def decimal_in_range(d: Decimal) -> bool:
    """Whether a finite decimal lies in the language's exponent range (see DEC_EMAX)."""
    return d.adjusted() <= DEC_EMAX and d.as_tuple().exponent >= DEC_ETINY  # type: ignore[operator]


def decimal_range_error(text: str) -> str:
    return (f"decimal out of range: {text} (decimals have at most 28 significant digits and "
            f"exponents from {DEC_ETINY} to {DEC_EMAX})")


class Lambda:
    """A lambda value. ``fn`` takes exactly ``len(params)`` positional arguments; captures are
    already bound inside ``fn`` (§6.12)."""

    __slots__ = ("fn", "params")

    def __init__(self, fn: Callable[..., Any], params: tuple[str, ...]) -> None:
        self.fn = fn
        self.params = params

    @property
    def arity(self) -> int:
        return len(self.params)

    def call(self, *args: Any) -> Any:
        if len(args) != len(self.params):
            raise ArgumentMismatch(
                f"lambda argument count mismatch: expected {len(self.params)}, got {len(args)}"
            )
        return self.fn(*args)

    def __repr__(self) -> str:
        return f"<lambda({', '.join(self.params)})>"


class FunctionValue:
    """A package function used as a value (``pkg.fn`` without a call). It can be displayed and
    compared but not called through a variable (§12.3). ``name`` is the qualified reference
    (``util.f``); the display form names the function alone (``<function f>``, §6.16)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<function {self.name.rsplit('.', 1)[-1]}>"


def kind_of(v: Any) -> str:
    """The DPLang kind name of a value (the names ``typeis`` accepts)."""
    t = type(v)
    if t is float:
        return "number"
    if v is None:
        return "null"
    if t is str:
        return "string"
    if t is bool:
        return "bool"
    if t is list:
        return "array"
    if t is Decimal:
        return "decimal"
    if t is Lambda:
        return "lambda"
    if t is FunctionValue:
        return "function"
    if t is int:  # defensive: ints only appear from host code
        return "number"
    return "unknown"


def is_number(v: Any) -> bool:
    return type(v) is float or type(v) is int


def number_to_decimal(x: float) -> Decimal:
    """A number converted to decimal through its shortest text (0.1 -> 0.1, §4.6)."""
    return Decimal(number_text(float(x)))


def dp_equal(a: Any, b: Any) -> bool:
    """Structural equality (§4.4): never errors, never broadcasts; kinds differ -> false,
    except number vs decimal which compare numerically."""
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is list:
            return len(a) == len(b) and all(dp_equal(x, y) for x, y in zip(a, b))
        if ta is Lambda or ta is FunctionValue:
            return a is b
        return a == b
    if a is None or b is None:
        return False
    if ta is Decimal and tb is float:
        return not math.isnan(b) and not math.isinf(b) and a == number_to_decimal(b)
    if ta is float and tb is Decimal:
        return dp_equal(b, a)
    if (ta is int and tb is float) or (ta is float and tb is int):
        return float(a) == float(b)
    return False


# §4.3 / §9.2: the text forms a string may take to become a number. Rust's float parser accepts
# decimal and scientific numerals with an optional sign, "1." and ".5", and inf/infinity/nan in
# any case. Python's float() is more lenient (whitespace, underscores), so we gate it.
_SPECIAL = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
            "+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan, "+nan": math.nan,
            "-nan": math.nan}


def parse_number_text(s: str) -> float | None:
    """Parse ``s`` per §4.3, or None when it is not a numeral."""
    if not s or s != s.strip() or "_" in s:
        return None
    special = _SPECIAL.get(s.lower())
    if special is not None:
        return special
    c = s[-1]
    if not (c.isdigit() or c == ".") or not s.isascii():
        return None
    try:
        return float(s)
    except ValueError:
        return None


def to_number(v: Any) -> float:
    """§4.3 conversion used by builtins that need numbers."""
    t = type(v)
    if t is float:
        return v
    if t is Decimal:
        return float(v)
    if t is bool:
        return 1.0 if v else 0.0
    if t is int:
        return float(v)
    if t is str:
        x = parse_number_text(v)
        if x is None:
            raise DPTypeError(f"cannot convert to number: {nested_display(v)}")
        return x
    if v is None:
        raise DPTypeError("null cannot be converted to number")
    raise DPTypeError(f"cannot convert to number: {nested_display(v)}")


def to_decimal(v: Any) -> Decimal:
    """``decimal(x)`` (§13.9): number via its shortest text, string parsed exactly."""
    t = type(v)
    if t is Decimal:
        return v
    if t is float or t is int:
        if math.isnan(v) or math.isinf(v):
            raise DPTypeError(f"cannot convert to decimal: {number_text(v)}")
        return number_to_decimal(v)
    if t is str:
        if v and v == v.strip() and "_" not in v and v.isascii():
            try:
                d = Decimal(v)
            except InvalidOperation:
                d = None
            if d is not None and d.is_finite():
                if not decimal_in_range(d):
                    raise DPTypeError(f"cannot convert to decimal: {decimal_range_error(nested_display(v))}")
                return d
        raise DPTypeError(f"cannot convert to decimal: {nested_display(v)}")
    raise DPTypeError(f"cannot convert to decimal: {nested_display(v)}")


def number_text(x: float) -> str:
    """§9.4 number text: shortest round-trip digits, never an exponent, no trailing ``.0``."""
    r = repr(x)
    if r[-2:] == ".0":
        return r[:-2]
    if "e" in r:
        s = format(Decimal(r), "f")
        if "." in s:
            s = s.rstrip("0").rstrip(".")
        return s
    if r == "nan":
        return "NaN"
    return r


def decimal_text(d: Decimal) -> str:
    return format(d, "f")


def display(v: Any) -> str:
    """Display form (§6.16): used by f-strings, ``print`` and ``string()``."""
    t = type(v)
    if t is str:
        return v
    if t is float:
        return number_text(v)
    return nested_display(v)


def nested_display(v: Any) -> str:
    """Display form of an array element: like :func:`display` but strings double-quoted."""
    t = type(v)
    if t is str:
        return '"' + v + '"'
    if t is float:
        return number_text(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is Decimal:
        return decimal_text(v)
    if t is list:
        return "[" + ", ".join(nested_display(x) for x in v) + "]"
    if t is int:
        return number_text(float(v))
    return repr(v)


def ieee_fmod(x: float, y: float) -> float:
    """Truncated remainder (sign of the dividend, §5.2) with IEEE results for inf: inf % y is
    NaN (``math.fmod`` raises there)."""
    try:
        return math.fmod(x, y)
    except ValueError:
        return math.nan


def ieee_pow(x: float, y: float) -> float:
    """IEEE ``pow`` as §5.2 wants it (C99 Annex F, what numpy gives): never raises; 0^-1 = inf,
    overflow = ±inf, a negative base with a non-integer exponent = NaN (also when the
    magnitude would overflow: (-3)^1000.5 is NaN, not inf)."""
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if x < 0 and _odd_integer(y) else math.inf
    except ValueError:  # a pole (0 ^ negative) or a domain error (negative ^ fraction)
        if x == 0:
            return math.copysign(math.inf, x) if _odd_integer(y) else math.inf
        return math.nan


def _odd_integer(y: float) -> bool:
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0.0
