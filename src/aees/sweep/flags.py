"""The ``aees train`` flags a plan may set, read from the one flag model
(:func:`aees.runner.config.option_specs`, :func:`flag_specs` here): their kinds, which of them
write somewhere (:func:`write_flags`, ``OptionSpec.writes``), which are part of a run's identity
(:func:`identity_keys`, ``OptionSpec.identity``), the coercion of preset / ``--set`` values by
kind (:func:`coerce`: TOML and ``--set`` strings are the sweep's own input format), and the
exact command of one run (:func:`build_command`, flags in the spec order).

Imports :mod:`aees.runner.config` and the task registry (:mod:`aees.runner.tasks`), which load
torch.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

from aees.runner.config import OptionSpec, RunConfig, flag_of, option_specs
from aees.runner.tasks import task_names
from aees.sweep.errors import PlanError

__all__ = [
    "PLANNER_KEYS",
    "build_command",
    "check_flag",
    "coerce",
    "default_write_places",
    "flag_specs",
    "identity_keys",
    "write_flags",
]

#: Flags the planner sets itself (from the seeds, the run id and the output root).
PLANNER_KEYS = {
    "seed": "seeds come from the preset's seeds or --seeds",
    "output": "outputs are <output_root>/<run_id>.json",
    "run_tag": "the run tag is the run id",
    "checkpoint_dir": "use checkpoint = true (per-run <output_root>/_checkpoints/<run_id>)",
    "resume": "use checkpoint = true (adds --resume)",
    "hf_token": "secrets are never written to a manifest; set HF_TOKEN in the environment",
}

_BOOL_WORDS = {
    **dict.fromkeys(("true", "yes", "on", "1"), True),
    **dict.fromkeys(("false", "no", "off", "0"), False),
}


def coerce(spec: OptionSpec, value: Any, where: str) -> Any:
    """``value`` (a TOML value or a ``--set`` string) as the type of option ``spec`` (its
    ``kind`` and ``choices``), or :class:`PlanError` naming ``where``. ``"none"`` / ``"null"``
    (strings) mean "not set" for non-string flags."""
    if isinstance(value, str) and spec.kind != "str" and value.strip() in ("none", "null"):
        return None
    kind = spec.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        raise PlanError(f"{where}: {spec.name} must be true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, bool):
            raise PlanError(f"{where}: {spec.name} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise PlanError(f"{where}: {spec.name} must be an integer, got {value!r}")
    if kind == "float":
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise PlanError(f"{where}: {spec.name} must be a finite number, got {value!r}")
        return number
    if kind == "candidates":
        return _coerce_candidates(spec, value, where)
    # str
    if not isinstance(value, str):
        raise PlanError(f"{where}: {spec.name} must be a string, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise PlanError(
            f"{where}: {spec.name} must be one of {', '.join(spec.choices)}, got {value!r}"
        )
    return value


def _coerce_candidates(spec: OptionSpec, value: Any, where: str) -> list[float]:
    from aees.runner.config import parse_candidates

    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise PlanError(f"{where}: {spec.name} must be a list of numbers, got {value!r}")
        text = ",".join(repr(float(v)) for v in value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = repr(float(value))
    elif isinstance(value, str):
        text = value
    else:
        raise PlanError(f"{where}: {spec.name} must be a list of numbers, got {value!r}")
    try:
        parsed = parse_candidates(text, flag=spec.name, allow_zero=spec.name != "lr_candidates")
    except ValueError as err:
        raise PlanError(f"{where}: {err}") from None
    return list(parsed)


def flag_specs(task: str) -> dict[str, OptionSpec]:
    """The options of ``aees train <task>`` (:func:`aees.runner.config.option_specs`: name ->
    spec, in ``-h`` order), so presets and overrides are checked against exactly what the run
    will accept. :class:`PlanError` for an unknown task."""
    if task not in task_names():
        raise PlanError(f"unknown task {task!r}; known tasks: {', '.join(task_names())}")
    return option_specs(task)


def write_flags(task: str) -> tuple[str, ...]:
    """The options of ``aees train <task>`` whose value names a place the run *writes*
    (``OptionSpec.writes``: ``output``, ``checkpoint_dir``, ``tensorboard``, ``mlflow``, a task's
    ``cache_dir``, ...), so a new write flag is kept inside the output root without a list here."""
    return tuple(name for name, spec in flag_specs(task).items() if spec.writes)


def default_write_places(task: str) -> dict[str, str]:
    """Where a planned run's unset *own* write options go: ``_cache/<task>/<option>``, relative
    to the output root (the planner sets them; :func:`~aees.sweep.manifest.run_command` roots
    them). A task's own options that write (``OptionSpec.writes``, not a
    :class:`~aees.runner.config.RunConfig` field: the image cache ``cache_dir``, the text tasks'
    ``cache_dir`` and ``tokenized_dataset_dir``) would otherwise write where their default
    points -- beside the data set or in the current directory, outside the output root. The
    shared write options are set by the planner (``output``, ``checkpoint_dir``) or write
    nothing while unset (``tensorboard``, ``mlflow``)."""
    shared = {field.name for field in dataclasses.fields(RunConfig)}
    return {
        name: f"_cache/{task}/{name}"
        for name, spec in flag_specs(task).items()
        if spec.writes and name not in shared
    }


def identity_keys(task: str) -> frozenset[str]:
    """The options of ``aees train <task>`` that are part of what a run is
    (``OptionSpec.identity``): the sweep compares them with a result's config; the others say
    where things are (``device``, ``output``, ``data_dir``, ...)."""
    return frozenset(name for name, spec in flag_specs(task).items() if spec.identity)


def check_flag(task: str, key: str, value: Any, where: str) -> Any:
    if key in PLANNER_KEYS:
        raise PlanError(f"{where}: {key} cannot be set here ({PLANNER_KEYS[key]})")
    specs = flag_specs(task)
    if key not in specs:
        raise PlanError(f"{where}: unknown key {key!r} (not a flag of aees train {task})")
    return coerce(specs[key], value, where)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(_format_value(v) for v in value)
    return str(value)


def _ordered_keys(task: str, flags: Mapping[str, Any]) -> list[str]:
    """``flags``' keys in the order of the task's options (unknown ones last, sorted)."""
    order = list(option_specs(task)) if task in task_names() else []
    first = [k for k in order if k in flags]
    return first + sorted(k for k in flags if k not in order)


def build_command(
    task: str,
    flags: Mapping[str, Any],
    *,
    seed: int,
    run_id: str,
    output: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str] | None = None,
    python: str | None = None,
) -> list[str]:
    """The ``python -m aees.cli train <task> ...`` argv of one run.

    Flags in the order ``aees train <task> -h`` lists them (:func:`flag_specs`); floats as
    ``repr`` (exact); lists comma-joined; ``True`` as a bare flag; ``False`` / ``None`` omitted.
    Then ``--seed``, ``--run-tag`` (the run id), ``--output`` and, with a checkpoint directory,
    ``--checkpoint-dir ... --resume``.
    """
    argv = [python or sys.executable, "-m", "aees.cli", "train", task]
    for key in _ordered_keys(task, flags):
        value = flags[key]
        flag = flag_of(key)
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        else:
            argv += [flag, _format_value(value)]
    argv += ["--seed", str(seed), "--run-tag", run_id, "--output", os.fspath(output)]
    if checkpoint_dir is not None:
        argv += ["--checkpoint-dir", os.fspath(checkpoint_dir), "--resume"]
    return argv
