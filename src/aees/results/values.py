"""Small value predicates shared by the result modules (standard library only)."""

from __future__ import annotations

from typing import Any

__all__ = ["CONFIG_ALIASES", "as_int", "candidate_values", "config_value", "is_number", "type_name"]

#: Older names of a result ``config`` key (thesis-era files), tried in order after the key.
CONFIG_ALIASES: dict[str, tuple[str, ...]] = {
    "lr": ("base_lr",),
    "weight_decay": ("base_weight_decay",),
}


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


def config_value(config: Any, name: str, default: Any = None) -> Any:
    """``config[name]``, else the first of its legacy aliases (:data:`CONFIG_ALIASES`) that the
    config has, else ``default``: the one way to read a result config's field by name."""
    for key in (name, *CONFIG_ALIASES.get(name, ())):
        if key in config:
            return config[key]
    return default
