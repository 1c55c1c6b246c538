"""Run identification and grouping: a result -> :class:`RunInfo` -> :class:`Run` -> :class:`Cell`.

Reporting reads result JSON only, through :func:`aees.results.load_run_result` (the
one schema); :mod:`aees.reporting.discovery` finds and loads the files. A run is identified by
what it wrote -- ``variant`` and ``config`` -- never by its file name. Thesis-era files (no
``schema_version``) may lack the keys that pin the optimizer or the method kind; only for those
the thesis decision tree (docs/reporting.md §3) fills the gaps, and the variant id is recomputed
from the completed config. The report family and the labels come from the result, else from
:mod:`aees.results.legacy`.

Runs are grouped into :class:`Cell` objects: the runs of one variant on one task, label-noise
setting and epoch budget. Every table row and figure line is one cell.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees.results import RunResult, legacy, method_spec, variant_id
from aees.results.checks import Divergence
from aees.results.io import display_path

__all__ = [
    "Cell",
    "ReportError",
    "Run",
    "RunInfo",
    "RunSet",
    "identify",
    "noise_setting",
    "setting_label",
]


class ReportError(Exception):
    """A user-facing reporting problem; ``str(error)`` is one line naming the input."""


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

    ``spec_json`` is :func:`~aees.results.method_spec` as canonical JSON; ``kind``,
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
    dataset: str = ""
    """The dataset of a run of a generic task (``image``/``text``: the user's data), else ""
    (thesis tasks are one dataset each; their files spell it in several ways)."""
    model: str = ""
    """The model of a run of a generic task, else "" (see ``dataset``)."""
    family: str = "other"
    """The report family (``cifar`` / ``nlp`` / ``other``): the result's ``report_family``, for
    older results :mod:`aees.results.legacy`."""
    task_label: str = ""
    """``CIFAR-100``: the result's ``task_label`` (older results: :mod:`aees.results.legacy`)."""
    optimizer_label: str = ""
    """``SGD+M``: the result's ``optimizer_label`` (older results: :mod:`aees.results.legacy`)."""

    def __post_init__(self) -> None:
        # a RunInfo built without labels (tests, plans) gets the legacy table's, or the name
        if not self.task_label:
            object.__setattr__(self, "task_label", legacy.task_label({}, self.task))
        if not self.optimizer_label:
            label = legacy.optimizer_label({}, self.optimizer)
            object.__setattr__(self, "optimizer_label", label)

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
    def group(self) -> str:
        """``dataset · model`` for a generic task (docs/reporting.md §3), else ""."""
        return " · ".join(x for x in (self.dataset, self.model) if x)

    @property
    def is_cifar_like(self) -> bool:
        return self.family == "cifar"

    @property
    def is_nlp(self) -> bool:
        return self.family == "nlp"


@dataclass(frozen=True)
class Run:
    """One loaded result file; ``divergence`` is set for a result marked as diverged."""

    path: Path
    result: RunResult
    info: RunInfo
    divergence: Divergence | None = None

    def diverged_line(self) -> str:
        """One line for the report: the path, where it diverged, what run it was."""
        assert self.divergence is not None
        i = self.info
        return (
            f"{display_path(self.path)}: {self.divergence.describe()}; {i.task} {i.setting} "
            f"{i.epochs} ep {i.variant} seed {i.seed}; excluded from every mean and SD"
        )


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
    group: str = ""
    """``dataset · model`` of a generic-task cell (:attr:`RunInfo.group`), else ""."""

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
        """``cifar100/sym40/200ep/<variant>`` (generic tasks: ``image/<dataset · model>/...``)
        -- names the cell in notes."""
        group = f"{self.group}/" if self.group else ""
        return f"{self.task}/{group}{self.setting}/{self.epochs}ep/{self.variant}"


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
    """docs/reporting.md §3 decision tree for the optimizer of a thesis-era file."""
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
        # AG News noise (docs/protocols.md §4.4) is symmetric
        config["label_noise_type"] = "symmetric"
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
    task = result.task_name.lower()
    family = legacy.report_family(config, task)
    generic = family == "other"
    optimizer = _normalise_optimizer(spec.get("optimizer")) or "adamw"
    episode = spec.get("episode_length")
    return RunInfo(
        task=task,
        setting=noise_setting(config.get("label_noise_type"), config.get("label_noise_rate")),
        epochs=int(result.total_epochs),
        seed=int(result.seed),
        variant=variant,
        kind=str(spec["kind"]),
        optimizer=optimizer,
        scheduler=str(spec.get("lr_scheduler") or "none"),
        lr_candidates=_floats(spec.get("lr_candidates"), (1.0,)),
        noise_candidates=_floats(spec.get("noise_candidates"), (0.0,)),
        episode_length=int(float(episode)) if episode is not None else None,
        context_mode=str(spec.get("context_mode") or "none"),
        instability_lambda=float(lambda_raw) if lambda_raw is not None else 0.0,
        spec_json=json.dumps(spec, sort_keys=True),
        legacy=result.is_legacy,
        dataset=str(result.dataset_name or "").strip() if generic else "",
        model=str(result.model_name or "").strip() if generic else "",
        family=family,
        task_label=legacy.task_label(config, task),
        optimizer_label=legacy.optimizer_label(config, optimizer),
    )


# --------------------------------------------------------------------------------------------
# Grouping
# --------------------------------------------------------------------------------------------


class RunSet:
    """Runs grouped into cells, with the lookups the table and figure builders need."""

    def __init__(self, runs: Sequence[Run]) -> None:
        self.runs = list(runs)
        cells: dict[tuple[str, str, str, int, str], Cell] = {}
        for run in sorted(self.runs, key=lambda r: str(r.path)):
            i = run.info
            key = (i.task, i.group, i.setting, i.epochs, i.variant)
            cell = Cell(i.task, i.setting, i.epochs, i.variant, group=i.group)
            cells.setdefault(key, cell).runs.append(run)
        self.cells = sorted(
            cells.values(),
            key=lambda c: (
                (
                    legacy.task_order(c.task),
                    c.task,
                    c.group,
                    _setting_order(c.setting),
                    c.epochs,
                    c.variant,
                )
            ),
        )

    def tasks(self) -> list[str]:
        """Tasks with runs, in report order (:func:`aees.results.legacy.task_order`: CIFAR-100,
        digits, SST-2, AG News first)."""
        return list(dict.fromkeys(c.task for c in self.cells))

    def family_tasks(self, *families: str) -> list[str]:
        """Tasks with runs whose report family (:attr:`RunInfo.family`) is one of ``families``,
        in report order."""
        return [t for t in self.tasks() if self._task_info(t).family in families]

    def task_label(self, task: str) -> str:
        """The label its results give ``task`` (``CIFAR-100``); the name when it has no runs."""
        return self._task_info(task).task_label if self.select(task) else task

    def optimizer_label(self, optimizer: str) -> str:
        """The label the results give ``optimizer`` (``SGD+M``); older results and an optimizer
        without runs: :func:`aees.results.legacy.optimizer_label`."""
        for cell in self.cells:
            if cell.info.optimizer == optimizer:
                return cell.info.optimizer_label
        return legacy.optimizer_label({}, optimizer)

    def _task_info(self, task: str) -> RunInfo:
        return next(c.info for c in self.cells if c.task == task)

    def settings(self, task: str) -> list[str]:
        """Label-noise settings of ``task``: clean first, then asym/sym by rate."""
        return list(dict.fromkeys(c.setting for c in self.cells if c.task == task))

    def select(
        self, task: str | None = None, setting: str | None = None, group: str | None = None
    ) -> list[Cell]:
        """Cells of ``task`` / ``setting`` / ``group`` (None: any)."""
        return [
            c
            for c in self.cells
            if (task is None or c.task == task)
            and (setting is None or c.setting == setting)
            and (group is None or c.group == group)
        ]

    def groups(self, task: str) -> list[str]:
        """The ``dataset · model`` groups of ``task`` ("" only, for a thesis task)."""
        return list(dict.fromkeys(c.group for c in self.cells if c.task == task))


def _setting_order(setting: str) -> tuple[int, str, int]:
    if setting == "clean":
        return (0, "", 0)
    digits = "".join(ch for ch in setting if ch.isdigit())
    prefix = setting.rstrip("0123456789")
    return (1, prefix, int(digits) if digits else 0)
