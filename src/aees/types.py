"""Small immutable records shared by the controllers, the episode manager and the facade.

Also the library's choices for its string arguments and the arms' names. The argument checks are
in :mod:`aees.checks`, the state-dict checks in :mod:`aees.state_checks`; this module imports
the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

#: The library's choices for :class:`aees.AEES`'s string arguments; the one definition (the
#: runner's configuration imports them).
CONTROL_MODES: tuple[str, ...] = ("adaptive", "random")
STRUCTURED_CONTROL_MODES: tuple[str, ...] = ("independent", "conditional")
CONTEXT_MODES: tuple[str, ...] = ("none", "trend")
NONFINITE_POLICIES: tuple[str, ...] = ("raise", "skip")
NOISE_SOURCES: tuple[str, ...] = ("counter", "pulseopt")


class NonFiniteLossError(ValueError):
    """A non-finite training loss under ``nonfinite="raise"``; ``step`` is the first bad step.

    A ``ValueError`` (pulseopt raises ``ValueError`` there), so existing handlers keep working;
    the attributes let a training loop report the divergence without parsing the message.
    """

    def __init__(self, message: str, *, step: int, value: float) -> None:
        super().__init__(message)
        self.step = step
        self.value = value


@dataclass(frozen=True)
class CandidateConfig:
    """One arm held for an episode: an LR multiplier and an absolute gradient-noise std."""

    name: str
    lr_multiplier: float = 1.0
    noise_std: float = 0.0


@dataclass(frozen=True)
class StructuredSelection:
    """The per-axis choice made when an episode opens."""

    lr_index: int
    noise_index: int
    lr_value: float
    noise_value: float
    combined_name: str
    context_bucket: str | None = None


@dataclass(frozen=True)
class RewardDetails:
    """The decomposition of one episode's reward (see :mod:`aees.reward`)."""

    reward_base: float
    reward_instability: float
    reward_penalty: float
    reward_final_unclipped: float
    reward_final_clipped: float
    ema_loss_start: float
    ema_loss_end: float


@dataclass(frozen=True)
class EpisodeSummary:
    """Everything known about an episode when it closes."""

    episode_index: int
    selection: StructuredSelection
    start_step: int
    end_step: int
    steps: int
    step_losses: tuple[float, ...]
    loss_start: float | None
    loss_end: float | None
    ema_loss_start: float | None
    ema_loss_end: float | None
    mean_update_norm: float | None
    reward: RewardDetails | None
    scaler_skipped_steps: int = 0
    nonfinite_steps: int = 0


@dataclass(frozen=True)
class EpisodeRecord:
    """One closed episode, as handed to episode-end hooks: host numbers only, safe to log.

    ``steps`` counts every optimizer step of the episode; ``mean_loss`` and ``reward`` use only the
    steps that counted (not skipped by a ``GradScaler``, finite) and are ``None`` when none did.
    Under ``torch.distributed`` the losses are already averaged across ranks, so every rank
    receives the same record.
    """

    episode_index: int
    start_step: int
    steps: int
    lr_multiplier: float
    noise_std: float
    lr_index: int
    noise_index: int
    arm: str
    reward: float | None
    mean_loss: float | None
    loss_start: float | None
    loss_end: float | None
    ema_loss_end: float | None
    scaler_skipped_steps: int
    nonfinite_steps: int
    mean_update_norm: float | None = None
    context_bucket: str | None = None

    @property
    def end_step(self) -> int:
        """The index of the episode's last step."""
        return self.start_step + self.steps - 1

    @classmethod
    def from_summary(cls, s: EpisodeSummary) -> EpisodeRecord:
        sel = s.selection
        losses = s.step_losses
        return cls(
            episode_index=s.episode_index,
            start_step=s.start_step,
            steps=s.steps,
            lr_multiplier=sel.lr_value,
            noise_std=sel.noise_value,
            lr_index=sel.lr_index,
            noise_index=sel.noise_index,
            arm=sel.combined_name,
            reward=s.reward.reward_final_clipped if s.reward is not None else None,
            mean_loss=math.fsum(losses) / len(losses) if losses else None,
            loss_start=s.loss_start,
            loss_end=s.loss_end,
            ema_loss_end=s.ema_loss_end,
            scaler_skipped_steps=s.scaler_skipped_steps,
            nonfinite_steps=s.nonfinite_steps,
            mean_update_norm=s.mean_update_norm,
            context_bucket=sel.context_bucket,
        )

    def metrics(self, prefix: str = "aees/") -> dict[str, float]:
        """The numeric fields as ``{prefix + name: float}`` for a metrics logger; ``None`` dropped.

        Loggers (TensorBoard, MLflow, CSV, W&B) take flat float dicts; the arm's name is a string
        and is therefore not included (``lr_index`` / ``noise_index`` identify it).
        """
        values: dict[str, float | int | None] = {
            "episode": self.episode_index,
            "episode_start_step": self.start_step,
            "episode_steps": self.steps,
            "lr_multiplier": self.lr_multiplier,
            "noise_std": self.noise_std,
            "lr_index": self.lr_index,
            "noise_index": self.noise_index,
            "reward": self.reward,
            "mean_loss": self.mean_loss,
            "ema_loss": self.ema_loss_end,
            "scaler_skipped_steps": self.scaler_skipped_steps,
            "nonfinite_steps": self.nonfinite_steps,
            "mean_update_norm": self.mean_update_norm,
        }
        return {prefix + k: float(v) for k, v in values.items() if v is not None}


#: An episode-end hook: called with each closed episode's record (see
#: :meth:`aees.AEES.register_episode_end_hook`).
EpisodeHook = Callable[[EpisodeRecord], None]


def candidate_token(value: float) -> str:
    """pulseopt's name token: ``f"{v:.12g}"`` with ``-``→``m`` and ``.``→``p`` (0.5 → ``0p5``)."""
    return f"{float(value):.12g}".replace("-", "m").replace(".", "p")


def candidate_name(lr_multiplier: float, noise_std: float) -> str:
    """The combined arm name, e.g. ``lr0p5_n0p005``."""
    return f"lr{candidate_token(lr_multiplier)}_n{candidate_token(noise_std)}"
