"""Run plans: presets (the thesis grids, as TOML in ``aees/presets/``) expanded into a manifest.

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
exact command, output and log paths, whether it uses a GPU where there is one (``needs_gpu``;
:func:`~aees.sweep.manifest.gpu_use` tells "required" from "if available"), and its status
(``pending``, ``running``, ``completed``, ``skipped``, ``failed``), which the executors
(:mod:`aees.sweep.local`) update. A run counts as complete only when its result file
parses and matches the plan (:func:`aees.sweep.result_check.check_result`). Manifests are read
and written by :mod:`aees.sweep.manifest` (:func:`~aees.sweep.manifest.load_manifest`,
:func:`~aees.sweep.manifest.write_manifest`).

Flag names and types come from :mod:`aees.sweep.flags` (what ``aees train <task>`` accepts), so
a preset or a ``--set key=value`` override is type-checked against exactly what the run will
accept.

Every problem a user can cause raises :class:`~aees.sweep.errors.PlanError`, a ``ValueError``
with a one-line message naming the input. Importing this module imports
:mod:`aees.runner.config` and the task registry (:mod:`aees.runner.tasks`), through
:mod:`aees.sweep.flags`, and so loads torch.
"""

from __future__ import annotations

import copy
import math
import os
import re
import shlex
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from itertools import product
from pathlib import Path
from typing import Any

from aees.sweep.errors import PlanError
from aees.sweep.flags import PLANNER_KEYS, check_flag, default_write_places, flag_specs
from aees.sweep.manifest import RUN_NAME_RE, Manifest, PlannedRun, gpu_use, run_command

__all__ = [
    "PRESETS_ENV",
    "Preset",
    "build_plan",
    "load_preset",
    "parse_overrides",
    "parse_seeds",
    "preset_dirs",
    "preset_names",
    "presets_dir",
    "user_presets_dir",
]

_PRESET_KEYS = ("description", "seeds", "checkpoint", "base", "axes", "grid")
_GRID_KEYS = ("name", "base", "axes")


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


#: Environment variable naming a directory of the user's own presets (``aees plan --configs
#: DIR`` sets it for one command): they add to the packaged ones and override those of the
#: same name.
PRESETS_ENV = "AEES_CONFIGS"


def presets_dir() -> Traversable:
    """The presets that ship inside the package (``aees/presets/*.toml``), read through
    :mod:`importlib.resources`, so a wheel installed anywhere finds them."""
    return resources.files("aees") / "presets"


def user_presets_dir() -> Path | None:
    """``$AEES_CONFIGS`` (see :data:`PRESETS_ENV`), or None; :class:`PlanError` if it is set
    but names no directory."""
    env = os.environ.get(PRESETS_ENV)
    if not env:
        return None
    path = Path(env).expanduser()
    if not path.is_dir():
        raise PlanError(f"{PRESETS_ENV}={env!r} is not a directory of presets")
    return path


def preset_dirs() -> list[Traversable]:
    """Where presets are looked up by name, first match wins: the user's directory
    (:func:`user_presets_dir`), then the packaged presets (:func:`presets_dir`)."""
    user = user_presets_dir()
    return [user, presets_dir()] if user is not None else [presets_dir()]


def _presets_in(directory: Traversable) -> dict[str, Traversable]:
    if not directory.is_dir():
        return {}
    found = {}
    for entry in directory.iterdir():
        stem, dot, suffix = entry.name.rpartition(".")
        if dot and suffix == "toml" and stem and entry.is_file():
            found[stem] = entry
    return found


def preset_names() -> list[str]:
    """Names of the presets of :func:`preset_dirs` (file stems), sorted."""
    names: set[str] = set()
    for directory in preset_dirs():
        names.update(_presets_in(directory))
    return sorted(names)


def _resolve_preset_path(preset: str | os.PathLike[str]) -> Traversable:
    text = os.fspath(preset)
    path = Path(text)
    if text.endswith(".toml") or os.sep in text or path.is_file():
        if not path.is_file():
            raise PlanError(f"preset file {text!r} does not exist")
        return path
    for directory in preset_dirs():
        candidate = _presets_in(directory).get(text)
        if candidate is not None:
            return candidate
    names = preset_names()
    known = ", ".join(names) if names else "none found"
    raise PlanError(f"unknown preset {text!r}; known presets: {known}")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PlanError(f"{where} must be a table, got {type(value).__name__}")
    return value


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not RUN_NAME_RE.match(name):
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
    """Load a preset by name (:func:`preset_dirs`: ``$AEES_CONFIGS/<name>.toml``, else the
    packaged ``aees/presets/<name>.toml``) or by path to a TOML file.

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


# Building a plan
# --------------------------------------------------------------------------------------------


def _combinations(
    loaded: Preset, overrides: Mapping[str, Any]
) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """``(run id stem, task, levels, checked flags)`` of every combination of every grid's levels,
    with the overrides applied and the task's unset own write options placed in the root."""
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
                flags[key] = check_flag(task, key, value, f"{loaded.source}: {origin}")
            for key, value in overrides.items():
                flags[key] = check_flag(task, key, value, f"--set {key}")
            for key, place in default_write_places(task).items():
                if flags.get(key) is None:  # its default would write outside the output root
                    flags[key] = place
            if flags.get("epochs") is None:
                raise PlanError(f"{loaded.source}: {where_run}: epochs is not set")
            combos.append(("_".join(parts), task, levels, flags))
    return combos


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

    combos = _combinations(loaded, overrides)

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
                needs_gpu=gpu_use(task, flags) != "none",
            )
            run.command = run_command(run, root)
            run.command_str = shlex.join(run.command)
            runs.append(run)
    typed_overrides = {k: runs[0].flags.get(k) for k in overrides} if runs else {}
    manifest = Manifest(
        preset=loaded.name,
        description=loaded.description,
        source=loaded.source,
        seeds=seed_list,
        overrides=typed_overrides,
        output_root=root,
        runs=runs,
    )
    manifest.check_paths(loaded.source)  # write flags (--set tensorboard=...) inside the root
    return manifest
