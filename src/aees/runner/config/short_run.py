"""A run too short for AEES to act (docs/protocols.md §3)."""

from __future__ import annotations

from aees.runner.config.run import RunConfig


class RunWarning(UserWarning):
    """A warning about the run a user asked for (``aees train`` prints it as one line)."""


def warmup_episodes(config: RunConfig) -> int:
    """Episodes before AEES chooses by reward: the adaptive bandit first tries each arm once
    (per axis with ``independent`` control: the larger candidate list; every LR x noise pair
    with ``conditional``); the random and open-loop controls draw from the first episode, so
    they need one."""
    if config.control_mode != "adaptive":
        return 1
    n_lr, n_noise = len(config.lr_candidates), len(config.noise_candidates)
    if config.structured_control_mode == "conditional":
        return n_lr * n_noise
    return max(n_lr, n_noise)


def aees_short_run(config: RunConfig, steps_per_epoch: int) -> dict[str, int] | None:
    """``diagnostics.aees_short_run`` (docs/results-schema.md §6) when AEES cannot act in the
    run: its optimizer steps (``steps_per_epoch`` x epochs) are fewer than its warm-up
    episodes x ``--episode-length``; None when they suffice or the run has no AEES."""
    if not config.uses_aees:
        return None
    total = steps_per_epoch * config.epochs
    episodes = warmup_episodes(config)
    needed = episodes * config.episode_length
    if total >= needed:
        return None
    return {
        "total_steps": total,
        "episode_length": config.episode_length,
        "warmup_episodes": episodes,
        "steps_needed": needed,
    }


def short_run_message(short: dict[str, int], steps_per_epoch: int, epochs: int) -> str:
    """One line for :func:`aees_short_run`: the numbers, and the flags that would fix it."""
    total, length = short["total_steps"], short["episode_length"]
    episodes, needed = short["warmup_episodes"], short["steps_needed"]
    if episodes == 1:
        why = f"fewer than one episode of --episode-length {length}, so it never changes arm"
    else:
        why = (
            f"but it first tries each of its {episodes} arms for one episode of "
            f"--episode-length {length} ({needed} steps) before it chooses by reward"
        )
    fixes = []
    if total // episodes >= 1:
        fixes.append(f"--episode-length {total // episodes} or less")
    if steps_per_epoch > 0:
        fixes.append(f"--epochs {-(-needed // steps_per_epoch)} or more")
    plural = "s" if epochs != 1 else ""
    return (
        f"AEES cannot act in this run: {total} optimizer steps in all ({epochs} epoch{plural} "
        f"x {steps_per_epoch}), {why}; use {' or '.join(fixes)}"
    )
