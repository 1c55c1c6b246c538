"""Validation of a saved :class:`aees.AEES` state before anything is assigned.

A state dict is a file from disk (docs/algorithm.md §12): :func:`check_wrapper_state` checks the
whole of it (the compatibility block, the seed and the controllers' seeds derived from it, the
episode manager's and the noise source's parts, the open episode's pending records, the step
count) and returns the checked copy that :meth:`aees.AEES.load_checked_state_dict` assigns.
Every ``ValueError`` names the key (``where`` is the state's own name) and the bad value. It
works on host values only.
"""

from __future__ import annotations

from typing import Any

from aees.state_checks import (
    same_plain,
    state_equal,
    state_error,
    state_floats,
    state_int,
    state_keys,
    state_mismatch,
    state_path,
)

#: The version :meth:`aees.AEES.state_dict` writes and :func:`check_wrapper_state` reads.
WRAPPER_STATE_VERSION = 1
#: The keys of an AEES state dict, in the order it is written.
WRAPPER_STATE_KEYS = ("version", "compat", "seed", "num_steps", "manager", "pending", "noise")
#: The keys of its ``pending`` part: the open episode's per-step records.
PENDING_KEYS = ("losses", "scaler_skipped", "update_norms")


def check_wrapper_state(
    state: Any,
    where: str,
    *,
    compat: dict[str, Any],
    manager: Any,
    noise: Any,
    sources: dict[str, str],
    episode_length: int,
    has_scaler: bool,
    track_update_norm: bool,
) -> dict[str, Any]:
    """The checked copy of ``state`` (keys ``seed``, ``num_steps``, ``manager``, ``noise``,
    ``pending``) for an AEES whose compatibility block is ``compat``, whose episode manager and
    noise source check their own parts, and whose axes' controllers came from ``sources``
    (``"built"`` or ``"injected:..."`` per axis)."""
    if not isinstance(state, dict) or not same_plain(state.get("version"), WRAPPER_STATE_VERSION):
        raise ValueError(
            f"not an AEES state dict of version {WRAPPER_STATE_VERSION} "
            f"(got version {state.get('version') if isinstance(state, dict) else state!r})."
        )
    state_keys(where, state, WRAPPER_STATE_KEYS)
    state_equal(state_path(where, "version"), state["version"], WRAPPER_STATE_VERSION)
    state_keys(state_path(where, "compat"), state["compat"], tuple(compat))
    for key, value in state["compat"].items():
        if not same_plain(value, compat[key]):
            raise ValueError(
                f"cannot load AEES state: it was saved with {key}={value!r}, "
                f"this instance has {key}={compat[key]!r}."
            )
    seed = state_int(state_path(where, "seed"), state["seed"], minimum=None)
    checked_manager = manager.check_state_dict(state["manager"], state_path(where, "manager"))
    checked_noise = noise.check_state_dict(state["noise"], state_path(where, "noise"))
    if checked_noise["seed"] != seed:
        raise state_error(
            state_path(state_path(where, "noise"), "seed"),
            checked_noise["seed"],
            f"the AEES seed {seed}",
        )
    check_controller_seeds(checked_manager["controllers"], seed, sources, where)
    pending = check_pending(
        state["pending"],
        checked_manager,
        state_path(where, "pending"),
        episode_length=episode_length,
        has_scaler=has_scaler,
        track_update_norm=track_update_norm,
    )
    num_steps = state_int(state_path(where, "num_steps"), state["num_steps"])
    check_steps(checked_manager, num_steps, len(pending["losses"]), where, track_update_norm)
    return {
        "seed": seed,
        "num_steps": num_steps,
        "manager": checked_manager,
        "noise": checked_noise,
        "pending": pending,
    }


def check_controller_seeds(
    controllers: dict[str, Any], seed: int, sources: dict[str, str], where: str
) -> None:
    """A built trend controller keeps its seed (for buckets not yet visited): it is the
    one AEES derives from ``seed`` (§6)."""
    for key, checked in controllers.items():
        axis = key.split(".")[0]
        if sources[axis] != "built" or "random_seed" not in checked:
            continue
        expected = seed if axis == "lr" else seed + 101 + int(key.partition(".")[2] or 0)
        if checked["random_seed"] != expected:
            at = state_path(state_path(state_path(where, "manager"), "controllers"), key)
            raise state_error(
                state_path(at, "random_seed"),
                checked["random_seed"],
                f"{expected} (derived from the seed {seed})",
            )


def check_pending(
    pending: Any,
    manager: dict[str, Any],
    where: str,
    *,
    episode_length: int,
    has_scaler: bool,
    track_update_norm: bool,
) -> dict[str, Any]:
    """The open episode's losses (any number: a non-finite one is judged when the episode
    closes), its skip flags in [0, 1] (averaged across ranks) and its update norms."""
    state_keys(where, pending, PENDING_KEYS)
    losses = state_floats(state_path(where, "losses"), pending["losses"], finite=False)
    n = len(losses)
    limit = episode_length - 1 if manager["active"] is not None else 0
    if n > limit:
        raise state_mismatch(
            state_path(where, "losses"),
            f"has {n} entries; an open episode holds at most {limit}",
        )
    skipped = state_floats(
        state_path(where, "scaler_skipped"), pending["scaler_skipped"], minimum=0.0
    )
    if len(skipped) not in ((0, n) if has_scaler else (0,)):
        raise state_mismatch(
            state_path(where, "scaler_skipped"),
            f"has {len(skipped)} entries for {n} pending step(s)"
            + ("" if has_scaler else " and no grad_scaler"),
        )
    for i, flag in enumerate(skipped):
        if flag > 1.0:
            raise state_error(
                state_path(state_path(where, "scaler_skipped"), i), flag, "a number in [0, 1]"
            )
    norms = state_floats(
        state_path(where, "update_norms"),
        pending["update_norms"],
        length=n if track_update_norm else 0,
        finite=False,
        minimum=0.0,
    )
    return {"losses": losses, "scaler_skipped": skipped, "update_norms": norms}


def check_steps(
    manager: dict[str, Any], num_steps: int, pending: int, where: str, track_update_norm: bool
) -> None:
    """AEES owns the step count: episodes are contiguous from step 0, the open one starts
    where the last closed one ended, and ``num_steps`` counts its pending steps. Update
    norms are logged exactly when ``track_update_norm`` is on."""
    logs = manager["logs"]
    at = state_path(where, "manager")
    following = 0
    for i, (first, last) in enumerate(
        zip(logs["episode_start_steps"], logs["episode_end_steps"], strict=True)
    ):
        if first != following:
            key = state_path(state_path(at, "logs"), "episode_start_steps")
            raise state_error(state_path(key, i), first, f"{following} (episodes are contiguous)")
        following = last + 1
    for i, norm in enumerate(logs["mean_update_norms"]):
        if (norm is None) == track_update_norm:
            key = state_path(state_path(at, "logs"), "mean_update_norms")
            want = "a number" if track_update_norm else "None"
            raise state_error(
                state_path(key, i), norm, f"{want} (track_update_norm={track_update_norm})"
            )
    active = manager["active"]
    if active is not None:
        if active["start_step"] != following:
            raise state_error(
                state_path(state_path(at, "active"), "start_step"),
                active["start_step"],
                f"{following} (after the last episode)",
            )
        following += pending
    if num_steps != following:
        raise state_error(
            state_path(where, "num_steps"),
            num_steps,
            f"{following} (the logged episodes' and pending steps)",
        )
