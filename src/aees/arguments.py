"""The arguments of :class:`aees.AEES`, checked before anything is built.

Every message names the argument and echoes the bad value (a ``TypeError`` for a wrong type, a
``ValueError`` for a value out of range); the first bad argument in the constructor's order is
the one named.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from aees.checks import check_candidates, check_choice, check_int
from aees.types import (
    CONTEXT_MODES,
    CONTROL_MODES,
    NOISE_SOURCES,
    NONFINITE_POLICIES,
    STRUCTURED_CONTROL_MODES,
    EpisodeHook,
)


def check_arguments(
    optimizer: Any,
    *,
    lr_candidates: Any,
    noise_candidates: Any,
    episode_length: Any,
    lr_scheduler: Any,
    control_mode: Any,
    structured_control_mode: Any,
    context_mode: Any,
    seed: Any,
    track_update_norm: Any,
    noise_source: Any,
    grad_scaler: Any,
    nonfinite: Any,
) -> tuple[list[float], list[float]]:
    """:class:`aees.AEES`'s arguments, checked in this order (the first bad one is named); returns
    the LR and noise candidates as lists of floats. The reward's numbers are checked by
    :class:`~aees.reward.NormalizedLossImprovementReward`, the controllers by
    :func:`~aees.controller_setup.setup_controllers`."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}."
        )
    for i, group in enumerate(optimizer.param_groups):
        if "lr" not in group:
            raise TypeError(f"optimizer param group {i} has no 'lr' entry to scale.")
    check_choice("control_mode", control_mode, CONTROL_MODES)
    check_choice("context_mode", context_mode, CONTEXT_MODES)
    check_choice("structured_control_mode", structured_control_mode, STRUCTURED_CONTROL_MODES)
    lr_values = check_candidates("lr_candidates", lr_candidates, allow_zero=False)
    noise_values = check_candidates("noise_candidates", noise_candidates, allow_zero=True)
    check_int("episode_length", episode_length, minimum=1)
    if lr_scheduler is not None and not callable(getattr(lr_scheduler, "step", None)):
        raise TypeError(f"lr_scheduler must have a step() method, got {lr_scheduler!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None, got {seed!r}.")
    if not isinstance(track_update_norm, bool):
        raise TypeError(f"track_update_norm must be a bool, got {track_update_norm!r}.")
    check_choice("noise_source", noise_source, NOISE_SOURCES)
    check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
    if grad_scaler is not None and not all(
        callable(getattr(grad_scaler, m, None)) for m in ("unscale_", "step", "update")
    ):
        raise TypeError(f"grad_scaler must be a torch.amp.GradScaler, got {grad_scaler!r}.")
    return lr_values, noise_values


def check_hooks(on_episode_end: Any) -> list[EpisodeHook]:
    """``on_episode_end`` as a list of callables (``None``: none)."""
    hooks = [] if on_episode_end is None else on_episode_end
    hooks = [hooks] if callable(hooks) else list(hooks)
    for hook in hooks:
        if not callable(hook):
            raise TypeError(
                f"on_episode_end must be callable (or a list of callables), got {hook!r}."
            )
    return hooks
