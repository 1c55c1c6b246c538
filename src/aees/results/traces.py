"""AEES arm traces read from result files: what the open-loop controls replay and what the
attribution report checks (a trace is complete for its run geometry).

Standard library only, so reporting can check traces without importing the runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aees.results.schema import RunResult

__all__ = [
    "AEES_METHOD",
    "LR_MULTIPLIERS",
    "TOLERANCE",
    "arm_index",
    "close_to",
    "episode_count",
    "trace_problem",
]

#: The LR multipliers of the AEES-LR source runs and their open-loop controls.
LR_MULTIPLIERS = (0.5, 1.0, 2.0)
#: ``method_name`` of an AEES run.
AEES_METHOD = "AdaptiveScheduler"
#: Relative tolerance of :func:`close_to`.
TOLERANCE = 1e-12


def episode_count(steps_per_epoch: int, epochs: int, episode_length: int) -> int:
    """⌈steps_per_epoch · epochs / episode_length⌉ (391 for the production CIFAR setup)."""
    if steps_per_epoch <= 0 or epochs <= 0 or episode_length <= 0:
        raise ValueError("steps_per_epoch, epochs and episode_length must be > 0")
    return -(-(steps_per_epoch * epochs) // episode_length)


def close_to(a: Any, b: float) -> bool:
    """``a`` equals ``b`` within a relative :data:`TOLERANCE` (False if ``a`` is no number)."""
    try:
        return abs(float(a) - float(b)) <= TOLERANCE * max(1.0, abs(float(b)))
    except (TypeError, ValueError):
        return False


def arm_index(value: Any, arms: Sequence[float]) -> int:
    """The index of the arm ``value`` is (equal within :func:`close_to`).

    A logged arm value is one of the run's configured arms (AEES logs the candidate it
    applied), so a value that is none of them is a bug -- in the result or in the caller's arm
    list -- and raises ``ValueError``; it is never mapped to the nearest arm.
    """
    for i, arm in enumerate(arms):
        if close_to(value, arm):
            return i
    raise ValueError(f"value {value!r} is not a candidate {list(arms)}")


def trace_problem(result: RunResult, steps_per_epoch: int) -> str | None:
    """Why a matching AEES result is not a complete trace for the run geometry (None if it is).

    Checked: method name, ``seed`` = ``config.seed``, ``total_epochs`` = epochs, one validation
    accuracy per epoch, ``steps_per_epoch`` and ``total_steps``; the five episode lists have
    ⌈total/L⌉ entries, values are candidates and match their indices, and episode boundaries
    are contiguous (starts i·L, ends min(start + L − 1, total − 1)).
    """
    c = result.config
    epochs, length = int(c["epochs"]), int(c["episode_length"])
    cands = [float(v) for v in c["lr_candidates"]]
    total = steps_per_epoch * epochs
    if result.method_name != AEES_METHOD:
        return f"method_name is {result.method_name!r}"
    if c.get("seed", result.seed) != result.seed:
        return f"config.seed {c.get('seed')!r} differs from seed {result.seed}"
    if result.total_epochs != epochs or len(result.val_accuracies) != epochs:
        return f"{len(result.val_accuracies)} of {epochs} epochs (unfinished?)"
    if c.get("steps_per_epoch", steps_per_epoch) != steps_per_epoch:
        return f"steps_per_epoch {c.get('steps_per_epoch')} != {steps_per_epoch}"
    if result.total_steps != total:
        return f"total_steps {result.total_steps} != {total}"
    logs = result.episode_logs or {}
    n = episode_count(steps_per_epoch, epochs, length)
    keys = (
        "selected_lr_values",
        "selected_lr_indices",
        "episode_start_steps",
        "episode_end_steps",
        "episode_rewards",
    )
    for key in keys:
        value = logs.get(key)
        if not isinstance(value, list) or len(value) != n:
            got = len(value) if isinstance(value, list) else "no"
            return f"episode_logs.{key} has {got} entries, expected {n}"
    for i, (value, index) in enumerate(
        zip(logs["selected_lr_values"], logs["selected_lr_indices"], strict=True)
    ):
        if (
            not isinstance(index, int)
            or not 0 <= index < len(cands)
            or not close_to(value, cands[index])
        ):
            return f"episode {i}: LR value {value!r} does not match index {index!r}"
    for i, (start, end) in enumerate(
        zip(logs["episode_start_steps"], logs["episode_end_steps"], strict=True)
    ):
        if start != i * length or end != min(start + length - 1, total - 1):
            return f"episode {i} spans steps {start}-{end}, not contiguous"
    return None
