"""The one result schema of the project: :class:`RunResult`, its JSON form, and its I/O.

One training run writes one JSON object. Its fields are the thesis ``RunResult`` fields (so the
archived thesis files load unchanged) plus:

* ``schema_version`` -- :data:`SCHEMA_VERSION` for files written by this package,
  :data:`LEGACY_SCHEMA_VERSION` for thesis-era files read by :func:`load_run_result`;
* ``variant`` -- a stable, readable id of the method configuration (:func:`variant_id`), so
  reporting groups runs by what was run, never by file name;
* ``provenance`` -- command line, git revision and dirty flag, package versions, start time and
  hardware (:func:`collect_provenance`);
* ``diagnostics`` -- results that are not configuration (e.g. the label-noise diagnostics, which
  the thesis stored inside ``config``);
* ``runtime_metrics`` -- derived at save time from the other fields (:func:`build_runtime_metrics`).

Writes are atomic (temporary file in the same directory, ``fsync``, ``os.replace``) and secrets
(``hf_token``, ``api_key``, ``password``, ...) are redacted before anything is written.

This module uses the standard library only; the hardware probe imports ``torch`` lazily.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import PurePath
from typing import Any

from aees.results.identity import variant_id
from aees.results.values import as_int, is_number, type_name

__all__ = [
    "LEGACY_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "RunResult",
    "RunResultError",
]


SCHEMA_VERSION = "1"
"""``schema_version`` written by this package."""

LEGACY_SCHEMA_VERSION = "legacy"
"""``schema_version`` given to files without one (thesis-era results)."""

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class RunResultError(ValueError):
    """A result file or dict that cannot be read as a :class:`RunResult`.

    ``str(error)`` is one line, ``"<path>: <problem>"``; ``path`` and ``problem`` are attributes.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem))


