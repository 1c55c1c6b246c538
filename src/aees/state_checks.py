"""State-dict validation helpers (docs/algorithm.md §12).

A state dict is a file from disk, so every component checks the whole of its part before
anything is assigned. ``where`` is the path of the value being checked, in subscript form
(``state['manager']['logs']``); every ``ValueError`` names it and the bad value, in one line.
Plain Python only (a tensor is only named, by a lazy import of torch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

_STATE_PREFIX = "cannot load AEES state: "


def state_path(where: str, key: str | int) -> str:
    """``where`` subscripted by ``key``: ``state['manager']``, ``state['pending']['losses'][3]``."""
    return f"{where}[{key!r}]"


def _brief(value: Any) -> str:
    import torch  # only to name a tensor briefly; this module stays free of torch otherwise

    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def state_error(where: str, value: Any, expected: str) -> ValueError:
    """The one-line ``ValueError`` for a bad value at ``where``."""
    return ValueError(f"{_STATE_PREFIX}{where} is {_brief(value)}; expected {expected}.")


def state_mismatch(where: str, message: str) -> ValueError:
    """A ``ValueError`` for a value at ``where`` that contradicts another part of the state."""
    return ValueError(f"{_STATE_PREFIX}{where} {message}.")


def state_mapping(where: str, value: Any, what: str = "a dict") -> dict[Any, Any]:
    """``value`` is a dict (``what`` names the expected value in the error)."""
    if not isinstance(value, dict):
        raise state_error(where, value, what)
    return value


def state_keys(
    where: str, value: Any, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, Any]:
    """``value`` is a dict with every ``required`` key and none outside ``required + optional``."""
    state_mapping(where, value, f"a dict with keys {list(required)}")
    for key in required:
        if key not in value:
            raise ValueError(f"{_STATE_PREFIX}{where} has no key {key!r}.")
    for key in value:
        if key not in required and key not in optional:
            raise ValueError(f"{_STATE_PREFIX}{where} has an unexpected key {key!r}.")
    return value


def same_plain(value: Any, expected: Any) -> bool:
    """``value`` equals the plain ``expected`` (numbers, strings, None, lists and dicts of them),
    type for type (``True`` is not ``1``); safe for any ``value`` (a tensor compares unequal)."""
    if type(value) is not type(expected):
        return False
    if isinstance(expected, dict):
        return value.keys() == expected.keys() and all(
            same_plain(value[k], expected[k]) for k in expected
        )
    if isinstance(expected, (list, tuple)):
        return len(value) == len(expected) and all(
            same_plain(v, e) for v, e in zip(value, expected, strict=True)
        )
    return bool(value == expected)


def state_equal(where: str, value: Any, expected: Any) -> Any:
    """``value`` is :func:`same_plain` as ``expected``."""
    if not same_plain(value, expected):
        raise state_error(where, value, repr(expected))
    return value


def state_int(
    where: str, value: Any, *, minimum: int | None = 0, maximum: int | None = None
) -> int:
    """An ``int`` (not a bool) in ``[minimum, maximum]`` (``None``: unbounded)."""
    if type(value) is not int:
        raise state_error(where, value, "an int")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        raise state_error(where, value, f"an int in [{low}, {high}]")
    return value


def state_float(
    where: str, value: Any, *, finite: bool = True, minimum: float | None = None
) -> float:
    """A real number (``int`` or ``float``, not a bool), finite unless ``finite=False``, and
    ``>= minimum`` when given (a NaN passes ``minimum`` only when ``finite=False``)."""
    if type(value) is not float and type(value) is not int:
        raise state_error(where, value, "a number")
    if finite and not math.isfinite(value):
        raise state_error(where, value, "a finite number")
    if minimum is not None and value < minimum:
        raise state_error(where, value, f"a number >= {minimum}")
    return float(value)


def state_list(where: str, value: Any, *, length: int | None = None) -> list[Any]:
    """A list (or tuple), of ``length`` entries when given."""
    if not isinstance(value, (list, tuple)):
        raise state_error(where, value, "a list")
    if length is not None and len(value) != length:
        raise state_mismatch(where, f"has {len(value)} entries; expected {length}")
    return list(value)


def finite_number(value: Any) -> bool:
    """``value`` is an ``int`` or ``float`` (not a bool) and finite: :func:`state_float`'s check,
    cheap enough to run per entry before paying for the path of an error message."""
    return (type(value) is float or type(value) is int) and math.isfinite(value)


def state_floats(
    where: str,
    value: Any,
    *,
    length: int | None = None,
    finite: bool = True,
    minimum: float | None = None,
) -> list[float]:
    """A list of numbers, each checked by :func:`state_float`; returned as floats."""
    items = state_list(where, value, length=length)
    # the common case in bulk (C-level); the per-entry loop names the first bad entry
    if (
        set(map(type, items)) <= {float, int}
        and (not finite or all(map(math.isfinite, items)))
        and (minimum is None or not any(map(float(minimum).__gt__, items)))
    ):
        return list(map(float, items))
    return [
        state_float(f"{where}[{i}]", v, finite=finite, minimum=minimum) for i, v in enumerate(items)
    ]


def state_ints(
    where: str,
    value: Any,
    *,
    length: int | None = None,
    minimum: int | None = 0,
    maximum: int | None = None,
) -> list[int]:
    """A list of ints, each checked by :func:`state_int`."""
    items = state_list(where, value, length=length)
    if set(map(type, items)) <= {int} and (
        not items
        or (
            (minimum is None or min(items) >= minimum)
            and (maximum is None or max(items) <= maximum)
        )
    ):
        return items
    for i, v in enumerate(items):
        state_int(f"{where}[{i}]", v, minimum=minimum, maximum=maximum)
    return items  # pragma: no cover - the loop raised
