"""Run discovery and identification: result files -> :class:`Run` -> :class:`Cell`.

Reporting reads result JSON only, through :func:`aees.results.load_run_result` (the
one schema). A run is identified by what it wrote -- ``variant`` and ``config`` -- never by its
file name. Thesis-era files (no ``schema_version``) may lack the keys that pin the optimizer or
the method kind; only for those the thesis decision tree (docs/reporting.md §3) fills
the gaps, and the variant id is recomputed from the completed config.

Runs are grouped into :class:`Cell` objects: the runs of one variant on one task, label-noise
setting and epoch budget. Every table row and figure line is one cell.

Discovery trusts no file: it reads regular files only, at most :data:`MAX_RESULT_BYTES`, never
following a link to a device or blocking on a FIFO; and it checks *values*, not only keys
(:func:`value_problem`): every number the reports use finite and in range, per-epoch lists
with one entry per epoch. A file that fails is listed (one line, path and reason) and
skipped. A result marked ``diverged`` is listed as diverged and kept out of every statistic.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees.results import RunResult, RunResultError, method_spec, scrub_secrets, variant_id
from aees.results.io import (
    MAX_RESULT_BYTES,
    decode_result_json,
    display_path,
    read_result_bytes,
)

__all__ = [
    "CIFAR_LIKE_TASKS",
    "MAX_RESULT_BYTES",
    "NLP_TASKS",
    "PEER_OPTIMIZERS",
    "Cell",
    "Discovery",
    "Divergence",
    "ReportError",
    "Run",
    "RunInfo",
    "RunSet",
    "discover_runs",
    "has_extension",
    "identify",
    "load_run",
    "noise_setting",
    "optimizer_label",
    "read_result_bytes",
    "setting_label",
    "task_label",
    "value_problem",
]

CIFAR_LIKE_TASKS = ("cifar100", "digits")
"""Tasks reported with the CIFAR table and figure families (digits: the offline demo task)."""
NLP_TASKS = ("sst2", "agnews")
"""Tasks reported with the NLP families."""

_TASK_LABELS = {
    "cifar100": "CIFAR-100",
    "digits": "Digits",
    "sst2": "SST-2",
    "agnews": "AG News",
    "image": "Image",
    "text": "Text",
}
_TASK_ORDER = {name: i for i, name in enumerate((*CIFAR_LIKE_TASKS, *NLP_TASKS))}
PEER_OPTIMIZERS = {
    "adamwschedulefree": "AdamW schedule-free",
    "sgdschedulefree": "SGD schedule-free",
    "prodigy": "Prodigy",
    "dadaptadam": "D-Adapt Adam",
}
"""The schedule-free / LR-free peers (docs/reporting.md §5.11): normalised name -> label."""
_OPTIMIZER_LABELS = {"adamw": "AdamW", "sgd": "SGD+M", **PEER_OPTIMIZERS}
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
        return self.task in CIFAR_LIKE_TASKS

    @property
    def is_nlp(self) -> bool:
        return self.task in NLP_TASKS


@dataclass(frozen=True)
class Divergence:
    """A result marked as diverged: where training stopped (None when not recorded)."""

    step: int | None = None
    epoch: int | None = None

    def describe(self) -> str:
        """``diverged at step 150 (epoch 2)``."""
        step = "an unrecorded step" if self.step is None else f"step {self.step}"
        epoch = "" if self.epoch is None else f" (epoch {self.epoch})"
        return f"diverged at {step}{epoch}"


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
    generic = task not in _TASK_ORDER
    episode = spec.get("episode_length")
    return RunInfo(
        task=task,
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
        dataset=str(result.dataset_name or "").strip() if generic else "",
        model=str(result.model_name or "").strip() if generic else "",
    )


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------

MAX_EPOCHS = 1_000_000
"""Largest ``total_epochs`` a result may claim (per-epoch lists are checked against it)."""

_SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.manual_seed accepts
_STEP_LIMIT = 10**15


def _name_problem(path: Path) -> str | None:
    """Why a file name cannot be reported faithfully (every table, note and CSV names files)."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not UTF-8 text; rename it"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return "file name contains control characters (a newline?); rename it"
    return None


# ---- value checks ----------------------------------------------------------------------------


