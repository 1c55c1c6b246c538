"""The episode lifecycle: select one arm per axis, collect the episode's losses, credit the reward.

An episode opens lazily at the first ``open_episode(global_step)`` after the previous one closed;
the LR controller picks its arm first, then the noise controller (the one belonging to that LR
arm in ``"conditional"`` mode). The episode closes when :class:`aees.AEES` hands over all its
step losses at once (``close_episode``), and both controllers receive the same scalar reward.

The manager works on host floats only; it never touches tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from aees.controllers import TREND_CONTEXT_BUCKETS, BucketedContextualController, Controller
from aees.reward import REWARD_LOG_KEYS, NormalizedLossImprovementReward, check_logged_reward
from aees.types import (
    CONTEXT_MODES,
    NONFINITE_POLICIES,
    STRUCTURED_CONTROL_MODES,
    CandidateConfig,
    EpisodeSummary,
    NonFiniteLossError,
    StructuredSelection,
    candidate_name,
    check_candidates,
    check_choice,
    check_float,
    check_int,
    finite_number,
    same_plain,
    state_equal,
    state_error,
    state_float,
    state_floats,
    state_int,
    state_ints,
    state_keys,
    state_list,
    state_mismatch,
    state_path,
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
_STATE_VERSION = 1

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
    def active_selection(self) -> StructuredSelection | None:
        return self._active

    @property
    def active_start_step(self) -> int | None:
        return self._start_step if self._active is not None else None

    def context_bucket(self) -> str | None:
        """The trend bucket from the last closed episodes' raw end losses."""
        return self._bucket_after(self._end_loss_history)

    def _bucket_after(self, end_loss_history: Sequence[float]) -> str | None:
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
    def _controllers(self) -> dict[str, Controller]:
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
            "version": _STATE_VERSION,
            "lr_candidates": list(self.lr_candidates),
            "noise_candidates": list(self.noise_candidates),
            "episode_length": self.episode_length,
            "controllers": {k: c.state_dict() for k, c in self._controllers().items()},
            "episode_index": self._episode_index,
            "active": active,
            "end_loss_history": list(self._end_loss_history),
            "logs": self.get_logs(),
        }

    def check_state_dict(self, state: Any, where: str = "state") -> dict[str, Any]:
        """Validate the whole of ``state`` without changing anything; return the checked copy
        that :meth:`load_checked_state_dict` assigns (docs/algorithm.md §12).

        Besides each value's type and range: the candidates, episode length, controllers and
        log keys are this manager's; every controller's state is checked by the controller
        (when it has ``check_state_dict``); the logs have one entry per closed episode in every
        key and agree with each other (arm values and names with their indices, the reward's
        parts, step counts); the trend history is the logged end losses; the episode index
        counts the episodes; the open episode's bucket is the one its history gives; a bucketed
        controller has visited exactly the logged buckets. ``ValueError`` names the key.
        """
        keys = (
            "version",
            "lr_candidates",
            "noise_candidates",
            "episode_length",
            "controllers",
            "episode_index",
            "active",
            "end_loss_history",
            "logs",
        )
        state_keys(where, state, keys)
        state_equal(state_path(where, "version"), state["version"], _STATE_VERSION)
        for key in ("lr_candidates", "noise_candidates", "episode_length"):
            mine = getattr(self, key)
            if not same_plain(state[key], mine):
                raise ValueError(
                    f"cannot load AEES state: it was saved with {key}={state[key]!r}, "
                    f"this instance has {key}={mine!r}."
                )
        controllers = self._check_controller_states(state["controllers"], where)
        logs = self._check_logs(state["logs"], state_path(where, "logs"))
        closed = len(logs["selected_lr_indices"])
        history = state_floats(state_path(where, "end_loss_history"), state["end_loss_history"])
        if history != [x for x in logs["episode_end_losses"] if x is not None]:
            raise state_mismatch(
                state_path(where, "end_loss_history"),
                "differs from the logged episode end losses (logs['episode_end_losses'])",
            )
        active = self._check_active(state["active"], history, state_path(where, "active"))
        state_equal(
            state_path(where, "episode_index"),
            state["episode_index"],
            closed - 1 + (active is not None),
        )
        self._check_bucket_visits(controllers, logs, active, state_path(where, "controllers"))
        return {
            "controllers": controllers,
            "logs": logs,
            "end_loss_history": history,
            "active": active,
            "episode_index": state["episode_index"],
        }

    def _check_controller_states(self, saved: Any, where: str) -> dict[str, Any]:
        controllers = self._controllers()
        at = state_path(where, "controllers")
        if not isinstance(saved, dict) or set(saved) != set(controllers):
            held = sorted(map(str, saved)) if isinstance(saved, dict) else saved
            raise ValueError(
                f"cannot load AEES state: {at} holds controllers {held!r}, this instance has "
                f"{sorted(controllers)} (different control or structured mode?)."
            )
        checked: dict[str, Any] = {}
        for key, ctrl in controllers.items():
            check = getattr(ctrl, "check_state_dict", None)
            # a user's controller without check_state_dict gets its state as saved; it is
            # loaded first, and restored if it raises (see load_checked_state_dict)
            checked[key] = check(saved[key], state_path(at, key)) if check else saved[key]
        return checked

    def _check_logs(self, logs: Any, where: str) -> dict[str, list[Any]]:
        state_keys(where, logs, tuple(self._logs))
        cols = {key: state_list(state_path(where, key), logs[key]) for key in self._logs}
        n = len(cols["selected_lr_indices"])
        for key, col in cols.items():
            if len(col) != n:
                raise state_mismatch(
                    state_path(where, key),
                    f"has {len(col)} entries, logs['selected_lr_indices'] has {n}",
                )

        def at(key: str, i: int) -> str:
            return state_path(state_path(where, key), i)

        for axis, cands in (("lr", self.lr_candidates), ("noise", self.noise_candidates)):
            idx = state_ints(
                state_path(where, f"selected_{axis}_indices"),
                cols[f"selected_{axis}_indices"],
                maximum=len(cands) - 1,
            )
            for i, (j, value) in enumerate(zip(idx, cols[f"selected_{axis}_values"], strict=True)):
                if type(value) is not float or value != cands[j]:
                    raise state_error(at(f"selected_{axis}_values", i), value, repr(cands[j]))
        names = {(lr, noise): candidate_name(lr, noise)
                 for lr in self.lr_candidates for noise in self.noise_candidates}  # fmt: skip
        lrs, noises = cols["selected_lr_values"], cols["selected_noise_values"]
        for i, (name, lr, noise) in enumerate(
            zip(cols["selected_combined_names"], lrs, noises, strict=True)
        ):
            if type(name) is not str or name != names[lr, noise]:
                raise state_error(at("selected_combined_names", i), name, repr(names[lr, noise]))
        starts = state_ints(state_path(where, "episode_start_steps"), cols["episode_start_steps"])
        ends = state_ints(state_path(where, "episode_end_steps"), cols["episode_end_steps"])
        for i in range(n):
            steps = ends[i] - starts[i] + 1
            if not 1 <= steps <= self.episode_length:
                raise state_error(
                    at("episode_end_steps", i),
                    ends[i],
                    f"a step in [start, start + {self.episode_length}) (start {starts[i]})",
                )
            self._check_logged_episode(cols, i, steps, at)
        return cols

    def _check_logged_episode(
        self, cols: dict[str, list[Any]], i: int, steps: int, at: Callable[[str, int], str]
    ) -> None:
        """Episode ``i``'s losses, reward, update norm, step counts and bucket."""
        first, last = cols["episode_start_losses"][i], cols["episode_end_losses"][i]
        counted = cols["episode_rewards"][i] is not None
        for key, loss in (("episode_start_losses", first), ("episode_end_losses", last)):
            if counted:
                if not finite_number(loss):
                    state_float(at(key, i), loss)  # raises, naming it
            elif loss is not None:
                raise state_error(at(key, i), loss, "None (the episode's reward is None)")
        check_logged_reward({k: cols[k][i] for k in REWARD_LOG_KEYS}, first, lambda k: at(k, i))
        norm = cols["mean_update_norms"][i]
        if norm is not None and (type(norm) is not float or norm < 0.0):
            state_float(at("mean_update_norms", i), norm, finite=False, minimum=0.0)
        if self.extended_logs:
            skipped = cols["episode_scaler_skipped_steps"][i]
            if type(skipped) is not int or not 0 <= skipped <= steps:
                state_int(at("episode_scaler_skipped_steps", i), skipped, maximum=steps)
            bad = cols["episode_nonfinite_steps"][i]
            if type(bad) is not int or not 0 <= bad <= steps - skipped:
                state_int(at("episode_nonfinite_steps", i), bad, maximum=steps - skipped)
            if counted != (skipped + bad < steps):
                raise state_mismatch(
                    at("episode_rewards", i),
                    f"does not fit {steps - skipped - bad} counted step(s) of {steps}",
                )
        bucket = cols["context_buckets"][i] if "context_buckets" in cols else None
        if "context_buckets" in cols and (
            type(bucket) is not str or bucket not in TREND_CONTEXT_BUCKETS
        ):
            raise state_error(
                at("context_buckets", i),
                cols["context_buckets"][i],
                f"one of {TREND_CONTEXT_BUCKETS}",
            )

    def _check_active(self, active: Any, history: list[float], where: str) -> dict[str, Any] | None:
        if active is None:
            return None
        keys = ("lr_index", "noise_index", "context_bucket", "start_step")
        state_keys(where, active, keys, optional=("step_losses", "step_norms"))
        if active.get("step_losses") or active.get("step_norms"):
            # only the removed per-step path (on_step_end) wrote these
            raise ValueError(
                "cannot load AEES state: its open episode holds per-step losses "
                "(the removed on_step_end path)."
            )
        lr_index = state_int(
            state_path(where, "lr_index"), active["lr_index"], maximum=len(self.lr_candidates) - 1
        )
        noise_index = state_int(
            state_path(where, "noise_index"),
            active["noise_index"],
            maximum=len(self.noise_candidates) - 1,
        )
        bucket, expected = active["context_bucket"], self._bucket_after(history)
        if not same_plain(bucket, expected):
            raise state_error(
                state_path(where, "context_bucket"),
                bucket,
                f"{expected!r} (the bucket its end-loss history gives)",
            )
        start = state_int(state_path(where, "start_step"), active["start_step"])
        return {
            "lr_index": lr_index,
            "noise_index": noise_index,
            "context_bucket": bucket,
            "start_step": start,
        }

    def _check_bucket_visits(
        self,
        controllers: dict[str, Any],
        logs: dict[str, list[Any]],
        active: dict[str, Any] | None,
        where: str,
    ) -> None:
        """A bucketed controller was set to the bucket of every episode it chose an arm for."""
        if self.context_mode == "none":
            return
        episodes = list(zip(logs["selected_lr_indices"], logs["context_buckets"], strict=True))
        if active is not None:
            episodes.append((active["lr_index"], active["context_bucket"]))
        for key, ctrl in self._controllers().items():
            if not isinstance(ctrl, BucketedContextualController):
                continue
            arm = int(key.split(".")[1]) if key.startswith("noise.") else None
            visits = [b for lr, b in episodes if arm is None or lr == arm]
            ctrl.check_visits(controllers[key], visits, state_path(where, key))

    def load_checked_state_dict(self, checked: dict[str, Any]) -> None:
        """Assign a state from :meth:`check_state_dict`. Controllers without
        ``load_checked_state_dict`` (a user's) are loaded first; if one raises, those already
        loaded are restored and nothing else has changed."""
        controllers = self._controllers()
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
