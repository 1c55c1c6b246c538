"""Argument checks of the library: every message names the argument and echoes the bad value.

A wrong type raises ``TypeError``, a value out of range ``ValueError`` (pulseopt's exceptions, so
existing handlers keep working). Each check returns the value it accepted (as a ``float`` or a
list of floats where it converts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
    return value


def check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    strict_minimum: bool = False,
    maximum: float | None = None,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN, got {value!r}.")
    if minimum is not None:
        if strict_minimum and not value > minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value!r}.")
        if not strict_minimum and not value >= minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    if maximum is not None and not value <= maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}.")
    return value


def check_candidates(name: str, values: Any, *, allow_zero: bool) -> list[float]:
    """A non-empty list of finite numbers, all > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}.")
    out = list(values)
    if not out:
        raise ValueError(f"{name} must contain at least one value, got {out!r}.")
    for v in out:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name} must contain only numbers, got {v!r} in {out!r}.")
        if not math.isfinite(v):
            raise ValueError(f"{name} values must be finite, got {v!r} in {out!r}.")
        if (v < 0) if allow_zero else (v <= 0):
            what = "non-negative" if allow_zero else "positive"
            raise ValueError(f"{name} values must all be {what}, got {v!r} in {out!r}.")
    return [float(v) for v in out]