class _Bad(Exception):
    """One value problem (message without the path)."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(name: str, value: float, *, nan_ok: bool = False) -> None:
    if not math.isfinite(value) and not (nan_ok and math.isnan(value)):
        raise _Bad(f"{name} is {value} (not finite)")


def _fraction(name: str, value: float, *, nan_ok: bool = False) -> None:
    """An accuracy: a fraction in [0, 1] (the schema's unit; tables print ×100)."""
    _finite(name, value, nan_ok=nan_ok)
    if not math.isnan(value) and not 0.0 <= value <= 1.0:
        raise _Bad(f"{name} is {value:g}, outside [0, 1] (accuracies are fractions)")


def _non_negative(name: str, value: float) -> None:
    _finite(name, value)
    if value < 0:
        raise _Bad(f"{name} is {value:g} (negative)")


def _int_in(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise _Bad(f"{name} is {value}, outside [{low}, {high}]")


def _per_epoch(
    name: str, values: list[float] | None, epochs: int, *, required: bool, exact: bool
) -> None:
    """Per-epoch lists hold one entry per epoch (a diverged run: at most that many). An
    optional list may be absent (None or empty)."""
    n = len(values or [])
    if not required and n == 0:
        return
    if (exact and n != epochs) or n > epochs:
        raise _Bad(f"{name} has {n} entries for {epochs} epochs (total_epochs)")


def _check_list(name: str, values: list[float] | None, check: Any, **kw: Any) -> None:
    for i, v in enumerate(values or []):
        check(f"{name}[{i}]", v, **kw)


def _check_mapping_numbers(
    where: str, block: Any, check: Any, *, ints: Sequence[str] = (), epochs: int
) -> None:
    """A diagnostics block: an object whose values are numbers (``check``-ed; keys in
    ``ints`` are epoch numbers) or null."""
    if block is None:
        return
    if not isinstance(block, Mapping):
        raise _Bad(f"{where} must be an object, got {type(block).__name__}")
    for key, value in block.items():
        name = f"{where}.{key}"
        if value is None:
            continue
        if key in ints:
            _int_in(name, value, 0, epochs)
        elif _number(value):
            (check if "accuracy" in str(key) else _finite)(name, float(value))
        else:
            raise _Bad(f"{name} must be a number or null, got {type(value).__name__}")


#: episode_logs lists the reports read: key -> (item check, null items allowed)
_EPISODE_LISTS = {
    "selected_lr_values": ("finite", False),
    "selected_noise_values": ("finite", False),
    "episode_rewards": ("finite", True),
    "mean_update_norms": ("finite", True),
    "episode_start_steps": ("step", False),
    "episode_end_steps": ("step", False),
}


def _check_episode_logs(logs: Mapping[str, Any] | None, *, diverged: bool) -> None:
    for key, (kind, nulls) in _EPISODE_LISTS.items():
        values = (logs or {}).get(key)
        if values is None:
            continue
        name = f"episode_logs.{key}"
        if not isinstance(values, list):
            raise _Bad(f"{name} must be a list, got {type(values).__name__}")
        for i, v in enumerate(values):
            if v is None and nulls:
                continue
            if kind == "step":
                _int_in(f"{name}[{i}]", v, 0, _STEP_LIMIT)
            elif not _number(v):
                raise _Bad(f"{name}[{i}] must be a number, got {type(v).__name__}")
            else:
                _finite(f"{name}[{i}]", float(v), nan_ok=diverged)


def _check_candidates(name: str, value: Any) -> None:
    """A candidate list: numbers or a comma-separated string of numbers, all finite; empty or
    absent means the runner default. (Anything else would silently turn an AEES run into a
    fixed-multiplier one when the method is identified.)"""
    if value is None or value == "" or value == []:
        return
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise _Bad(f"config.{name} must be a list of numbers, got {type(value).__name__}")
    for i, item in enumerate(items):
        try:
            number = float(item) if isinstance(item, str) else item
        except ValueError:
            number = None
        if not _number(number):
            raise _Bad(f"config.{name}[{i}] must be a number, got {item!r:.40}")
        _finite(f"config.{name}[{i}]", float(number))


def _check_config(config: Mapping[str, Any]) -> None:
    for name in ("lr_candidates", "noise_candidates"):
        _check_candidates(name, config.get(name))
    rate = config.get("label_noise_rate")
    if rate is not None:
        try:
            value = float(rate)
        except (TypeError, ValueError):
            raise _Bad(f"config.label_noise_rate must be a number, got {rate!r}") from None
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise _Bad(f"config.label_noise_rate is {value}, outside [0, 1]")


def _check_info(info: RunInfo) -> None:
    for name, values in (("lr", info.lr_candidates), ("noise", info.noise_candidates)):
        for v in values:
            _finite(f"config.{name}_candidates", v)
    _finite("config.reward_instability_lambda", info.instability_lambda)
    if info.episode_length is not None and info.episode_length < 1:
        raise _Bad(f"config.episode_length is {info.episode_length} (must be >= 1)")


def value_problem(result: RunResult, *, diverged: bool = False) -> str | None:
    """Why the values of ``result`` cannot be reported (None when they can).

    Checked: ``total_epochs`` in [1, :data:`MAX_EPOCHS`], steps and seed in range; accuracies
    (best, final, per epoch, label-noise diagnostics) fractions in [0, 1]; losses, times and
    FLOPs finite (times and FLOPs >= 0); ``val_accuracies`` and ``train_losses`` one entry per
    epoch, the other per-epoch lists absent or one per epoch; the episode-log lists the figures
    read, numbers. A diverged run (``diverged``) may hold NaN losses, accuracies and rewards
    and fewer epochs than ``total_epochs``, since it stopped early; a run trained with
    ``--nonfinite skip`` (``config.nonfinite``) may hold non-finite losses.
    """
    try:
        _check_result(result, diverged=diverged)
    except _Bad as bad:
        return str(bad)
    return None


def _check_result(r: RunResult, *, diverged: bool) -> None:
    epochs = r.total_epochs
    _int_in("total_epochs", epochs, 1, MAX_EPOCHS)
    _int_in("total_steps", r.total_steps, 0, _STEP_LIMIT)
    _int_in("seed", r.seed, *_SEED_RANGE)
    for name in ("best_val_accuracy", "final_val_accuracy"):
        _fraction(name, getattr(r, name), nan_ok=diverged)
    # Losses may be non-finite only where the run said so: marked diverged, or trained with
    # --nonfinite skip (it went on past non-finite losses; its accuracies are still checked).
    if not diverged and r.config.get("nonfinite") != "skip":
        for name, values in (("final_train_loss", [r.final_train_loss]), ("train_losses", None)):
            for i, v in enumerate(values if values is not None else r.train_losses):
                label = name if values is not None else f"{name}[{i}]"
                if not math.isfinite(v):
                    raise _Bad(
                        f"{label} is {v} (not finite) in a run neither marked diverged nor "
                        "trained with --nonfinite skip"
                    )
    _non_negative("wall_clock_seconds", r.wall_clock_seconds)
    for name in ("estimated_flops", "accuracy_per_tflop"):
        value = getattr(r, name)
        if value is not None:
            _non_negative(name, value)
    exact = not diverged
    _per_epoch("val_accuracies", r.val_accuracies, epochs, required=exact, exact=exact)
    _per_epoch("train_losses", r.train_losses, epochs, required=exact, exact=exact)
    for name in ("train_accuracies", "epoch_wall_clock_seconds", "epoch_tflops"):
        _per_epoch(name, getattr(r, name), epochs, required=False, exact=exact)
    _check_list("val_accuracies", r.val_accuracies, _fraction, nan_ok=diverged)
    _check_list("train_accuracies", r.train_accuracies, _fraction, nan_ok=diverged)
    _check_list("epoch_wall_clock_seconds", r.epoch_wall_clock_seconds, _non_negative)
    _check_list("epoch_tflops", r.epoch_tflops, _non_negative)
    diag = r.diagnostics
    best_epoch = diag.get("best_val_epoch")
    if best_epoch is not None:
        _int_in("diagnostics.best_val_epoch", best_epoch, 0, epochs)
    for block in ("final_subset_accuracies", "best_val_subset_accuracies"):
        _check_mapping_numbers(
            f"diagnostics.{block}", diag.get(block), _fraction, ints=("epoch",), epochs=epochs
        )
    _check_short_run(diag.get("aees_short_run"))
    _check_episode_logs(r.episode_logs, diverged=diverged)
    _check_config(r.config)


#: diagnostics.aees_short_run (docs/results-schema.md §6): its keys, each a count >= 1
_SHORT_RUN_KEYS = ("total_steps", "episode_length", "warmup_episodes", "steps_needed")


def _check_short_run(block: Any) -> None:
    """``diagnostics.aees_short_run``, a run too short for AEES to act: absent, or exactly its
    four counts, with total_steps < steps_needed = warmup_episodes x episode_length."""
    if block is None:
        return
    where = "diagnostics.aees_short_run"
    if not isinstance(block, Mapping) or sorted(block) != sorted(_SHORT_RUN_KEYS):
        raise _Bad(f"{where} must be an object with exactly {', '.join(_SHORT_RUN_KEYS)}")
    for key in _SHORT_RUN_KEYS:
        _int_in(f"{where}.{key}", block[key], 0 if key == "total_steps" else 1, _STEP_LIMIT)
    if block["steps_needed"] != block["warmup_episodes"] * block["episode_length"]:
        raise _Bad(f"{where}.steps_needed is not warmup_episodes x episode_length")
    if block["total_steps"] >= block["steps_needed"]:
        raise _Bad(f"{where}.total_steps is not below steps_needed")


_DIVERGENCE_KEYS = ("diverged", "diverged_at_step", "diverged_at_epoch")


def _divergence(raw: Mapping[str, Any], result: RunResult) -> Divergence | None:
    """The divergence marker, at the top level of the file or in ``diagnostics``."""
    found: dict[str, Any] = {}
    for block in (result.diagnostics, raw):
        for key in _DIVERGENCE_KEYS:
            if block.get(key) is not None:
                found[key] = block[key]
    flag = found.get("diverged", False)
    if not isinstance(flag, bool):
        raise _Bad(f"diverged must be true or false, got {type(flag).__name__}")
    if not flag:
        return None
    step, epoch = found.get("diverged_at_step"), found.get("diverged_at_epoch")
    if step is not None:
        _int_in("diverged_at_step", step, 0, _STEP_LIMIT)
    if epoch is not None:
        _int_in("diverged_at_epoch", epoch, 0, MAX_EPOCHS)
    return Divergence(step=step, epoch=epoch)


#: What a result with odd values inside its free-form blocks (config, logs) can raise while it
#: is identified; such a file is listed with the error, never allowed to abort discovery.
_INTERPRET_ERRORS = (
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
)


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read, parse, validate and identify one result file (see :func:`discover_runs`).

    Raises:
        RunResultError: one line ``"<path>: <problem>"`` for a file that is not a regular
            file, too large, unreadable, not a result, or whose values fail :func:`value_problem`.
    """
    source = Path(path)
    shown = display_path(source)
    raw = decode_result_json(read_result_bytes(source), shown)
    try:
        result = RunResult.from_dict(scrub_secrets(raw), source=shown)
        divergence = _divergence(raw, result)
        _check_result(result, diverged=divergence is not None)
        info = identify(result, source)
        _check_info(info)
    except _Bad as bad:
        raise RunResultError(shown, str(bad)) from None
    except RunResultError:
        raise
    except _INTERPRET_ERRORS as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise RunResultError(shown, f"cannot interpret its config or logs ({detail})") from exc
    return Run(path=source, result=result, info=info, divergence=divergence)


@dataclass
class Discovery:
    """What :func:`discover_runs` found: the runs, the unreadable files (one line each), the
    runs marked as diverged (listed, not in ``runs``) and the files skipped for their
    extension."""

    root: Path
    runs: list[Run]
    problems: list[str] = field(default_factory=list)
    skipped_files: list[Path] = field(default_factory=list)
    diverged: list[Run] = field(default_factory=list)

    @property
    def skipped_count(self) -> int:
        return len(self.skipped_files)

    def diverged_lines(self) -> list[str]:
        """One line per diverged run (path, where it diverged, what run it was)."""
        return [run.diverged_line() for run in self.diverged]

    def skipped_summary(self) -> str | None:
        """``"skipped 3 files that are not .json or extensionless (.gz: 2, .png: 1)"``."""
        if not self.skipped_files:
            return None
        counts = Counter(p.suffix.lower() for p in self.skipped_files)  # all have a suffix
        detail = ", ".join(f"{display_path(ext)}: {n}" for ext, n in sorted(counts.items()))
        return (
            f"{display_path(self.root)}: skipped {len(self.skipped_files)} files that are not "
            f".json or extensionless ({detail})"
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


def _candidate_files(root: Path, problems: list[str]) -> Iterable[Path]:
    """Files under ``root`` (links to directories are not followed); a directory that cannot
    be listed is a problem line."""

    def unlisted(err: OSError) -> None:
        where = display_path(err.filename or root)
        problems.append(f"{where}: cannot list directory ({err.strerror or err}); skipped")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlisted):
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
    A candidate that cannot be trusted (:func:`load_run`: a special file, too large, corrupt,
    truncated, foreign JSON, values out of range) is recorded as a one-line problem
    ``"<path>: <problem>"`` and skipped; with ``strict`` it raises. A run marked as diverged
    goes to ``diverged``, not ``runs``: it is listed, never averaged.

    Raises:
        ReportError: ``root`` is not a directory, or (``strict``) a candidate is unreadable.
    """
    base = Path(root)
    if not base.exists():
        raise ReportError(f"{display_path(base)}: no such directory")
    if not base.is_dir():
        raise ReportError(f"{display_path(base)}: not a directory")
    found = Discovery(root=base, runs=[])
    for path in _candidate_files(base, found.problems):
        if has_extension(path) and path.suffix.lower() != ".json":
            found.skipped_files.append(path)
            continue
        try:
            problem = _name_problem(path)
            if problem is not None:
                raise RunResultError(display_path(path), problem)
            run = load_run(path)
        except RunResultError as err:
            if strict:
                raise ReportError(str(err)) from err
            found.problems.append(str(err))
            continue
        (found.runs if run.divergence is None else found.diverged).append(run)
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
                    _TASK_ORDER.get(c.task, 99),
                    c.task,
                    c.group,
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
