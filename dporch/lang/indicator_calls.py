"""Glue between DPLang values and the indicator library (§13.5): parameter conversion, the
array-argument form, and the number conversions used when feeding indicator states."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .errors import ArgumentMismatch, DPTypeError
from .indicators import INDICATORS, IndicatorInfo, last_value
from .values import to_number

__all__ = ["arity", "convert_params", "make_state", "invalid_call", "values_call", "dynamic_call", "num", "nums",
           "numc", "any_list"]


def arity(info: IndicatorInfo) -> tuple[int, int]:
    total = info.n_series + len(info.param_names)
    return total - len(info.defaults), total


def convert_params(info: IndicatorInfo, params: tuple) -> tuple:
    """Fill defaults; periods are truncated to int (< 1 is the state's TypeError), BOLL's k is a
    number."""
    given = list(params)
    missing = len(info.param_names) - len(given)
    if missing > 0:
        given += list(info.defaults[len(info.defaults) - missing:])
    out = []
    for pname, v in zip(info.param_names, given):
        x = to_number(v) if not isinstance(v, (int, float)) or isinstance(v, bool) else float(v)
        if pname == "k":
            out.append(float(x))
        else:
            if x != x or x in (float("inf"), float("-inf")):
                raise DPTypeError(f"{info.name} {pname} must be a finite number")
            out.append(int(x))
    return tuple(out)


def make_state(name: str, params: tuple) -> Any:
    """A fresh state for ``name(series, *params)``; bad parameters are a TypeError that names
    the indicator as called (``MA period must be ≥ 1``, not SMA's)."""
    info = INDICATORS[name]
    converted = convert_params(info, params)
    try:
        return info.state_class(*converted)
    except DPTypeError as exc:
        own = info.state_class.__name__.removesuffix("State")
        if own != name and exc.message.startswith(own + " "):
            raise DPTypeError(name + exc.message[len(own):]) from None
        raise


def invalid_call(message: str, values: tuple) -> Any:
    """An indicator call whose constant parameters are invalid: the TypeError is raised when
    the call is evaluated (after its series arguments), never when the stream is set up."""
    raise DPTypeError(message)


def num(v: Any) -> float | None:
    """A series element as a number (§4.3; None stays None)."""
    if type(v) is float or v is None:
        return v
    return to_number(v)


def nums(values: tuple) -> list:
    return [num(v) for v in values]


def numc(v: Any) -> float | None:
    """Lenient conversion for committing a row's final value: unconvertible -> skipped."""
    t = type(v)
    if t is float or v is None:
        return v
    if t is Decimal or t is bool or t is int:
        return float(v)
    if t is str:
        try:
            return to_number(v)
        except DPTypeError:
            return None
    return None


def any_list(values: tuple) -> bool:
    return any(type(v) is list for v in values)


def values_call(name: str, values: tuple, params: tuple) -> Any:
    """Indicator over explicit values: arrays are series, scalars one-element series."""
    info = INDICATORS[name]
    series = [[num(x) for x in v] if type(v) is list else [num(v)] for v in values]
    return last_value(name, series, convert_params(info, params))


def dynamic_call(name: str, *args: Any, **kwargs: Any) -> Any:
    """A call with spread or keyword arguments: checked at run time."""
    info = INDICATORS[name]
    if kwargs:
        raise ArgumentMismatch(f"{name} takes no keyword arguments")
    lo, hi = arity(info)
    if not lo <= len(args) <= hi:
        raise ArgumentMismatch(f"{name} expects {lo}-{hi} arguments, got {len(args)}")
    return values_call(name, tuple(args[: info.n_series]), tuple(args[info.n_series:]))