# --------------------------------------------------------------------------------------------
# The dataclass
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """One run. The first 23 fields are the thesis ``RunResult`` fields, in the thesis order.

    Accuracies are fractions in [0, 1]; ``train_losses`` are per-epoch means per example;
    ``epoch_wall_clock_seconds`` covers train + eval of each epoch; ``estimated_flops`` is the
    total train + eval FLOPs. See docs/results-schema.md §2 for every field.
    """

    method_name: str
    task_name: str
    seed: int
    model_name: str
    dataset_name: str
    config: dict[str, Any]
    best_val_accuracy: float
    final_val_accuracy: float
    final_train_loss: float
    total_steps: int
    total_epochs: int
    wall_clock_seconds: float
    estimated_flops: float | None
    accuracy_per_tflop: float | None
    train_losses: list[float]
    train_accuracies: list[float] | None
    val_accuracies: list[float]
    epoch_wall_clock_seconds: list[float]
    epoch_tflops: list[float] | None
    episode_logs: dict[str, Any] | None
    controller_logs: dict[str, Any] | None
    run_tag: str | None = None
    runtime_metrics: dict[str, Any] | None = None
    schema_version: str = SCHEMA_VERSION
    variant: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    #: The run stopped at a non-finite training loss (``--nonfinite raise``): the per-epoch
    #: lists hold the epochs completed before it; the step (0-based global optimizer step) and
    #: the 1-based epoch it happened in are recorded.
    diverged: bool = False
    diverged_at_step: int | None = None
    diverged_at_epoch: int | None = None

    @property
    def is_legacy(self) -> bool:
        """True for a result read from a thesis-era file (no ``schema_version``)."""
        return self.schema_version == LEGACY_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Every field, converted to JSON-able values; no derivation, no redaction.

        ``RunResult.from_dict(r.to_dict()) == r`` for any result holding JSON-able values.
        Use :func:`result_to_dict` for the form that is written to disk.
        """
        return {f.name: _to_jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> RunResult:
        """Validate ``data`` and build a result; ``source`` names it in error messages.

        A dict without ``schema_version`` is a thesis-era result: the old field names
        (``val_accuracy``, ``best_accuracy``, ...) are accepted, missing fields are derived
        where the thesis readers derived them, ``config["diagnostics"]`` moves to
        ``diagnostics``, ``variant`` is computed from the config, and ``schema_version``
        becomes :data:`LEGACY_SCHEMA_VERSION`. Unknown keys are ignored.

        Raises:
            RunResultError: a missing required field, a wrong type, or an unknown schema.
        """
        if not isinstance(data, Mapping):
            raise RunResultError(
                source, f"top-level JSON value must be an object, got {type_name(data)}"
            )
        raw = dict(data)
        version = raw.get("schema_version")
        if version is None or version == LEGACY_SCHEMA_VERSION:
            raw = _upgrade_legacy(raw, source)
        elif version != SCHEMA_VERSION:
            raise RunResultError(
                source,
                f"unsupported schema_version {version!r} (this aees reads "
                f"{SCHEMA_VERSION!r} and legacy files without schema_version)",
            )
        values: dict[str, Any] = {}
        for name, (check, default) in _FIELD_SPECS.items():
            if name not in raw:
                if default is _REQUIRED:
                    raise RunResultError(source, f"missing required field '{name}'")
                values[name] = default()
                continue
            values[name] = check(raw[name], name, source)
        return cls(**values)


# --------------------------------------------------------------------------------------------
# Field validation
# --------------------------------------------------------------------------------------------


def _fail(source: str, name: str, expected: str, value: Any) -> RunResultError:
    return RunResultError(source, f"field '{name}' must be {expected}, got {type_name(value)}")


def _check_str(value: Any, name: str, source: str) -> str:
    if not isinstance(value, str):
        raise _fail(source, name, "a string", value)
    return value


def _check_opt_str(value: Any, name: str, source: str) -> str | None:
    return None if value is None else _check_str(value, name, source)


def _check_int(value: Any, name: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _fail(source, name, "an integer", value)
    return value


def _check_opt_int(value: Any, name: str, source: str) -> int | None:
    return None if value is None else _check_int(value, name, source)


def _check_bool(value: Any, name: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, name, "true or false", value)
    return value


def _check_float(value: Any, name: str, source: str) -> float:
    if not is_number(value):
        raise _fail(source, name, "a number", value)
    return float(value)


def _check_opt_float(value: Any, name: str, source: str) -> float | None:
    if value is None:
        return None
    if not is_number(value):
        raise _fail(source, name, "a number or null", value)
    return float(value)


def _check_float_list(value: Any, name: str, source: str) -> list[float]:
    if not isinstance(value, list):
        raise _fail(source, name, "a list of numbers", value)
    for index, item in enumerate(value):
        if not is_number(item):
            raise RunResultError(
                source,
                f"field '{name}' must be a list of numbers, item {index} is {type_name(item)}",
            )
    return [float(item) for item in value]


def _check_opt_float_list(value: Any, name: str, source: str) -> list[float] | None:
    return None if value is None else _check_float_list(value, name, source)


def _check_dict(value: Any, name: str, source: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(source, name, "an object", value)
    return dict(value)


def _check_opt_dict(value: Any, name: str, source: str) -> dict[str, Any] | None:
    return None if value is None else _check_dict(value, name, source)


_REQUIRED: Any = object()
_Check = Callable[[Any, str, str], Any]

# field -> (validator, default factory or _REQUIRED), in dataclass order.
_FIELD_SPECS: dict[str, tuple[_Check, Any]] = {
    "method_name": (_check_str, _REQUIRED),
    "task_name": (_check_str, _REQUIRED),
    "seed": (_check_int, _REQUIRED),
    "model_name": (_check_str, _REQUIRED),
    "dataset_name": (_check_str, _REQUIRED),
    "config": (_check_dict, _REQUIRED),
    "best_val_accuracy": (_check_float, _REQUIRED),
    "final_val_accuracy": (_check_float, _REQUIRED),
    "final_train_loss": (_check_float, _REQUIRED),
    "total_steps": (_check_int, _REQUIRED),
    "total_epochs": (_check_int, _REQUIRED),
    "wall_clock_seconds": (_check_float, _REQUIRED),
    "estimated_flops": (_check_opt_float, lambda: None),
    "accuracy_per_tflop": (_check_opt_float, lambda: None),
    "train_losses": (_check_float_list, _REQUIRED),
    "train_accuracies": (_check_opt_float_list, lambda: None),
    "val_accuracies": (_check_float_list, _REQUIRED),
    "epoch_wall_clock_seconds": (_check_float_list, _REQUIRED),
    "epoch_tflops": (_check_opt_float_list, lambda: None),
    "episode_logs": (_check_opt_dict, lambda: None),
    "controller_logs": (_check_opt_dict, lambda: None),
    "run_tag": (_check_opt_str, lambda: None),
    "runtime_metrics": (_check_opt_dict, lambda: None),
    "schema_version": (_check_str, lambda: SCHEMA_VERSION),
    "variant": (_check_opt_str, lambda: None),
    "provenance": (_check_dict, dict),
    "diagnostics": (_check_dict, dict),
    "diverged": (_check_bool, lambda: False),
    "diverged_at_step": (_check_opt_int, lambda: None),
    "diverged_at_epoch": (_check_opt_int, lambda: None),
}

# Old field names the thesis readers fell back to (docs/results-schema.md §12).
_LEGACY_ALIASES = {
    "val_accuracies": ("val_accuracy", "validation_accuracies"),
    "best_val_accuracy": ("best_validation_accuracy", "best_accuracy"),
    "final_val_accuracy": ("final_validation_accuracy", "final_accuracy"),
}


def _upgrade_legacy(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Bring a thesis-era dict to the current field set (see :meth:`RunResult.from_dict`)."""
    out = dict(raw)
    for name, aliases in _LEGACY_ALIASES.items():
        if name not in out:
            for alias in aliases:
                if alias in out:
                    out[name] = out[alias]
                    break
    config = _check_dict(out.get("config", {}), "config", source)
    diagnostics = config.pop("diagnostics", None)
    if diagnostics is not None and "diagnostics" not in out:
        out["diagnostics"] = _check_dict(diagnostics, "config.diagnostics", source)
    out["config"] = config

    fallbacks = {
        "method_name": ("control_regime", "method"),
        "task_name": ("task_name",),
        "model_name": ("model_name",),
        "dataset_name": ("dataset_name",),
        "seed": ("seed",),
        "run_tag": ("run_tag",),
    }
    for name, keys in fallbacks.items():
        if out.get(name) is None:
            value = next((config[k] for k in keys if config.get(k) is not None), None)
            if value is not None:
                out[name] = value

    if "val_accuracies" in out:
        vals = _check_float_list(out["val_accuracies"], "val_accuracies", source)
        if vals:
            out.setdefault("best_val_accuracy", max(vals))
            out.setdefault("final_val_accuracy", vals[-1])
        epochs = config.get("epochs")
        out.setdefault("total_epochs", epochs if as_int(epochs) is not None else len(vals))
    train_losses = out.get("train_losses")
    if isinstance(train_losses, list) and train_losses:
        out.setdefault(
            "final_train_loss", _check_float_list(train_losses, "train_losses", source)[-1]
        )
    out.setdefault("epoch_wall_clock_seconds", [])
    out["schema_version"] = LEGACY_SCHEMA_VERSION
    if out.get("variant") is None and isinstance(out.get("method_name"), str):
        out["variant"] = variant_id(config, out["method_name"])
    return out


# --------------------------------------------------------------------------------------------
# JSON conversion and secrets
# --------------------------------------------------------------------------------------------


def _to_jsonable(obj: Any) -> Any:
    """Dataclasses -> dicts, keys -> ``str(key)``, tuples/sets -> lists, paths -> str,
    enums -> their value, tensors/arrays -> ``tolist()``; anything else -> ``str(obj)``."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_jsonable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {str(key): _to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(item) for item in obj]
    if isinstance(obj, (set, frozenset)):
        return [_to_jsonable(item) for item in sorted(obj, key=str)]
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Enum):
        return _to_jsonable(obj.value)
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        with contextlib.suppress(Exception):
            return _to_jsonable(tolist())
    return str(obj)
