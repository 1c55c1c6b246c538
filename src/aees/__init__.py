"""AEES: Adaptive Episodic Exploration Scheduling for any PyTorch optimizer.

``AEES`` wraps an optimizer with one bandit per axis (LR multiplier, gradient-noise std) that
picks an arm per fixed-length episode and is rewarded by the episode's drop in EMA training loss.
Decision-identical to pulseopt 0.3.0; no per-step host sync; exact ``state_dict`` resume;
GradScaler- and DDP-aware. ``AEESOptimizer`` is AEES as a real ``torch.optim.Optimizer``, for
Lightning, the Hugging Face ``Trainer``, Accelerate and any code that expects one. The library
imports torch and the standard library only (framework integrations load lazily).
"""

from typing import Any

from aees.controllers import (
    TREND_CONTEXT_BUCKETS,
    BucketedContextualController,
    Controller,
    DiscountedUCBController,
    PrecomputedController,
    RandomController,
    ucb_scores,
)
from aees.episode import StructuredEpisodeManager
from aees.noise import CounterNoise, PulseoptNoise
from aees.reward import NormalizedLossImprovementReward, episode_reward
from aees.types import (
    CandidateConfig,
    EpisodeRecord,
    EpisodeSummary,
    NonFiniteLossError,
    RewardDetails,
    StructuredSelection,
    candidate_name,
)
from aees.wrapper import AEES

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # AEESOptimizer loads on first use: its eager-under-compile step decorator imports
    # torch._dynamo (~3 s), which `import aees` -- every CLI start -- need not pay.
    if name == "AEESOptimizer":
        from aees.optimizer import AEESOptimizer

        return AEESOptimizer
    raise AttributeError(f"module 'aees' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "AEESOptimizer"})


__all__ = [
    "AEES",
    "TREND_CONTEXT_BUCKETS",
    "AEESOptimizer",
    "BucketedContextualController",
    "CandidateConfig",
    "Controller",
    "CounterNoise",
    "DiscountedUCBController",
    "EpisodeRecord",
    "EpisodeSummary",
    "NonFiniteLossError",
    "NormalizedLossImprovementReward",
    "PrecomputedController",
    "PulseoptNoise",
    "RandomController",
    "RewardDetails",
    "StructuredEpisodeManager",
    "StructuredSelection",
    "candidate_name",
    "episode_reward",
    "ucb_scores",
]
