"""Run manifests: the planned runs (:class:`PlannedRun`) of a :class:`Manifest`, their exact
commands (:func:`run_command`) and the checks of a manifest read back (types, paths, commands).
The flags are checked against :mod:`aees.sweep.flags`, the paths by :mod:`aees.sweep.paths`;
whether a result is a run's: :mod:`aees.sweep.result_check`.

A manifest is shared between people and machines, so it is read as untrusted data; every
problem raises :class:`~aees.sweep.errors.PlanError` with a one-line message naming the input.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aees.results import atomic_write_text
from aees.runner.tasks import task_info, task_names
from aees.sweep.errors import PlanError
from aees.sweep.flags import PLANNER_KEYS, build_command, coerce, flag_specs, write_flags
from aees.sweep.paths import PATH_FIELDS, path_problem, rooted, write_flag_problem

__all__ = [
    "DONE_STATUSES",
    "MANIFEST_KIND",
    "RUN_NAME_RE",
    "SCHEMA_VERSION",
    "STATUSES",
    "Manifest",
    "PlannedRun",
    "gpu_use",
    "load_manifest",
    "run_command",
    "same_command",
    "write_manifest",
]

SCHEMA_VERSION = 1
"""``schema_version`` of the manifests this module writes and reads."""

MANIFEST_KIND = "aees-run-plan"

STATUSES = ("pending", "running", "completed", "skipped", "failed")
"""Run statuses. ``completed``: run by a sweep and validated; ``skipped``: a valid result already
existed (resume); ``failed``: the run failed, or its existing result is invalid and was kept."""

DONE_STATUSES = frozenset({"completed", "skipped"})

RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""A preset, grid, level or run name."""


def gpu_use(task: str, flags: Mapping[str, Any]) -> str:
    """How a run uses a GPU: ``"required"`` (``device`` is ``cuda`` or ``cuda:<i>``), ``"none"``
    (``device`` is ``cpu``, or a task whose record says ``cpu_only``), else ``"if-available"``
    (``device`` ``auto``: a GPU where there is one, else the CPU)."""
    device = str(flags.get("device") or "auto")
    if device.startswith("cuda"):
        return "required"
    if device == "cpu" or (task in task_names() and task_info(task).cpu_only):
        return "none"
    return "if-available"


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


def run_command(
    run: PlannedRun, output_root: str | os.PathLike[str], *, python: str | None = None
) -> list[str]:
    """The argv of ``run`` under ``output_root``, built from its task, flags, seed, run id and
    paths (:func:`build_command`). The planner stores it in the manifest and the executors run
    what this returns, never the stored argv: a manifest is data, not a script."""
    ckpt = Path(output_root, run.checkpoint_dir) if run.checkpoint_dir else None
    written = set(write_flags(run.task)) if run.task in task_names() else set()
    flags = {k: rooted(k, v, output_root) if k in written else v for k, v in run.flags.items()}
    return build_command(
        run.task,
        flags,
        seed=run.seed,
        run_id=run.run_id,
        output=Path(output_root, run.output),
        checkpoint_dir=ckpt,
        python=python,
    )


def _flag_groups(argv: list[str]) -> tuple[list[str], list[tuple[str, ...]]]:
    """``argv`` as its head (up to the first ``--flag``) and its ``--flag [value]`` groups."""
    head: list[str] = []
    groups: list[list[str]] = []
    for token in argv:
        if token.startswith("--"):
            groups.append([token])
        elif groups:
            groups[-1].append(token)
        else:
            head.append(token)
    return head, [tuple(group) for group in groups]


def same_command(stored: list[str], expected: list[str]) -> bool:
    """Whether a manifest's stored command is ``expected`` (what :func:`run_command` builds) up
    to the order of its ``--flag [value]`` groups: manifests planned before the flags took the
    order of the task's option specs hold them in the older order, and still load."""
    if stored == expected:
        return True
    head, groups = _flag_groups(stored)
    expected_head, expected_groups = _flag_groups(expected)
    return head == expected_head and sorted(groups) == sorted(expected_groups)


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
        coerce(spec, value, f"{where}: flags.{key}")  # choices, finite numbers, candidate lists


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


def _check_header(data: Any, source: str) -> None:
    """The manifest's own fields (not its runs): kind, schema version, an absolute output root,
    strings, seeds and overrides; :class:`PlanError` naming ``source`` and the field."""
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
        _check_header(data, source)
        root, version, seeds = data["output_root"], data["schema_version"], data.get("seeds", [])
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
            if not same_command(run.command, expected):
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
