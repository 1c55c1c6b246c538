"""Run manifests: the planned runs (:class:`PlannedRun`) of a :class:`Manifest`, their exact
commands, the checks of a manifest read back (types, paths, commands) and of a run's result
(:func:`check_result`), and the ``aees train`` flag types they are checked against.

A manifest is shared between people and machines, so it is read as untrusted data; every
problem raises :class:`PlanError` with a one-line message naming the input.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from aees.results import RunResult, RunResultError, atomic_write_text, load_run_result
from aees.runner.config import field_specs
from aees.runner.tasks import TrainFlag, get_task, task_names, train_flags

__all__ = [
    "CPU_TASKS",
    "DONE_STATUSES",
    "MANIFEST_KIND",
    "NON_IDENTITY_KEYS",
    "PATH_FIELDS",
    "PLANNER_KEYS",
    "RUN_NAME_RE",
    "SCHEMA_VERSION",
    "STATUSES",
    "FlagSpec",
    "Manifest",
    "PlanError",
    "PlannedRun",
    "build_command",
    "check_flag",
    "check_result",
    "flag_specs",
    "gpu_use",
    "load_manifest",
    "path_problem",
    "result_problem",
    "run_command",
    "tracking_server",
    "write_flag_problem",
    "write_flags",
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


RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""A preset, grid, level or run name."""

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


def _tracking_path(uri: str) -> str | None:
    """The local path an MLflow ``--mlflow`` value writes (a store directory, a ``file:`` URI's
    path, a ``sqlite:`` database file: ``sqlite:///rel.db`` is relative, ``sqlite:////abs.db``
    absolute), or None for a tracking server."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        return uri
    if scheme == "file":
        return url2pathname(parts.path)
    if scheme == "sqlite":
        return parts.path[1:] if parts.path.startswith("/") else parts.path
    return None


def tracking_server(value: Any) -> str | None:
    """``value`` (an ``mlflow`` flag) if it names a tracking server (``http(s)://``,
    ``databricks``, a database server, ...), else None (a local store, or not set)."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value if _tracking_path(value) is None else None


def _write_target(key: str, value: str) -> str | None:
    """The file-system path a write flag's value names (None: a tracking server)."""
    return _tracking_path(value) if key == "mlflow" else value


def write_flag_problem(output_root: str | os.PathLike[str], key: str, value: Any) -> str | None:
    """Why write flag ``key`` = ``value`` may not be used under ``output_root``, or None.

    The path it names (for ``mlflow``, the local store or database file a URI names) must lie
    strictly inside the output root once resolved, symbolic links as they are now; a relative
    path is taken relative to the output root (:func:`run_command` passes it so). A tracking
    server is not a path: :func:`tracking_server`, which the sweep checks against
    ``--allow-tracking-uri``. The message names the flag.
    """
    if not isinstance(value, str):
        return None  # types are checked elsewhere; None = not set
    flag = "--" + key.replace("_", "-")
    target = _write_target(key, value)
    if target is None:
        return None
    if not target.strip() or "\0" in target:
        return f"{flag} {value!r} names no path to write"
    root = Path(output_root).resolve()
    resolved = (root / os.path.expanduser(target)).resolve()
    if resolved == root or root not in resolved.parents:
        return (
            f"{flag} {value!r} resolves to {resolved}, outside the output root {root}; a "
            "planned run may write only inside its output root"
        )
    return None


def _rooted(key: str, value: Any, output_root: str | os.PathLike[str]) -> Any:
    """A write flag's value with a relative path made absolute under ``output_root``."""
    if not isinstance(value, str):
        return value
    target = _write_target(key, value)
    if target is None or not target.strip() or os.path.isabs(os.path.expanduser(target)):
        return value
    path = Path(os.path.abspath(Path(output_root, target)))
    if key != "mlflow" or target == value:
        return str(path)
    parts = urlsplit(value)
    if parts.scheme.lower() == "file":
        return path.as_uri()
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}:///{path}{query}"  # sqlite:////abs/path.db


def gpu_use(task: str, flags: Mapping[str, Any]) -> str:
    """How a run uses a GPU: ``"required"`` (``device`` is ``cuda`` or ``cuda:<i>``), ``"none"``
    (``device`` is ``cpu``, or a task that never needs one), else ``"if-available"``
    (``device`` ``auto``: a GPU where there is one, else the CPU)."""
    device = str(flags.get("device") or "auto")
    if device.startswith("cuda"):
        return "required"
    if device == "cpu" or task in CPU_TASKS:
        return "none"
    return "if-available"


def check_flag(task: str, key: str, value: Any, where: str) -> Any:
    if key in PLANNER_KEYS:
        raise PlanError(f"{where}: {key} cannot be set here ({PLANNER_KEYS[key]})")
    specs = flag_specs(task)
    if key not in specs:
        raise PlanError(f"{where}: unknown key {key!r} (not a flag of aees train {task})")
    return specs[key].coerce(value, where)


# --------------------------------------------------------------------------------------------
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
    :class:`~aees.results.RunResultError` message; a result of another run
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
    manifest's ``output_root``; ``command`` has them resolved. ``needs_gpu``: the run uses a GPU
    where there is one (:func:`gpu_use` is not ``"none"``). The fields after ``needs_gpu`` are
    updated by the executors."""

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
    written = set(write_flags(run.task)) if run.task in task_names() else set()
    flags = {k: _rooted(k, v, output_root) if k in written else v for k, v in run.flags.items()}
    return build_command(
        run.task,
        flags,
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
    for key in write_flags(raw["task"]):
        problem = write_flag_problem(output_root, key, raw["flags"].get(key))
        if problem is not None:
            raise PlanError(f"{where}: {problem}")


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
        """:class:`PlanError` (naming the run and the field) unless every path field and every
        path a write flag names (:func:`write_flags`) of every run resolves inside the output
        root, now (symbolic links as they are now), and no two runs share a path field."""
        owner: dict[str, str] = {}
        for run in self.runs:
            for key in write_flags(run.task):
                problem = write_flag_problem(self.output_root, key, run.flags.get(key))
                if problem is not None:
                    raise PlanError(f"{source}: run {run.run_id}: {problem}")
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
            if not isinstance(run_id, str) or not RUN_NAME_RE.match(run_id):
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
