"""Run plans: presets (the thesis grids, as TOML in ``configs/``) expanded into a manifest.

A **preset** is data. A single grid::

    description = "..."
    seeds = [0, 1, 2, 3, 4]
    checkpoint = true              # optional: per-run --checkpoint-dir + --resume

    [base]                         # flags shared by every run (argparse dests: lr_scheduler, ...)
    task = "cifar100"
    epochs = 200

    [axes.optimizer]               # one axis; its levels, in order; each level is a set of flags
    adamw = { optimizer = "AdamW", lr = 1e-3 }
    sgd = { optimizer = "SGD", lr = 0.1 }

    [axes.method]
    baseline = { control_mode = "baseline" }
    aees = { control_mode = "adaptive", lr_candidates = [0.5, 1.0, 2.0] }

or several grids (a preset spanning tasks), each ``[[grid]]`` with a ``name``, ``base`` and
``axes``. Runs are the cross product of the axes' levels, for every seed, seed-major; later layers
win (base < levels in axis order < ``--set`` overrides). The run id is the grid name (if any), the
level names and ``seed<N>`` joined by ``_``; the result goes to ``<output_root>/<run_id>.json``
and the log to ``<output_root>/_logs/<run_id>.log``.

The **manifest** (:class:`Manifest`, JSON) lists every run with its task, seed, resolved flags,
exact command, output and log paths, whether it needs a GPU, and its status (``pending``,
``running``, ``completed``, ``skipped``, ``failed``), which the executors
(:mod:`aees.experiments.executors`) update. A run counts as complete only when its result file
parses and matches the plan (:func:`check_result`).

Flag names and types come from the task's own ``aees train <task>`` parser, so a preset or a
``--set key=value`` override is type-checked against exactly what the run will accept.

Every problem a user can cause raises :class:`PlanError`, a ``ValueError`` with a one-line message
naming the input. This module uses the standard library only (torch is imported lazily, through the
task registry, when flag types are first needed).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import os
import re
import shlex
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from aees.experiments.results import RunResult, RunResultError, atomic_write_text, load_run_result

__all__ = [
    "MANIFEST_KIND",
    "PATH_FIELDS",
    "SCHEMA_VERSION",
    "STATUSES",
    "FlagSpec",
    "Manifest",
    "PlanError",
    "PlannedRun",
    "Preset",
    "build_command",
    "build_plan",
    "check_result",
    "flag_specs",
    "load_manifest",
    "load_preset",
    "parse_overrides",
    "parse_seeds",
    "path_problem",
    "preset_names",
    "presets_dir",
    "run_command",
    "write_manifest",
]

SCHEMA_VERSION = 1
"""``schema_version`` of the manifests this module writes and reads."""

MANIFEST_KIND = "aees-run-plan"

STATUSES = ("pending", "running", "completed", "skipped", "failed")
"""Run statuses. ``completed``: run by a sweep and validated; ``skipped``: a valid result already
existed (resume); ``failed``: the run failed, or its existing result is invalid and was kept."""

DONE_STATUSES = frozenset({"completed", "skipped"})

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

#: Tasks that never need a GPU.
CPU_TASKS = frozenset({"digits"})

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

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PRESET_KEYS = ("description", "seeds", "checkpoint", "base", "axes", "grid")
_GRID_KEYS = ("name", "base", "axes")


_BOOL_WORDS = {
    **dict.fromkeys(("true", "yes", "on", "1"), True),
    **dict.fromkeys(("false", "no", "off", "0"), False),
}


class PlanError(ValueError):
    """A preset, override, seed list or manifest that cannot be used; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


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
    from aees.experiments.config import parse_candidates

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


def _specs_from_parser(parser: argparse.ArgumentParser) -> dict[str, FlagSpec]:
    specs: dict[str, FlagSpec] = {}
    for action in parser._actions:
        if action.dest in ("help", argparse.SUPPRESS) or not action.option_strings:
            continue
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            kind = "bool"
        elif action.dest in _CANDIDATE_FLAGS:
            kind = "candidates"
        elif action.type is int:
            kind = "int"
        elif action.type is float:
            kind = "float"
        else:
            kind = "str"
        choices = tuple(str(c) for c in action.choices) if action.choices is not None else None
        specs[action.dest] = FlagSpec(action.dest, kind, choices)
    return specs


