"""The AEES wrapper a run trains with: built from the run's configuration, and the header lines
that name its axes.

``adaptive`` / ``random`` wrap the optimizer in :class:`aees.AEES` (seed ``--seed``; noise bandit
``seed + 101``); the open-loop controls (docs/protocols.md §11) replay a precomputed plan of LR
arms (:mod:`aees.runner.open_loop`) with :meth:`aees.AEES.replay`. ``baseline`` builds none.
"""

from __future__ import annotations

from typing import Any

import torch

from aees import AEES
from aees.runner.config import RunConfig
from aees.runner.open_loop import OpenLoopPlan

__all__ = ["axes_lines", "build_aees"]


def build_aees(
    config: RunConfig,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    plan: OpenLoopPlan | None = None,
) -> AEES:
    """The AEES wrapper of ``config``; with an open-loop ``plan``, :meth:`AEES.replay` of its LR
    arms (a precomputed controller that ignores rewards; the noise axis fixed at 0.0)."""
    kwargs: dict[str, Any] = {
        "lr_candidates": config.lr_candidates,
        "noise_candidates": config.noise_candidates,
        "episode_length": config.episode_length,
        "control_mode": config.control_mode,
        "structured_control_mode": config.structured_control_mode,
        "context_mode": config.context_mode,
        "context_trend_window": config.context_trend_window,
        "context_trend_epsilon": config.context_trend_epsilon,
        "reward_instability_lambda": config.reward_instability_lambda,
        "reward_epsilon": config.reward_epsilon,
        "reward_clip_min": config.reward_clip_min,
        "reward_clip_max": config.reward_clip_max,
        "ema_alpha": config.ema_alpha,
        "seed": config.seed,
        "grad_scaler": scaler,
        "track_update_norm": config.track_update_norm,
        "nonfinite": config.nonfinite,
    }
    if plan is not None:
        kwargs["control_mode"] = "random"  # any bandit mode; replay swaps in the plan
        return AEES.replay(optimizer, {"selected_lr_indices": list(plan.indices)}, **kwargs)
    return AEES(optimizer, **kwargs)


def axes_lines(config: RunConfig) -> tuple[str, str]:
    """The thesis ``adaptive axes: ...`` / ``fixed axes: ...`` lines (docs/protocols.md §3)."""
    adaptive, fixed = [], []
    for name, values in (
        ("lr_multiplier", config.lr_candidates),
        ("noise_std", config.noise_candidates),
    ):
        if len(values) > 1:
            adaptive.append(f"{name}={[float(v) for v in values]!r}")
        else:
            fixed.append(f"{name}={float(values[0])!r}")
    return (
        "adaptive axes: " + (", ".join(adaptive) or "<none>"),
        "fixed axes: " + (", ".join(fixed) or "<none>"),
    )
