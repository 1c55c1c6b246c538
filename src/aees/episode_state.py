"""Validation of a saved episode-manager state before anything is assigned.

A state dict is a file from disk (docs/algorithm.md §12): :func:`check_manager_state` checks the
whole of :class:`~aees.episode.StructuredEpisodeManager`'s part and returns the checked copy its
``load_checked_state_dict`` assigns. Besides each value's type and range it checks that the
parts agree: the logs with each other and with the candidates, the trend history with the logged
end losses, the open episode's bucket with that history, a bucketed controller's visits with the
logged buckets. Every ``ValueError`` names the key and the bad value.

The functions take the manager as ``m`` and read only its public attributes (``lr_candidates``,
``noise_candidates``, ``episode_length``, ``context_mode``, ``extended_logs``, ``log_keys``,
``controllers_by_key()``, ``bucket_after()``); :mod:`aees.episode` imports this module, not the
other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aees.controllers import TREND_CONTEXT_BUCKETS, BucketedContextualController
from aees.reward import REWARD_LOG_KEYS, check_logged_reward
from aees.state_checks import (
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
from aees.types import candidate_name

#: The version of the manager's part of a state dict.
MANAGER_STATE_VERSION = 1


def check_manager_state(m: Any, state: Any, where: str = "state") -> dict[str, Any]:
    """Validate the whole of ``state`` against the manager ``m`` without changing anything;
    return the checked copy that
    :meth:`~aees.episode.StructuredEpisodeManager.load_checked_state_dict` assigns.

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
    state_equal(state_path(where, "version"), state["version"], MANAGER_STATE_VERSION)
    for key in ("lr_candidates", "noise_candidates", "episode_length"):
        mine = getattr(m, key)
        if not same_plain(state[key], mine):
            raise ValueError(
                f"cannot load AEES state: it was saved with {key}={state[key]!r}, "
                f"this instance has {key}={mine!r}."
            )
    controllers = _check_controller_states(m, state["controllers"], where)
    logs = _check_logs(m, state["logs"], state_path(where, "logs"))
    closed = len(logs["selected_lr_indices"])
    history = state_floats(state_path(where, "end_loss_history"), state["end_loss_history"])
    if history != [x for x in logs["episode_end_losses"] if x is not None]:
        raise state_mismatch(
            state_path(where, "end_loss_history"),
            "differs from the logged episode end losses (logs['episode_end_losses'])",
        )
    active = _check_active(m, state["active"], history, state_path(where, "active"))
    state_equal(
        state_path(where, "episode_index"),
        state["episode_index"],
        closed - 1 + (active is not None),
    )
    _check_bucket_visits(m, controllers, logs, active, state_path(where, "controllers"))
    return {
        "controllers": controllers,
        "logs": logs,
        "end_loss_history": history,
        "active": active,
        "episode_index": state["episode_index"],
    }


def _check_controller_states(m: Any, saved: Any, where: str) -> dict[str, Any]:
    controllers = m.controllers_by_key()
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


def _check_logs(m: Any, logs: Any, where: str) -> dict[str, list[Any]]:
    state_keys(where, logs, m.log_keys)
    cols = {key: state_list(state_path(where, key), logs[key]) for key in m.log_keys}
    n = len(cols["selected_lr_indices"])
    for key, col in cols.items():
        if len(col) != n:
            raise state_mismatch(
                state_path(where, key),
                f"has {len(col)} entries, logs['selected_lr_indices'] has {n}",
            )

    def at(key: str, i: int) -> str:
        return state_path(state_path(where, key), i)

    for axis, cands in (("lr", m.lr_candidates), ("noise", m.noise_candidates)):
        idx = state_ints(
            state_path(where, f"selected_{axis}_indices"),
            cols[f"selected_{axis}_indices"],
            maximum=len(cands) - 1,
        )
        for i, (j, value) in enumerate(zip(idx, cols[f"selected_{axis}_values"], strict=True)):
            if type(value) is not float or value != cands[j]:
                raise state_error(at(f"selected_{axis}_values", i), value, repr(cands[j]))
    names = {(lr, noise): candidate_name(lr, noise)
             for lr in m.lr_candidates for noise in m.noise_candidates}  # fmt: skip
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
        if not 1 <= steps <= m.episode_length:
            raise state_error(
                at("episode_end_steps", i),
                ends[i],
                f"a step in [start, start + {m.episode_length}) (start {starts[i]})",
            )
        _check_logged_episode(m, cols, i, steps, at)
    return cols


def _check_logged_episode(
    m: Any, cols: dict[str, list[Any]], i: int, steps: int, at: Callable[[str, int], str]
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
    if m.extended_logs:
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


def _check_active(m: Any, active: Any, history: list[float], where: str) -> dict[str, Any] | None:
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
        state_path(where, "lr_index"), active["lr_index"], maximum=len(m.lr_candidates) - 1
    )
    noise_index = state_int(
        state_path(where, "noise_index"),
        active["noise_index"],
        maximum=len(m.noise_candidates) - 1,
    )
    bucket, expected = active["context_bucket"], m.bucket_after(history)
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
    m: Any,
    controllers: dict[str, Any],
    logs: dict[str, list[Any]],
    active: dict[str, Any] | None,
    where: str,
) -> None:
    """A bucketed controller was set to the bucket of every episode it chose an arm for."""
    if m.context_mode == "none":
        return
    episodes = list(zip(logs["selected_lr_indices"], logs["context_buckets"], strict=True))
    if active is not None:
        episodes.append((active["lr_index"], active["context_bucket"]))
    for key, ctrl in m.controllers_by_key().items():
        if not isinstance(ctrl, BucketedContextualController):
            continue
        arm = int(key.split(".")[1]) if key.startswith("noise.") else None
        visits = [b for lr, b in episodes if arm is None or lr == arm]
        ctrl.check_visits(controllers[key], visits, state_path(where, key))