@functools.cache
def _task_parsers() -> Mapping[str, argparse.ArgumentParser]:
    from aees.experiments.cli import build_parser

    return build_parser()[1]


@functools.cache
def flag_specs(task: str) -> Mapping[str, FlagSpec]:
    """The flags ``aees train <task>`` accepts, by dest (``lr_scheduler``), with their kinds.

    Read from the task's own parser (:func:`aees.experiments.cli.build_parser`), so presets and
    overrides are checked against exactly what the run will accept. :class:`PlanError` for an
    unknown task.
    """
    parsers = _task_parsers()
    if task not in parsers:
        raise PlanError(f"unknown task {task!r}; known tasks: {', '.join(sorted(parsers))}")
    return _specs_from_parser(parsers[task])


def _check_flag(task: str, key: str, value: Any, where: str) -> Any:
    if key in PLANNER_KEYS:
        raise PlanError(f"{where}: {key} cannot be set here ({PLANNER_KEYS[key]})")
    specs = flag_specs(task)
    if key not in specs:
        raise PlanError(f"{where}: unknown key {key!r} (not a flag of aees train {task})")
    return specs[key].coerce(value, where)


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One axis of a grid: its name and its ``(level name, flags)`` pairs, in order."""

    name: str
    levels: tuple[tuple[str, Mapping[str, Any]], ...]


@dataclass(frozen=True)
class Grid:
    """One cross product: shared ``base`` flags and the axes. ``name`` prefixes its run ids."""

    name: str | None
    base: Mapping[str, Any]
    axes: tuple[Axis, ...]

    def combinations(self) -> list[tuple[tuple[str, ...], dict[str, str], dict[str, Any]]]:
        """``(id parts, {axis: level}, {key: (value, origin)})`` for every combination."""
        out = []
        level_lists = [
            [(axis.name, name, flags) for name, flags in axis.levels] for axis in self.axes
        ]
        for combo in product(*level_lists):
            parts = ([self.name] if self.name else []) + [name for _, name, _ in combo]
            levels = {axis: name for axis, name, _ in combo}
            merged = {k: (v, "base") for k, v in self.base.items()}
            for axis, name, flags in combo:
                merged.update({k: (v, f"axes.{axis}.{name}") for k, v in flags.items()})
            out.append((tuple(parts), levels, merged))
        return out


@dataclass(frozen=True)
class Preset:
    """A loaded preset: name, description, default seeds, grids, whether runs checkpoint."""

    name: str
    source: str
    description: str
    seeds: tuple[int, ...]
    grids: tuple[Grid, ...]
    checkpoint: bool = False

    @property
    def combination_count(self) -> int:
        return sum(math.prod(len(a.levels) for a in g.axes) for g in self.grids)


def presets_dir() -> Path:
    """The preset directory: ``$AEES_CONFIGS`` if set, else the repository's ``configs/`` (a
    source checkout or editable install), else ``./configs``."""
    env = os.environ.get("AEES_CONFIGS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[3] / "configs"
    return checkout if checkout.is_dir() else Path.cwd() / "configs"


def preset_names() -> list[str]:
    """Names of the presets in :func:`presets_dir` (file stems), sorted."""
    directory = presets_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.toml"))


def _resolve_preset_path(preset: str | os.PathLike[str]) -> Path:
    text = os.fspath(preset)
    path = Path(text)
    if text.endswith(".toml") or os.sep in text or path.is_file():
        if not path.is_file():
            raise PlanError(f"preset file {text!r} does not exist")
        return path
    candidate = presets_dir() / f"{text}.toml"
    if candidate.is_file():
        return candidate
    names = preset_names()
    known = ", ".join(names) if names else f"none found in {presets_dir()}"
    raise PlanError(f"unknown preset {text!r}; known presets: {known}")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PlanError(f"{where} must be a table, got {type(value).__name__}")
    return value


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise PlanError(
            f"{where}: name {name!r} must start with a letter or digit and use only "
            "letters, digits, '_', '.', '-'"
        )
    return name


def _parse_grid(data: Mapping[str, Any], where: str, name: str | None) -> Grid:
    base = dict(_table(data.get("base", {}), f"{where}base"))
    axes_table = _table(data.get("axes", {}), f"{where}axes")
    axes: list[Axis] = []
    for axis_name, levels_table in axes_table.items():
        _check_name(axis_name, f"{where}axes")
        levels_table = _table(levels_table, f"{where}axes.{axis_name}")
        if not levels_table:
            raise PlanError(f"{where}axes.{axis_name} has no levels")
        levels = []
        for level_name, flags in levels_table.items():
            _check_name(level_name, f"{where}axes.{axis_name}")
            levels.append(
                (level_name, dict(_table(flags, f"{where}axes.{axis_name}.{level_name}")))
            )
        axes.append(Axis(axis_name, tuple(levels)))
    return Grid(name, base, tuple(axes))


def load_preset(preset: str | os.PathLike[str]) -> Preset:
    """Load a preset by name (``configs/<name>.toml``) or by path to a TOML file.

    Checks the structure; flag names and types are checked when the plan is built
    (:func:`build_plan`), against each run's task.
    """
    path = _resolve_preset_path(preset)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise PlanError(f"{path}: not valid TOML ({err})") from None
    except OSError as err:
        raise PlanError(f"{path}: cannot read ({err.strerror or err})") from None
    src = str(path)
    unknown = [k for k in data if k not in _PRESET_KEYS]
    if unknown:
        raise PlanError(f"{src}: unknown key {unknown[0]!r} (allowed: {', '.join(_PRESET_KEYS)})")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise PlanError(f"{src}: description must be a string")
    seeds_value = data.get("seeds", [0])
    if not (
        isinstance(seeds_value, list)
        and seeds_value
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds_value)
    ):
        raise PlanError(f"{src}: seeds must be a non-empty list of integers >= 0")
    if len(set(seeds_value)) != len(seeds_value):
        raise PlanError(f"{src}: seeds must not repeat a value")
    checkpoint = data.get("checkpoint", False)
    if not isinstance(checkpoint, bool):
        raise PlanError(f"{src}: checkpoint must be true or false")

    grids: list[Grid] = []
    if "grid" in data:
        if "base" in data or "axes" in data:
            raise PlanError(f"{src}: use either [[grid]] tables or top-level base/axes, not both")
        grid_list = data["grid"]
        if not isinstance(grid_list, list) or not grid_list:
            raise PlanError(f"{src}: grid must be a non-empty array of tables ([[grid]])")
        for i, grid in enumerate(grid_list):
            where = f"{src}: grid[{i}]."
            grid = _table(grid, f"{src}: grid[{i}]")
            bad = [k for k in grid if k not in _GRID_KEYS]
            if bad:
                raise PlanError(
                    f"{where} unknown key {bad[0]!r} (allowed: {', '.join(_GRID_KEYS)})"
                )
            name = _check_name(grid.get("name"), f"{src}: grid[{i}]")
            grids.append(_parse_grid(grid, where, name))
        names = [g.name for g in grids]
        if len(set(names)) != len(names):
            raise PlanError(f"{src}: grid names must be unique, got {names}")
    else:
        grids.append(_parse_grid(data, f"{src}: ", None))
    return Preset(
        name=path.stem,
        source=src,
        description=description,
        seeds=tuple(seeds_value),
        grids=tuple(grids),
        checkpoint=checkpoint,
    )


# --------------------------------------------------------------------------------------------
# Seeds and overrides
# --------------------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,2,5"``, ``"0-2,7"`` likewise. :class:`PlanError` on a
    malformed list, a negative or reversed range, or a repeated seed."""
    seeds: list[int] = []
    for token in (t.strip() for t in str(text).split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
        if not match:
            raise PlanError(f"--seeds: {token!r} is not a seed or a range like 0-4 (in {text!r})")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise PlanError(f"--seeds: range {token!r} is reversed")
        for seed in range(lo, hi + 1):
            if seed in seeds:
                raise PlanError(f"--seeds: seed {seed} is listed twice")
            seeds.append(seed)
    return seeds


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["epochs=1", "lr-scheduler=cosine"]`` -> ``{"epochs": "1", "lr_scheduler": "cosine"}``.

    Keys may be written with dashes or underscores (and a leading ``--``); values stay strings
    until :func:`build_plan` checks them against the flag types. :class:`PlanError` on an item
    without ``=`` or a key given twice.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise PlanError(f"--set {item!r}: expected KEY=VALUE")
        if key in out:
            raise PlanError(f"--set: {key} is given twice")
        out[key] = value
    return out


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
    """The ``python -m aees.experiments.cli train <task> ...`` argv of one run.

    Flags in a fixed order (thesis ``run_plan``); floats as ``repr`` (exact); lists comma-joined;
    ``True`` as a bare flag; ``False`` / ``None`` omitted. Then ``--seed``, ``--run-tag`` (the run
    id), ``--output`` and, with a checkpoint directory, ``--checkpoint-dir ... --resume``.
    """
    argv = [python or sys.executable, "-m", "aees.experiments.cli", "train", task]
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


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(float(expected), float(actual), rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(expected) == len(actual) and all(
            _same(e, a) for e, a in zip(expected, actual, strict=True)
        )
    return expected == actual


def result_problem(run: PlannedRun, result: RunResult) -> str | None:
    """Why ``result`` is not the planned ``run`` (a short phrase), or None if it matches.

    Checked: task, seed (top level and config), ``total_epochs`` = the planned epochs and one
    validation accuracy per epoch, and every planned flag recorded in the config (or its
    ``task_options``) except :data:`NON_IDENTITY_KEYS`; floats compare to 1e-12 relative.
    """
    config = result.config
    if result.task_name != run.task:
        return f"task_name is {result.task_name!r}, plan says {run.task!r}"
    if result.seed != run.seed or config.get("seed", run.seed) != run.seed:
        return f"seed is {result.seed}, plan says {run.seed}"
    epochs = run.flags.get("epochs")
    if epochs is not None and result.total_epochs != epochs:
        return f"total_epochs is {result.total_epochs}, plan says {epochs}"
    # a diverged run (``--nonfinite raise``) holds the epochs completed before it stopped
    expected_epochs = (
        (result.diverged_at_epoch or 1) - 1 if result.diverged else result.total_epochs
    )
    if len(result.val_accuracies) != expected_epochs:
        return (
            f"{len(result.val_accuracies)} validation accuracies for "
            f"{result.total_epochs} epochs (an unfinished run?)"
        )
    options = config.get("task_options") if isinstance(config.get("task_options"), dict) else {}
    for key, expected in run.flags.items():
        if key in NON_IDENTITY_KEYS or expected is None:
            continue
        if key in config:
            actual = config[key]
        elif key in options:
            actual = options[key]
        else:
            continue  # not recorded by this task's results
        if not _same(expected, actual):
            return f"config.{key} is {actual!r}, plan says {expected!r}"
    return None


def check_result(run: PlannedRun, path: str | os.PathLike[str]) -> str | None:
    """None if ``path`` holds a valid result of ``run``; else the problem, one line.

    A missing file gives ``"no result file"``; an unreadable or malformed one the
    :class:`~aees.experiments.results.RunResultError` message; a result of another run
    what differs (:func:`result_problem`).
    """
    target = Path(path)
    if not target.exists():
        return "no result file"
    try:
        result = load_run_result(target)
    except RunResultError as err:
        return err.problem
    return result_problem(run, result)


# --------------------------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------------------------


@dataclass
class PlannedRun:
    """One run of a plan. Paths ``output`` / ``log`` / ``checkpoint_dir`` are relative to the
    manifest's ``output_root``; ``command`` has them resolved. The fields after ``needs_gpu``
    are updated by the executors."""

    run_id: str
    task: str
    seed: int
    levels: dict[str, str]
    flags: dict[str, Any]
    output: str
    log: str
    checkpoint_dir: str | None
    command: list[str]
    command_str: str
    needs_gpu: bool
    status: str = "pending"
    detail: str | None = None
    return_code: int | None = None
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    environment: dict[str, str] = field(default_factory=dict)
    host: str | None = None

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES


_RUN_FIELDS = {f for f in PlannedRun.__dataclass_fields__}
_REQUIRED_RUN_FIELDS = (
    "run_id",
    "task",
    "seed",
    "flags",
    "output",
    "log",
    "command",
    "needs_gpu",
    "status",
)


#: The run fields that name a file or directory, relative to the output root.
PATH_FIELDS = ("output", "log", "checkpoint_dir")


def run_command(
    run: PlannedRun, output_root: str | os.PathLike[str], *, python: str | None = None
) -> list[str]:
    """The argv of ``run`` under ``output_root``, built from its task, flags, seed, run id and
    paths (:func:`build_command`). The planner stores it in the manifest and the executors run
    what this returns, never the stored argv: a manifest is data, not a script."""
    ckpt = Path(output_root, run.checkpoint_dir) if run.checkpoint_dir else None
    return build_command(
        run.task,
        run.flags,
        seed=run.seed,
        run_id=run.run_id,
        output=Path(output_root, run.output),
        checkpoint_dir=ckpt,
        python=python,
    )


def path_problem(output_root: str | os.PathLike[str], relative: str) -> str | None:
    """Why ``<output_root>/<relative>`` is not a place a run may use, or None.

    It must lie strictly inside the output root once resolved (``..``, absolute paths and
    symbolic links that lead out, or back to the root itself, are refused): the sweep writes
    there and deletes checkpoint directories there, so a path in a hand-edited manifest must never
    reach anything else.
    """
    if "\0" in relative:
        return "contains a NUL character"
    pure = Path(relative)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return f"{relative!r} must be a path inside output_root (relative, without '..')"
    root = Path(output_root).resolve()
    target = (root / pure).resolve()
    if target == root or root not in target.parents:
        return f"{relative!r} resolves to {target}, outside the output root {root}"
    return None


def _kind_ok(value: Any, kind: type | tuple[type, ...]) -> bool:
    """``isinstance`` where ``bool`` is not an ``int`` (nor a number)."""
    if isinstance(value, bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        return bool in kinds
    return isinstance(value, kind)


def _check_run_flags(task: str, flags: dict[str, Any], where: str) -> None:
    """Each flag is one of the task's, of that flag's type, and not one the planner sets."""
    specs = flag_specs(task)
    kinds: dict[str, type | tuple[type, ...]] = {
        "bool": bool,
        "int": int,
        "float": (int, float),
        "str": str,
        "candidates": list,
    }
    for key, value in flags.items():
        if key in PLANNER_KEYS:
            raise PlanError(f"{where}: flags.{key} cannot be in a manifest ({PLANNER_KEYS[key]})")
        if key not in specs:
            raise PlanError(f"{where}: flags.{key} is not a flag of aees train {task}")
        spec = specs[key]
        if value is None:
            continue
        if not _kind_ok(value, kinds[spec.kind]):
            raise PlanError(f"{where}: flags.{key} must be a {spec.kind}, got {value!r}")
        spec.coerce(value, f"{where}: flags.{key}")  # choices, finite numbers, candidate lists


#: Optional run fields and the JSON types they may hold (None is always allowed).
_OPTIONAL_RUN_TYPES: dict[str, type | tuple[type, ...]] = {
    "checkpoint_dir": str,
    "command_str": str,
    "detail": str,
    "return_code": int,
    "started_at": str,
    "finished_at": str,
    "duration_s": (int, float),
    "host": str,
}


def _check_run(raw: dict[str, Any], where: str, output_root: str) -> None:
    """Type, value and path checks of one run of a manifest; :class:`PlanError` names the field."""
    checks: tuple[tuple[str, type], ...] = (
        ("task", str),
        ("seed", int),
        ("flags", dict),
        ("output", str),
        ("log", str),
        ("command", list),
        ("needs_gpu", bool),
        ("status", str),
    )
    for key, kind in checks:
        if not _kind_ok(raw[key], kind):
            raise PlanError(f"{where}: {key} must be a {kind.__name__}, got {raw[key]!r}")
    if raw["seed"] < 0:
        raise PlanError(f"{where}: seed must be >= 0, got {raw['seed']}")
    if raw["status"] not in STATUSES:
        raise PlanError(f"{where}: unknown status {raw['status']!r} (one of {', '.join(STATUSES)})")
    for key, kind in _OPTIONAL_RUN_TYPES.items():
        value = raw.get(key)
        if value is not None and not _kind_ok(value, kind):
            raise PlanError(f"{where}: {key} has the wrong type ({value!r})")
    attempts = raw.get("attempts", 0)
    if not _kind_ok(attempts, int) or attempts < 0:
        raise PlanError(f"{where}: attempts must be an integer >= 0, got {attempts!r}")
    for key in ("levels", "environment"):
        value = raw.get(key, {})
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise PlanError(f"{where}: {key} must map strings to strings, got {value!r}")
    if not raw["command"] or not all(isinstance(t, str) for t in raw["command"]):
        raise PlanError(f"{where}: command must be a non-empty list of strings")
    for key in PATH_FIELDS:
        value = raw.get(key)
        if value is not None:
            problem = path_problem(output_root, value)
            if problem is not None:
                raise PlanError(f"{where}: {key} {problem}")
    _check_run_flags(raw["task"], raw["flags"], where)


@dataclass
class Manifest:
    """A run plan and the state of its runs; JSON via :meth:`to_dict` / :func:`load_manifest`."""

    preset: str
    description: str
    source: str
    seeds: list[int]
    overrides: dict[str, Any]
    output_root: str
    runs: list[PlannedRun]
    schema_version: int = SCHEMA_VERSION

    def path_of(self, relative: str) -> Path:
        return Path(self.output_root) / relative

    def output_path(self, run: PlannedRun) -> Path:
        return self.path_of(run.output)

    def log_path(self, run: PlannedRun) -> Path:
        return self.path_of(run.log)

    def run(self, run_id: str) -> PlannedRun:
        for run in self.runs:
            if run.run_id == run_id:
                return run
        raise KeyError(run_id)

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for run in self.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts

    def check_paths(self, source: str = "<manifest>") -> None:
        """:class:`PlanError` (naming the run and the field) unless every path field of every
        run resolves inside the output root, now (symbolic links as they are now), and no two
        runs share a path."""
        owner: dict[str, str] = {}
        for run in self.runs:
            for key in PATH_FIELDS:
                value = getattr(run, key)
                if value is None:
                    continue
                problem = path_problem(self.output_root, value)
                if problem is not None:
                    raise PlanError(f"{source}: run {run.run_id}: {key} {problem}")
                resolved = str(self.path_of(value).resolve())
                if resolved in owner:
                    raise PlanError(
                        f"{source}: run {run.run_id}: {key} {value!r} is also the "
                        f"{owner[resolved]}; every run needs its own paths"
                    )
                owner[resolved] = f"{key} of run {run.run_id}"

    def relocate(self, output_root: str | os.PathLike[str]) -> None:
        """Point the plan at another output root (e.g. shared storage); commands are rebuilt.
        A relative ``output_root`` is taken relative to the current directory."""
        self.output_root = os.path.abspath(os.fspath(output_root))
        for run in self.runs:
            run.command = run_command(
                run, self.output_root, python=run.command[0] if run.command else None
            )
            run.command_str = shlex.join(run.command)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "kind": MANIFEST_KIND,
            "preset": self.preset,
            "description": self.description,
            "source": self.source,
            "seeds": list(self.seeds),
            "overrides": dict(self.overrides),
            "output_root": self.output_root,
            "run_count": len(self.runs),
            "status_counts": self.status_counts(),
            "runs": [asdict(run) for run in self.runs],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<manifest>") -> Manifest:
        """Validate and load; :class:`PlanError` names ``source``, the run and the field of the
        first problem.

        Checked: the type of every field (``bool`` is not an integer), the status, the flags
        against the task's own parser, that every path field resolves inside the output root,
        and that the stored ``command`` is the one :func:`run_command` builds from the run's
        task, flags, seed and paths (all but the interpreter, which the executors choose
        themselves), so a hand-edited command is refused rather than run. ``output_root`` must be
        absolute: a relative one would depend on the current directory of whoever runs the sweep
        (``aees plan`` always writes an absolute one).
        """
        if not isinstance(data, dict):
            raise PlanError(f"{source}: not a run-plan manifest (top level is not an object)")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION or data.get("kind", MANIFEST_KIND) != MANIFEST_KIND:
            raise PlanError(
                f"{source}: not a run-plan manifest of schema_version {SCHEMA_VERSION} "
                f"(schema_version is {version!r}); make one with aees plan"
            )
        for key, kind in (("output_root", str), ("runs", list)):
            if not isinstance(data.get(key), kind):
                raise PlanError(f"{source}: {key} is missing or not a {kind.__name__}")
        root = data["output_root"]
        if "\0" in root or not os.path.isabs(root):
            raise PlanError(
                f"{source}: output_root {root!r} must be an absolute path "
                "(re-plan with aees plan --output-root DIR)"
            )
        for key, kind in (("preset", str), ("description", str), ("source", str)):
            if key in data and not isinstance(data[key], kind):
                raise PlanError(f"{source}: {key} must be a string, got {data[key]!r}")
        seeds = data.get("seeds", [])
        if not isinstance(seeds, list) or not all(_kind_ok(s, int) and s >= 0 for s in seeds):
            raise PlanError(f"{source}: seeds must be a list of integers >= 0, got {seeds!r}")
        if not isinstance(data.get("overrides", {}), dict):
            raise PlanError(f"{source}: overrides must be an object")
        runs: list[PlannedRun] = []
        seen: set[str] = set()
        for i, raw in enumerate(data["runs"]):
            where = f"{source}: runs[{i}]"
            if not isinstance(raw, dict):
                raise PlanError(f"{where} is not an object")
            missing = [k for k in _REQUIRED_RUN_FIELDS if k not in raw]
            if missing:
                raise PlanError(f"{where} lacks {missing[0]!r}")
            run_id = raw["run_id"]
            if not isinstance(run_id, str) or not _NAME_RE.match(run_id):
                raise PlanError(f"{where}: bad run_id {run_id!r}")
            if run_id in seen:
                raise PlanError(f"{where}: run_id {run_id!r} appears twice")
            seen.add(run_id)
            where = f"{where} ({run_id})"
            _check_run(raw, where, root)
            values = {k: v for k, v in raw.items() if k in _RUN_FIELDS}
            values.setdefault("levels", {})
            values.setdefault("checkpoint_dir", None)
            values.setdefault("command_str", shlex.join(raw["command"]))
            values.setdefault("environment", {})
            run = PlannedRun(**values)
            expected = run_command(run, root, python=run.command[0])
            if run.command != expected:
                raise PlanError(
                    f"{where}: command is not the one its task, flags, seed and paths give "
                    "(edited by hand?); it is never run -- re-plan with aees plan"
                )
            if run.command_str != shlex.join(run.command):
                raise PlanError(f"{where}: command_str does not match command (edited by hand?)")
            runs.append(run)
        manifest = cls(
            preset=str(data.get("preset", "")),
            description=str(data.get("description", "")),
            source=str(data.get("source", "")),
            seeds=list(seeds),
            overrides=dict(data.get("overrides", {})),
            output_root=root,
            runs=runs,
            schema_version=version,
        )
        manifest.check_paths(source)
        return manifest


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read a manifest written by :func:`write_manifest`; :class:`PlanError` (one line) if the file
    is missing, not JSON or not a valid manifest."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{source}: no such manifest file") from None
    except IsADirectoryError:
        raise PlanError(f"{source}: is a directory, not a manifest file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PlanError(
            f"{source}: cannot read ({getattr(err, 'strerror', None) or err})"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PlanError(f"{source}: not valid JSON ({err.msg} at line {err.lineno})") from None
    return Manifest.from_dict(data, source=source)


def write_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> Path:
    """Write ``manifest`` as JSON, atomically."""
    return atomic_write_text(path, manifest.to_json())


# --------------------------------------------------------------------------------------------
# Building a plan
# --------------------------------------------------------------------------------------------


def build_plan(
    preset: str | os.PathLike[str] | Preset,
    *,
    seeds: Sequence[int] | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    output_root: str | os.PathLike[str] | None = None,
    checkpoint: bool | None = None,
) -> Manifest:
    """Expand ``preset`` (a name, a TOML path or a :class:`Preset`) into a :class:`Manifest`.

    Args:
        seeds: the seeds (a list or a ``"0-4"`` spec); default the preset's.
        overrides: ``{flag: value}`` applied to every run after the preset's layers; values may
            be strings (from ``--set``) or typed; each is checked against the run's task flags.
        output_root: where results, logs and checkpoints go; default ``results/<preset>``
            (made absolute).
        checkpoint: per-run checkpoints (``--checkpoint-dir`` + ``--resume``); default the
            preset's ``checkpoint``.

    The result is deterministic: the same inputs give the same run ids, commands and order.
    """
    loaded = preset if isinstance(preset, Preset) else load_preset(preset)
    seed_list = list(
        parse_seeds(seeds)
        if isinstance(seeds, str)
        else (seeds if seeds is not None else loaded.seeds)
    )
    if not seed_list:
        raise PlanError("no seeds to plan")
    for seed in seed_list:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise PlanError(f"seeds must be integers >= 0, got {seed!r}")
    overrides = {str(k).lstrip("-").replace("-", "_"): v for k, v in (overrides or {}).items()}
    for key in ("task", *PLANNER_KEYS):
        if key in overrides:
            reason = PLANNER_KEYS.get(key, "the task is fixed by the preset")
            raise PlanError(f"--set {key}: cannot be overridden ({reason})")
    use_checkpoint = loaded.checkpoint if checkpoint is None else checkpoint
    root = os.path.abspath(os.fspath(output_root or Path("results") / loaded.name))

    combos: list[tuple[str, str, dict[str, str], dict[str, Any]]] = []
    for grid in loaded.grids:
        for parts, levels, merged in grid.combinations():
            where_run = "_".join(parts) or loaded.name
            task_entry = merged.pop("task", None)
            if task_entry is None:
                raise PlanError(
                    f"{loaded.source}: {where_run}: no task set (add task = ... to base)"
                )
            task, origin = task_entry
            if not isinstance(task, str):
                raise PlanError(f"{loaded.source}: {origin}: task must be a string")
            flag_specs(task)  # unknown task -> PlanError
            flags: dict[str, Any] = {}
            for key, (value, origin) in merged.items():
                flags[key] = _check_flag(task, key, value, f"{loaded.source}: {origin}")
            for key, value in overrides.items():
                flags[key] = _check_flag(task, key, value, f"--set {key}")
            if flags.get("epochs") is None:
                raise PlanError(f"{loaded.source}: {where_run}: epochs is not set")
            combos.append(("_".join(parts), task, levels, flags))

    runs: list[PlannedRun] = []
    seen: set[str] = set()
    for seed in seed_list:
        for stem, task, levels, flags in combos:
            run_id = f"{stem}_seed{seed}" if stem else f"seed{seed}"
            if run_id in seen:
                raise PlanError(f"{loaded.source}: run id {run_id!r} occurs twice; rename a level")
            seen.add(run_id)
            ckpt = f"_checkpoints/{run_id}" if use_checkpoint else None
            run = PlannedRun(
                run_id=run_id,
                task=task,
                seed=seed,
                levels=dict(levels),
                flags=copy.deepcopy(flags),
                output=f"{run_id}.json",
                log=f"_logs/{run_id}.log",
                checkpoint_dir=ckpt,
                command=[],
                command_str="",
                needs_gpu=task not in CPU_TASKS and flags.get("device", "auto") != "cpu",
            )
            run.command = run_command(run, root)
            run.command_str = shlex.join(run.command)
            runs.append(run)
    typed_overrides = {k: runs[0].flags.get(k) for k in overrides} if runs else {}
    return Manifest(
        preset=loaded.name,
        description=loaded.description,
        source=loaded.source,
        seeds=seed_list,
        overrides=typed_overrides,
        output_root=root,
        runs=runs,
    )
