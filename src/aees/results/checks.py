"""Result *value* checks: can the numbers a result holds be trusted (standard library only).

The schema (:mod:`~aees.results.schema`) checks a result's keys and types; this module checks its
values: every number the reports use finite and in range, per-epoch lists with one entry per
epoch, the episode-log lists numbers, the candidate lists numbers, a divergence marker
well-formed. One implementation, used by reporting (a file that fails is listed and skipped,
docs/reporting.md) and by the sweep's result check (a file that fails is not a finished run).

* :func:`value_problems` -- the problems of one result (at most one: the first found), ``[]`` when
  its values can be reported;
* :func:`check_values` / :func:`divergence_marker` / :func:`check_method_values` -- the same
  checks, raising :class:`ValueProblem`, for callers that identify the run in between.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aees.results.schema import RunResult

__all__ = [
    "MAX_EPOCHS",
    "Divergence",
    "ValueProblem",
    "check_method_values",
    "check_values",
    "divergence_marker",
    "value_problems",
]

MAX_EPOCHS = 1_000_000
"""Largest ``total_epochs`` a result may claim (per-epoch lists are checked against it)."""

_SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.manual_seed accepts
_STEP_LIMIT = 10**15


class ValueProblem(Exception):
    """One value problem; ``str(problem)`` is one line without the path."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(name: str, value: float, *, nan_ok: bool = False) -> None:
    if not math.isfinite(value) and not (nan_ok and math.isnan(value)):
        raise ValueProblem(f"{name} is {value} (not finite)")


def _fraction(name: str, value: float, *, nan_ok: bool = False) -> None:
    """An accuracy: a fraction in [0, 1] (the schema's unit; tables print ×100)."""
    _finite(name, value, nan_ok=nan_ok)
    if not math.isnan(value) and not 0.0 <= value <= 1.0:
        raise ValueProblem(f"{name} is {value:g}, outside [0, 1] (accuracies are fractions)")


def _non_negative(name: str, value: float) -> None:
    _finite(name, value)
    if value < 0:
        raise ValueProblem(f"{name} is {value:g} (negative)")


