"""The ``aees train`` flags a plan may set: their kinds (:class:`FlagSpec`, :func:`flag_specs`),
which of them write somewhere (:func:`write_flags`), which are not part of a run's identity
(:data:`NON_IDENTITY_KEYS`), the coercion of preset / ``--set`` values, and the exact command of
one run (:func:`build_command`).

Imports :mod:`aees.runner.config` and the task registry (:mod:`aees.runner.tasks`), which load
torch.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aees.runner.config import field_specs
from aees.runner.tasks import TrainFlag, get_task, task_names, train_flags
from aees.sweep.errors import PlanError

__all__ = [
    "NON_IDENTITY_KEYS",
    "PLANNER_KEYS",
    "FlagSpec",
    "build_command",
    "check_flag",
    "flag_specs",
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

#: Keys that are not compared with a result's config: where things are, not what was run.
NON_IDENTITY_KEYS = frozenset(
    {
        "device",
        "quiet",
        "output",
        "run_tag",
        "checkpoint_dir",
        "resume",
        "num_workers",
        "tensorboard",
        "mlflow",
        "data_dir",
        "cache_dir",
        "tokenized_dataset_dir",
        "local_files_only",
        "hf_token",
        "pretokenize_only",
    }
)

#: Preferred flag order in generated commands (thesis ``run_plan.build_cli_args``); rest sorted.
_ARG_ORDER = (
    "method",
    "control_mode",
    "optimizer",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "momentum",
    "lr_scheduler",
    "scheduler_t_max",
    "warmup_epochs",
    "episode_length",
    "lr_candidates",
    "noise_candidates",
    "structured_control_mode",
    "context_mode",
    "context_trend_window",
    "context_trend_epsilon",
    "reward_epsilon",
    "reward_instability_lambda",
    "reward_clip_min",
    "reward_clip_max",
    "label_noise_type",
    "label_noise_rate",
    "label_noise_seed",
    "max_length",
)


_BOOL_WORDS = {
    **dict.fromkeys(("true", "yes", "on", "1"), True),
    **dict.fromkeys(("false", "no", "off", "0"), False),
}


# --------------------------------------------------------------------------------------------
# Flag types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagSpec:
    """One ``aees train`` flag: its dest, value kind and allowed choices.

    ``kind`` is ``int``, ``float``, ``str``, ``bool`` (a bare ``--flag``) or ``candidates`` (a
    comma-separated list of floats, e.g. ``--lr-candidates``).
    """

    name: str
    kind: str
    choices: tuple[str, ...] | None = None

    def coerce(self, value: Any, where: str) -> Any:
        """``value`` (a TOML value or a ``--set`` string) as this flag's type, or :class:`PlanError`
        naming ``where``. ``"none"`` / ``"null"`` (strings) mean "not set" for non-string flags."""
        if isinstance(value, str) and self.kind != "str" and value.strip() in ("none", "null"):
            return None
        kind = self.kind
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
                return _BOOL_WORDS[value.strip().lower()]
            raise PlanError(f"{where}: {self.name} must be true or false, got {value!r}")
        if kind == "int":
            if isinstance(value, bool):
                raise PlanError(f"{where}: {self.name} must be an integer, got {value!r}")
            if isinstance(value, int):
                return value
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    pass
            raise PlanError(f"{where}: {self.name} must be an integer, got {value!r}")
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
                raise PlanError(f"{where}: {self.name} must be a finite number, got {value!r}")
            return number
        if kind == "candidates":
            return _coerce_candidates(self, value, where)
        # str
        if not isinstance(value, str):
            raise PlanError(f"{where}: {self.name} must be a string, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise PlanError(
                f"{where}: {self.name} must be one of {', '.join(self.choices)}, got {value!r}"
            )
        return value


def _coerce_candidates(spec: FlagSpec, value: Any, where: str) -> list[float]:
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


_CANDIDATE_FLAGS = frozenset({"lr_candidates", "noise_candidates"})


def _spec(flag: TrainFlag) -> FlagSpec:
    if flag.switch:
        kind = "bool"
    elif flag.dest in _CANDIDATE_FLAGS:
        kind = "candidates"
    elif flag.type is int:
        kind = "int"
    elif flag.type is float:
        kind = "float"
    else:
        kind = "str"
    return FlagSpec(flag.dest, kind, flag.choices)


@functools.cache
def flag_specs(task: str) -> Mapping[str, FlagSpec]:
    """The flags ``aees train <task>`` accepts, by dest (``lr_scheduler``), with their kinds.

    The shared flags are read from :class:`~aees.runner.config.RunConfig`'s field specs (the
    ones of the task's flag style), the ones a task adds from the flags its ``add_arguments``
    adds (:func:`aees.runner.tasks.train_flags`), so presets and overrides are checked against
    exactly what the run will accept. :class:`PlanError` for an unknown task.
    """
    if task not in task_names():
        raise PlanError(f"unknown task {task!r}; known tasks: {', '.join(task_names())}")
    style = getattr(get_task(task), "flag_style", "cifar")
    shared = field_specs(style).items()
    common = {name: FlagSpec(name, kind, spec.choices) for name, (spec, kind) in shared}
    own = {dest: _spec(flag) for dest, flag in train_flags(task).items() if dest not in common}
    return {**common, **own}


@functools.cache
def write_flags(task: str) -> tuple[str, ...]:
    """The dests of ``aees train <task>``'s flags whose value names a place the run *writes*:
    the shared flags declared ``writes`` in :class:`~aees.runner.config.RunConfig`'s field specs
    (``output``, ``checkpoint_dir``, ``tensorboard``, ``mlflow``) and the task's own
    ``write_options`` (e.g. ``cache_dir``, ``tokenized_dataset_dir``). Read from the
    declarations, so a new write flag is kept inside the output root without a list here."""
    specs = flag_specs(task)  # unknown task -> PlanError
    style = getattr(get_task(task), "flag_style", "cifar")
    shared = [name for name, (spec, _) in field_specs(style).items() if spec.writes]
    own = [d for d in getattr(get_task(task), "write_options", ()) if d in specs]
    return tuple(dict.fromkeys([*shared, *own]))


def check_flag(task: str, key: str, value: Any, where: str) -> Any:
    if key in PLANNER_KEYS:
        raise PlanError(f"{where}: {key} cannot be set here ({PLANNER_KEYS[key]})")
    specs = flag_specs(task)
    if key not in specs:
        raise PlanError(f"{where}: unknown key {key!r} (not a flag of aees train {task})")
    return specs[key].coerce(value, where)


# --------------------------------------------------------------------------------------------
# Commands and results
# --------------------------------------------------------------------------------------------


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(_format_value(v) for v in value)
    return str(value)


def _ordered_keys(flags: Mapping[str, Any]) -> list[str]:
    first = [k for k in _ARG_ORDER if k in flags]
    return first + sorted(k for k in flags if k not in _ARG_ORDER)


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

    Flags in a fixed order (thesis ``run_plan``); floats as ``repr`` (exact); lists comma-joined;
    ``True`` as a bare flag; ``False`` / ``None`` omitted. Then ``--seed``, ``--run-tag`` (the run
    id), ``--output`` and, with a checkpoint directory, ``--checkpoint-dir ... --resume``.
    """
    argv = [python or sys.executable, "-m", "aees.cli", "train", task]
    for key in _ordered_keys(flags):
        value = flags[key]
        flag = "--" + key.replace("_", "-")
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
