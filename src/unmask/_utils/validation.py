"""Checking numeric parameters where they enter the API, so every caller (and the CLI) inherits the check.

A NaN or infinite ``gamma``, ``epsilon`` or noise level does not fail: it silently turns every relevance
into NaN. These helpers refuse such values with a :class:`ParameterError` (a ``ValueError``) that names the
parameter and the range, so a caller such as the CLI can tell a refused value from a method that fails.
"""
from __future__ import annotations

import math
import numbers
from typing import Any


class ParameterError(ValueError):
    """A parameter value the API refuses (NaN, infinite, out of range, of the wrong type)."""


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    return float(value)


def finite(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
           strict_minimum: bool = False) -> float:
    """``value`` as a float if it is a finite number in ``[minimum, maximum]`` (``(minimum, ...`` if
    ``strict_minimum``); else :class:`ValueError` naming ``name``."""
    number = _number(name, value)
    if not math.isfinite(number):
        raise ParameterError(f"{name} must be a finite number, got {value!r}")
    low_ok = minimum is None or (number > minimum if strict_minimum else number >= minimum)
    if not low_ok or (maximum is not None and number > maximum):
        bound = (">" if strict_minimum else ">=") + f" {minimum:g}" if minimum is not None else ""
        top = f"<= {maximum:g}" if maximum is not None else ""
        raise ParameterError(f"{name} must be {' and '.join(b for b in (bound, top) if b)}, got {value!r}")
    return number


def finite_values(name: str, value: Any) -> Any:
    """``value`` unchanged if every number in it (a scalar, sequence, array or tensor) is finite; ``None`` passes."""
    if value is None:
        return value
    import numpy as np

    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise ParameterError(f"{name} must be numbers, got {value!r}")
    if not np.isfinite(array).all():
        raise ParameterError(f"{name} must be finite, got {value!r}")
    return value


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (not a bool); else :class:`ParameterError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_optional_int(name: str, value: Any) -> int | None:
    """``None``, or a positive int."""
    return None if value is None else check_int(name, value)


def check_float(name: str, value: Any, minimum: float = -math.inf) -> float:
    """``value`` as a finite float ``>= minimum``; else :class:`ParameterError` naming ``name``."""
    number = finite(name, value)
    if number < minimum:
        raise ParameterError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
    return number


def check_bool(name: str, value: Any) -> bool:
    """``value`` when it is a bool."""
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` when it is one of ``choices``."""
    if value not in choices:
        raise ParameterError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_index(index: Any, size: int, what: str = "sample") -> int:
    """``index`` as an int in ``0 .. size - 1`` (a negative one counts from the end, as in a list); else an
    IndexError that names ``what`` is indexed."""
    index = int(index)
    if index < 0:
        index += size
    if not 0 <= index < size:
        raise IndexError(f"{what} {index} out of range for {size} {what}s")
    return index