def _int_in(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueProblem(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueProblem(f"{name} is {value}, outside [{low}, {high}]")


def _per_epoch(
    name: str, values: list[float] | None, epochs: int, *, required: bool, exact: bool
) -> None:
    """Per-epoch lists hold one entry per epoch (a diverged run: at most that many). An
    optional list may be absent (None or empty)."""
    n = len(values or [])
    if not required and n == 0:
        return
    if (exact and n != epochs) or n > epochs:
        raise ValueProblem(f"{name} has {n} entries for {epochs} epochs (total_epochs)")


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
        raise ValueProblem(f"{where} must be an object, got {type(block).__name__}")
    for key, value in block.items():
        name = f"{where}.{key}"
        if value is None:
            continue
        if key in ints:
            _int_in(name, value, 0, epochs)
        elif _number(value):
            (check if "accuracy" in str(key) else _finite)(name, float(value))
        else:
            raise ValueProblem(f"{name} must be a number or null, got {type(value).__name__}")


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
            raise ValueProblem(f"{name} must be a list, got {type(values).__name__}")
        for i, v in enumerate(values):
            if v is None and nulls:
                continue
            if kind == "step":
                _int_in(f"{name}[{i}]", v, 0, _STEP_LIMIT)
            elif not _number(v):
                raise ValueProblem(f"{name}[{i}] must be a number, got {type(v).__name__}")
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
        raise ValueProblem(f"config.{name} must be a list of numbers, got {type(value).__name__}")
    for i, item in enumerate(items):
        try:
            number = float(item) if isinstance(item, str) else item
        except ValueError:
            number = None
        if not _number(number):
            raise ValueProblem(f"config.{name}[{i}] must be a number, got {item!r:.40}")
        _finite(f"config.{name}[{i}]", float(number))


def _check_config(config: Mapping[str, Any]) -> None:
    for name in ("lr_candidates", "noise_candidates"):
        _check_candidates(name, config.get(name))
    rate = config.get("label_noise_rate")
    if rate is not None:
        try:
            value = float(rate)
        except (TypeError, ValueError):
            raise ValueProblem(f"config.label_noise_rate must be a number, got {rate!r}") from None
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueProblem(f"config.label_noise_rate is {value}, outside [0, 1]")


def check_values(r: RunResult, *, diverged: bool) -> None:
    """Raise :class:`ValueProblem` for the first value of ``r`` that cannot be reported (see
    :func:`value_problems`); ``diverged``: the run is marked as diverged."""
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
                    raise ValueProblem(
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
        raise ValueProblem(f"{where} must be an object with exactly {', '.join(_SHORT_RUN_KEYS)}")
    for key in _SHORT_RUN_KEYS:
        _int_in(f"{where}.{key}", block[key], 0 if key == "total_steps" else 1, _STEP_LIMIT)
    if block["steps_needed"] != block["warmup_episodes"] * block["episode_length"]:
        raise ValueProblem(f"{where}.steps_needed is not warmup_episodes x episode_length")
    if block["total_steps"] >= block["steps_needed"]:
        raise ValueProblem(f"{where}.total_steps is not below steps_needed")


_DIVERGENCE_KEYS = ("diverged", "diverged_at_step", "diverged_at_epoch")


def divergence_marker(raw: Mapping[str, Any], result: RunResult) -> Divergence | None:
    """The divergence marker, at the top level of the file (``raw``, the JSON as read) or in
    ``diagnostics``; None for a run not marked as diverged. Raises :class:`ValueProblem` for a
    malformed marker."""
    found: dict[str, Any] = {}
    for block in (result.diagnostics, raw):
        for key in _DIVERGENCE_KEYS:
            if block.get(key) is not None:
                found[key] = block[key]
    flag = found.get("diverged", False)
    if not isinstance(flag, bool):
        raise ValueProblem(f"diverged must be true or false, got {type(flag).__name__}")
    if not flag:
        return None
    step, epoch = found.get("diverged_at_step"), found.get("diverged_at_epoch")
    if step is not None:
        _int_in("diverged_at_step", step, 0, _STEP_LIMIT)
    if epoch is not None:
        _int_in("diverged_at_epoch", epoch, 0, MAX_EPOCHS)
    return Divergence(step=step, epoch=epoch)


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


def check_method_values(
    lr_candidates: Sequence[float],
    noise_candidates: Sequence[float],
    instability_lambda: float,
    episode_length: int | None,
) -> None:
    """The method's values as identified from its spec: candidates and the instability weight
    finite, the episode length >= 1 (raises :class:`ValueProblem`)."""
    for name, values in (("lr", lr_candidates), ("noise", noise_candidates)):
        for v in values:
            _finite(f"config.{name}_candidates", v)
    _finite("config.reward_instability_lambda", instability_lambda)
    if episode_length is not None and episode_length < 1:
        raise ValueProblem(f"config.episode_length is {episode_length} (must be >= 1)")


def value_problems(result: RunResult, raw: Mapping[str, Any] | None = None) -> list[str]:
    """Why the values of ``result`` cannot be reported: ``[]`` when they can, else one line
    (the first problem found, without the path).

    ``raw`` is the JSON object as read (the divergence marker may sit at its top level); by
    default the result's own fields. Checked: ``total_epochs`` in [1, :data:`MAX_EPOCHS`],
    steps and seed in range; accuracies (best, final, per epoch, label-noise diagnostics)
    fractions in [0, 1]; losses, times and FLOPs finite (times and FLOPs >= 0);
    ``val_accuracies`` and ``train_losses`` one entry per epoch, the other per-epoch lists
    absent or one per epoch; the episode-log lists the figures read, numbers; the config's
    candidate lists numbers and its label-noise rate in [0, 1]. A diverged run may hold NaN
    losses, accuracies and rewards and fewer epochs than ``total_epochs``, since it stopped
    early; a run trained with ``--nonfinite skip`` (``config.nonfinite``) may hold non-finite
    losses.
    """
    try:
        marker = divergence_marker(raw if raw is not None else result.to_dict(), result)
        check_values(result, diverged=marker is not None)
    except ValueProblem as problem:
        return [str(problem)]
    return []
