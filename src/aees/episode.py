"""The episode lifecycle: select one arm per axis, collect the episode's losses, credit the reward.

An episode opens lazily at the first ``open_episode(global_step)`` after the previous one closed;
the LR controller picks its arm first, then the noise controller (the one belonging to that LR
arm in ``"conditional"`` mode). The episode closes when :class:`aees.AEES` hands over all its
step losses at once (``close_episode``), and both controllers receive the same scalar reward.

The manager works on host floats only; it never touches tensors. Its state dict is validated by
:mod:`aees.episode_state` before anything is assigned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from aees.checks import check_candidates, check_choice, check_float, check_int
from aees.controllers import TREND_CONTEXT_BUCKETS, Controller
from aees.episode_state import MANAGER_STATE_VERSION, check_manager_state
from aees.reward import NormalizedLossImprovementReward
from aees.types import (
    CONTEXT_MODES,
    NONFINITE_POLICIES,
    STRUCTURED_CONTROL_MODES,
    CandidateConfig,
    EpisodeSummary,
    NonFiniteLossError,
    StructuredSelection,
    candidate_name,
)

LOG_KEYS: tuple[str, ...] = (
    "selected_lr_indices",
    "selected_noise_indices",
    "selected_lr_values",
    "selected_noise_values",
    "selected_combined_names",
    "episode_rewards",
    "episode_start_steps",
    "episode_end_steps",
    "episode_start_losses",
    "episode_end_losses",
    "episode_ema_loss_starts",
    "episode_ema_loss_ends",
    "reward_base",
    "reward_instability",
    "reward_penalty",
    "reward_final_unclipped",
    "reward_final_clipped",
    "mean_update_norms",
)
EXTENDED_LOG_KEYS: tuple[str, ...] = ("episode_scaler_skipped_steps", "episode_nonfinite_steps")

NoiseControllers = Controller | list[Controller] | None


class StructuredEpisodeManager:
    """Holds the chosen (LR multiplier, noise std) for a fixed-length episode and routes rewards.

    Args:
        lr_candidates, noise_candidates: the arms of each axis.
        lr_controller: ``None`` iff the LR axis has one candidate.
        noise_controller: ``None`` iff the noise axis has one candidate; in ``"conditional"`` mode
            with several LR arms, a list with one controller per LR arm.
        reward_fn: maps the episode's step losses to :class:`~aees.types.RewardDetails`.
        episode_length: steps per episode (≥ 1).
        context_mode: ``"trend"`` passes a bucket (improving/stable/worsening, from the slope of
            the last ``context_trend_window`` episode-end losses against the absolute threshold
            ``context_trend_epsilon``) to controllers that have ``set_context``.
        extended_logs: also log per-episode counts of scaler-skipped and non-finite steps.
        on_close: called with each episode's :class:`~aees.types.EpisodeSummary` once it is
            closed and logged (before a non-finite loss is raised), so hooks never see a
            half-updated manager.
    """

    def __init__(
        self,
        lr_candidates: Sequence[float],
        noise_candidates: Sequence[float],
        lr_controller: Controller | None,
        noise_controller: NoiseControllers,
        reward_fn: NormalizedLossImprovementReward,
        episode_length: int,
        structured_control_mode: str = "independent",
        context_mode: str = "none",
        context_trend_window: int = 3,
        context_trend_epsilon: float = 1e-3,
        *,
        extended_logs: bool = False,
        on_close: Callable[[EpisodeSummary], None] | None = None,
    ) -> None:
        self.lr_candidates = check_candidates("lr_candidates", lr_candidates, allow_zero=False)
        self.noise_candidates = check_candidates(
            "noise_candidates", noise_candidates, allow_zero=True
        )
        self.episode_length = check_int("episode_length", episode_length, minimum=1)
        self.structured_control_mode = check_choice(
            "structured_control_mode", structured_control_mode, STRUCTURED_CONTROL_MODES
        )
        self.context_mode = check_choice("context_mode", context_mode, CONTEXT_MODES)
        self.context_trend_window = check_int(
            "context_trend_window", context_trend_window, minimum=1
        )
        self.context_trend_epsilon = check_float(
            "context_trend_epsilon", context_trend_epsilon, minimum=0.0
        )
        _check_controllers(
            len(self.lr_candidates),
            len(self.noise_candidates),
            lr_controller,
            noise_controller,
            self.structured_control_mode,
        )
        self.lr_controller = lr_controller
        self.noise_controller = noise_controller
        self.reward_fn = reward_fn
        self.extended_logs = extended_logs
        self.on_close = on_close
        self._episode_index = -1
        self._active: StructuredSelection | None = None
        self._active_config: CandidateConfig | None = None
        self._start_step = 0
        self._end_loss_history: list[float] = []
        keys = LOG_KEYS + (EXTENDED_LOG_KEYS if extended_logs else ())
        if self.context_mode != "none":
            keys = (*keys, "context_buckets")
        self._logs: dict[str, list[Any]] = {k: [] for k in keys}

    # ------------------------------------------------------------------ selection
    @property
    def active_config(self) -> CandidateConfig | None:
        return self._active_config

    @property
    def log_keys(self) -> tuple[str, ...]:
        """The keys of :meth:`get_logs` (and of the state dict's logs), in order."""
        return tuple(self._logs)

    @property
    def active_selection(self) -> StructuredSelection | None:
        return self._active

    @property
    def active_start_step(self) -> int | None:
        return self._start_step if self._active is not None else None

    def context_bucket(self) -> str | None:
        """The trend bucket from the last closed episodes' raw end losses."""
        return self.bucket_after(self._end_loss_history)

    def bucket_after(self, end_loss_history: Sequence[float]) -> str | None:
        """The trend bucket that ``end_loss_history`` gives (``None`` without a context)."""
        if self.context_mode == "none":
            return None
        window = end_loss_history[-self.context_trend_window :]
        if len(window) < 2:
            return "stable"
        slope = (window[-1] - window[0]) / (len(window) - 1)
        if slope < -self.context_trend_epsilon:
            return TREND_CONTEXT_BUCKETS[0]
        if slope > self.context_trend_epsilon:
            return TREND_CONTEXT_BUCKETS[2]
        return "stable"

    def _noise_controller_for(self, lr_index: int) -> Controller | None:
        if isinstance(self.noise_controller, list):
            return self.noise_controller[lr_index]
        return self.noise_controller

    @staticmethod
    def _select(controller: Controller | None, bucket: str | None, n: int, axis: str) -> int:
        if controller is None:
            return 0
        if bucket is not None and hasattr(controller, "set_context"):
            controller.set_context(bucket)
        index = controller.select_mode()
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"{axis} controller returned a non-int arm {index!r}.")
        if not 0 <= index < n:
            raise ValueError(f"{axis} controller returned arm {index!r}, outside [0, {n}).")
        return index

    def open_episode(self, global_step: int) -> CandidateConfig:
        """Open an episode at ``global_step`` unless one is active; return the active arm."""
        if isinstance(global_step, bool) or not isinstance(global_step, int):
            raise TypeError(f"global_step must be an int, got {global_step!r}.")
        if global_step < 0:
            raise ValueError(f"global_step must be non-negative, got {global_step!r}.")
        if self._active is None:
            bucket = self.context_bucket()
            lr_index = self._select(self.lr_controller, bucket, len(self.lr_candidates), "LR")
            noise_ctrl = self._noise_controller_for(lr_index)
            noise_index = self._select(noise_ctrl, bucket, len(self.noise_candidates), "noise")
            lr_value = self.lr_candidates[lr_index]
            noise_value = self.noise_candidates[noise_index]
            name = candidate_name(lr_value, noise_value)
            self._active = StructuredSelection(
                lr_index, noise_index, lr_value, noise_value, name, bucket
            )
            self._active_config = CandidateConfig(name, lr_value, noise_value)
            self._start_step = global_step
            self._episode_index += 1
        assert self._active_config is not None
        return self._active_config

    # ------------------------------------------------------------------ closing
    def close_episode(
        self,
        step_losses: Sequence[float],
        *,
        scaler_skipped: Sequence[bool] | None = None,
        update_norms: Sequence[float] | None = None,
        nonfinite: str = "raise",
    ) -> EpisodeSummary:
        """Close the active episode given every step's loss, in order.

        Steps skipped by a ``GradScaler`` and steps with a non-finite loss are left out of the
        reward and counted. Under ``nonfinite="raise"`` the episode is still closed with the
        remaining steps (so the state stays consistent), then ``ValueError`` names the first bad
        step. If no step counts, the episode is logged with ``None`` rewards and the controllers
        are not updated.
        """
        check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
        selection = self._active
        if selection is None:
            raise RuntimeError("close_episode() called without an active episode.")
        steps = len(step_losses)
        if steps == 0:
            raise ValueError("close_episode() needs at least one step loss.")
        skipped = list(scaler_skipped) if scaler_skipped is not None else [False] * steps
        counted: list[float] = []
        bad_steps: list[tuple[int, float]] = []
        for i, (loss, skip) in enumerate(zip(step_losses, skipped, strict=True)):
            if skip:
                continue
            if math.isfinite(loss):
                counted.append(float(loss))
            else:
                bad_steps.append((self._start_step + i, loss))
        norms = list(update_norms or ())
        mean_norm = sum(norms) / len(norms) if norms else None

        details = None
        if counted:
            details = self.reward_fn(counted)
            reward = details.reward_final_clipped
            if self.lr_controller is not None:
                self.lr_controller.update(selection.lr_index, reward)
            noise_ctrl = self._noise_controller_for(selection.lr_index)
            if noise_ctrl is not None:
                noise_ctrl.update(selection.noise_index, reward)

        summary = EpisodeSummary(
            episode_index=self._episode_index,
            selection=selection,
            start_step=self._start_step,
            end_step=self._start_step + steps - 1,
            steps=steps,
            step_losses=tuple(counted),
            loss_start=counted[0] if counted else None,
            loss_end=counted[-1] if counted else None,
            ema_loss_start=details.ema_loss_start if details else None,
            ema_loss_end=details.ema_loss_end if details else None,
            mean_update_norm=mean_norm,
            reward=details,
            scaler_skipped_steps=sum(bool(s) for s in skipped),
            nonfinite_steps=len(bad_steps),
        )
        self._append_logs(summary)
        if summary.loss_end is not None:
            self._end_loss_history.append(summary.loss_end)
        self._active = self._active_config = None
        if self.on_close is not None:  # the episode is closed and logged: the state is consistent
            self.on_close(summary)
        if bad_steps and nonfinite == "raise":
            step, value = bad_steps[0]
            raise NonFiniteLossError(
                f"loss at step {step} is not finite ({value!r}); {len(bad_steps)} non-finite "
                f"step(s) in the episode starting at step {summary.start_step} were left out of "
                "its reward (pass nonfinite='skip' to skip such steps silently).",
                step=step,
                value=value,
            )
        return summary

    def _append_logs(self, s: EpisodeSummary) -> None:
        sel, d, logs = s.selection, s.reward, self._logs
        logs["selected_lr_indices"].append(sel.lr_index)
        logs["selected_noise_indices"].append(sel.noise_index)
        logs["selected_lr_values"].append(sel.lr_value)
        logs["selected_noise_values"].append(sel.noise_value)
        logs["selected_combined_names"].append(sel.combined_name)
        logs["episode_rewards"].append(d.reward_final_clipped if d else None)
        logs["episode_start_steps"].append(s.start_step)
        logs["episode_end_steps"].append(s.end_step)
        logs["episode_start_losses"].append(s.loss_start)
        logs["episode_end_losses"].append(s.loss_end)
        logs["episode_ema_loss_starts"].append(s.ema_loss_start)
        logs["episode_ema_loss_ends"].append(s.ema_loss_end)
        for key in (
            "reward_base",
            "reward_instability",
            "reward_penalty",
            "reward_final_unclipped",
            "reward_final_clipped",
        ):
            logs[key].append(getattr(d, key) if d else None)
        logs["mean_update_norms"].append(s.mean_update_norm)
        if self.extended_logs:
            logs["episode_scaler_skipped_steps"].append(s.scaler_skipped_steps)
            logs["episode_nonfinite_steps"].append(s.nonfinite_steps)
        if "context_buckets" in logs:
            logs["context_buckets"].append(sel.context_bucket)

    def get_logs(self) -> dict[str, list[Any]]:
        """One entry per closed episode (the open one is never included); shallow copies."""
        return {k: list(v) for k, v in self._logs.items()}

    # ------------------------------------------------------------------ state
    def controllers_by_key(self) -> dict[str, Controller]:
        """The controllers in use by state-dict key: ``"lr"``, ``"noise"`` or ``"noise.<i>"``."""
        out: dict[str, Controller] = {}
        if self.lr_controller is not None:
            out["lr"] = self.lr_controller
        if isinstance(self.noise_controller, list):
            out.update({f"noise.{i}": c for i, c in enumerate(self.noise_controller)})
        elif self.noise_controller is not None:
            out["noise"] = self.noise_controller
        return out

    def state_dict(self) -> dict[str, Any]:
        active = None
        if self._active is not None:
            a = self._active
            active = {
                "lr_index": a.lr_index,
                "noise_index": a.noise_index,
                "context_bucket": a.context_bucket,
                "start_step": self._start_step,
            }
        return {
            "version": MANAGER_STATE_VERSION,
            "lr_candidates": list(self.lr_candidates),
            "noise_candidates": list(self.noise_candidates),
            "episode_length": self.episode_length,
            "controllers": {k: c.state_dict() for k, c in self.controllers_by_key().items()},
            "episode_index": self._episode_index,
            "active": active,
            "end_loss_history": list(self._end_loss_history),
            "logs": self.get_logs(),
        }

    def check_state_dict(self, state: Any, where: str = "state") -> dict[str, Any]:
        """Validate the whole of ``state`` without changing anything; return the checked copy
        that :meth:`load_checked_state_dict` assigns (docs/algorithm.md §12; the checks are
        :func:`aees.episode_state.check_manager_state`'s). ``ValueError`` names the key."""
        return check_manager_state(self, state, where)

    def load_checked_state_dict(self, checked: dict[str, Any]) -> None:
        """Assign a state from :meth:`check_state_dict`. Controllers without
        ``load_checked_state_dict`` (a user's) are loaded first; if one raises, those already
        loaded are restored and nothing else has changed."""
        controllers = self.controllers_by_key()
        custom = [k for k, c in controllers.items() if not hasattr(c, "load_checked_state_dict")]
        done: list[tuple[Controller, dict[str, Any]]] = []
        for key in custom:
            ctrl = controllers[key]
            backup = ctrl.state_dict()
            try:
                ctrl.load_state_dict(checked["controllers"][key])
            except Exception as exc:
                for loaded, state in reversed(done):
                    loaded.load_state_dict(state)
                if isinstance(exc, ValueError):
                    raise
                raise ValueError(
                    f"cannot load AEES state: controller {key!r} refused its state "
                    f"({type(exc).__name__}: {exc})."
                ) from exc
            done.append((ctrl, backup))
        for key, ctrl in controllers.items():
            if key not in custom:
                ctrl.load_checked_state_dict(checked["controllers"][key])  # type: ignore[attr-defined]
        self._episode_index = checked["episode_index"]
        self._end_loss_history = list(checked["end_loss_history"])
        self._logs = {k: list(v) for k, v in checked["logs"].items()}
        active = checked["active"]
        if active is None:
            self._active = self._active_config = None
            return
        li, ni = active["lr_index"], active["noise_index"]
        lr, noise = self.lr_candidates[li], self.noise_candidates[ni]
        name = candidate_name(lr, noise)
        self._active = StructuredSelection(li, ni, lr, noise, name, active["context_bucket"])
        self._active_config = CandidateConfig(name, lr, noise)
        self._start_step = active["start_step"]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output: all of it, or nothing (``ValueError``)."""
        self.load_checked_state_dict(self.check_state_dict(state))


def _check_controllers(
    n_lr: int,
    n_noise: int,
    lr_controller: Controller | None,
    noise_controller: NoiseControllers,
    structured_control_mode: str,
) -> None:
    if (n_lr == 1) != (lr_controller is None):
        raise TypeError(
            f"lr_controller must be None exactly when there is one LR candidate "
            f"(got {n_lr} candidates and {lr_controller!r})."
        )
    if n_noise == 1:
        if noise_controller is not None:
            raise TypeError("noise_controller must be None for a single noise candidate.")
        return
    if structured_control_mode == "conditional" and n_lr > 1:
        if not isinstance(noise_controller, list) or len(noise_controller) != n_lr:
            raise TypeError(
                f"conditional mode needs a list of {n_lr} noise controllers (one per LR arm), "
                f"got {noise_controller!r}."
            )
    elif noise_controller is None or isinstance(noise_controller, list):
        raise TypeError(f"expected one noise controller, got {noise_controller!r}.")
