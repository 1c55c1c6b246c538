"""Small value predicates shared by the result modules (standard library only)."""

from __future__ import annotations

from typing import Any

__all__ = ["as_int", "candidate_values", "is_number", "type_name"]


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        str: "string",
        int: "integer",
        float: "number",
        list: "list",
        dict: "object",
    }.get(type(value), type(value).__name__)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def candidate_values(value: Any) -> list[float] | None:
    """Candidate list from a config value: a list of numbers or a comma-separated string."""
    if isinstance(value, str):
        tokens = [token.strip() for token in value.split(",") if token.strip()]
        try:
            return [float(token) for token in tokens] or None
        except ValueError:
            return None
    if isinstance(value, (list, tuple)) and value and all(is_number(v) for v in value):
        return [float(v) for v in value]
    return None
