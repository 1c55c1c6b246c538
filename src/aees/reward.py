"""The episode reward: log improvement of an episode-local EMA of the training loss.

For an episode with raw losses L_1 … L_n (the steps that count), EMA weight α and ε > 0::

    E_1 = L_1,   E_k = α L_k + (1 − α) E_{k−1}
    base   = ln(L_1 + ε) − ln(E_n + ε)
    μ      = (1/n) Σ L_k,   var = (1/n) Σ (L_k − μ)²
    instab = var / (μ² + ε),          pen = λ · instab
    r      = clip(base − pen, r_min, r_max)

A one-step episode earns exactly 0. The arithmetic (summation order included) matches
pulseopt 0.3.0, so rewards agree to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from aees.checks import check_float
from aees.state_checks import finite_number, state_float, state_mismatch
from aees.types import RewardDetails

#: the per-episode log keys that hold the reward's parts (see :func:`check_logged_reward`)
REWARD_LOG_KEYS: tuple[str, ...] = (
    "episode_rewards",
    "reward_base",
    "reward_instability",
    "reward_penalty",
    "reward_final_unclipped",
    "reward_final_clipped",
    "episode_ema_loss_starts",
    "episode_ema_loss_ends",
)


def episode_ema(step_losses: Sequence[float], alpha: float) -> tuple[float, float]:
    """First and last value of the episode-local EMA (E_1 = L_1)."""
    if not step_losses:
        raise ValueError("step_losses must contain at least one value.")
    ema = float(step_losses[0])
    first = ema
    for loss in step_losses[1:]:
        ema = alpha * float(loss) + (1.0 - alpha) * ema
    return first, ema


def episode_reward(
    step_losses: Sequence[float],
    *,
    ema_alpha: float = 0.1,
    epsilon: float = 1e-8,
    instability_lambda: float = 0.0,
    clip_min: float = -1.0,
    clip_max: float = 1.0,
) -> RewardDetails:
    """The reward of one episode from its raw step losses (formula in the module docstring)."""
    if not step_losses:
        raise ValueError("step_losses must contain at least one value.")
    for loss in step_losses:
        if not math.isfinite(loss):
            raise ValueError(f"step_losses must contain only finite values, got {loss!r}.")
    ema_start, ema_end = episode_ema(step_losses, ema_alpha)
    if ema_start + epsilon <= 0.0 or ema_end + epsilon <= 0.0:
        raise ValueError(
            "the log reward needs losses > -reward_epsilon, got "
            f"EMA start {ema_start!r} and end {ema_end!r}."
        )
    base = math.log(ema_start + epsilon) - math.log(ema_end + epsilon)
    n = len(step_losses)
    mean = sum(step_losses) / n
    variance = sum((loss - mean) ** 2 for loss in step_losses) / n
    instability = variance / (mean * mean + epsilon)
    penalty = instability_lambda * instability
    unclipped = base - penalty
    return RewardDetails(
        reward_base=base,
        reward_instability=instability,
        reward_penalty=penalty,
        reward_final_unclipped=unclipped,
        reward_final_clipped=min(max(unclipped, clip_min), clip_max),
        ema_loss_start=ema_start,
        ema_loss_end=ema_end,
    )


class NormalizedLossImprovementReward:
    """The reward with its hyper-parameters bound and validated (pulseopt's class name)."""

    def __init__(
        self,
        *,
        reward_instability_lambda: float = 0.0,
        reward_epsilon: float = 1e-8,
        reward_clip_min: float = -1.0,
        reward_clip_max: float = 1.0,
        ema_alpha: float = 0.1,
    ) -> None:
        self.instability_lambda = check_float(
            "reward_instability_lambda", reward_instability_lambda, minimum=0.0
        )
        self.epsilon = check_float(
            "reward_epsilon", reward_epsilon, minimum=0.0, strict_minimum=True
        )
        self.clip_min = check_float("reward_clip_min", reward_clip_min)
        self.clip_max = check_float("reward_clip_max", reward_clip_max)
        if self.clip_min > self.clip_max:
            raise ValueError(
                f"reward_clip_min must be <= reward_clip_max, got {reward_clip_min!r} > "
                f"{reward_clip_max!r}."
            )
        self.ema_alpha = check_float("ema_alpha", ema_alpha, minimum=0.0, strict_minimum=True)
        if self.ema_alpha > 1.0:
            raise ValueError(f"ema_alpha must be in (0, 1], got {ema_alpha!r}.")

    def __call__(self, step_losses: Sequence[float]) -> RewardDetails:
        return episode_reward(
            step_losses,
            ema_alpha=self.ema_alpha,
            epsilon=self.epsilon,
            instability_lambda=self.instability_lambda,
            clip_min=self.clip_min,
            clip_max=self.clip_max,
        )


def check_logged_reward(
    values: dict[str, Any], start_loss: float | None, where: Callable[[str], str]
) -> None:
    """One logged episode's reward (``values``: :data:`REWARD_LOG_KEYS` → that episode's entry,
    as a saved state holds them), checked before a state is loaded (docs/algorithm.md §12).

    Every part is ``None`` together (no step counted) or a finite number, with the identities
    the formula gives whatever its hyper-parameters: r = the clipped reward, unclipped =
    base − pen, instab ≥ 0, pen ≥ 0, E_1 = L_1 (``start_loss``). ``where(key)`` names an entry.
    """
    if values["episode_rewards"] is None:
        for key, value in values.items():
            if value is not None:
                raise state_mismatch(
                    where(key), f"is {value!r}, but the episode's reward is None (no step counted)"
                )
        return
    for key, value in values.items():
        if not finite_number(value):
            state_float(where(key), value)  # raises, naming it
    v = values
    for key in ("reward_instability", "reward_penalty"):
        if v[key] < 0:
            state_float(where(key), v[key], minimum=0.0)
    if v["episode_rewards"] != v["reward_final_clipped"]:
        raise state_mismatch(where("episode_rewards"), "differs from reward_final_clipped")
    if v["reward_final_unclipped"] != v["reward_base"] - v["reward_penalty"]:
        raise state_mismatch(
            where("reward_final_unclipped"), "differs from reward_base - reward_penalty"
        )
    if start_loss is None or v["episode_ema_loss_starts"] != start_loss:
        raise state_mismatch(
            where("episode_ema_loss_starts"),
            f"differs from the episode's first loss {start_loss!r}",
        )
