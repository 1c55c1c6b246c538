"""Run discovery and identification: result files -> :class:`Run` -> :class:`Cell`.

Reporting reads result JSON only, through :func:`aees.experiments.results.load_run_result` (the
one schema). A run is identified by what it wrote -- ``variant`` and ``config`` -- never by its
file name. Thesis-era files (no ``schema_version``) may lack the keys that pin the optimizer or
the method kind; only for those the thesis decision tree (``thesis-experiments.md`` §5.12) fills
the gaps, and the variant id is recomputed from the completed config.

Runs are grouped into :class:`Cell` objects: the runs of one variant on one task, label-noise
setting and epoch budget. Every table row and figure line is one cell.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees.experiments.results import (
    RunResult,
    RunResultError,
    load_run_result,
    method_spec,
    variant_id,
)

__all__ = [
    "CIFAR_LIKE_TASKS",
    "NLP_TASKS",
    "Cell",
    "Discovery",
    "ReportError",
    "Run",
    "RunInfo",
    "RunSet",
    "discover_runs",
    "has_extension",
    "identify",
    "noise_setting",
    "optimizer_label",
    "setting_label",
    "task_label",
]

CIFAR_LIKE_TASKS = ("cifar100", "digits")
"""Tasks reported with the CIFAR table and figure families (digits: the offline demo task)."""
NLP_TASKS = ("sst2", "agnews")
"""Tasks reported with the NLP families."""

_TASK_LABELS = {"cifar100": "CIFAR-100", "digits": "Digits", "sst2": "SST-2", "agnews": "AG News"}
_TASK_ORDER = {name: i for i, name in enumerate((*CIFAR_LIKE_TASKS, *NLP_TASKS))}
_OPTIMIZER_LABELS = {"adamw": "AdamW", "sgd": "SGD+M"}
_OPTIMIZER_ORDER = {"adamw": 0, "sgd": 1}


class ReportError(Exception):
    """A user-facing reporting problem; ``str(error)`` is one line naming the input."""


def task_label(task: str) -> str:
    """``cifar100`` -> ``CIFAR-100``; unknown tasks are shown as written."""
    return _TASK_LABELS.get(task, task)


def optimizer_label(optimizer: str) -> str:
    """``adamw`` -> ``AdamW``, ``sgd`` -> ``SGD+M`` (SGD runs use momentum)."""
    return _OPTIMIZER_LABELS.get(optimizer, optimizer)


def setting_label(setting: str) -> str:
    """``clean`` -> ``Clean``, ``sym40`` -> ``Sym 40%``, ``asym20`` -> ``Asym 20%``."""
    if setting == "clean":
        return "Clean"
    for prefix, label in (("asym", "Asym"), ("sym", "Sym")):
        if setting.startswith(prefix) and setting[len(prefix) :].isdigit():
            return f"{label} {setting[len(prefix) :]}%"
    return setting


def noise_setting(noise_type: Any, rate: Any) -> str:
    """The label-noise setting: ``clean`` when the type is none or the rate 0, else
    ``sym<pct>`` / ``asym<pct>`` / ``<type><pct>`` with pct = round(100 * rate)."""
    try:
        value = float(rate) if rate is not None else 0.0
    except (TypeError, ValueError):
        value = 0.0
    kind = str(noise_type).lower() if noise_type is not None else "none"
    if value <= 0 or kind in ("none", "clean", ""):
        return "clean"
    short = {"symmetric": "sym", "asymmetric": "asym"}.get(kind, kind)
    return f"{short}{round(value * 100)}"


@dataclass(frozen=True)
class RunInfo:
    """What a run was: task, label-noise setting, epochs, seed and the method.

    ``spec_json`` is :func:`~aees.experiments.results.method_spec` as canonical JSON; ``kind``,
    ``optimizer``, ``scheduler``, the candidate lists, ``episode_length``, ``context_mode`` and
    ``instability_lambda`` are read from it. ``axes`` (AEES and random runs) names the axes with
    more than one candidate: ``lr``, ``noise`` or ``dual``.
    """

    task: str
    setting: str
    epochs: int
    seed: int
    variant: str
    kind: str
    optimizer: str
    scheduler: str
    lr_candidates: tuple[float, ...]
    noise_candidates: tuple[float, ...]
    episode_length: int | None
    context_mode: str
    instability_lambda: float
    spec_json: str
    legacy: bool = False

    @property
    def spec(self) -> dict[str, Any]:
        """The method spec as a dict."""
        return json.loads(self.spec_json)

    @property
    def axes(self) -> str | None:
        """``lr`` / ``noise`` / ``dual`` for multi-candidate axes; None when none is."""
        lr, noise = len(self.lr_candidates) > 1, len(self.noise_candidates) > 1
        if lr and noise:
            return "dual"
        if lr:
            return "lr"
        if noise:
            return "noise"
        return None

    @property
    def is_cifar_like(self) -> bool:
        return self.task in CIFAR_LIKE_TASKS

    @property
    def is_nlp(self) -> bool:
        return self.task in NLP_TASKS


@dataclass(frozen=True)
class Run:
    """One loaded result file."""

    path: Path
    result: RunResult
    info: RunInfo


@dataclass
class Cell:
    """The runs of one variant on one (task, setting, epochs): one table row, one curve.

    ``runs`` keeps every run (timing repeats share a seed); :meth:`seed_runs` keeps the first
    run per seed (sorted by path) for accuracy statistics.
    """

    task: str
    setting: str
    epochs: int
    variant: str
    runs: list[Run] = field(default_factory=list)

    @property
    def info(self) -> RunInfo:
        return self.runs[0].info

    def seed_runs(self) -> list[Run]:
        """First run per seed, in seed order."""
        seen: dict[int, Run] = {}
        for run in sorted(self.runs, key=lambda r: str(r.path)):
            seen.setdefault(run.info.seed, run)
        return [seen[s] for s in sorted(seen)]

    def duplicate_seed_paths(self) -> list[Path]:
        """Paths of runs that repeat a seed already covered by :meth:`seed_runs`."""
        kept = {id(r) for r in self.seed_runs()}
        return [r.path for r in sorted(self.runs, key=lambda r: str(r.path)) if id(r) not in kept]

    @property
    def seeds(self) -> list[int]:
        return [r.info.seed for r in self.seed_runs()]

    @property
    def n(self) -> int:
        return len(self.seed_runs())

    def describe(self) -> str:
        """``cifar100/sym40/200ep/<variant>`` -- names the cell in notes."""
        return f"{self.task}/{self.setting}/{self.epochs}ep/{self.variant}"


# --------------------------------------------------------------------------------------------
# Identification
# --------------------------------------------------------------------------------------------

_OPTIMIZER_NAMES = {"adamw": "adamw", "adam": "adamw", "sgd": "sgd", "sgdm": "sgd"}


def _normalise_optimizer(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    key = value.strip().lower().replace("-", "").replace("_", "")
    return _OPTIMIZER_NAMES.get(key, key)


def _legacy_optimizer(result: RunResult, path: Path) -> str:
    """§5.12 decision tree for the optimizer of a thesis-era file."""
    config = result.config
    for key in ("optimizer_family", "optimizer"):
        found = _normalise_optimizer(config.get(key))
        if found:
            return found
    for value in (config.get("method"), result.method_name):
        if isinstance(value, str) and value.lower() in ("adamw", "sgd", "sgdm"):
            return _OPTIMIZER_NAMES[value.lower()]
    text = str(path).lower()
    if "sgd" in text:
        return "sgd"
    if "adamw" in text or "cifar_clean" in text:
        return "adamw"
    return "adamw"  # NLP runs (and anything else) used AdamW


def _axis_sizes_from_logs(logs: Mapping[str, Any]) -> tuple[int, int]:
    def size(entry: Any) -> int:
        if isinstance(entry, Mapping):
            values = entry.get("arm_values")
            return len(values) if isinstance(values, list) else 1
        return 1

    lr = size(logs.get("lr_controller_logs"))
    by_lr = logs.get("noise_controller_logs_by_lr")
    if isinstance(by_lr, Mapping) and by_lr:
        noise = max(size(v) for v in by_lr.values())
    else:
        noise = size(logs.get("noise_controller_logs"))
    return lr, noise


def _legacy_config(result: RunResult, path: Path) -> dict[str, Any]:
    """The config of a thesis-era run with the optimizer and method kind made explicit."""
    config = dict(result.config)
    config["optimizer"] = {"adamw": "AdamW", "sgd": "SGD"}.get(
        opt := _legacy_optimizer(result, path), opt
    )
    spec = method_spec(config, result.method_name)
    if spec["kind"] not in ("baseline", "aees", "random", "fixed") and "open-loop" not in str(
        spec["kind"]
    ):
        logs = result.controller_logs
        if logs is None:
            config["control_mode"] = "baseline"
        else:
            lr, noise = _axis_sizes_from_logs(logs)
            config["control_mode"] = "adaptive"
            if lr <= 1 and noise <= 1:
                config["control_mode"] = "fixed"
    label_type = config.get("label_noise_type")
    if (label_type in (None, "") or label_type == "none") and _positive(
        config.get("label_noise_rate")
    ):
        config["label_noise_type"] = "symmetric"  # AG News noise (thesis §2.3) is symmetric
    return config


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _floats(values: Any, default: tuple[float, ...]) -> tuple[float, ...]:
    if isinstance(values, list) and values:
        return tuple(float(v) for v in values)
    return default


def identify(result: RunResult, path: str | os.PathLike[str] = "<memory>") -> RunInfo:
    """Identify a run from its ``variant`` and ``config``.

    Current files: ``variant`` as written, the method spec from the config. Thesis-era files:
    the optimizer (config keys, then ``method``/``method_name``, then path substrings
    ``sgd``/``adamw``/``cifar_clean``, else AdamW) and, when the config does not name the
    method kind, the controller logs (none -> baseline; single-candidate axes -> fixed; else
    AEES) complete the config, and the variant is recomputed from it.
    """
    source = Path(path)
    if result.is_legacy:
        config = _legacy_config(result, source)
        variant = variant_id(config, result.method_name)
    else:
        config = result.config
        variant = result.variant or variant_id(config, result.method_name)
    spec = method_spec(config, result.method_name)
    lambda_raw = spec.get("reward_instability_lambda")
    episode = spec.get("episode_length")
    return RunInfo(
        task=result.task_name.lower(),
        setting=noise_setting(config.get("label_noise_type"), config.get("label_noise_rate")),
        epochs=int(result.total_epochs),
        seed=int(result.seed),
        variant=variant,
        kind=str(spec["kind"]),
        optimizer=_normalise_optimizer(spec.get("optimizer")) or "adamw",
        scheduler=str(spec.get("lr_scheduler") or "none"),
        lr_candidates=_floats(spec.get("lr_candidates"), (1.0,)),
        noise_candidates=_floats(spec.get("noise_candidates"), (0.0,)),
        episode_length=int(float(episode)) if episode is not None else None,
        context_mode=str(spec.get("context_mode") or "none"),
        instability_lambda=float(lambda_raw) if lambda_raw is not None else 0.0,
        spec_json=json.dumps(spec, sort_keys=True),
        legacy=result.is_legacy,
    )


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------


@dataclass
class Discovery:
    """What :func:`discover_runs` found: the runs, the unreadable files (one line each) and the
    count of files skipped for their extension."""

    root: Path
    runs: list[Run]
    problems: list[str] = field(default_factory=list)
    skipped_files: list[Path] = field(default_factory=list)

    @property
    def skipped_count(self) -> int:
        return len(self.skipped_files)

    def skipped_summary(self) -> str | None:
        """``"skipped 3 files that are not .json or extensionless (.gz: 2, .png: 1)"``."""
        if not self.skipped_files:
            return None
        counts = Counter(p.suffix.lower() for p in self.skipped_files)  # all have a suffix
        detail = ", ".join(f"{ext}: {n}" for ext, n in sorted(counts.items()))
        return (
            f"{self.root}: skipped {len(self.skipped_files)} files that are not .json or "
            f"extensionless ({detail})"
        )


def has_extension(path: Path) -> bool:
    """True when the name ends in a real extension (a suffix with a letter: ``.json``, ``.gz``);
    ``sgd_fixed_lr0.5`` has none (thesis names may carry numbers with a dot)."""
    return any(ch.isalpha() for ch in path.suffix)


#: Files that runs and sweeps write next to results; known, so neither read nor counted.
COMPANION_SUFFIXES = (".label_noise.json.gz", ".log")
MANIFEST_NAMES = ("manifest.json",)


def _is_companion(name: str) -> bool:
    """A label-noise side file, a run log or a sweep manifest (``manifest.json``,
    ``*.manifest.json``)."""
    return name.endswith(COMPANION_SUFFIXES) or any(
        name == m or name.endswith("." + m) for m in MANIFEST_NAMES
    )


def _candidate_files(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        # hidden directories, and the sweep's own (_logs, _checkpoints)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            # hidden files (in-progress atomic-write temporaries) and known companions
            if not name.startswith(".") and not _is_companion(name):
                yield Path(dirpath) / name


def discover_runs(root: str | os.PathLike[str], *, strict: bool = False) -> Discovery:
    """Load every result under ``root`` (recursively, sorted by path).

    ``.json`` files and files without an extension (:func:`has_extension`; thesis noisy-CIFAR
    files have none) are candidates; every other file is skipped and counted, with one
    ``warnings.warn`` for the lot. What runs and sweeps write beside results (label-noise side
    files, logs, ``manifest.json``, ``_logs/`` and ``_checkpoints/``) is passed over silently.
    A candidate that is not a readable result (corrupt, truncated, foreign JSON) is recorded
    as a one-line problem ``"<path>: <problem>"`` and skipped; with ``strict`` it raises.

    Raises:
        ReportError: ``root`` is not a directory, or (``strict``) a candidate is unreadable.
    """
    base = Path(root)
    if not base.exists():
        raise ReportError(f"{base}: no such directory")
    if not base.is_dir():
        raise ReportError(f"{base}: not a directory")
    found = Discovery(root=base, runs=[])
    for path in _candidate_files(base):
        if has_extension(path) and path.suffix.lower() != ".json":
            found.skipped_files.append(path)
            continue
        try:
            result = load_run_result(path)
        except RunResultError as err:
            if strict:
                raise ReportError(str(err)) from err
            found.problems.append(str(err))
            continue
        found.runs.append(Run(path=path, result=result, info=identify(result, path)))
    summary = found.skipped_summary()
    if summary:
        warnings.warn(summary, stacklevel=2)
    return found


# --------------------------------------------------------------------------------------------
# Grouping
# --------------------------------------------------------------------------------------------


class RunSet:
    """Runs grouped into cells, with the lookups the table and figure builders need."""

    def __init__(self, runs: Sequence[Run]) -> None:
        self.runs = list(runs)
        cells: dict[tuple[str, str, int, str], Cell] = {}
        for run in sorted(self.runs, key=lambda r: str(r.path)):
            i = run.info
            key = (i.task, i.setting, i.epochs, i.variant)
            cells.setdefault(key, Cell(i.task, i.setting, i.epochs, i.variant)).runs.append(run)
        self.cells = sorted(
            cells.values(),
            key=lambda c: (
                (
                    _TASK_ORDER.get(c.task, 99),
                    c.task,
                    _setting_order(c.setting),
                    c.epochs,
                    c.variant,
                )
            ),
        )

    def tasks(self) -> list[str]:
        """Tasks with runs, CIFAR-100, digits, SST-2, AG News first."""
        return list(dict.fromkeys(c.task for c in self.cells))

    def settings(self, task: str) -> list[str]:
        """Label-noise settings of ``task``: clean first, then asym/sym by rate."""
        return list(dict.fromkeys(c.setting for c in self.cells if c.task == task))

    def select(self, task: str | None = None, setting: str | None = None) -> list[Cell]:
        return [
            c
            for c in self.cells
            if (task is None or c.task == task) and (setting is None or c.setting == setting)
        ]


def _setting_order(setting: str) -> tuple[int, str, int]:
    if setting == "clean":
        return (0, "", 0)
    digits = "".join(ch for ch in setting if ch.isdigit())
    prefix = setting.rstrip("0123456789")
    return (1, prefix, int(digits) if digits else 0)
