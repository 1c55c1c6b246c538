"""Bandit controllers over the arms of one axis (LR multipliers or noise stds).

Every controller has the same small interface::

    arm = ctrl.select_mode()          # int in [0, n_arms)
    ctrl.update(arm, reward)          # credit one episode's reward
    state = ctrl.state_dict(); ctrl.load_state_dict(state)   # exact, including the RNG

The discounted UCB and the random controller reproduce pulseopt 0.3.0 decision for decision
(same seeds, same tie-breaking RNG calls). State is plain Python (lists, ints, the
``random.Random`` state tuple), so it pickles with ``torch.save`` and resumes bit-exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from aees.types import check_float, check_int

TREND_CONTEXT_BUCKETS: tuple[str, ...] = ("improving", "stable", "worsening")
_STATE_VERSION = 1


@runtime_checkable
class Controller(Protocol):
    """What the episode manager needs from a controller."""

    n_arms: int

    def select_mode(self) -> int: ...

    def update(self, mode_id: int, reward: float) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _check_update(n_arms: int, mode_id: int, reward: float) -> None:
    if isinstance(mode_id, bool) or not isinstance(mode_id, int) or not 0 <= mode_id < n_arms:
        raise ValueError(f"mode_id must be in [0, {n_arms}), got {mode_id!r}.")
    if not math.isfinite(reward):
        raise ValueError(f"reward must be a finite float, got {reward!r}.")


def ucb_scores(
    counts: Sequence[float], reward_sums: Sequence[float], exploration_coef: float, eps: float
) -> list[float]:
    """Discounted-UCB scores.

    score_a = S_a / n_a + c · sqrt(ln(Σ_b N_b + 1) / n_a),   n_a = max(N_a, ε)

    where N_a and S_a are the discounted play count and reward sum of arm a, and c the
    exploration coefficient.
    """
    log_term = math.log(sum(counts) + 1.0)
    scores = []
    for n_raw, s in zip(counts, reward_sums, strict=True):
        n = max(n_raw, eps)
        scores.append(s / n + exploration_coef * math.sqrt(log_term / n))
    return scores


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: Sequence[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


class DiscountedUCBController:
    """Discounted UCB with one warm-up round per arm (Garivier & Moulines, 2011).

    On ``update(a, r)`` every statistic decays by γ first, then the played arm is credited::

        N_b ← γ N_b,  S_b ← γ S_b  (all b);   N_a ← N_a + 1,  S_a ← S_a + r

    The discount is therefore applied once per credited episode, not per step. Selection plays
    every arm ``warmup_rounds`` times first (uniformly among the least-played), then maximises
    :func:`ucb_scores`; ties within 1e-12 are broken by ``random.Random(seed).choice``, which is
    called even for a single candidate, exactly as pulseopt does.
    """

    def __init__(
        self,
        n_arms: int,
        *,
        exploration_coef: float = 1.0,
        discount: float = 0.95,
        warmup_rounds: int = 1,
        eps: float = 1e-12,
        random_seed: int | None = None,
    ) -> None:
        self.n_arms = check_int("n_arms", n_arms, minimum=1)
        self.exploration_coef = check_float("exploration_coef", exploration_coef, minimum=0.0)
        self.discount = check_float("discount", discount, minimum=0.0, strict_minimum=True)
        if self.discount > 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount!r}.")
        self.warmup_rounds = check_int("warmup_rounds", warmup_rounds, minimum=0)
        self.eps = check_float("eps", eps, minimum=0.0, strict_minimum=True)
        self.random_seed = random_seed
        self._rng = random.Random(random_seed)
        self.counts = [0.0] * n_arms  # N_a
        self.reward_sums = [0.0] * n_arms  # S_a
        self.warmup_counts = [0] * n_arms  # W_a
        self.total_updates = 0  # T

    def select_mode(self) -> int:
        pending = [a for a in range(self.n_arms) if self.warmup_counts[a] < self.warmup_rounds]
        if pending:
            least = min(self.warmup_counts[a] for a in pending)
            return self._rng.choice([a for a in pending if self.warmup_counts[a] == least])
        scores = ucb_scores(self.counts, self.reward_sums, self.exploration_coef, self.eps)
        best = max(scores)
        ties = [
            a for a, s in enumerate(scores) if math.isclose(s, best, rel_tol=0.0, abs_tol=1e-12)
        ]
        return self._rng.choice(ties)

    def update(self, mode_id: int, reward: float) -> None:
        _check_update(self.n_arms, mode_id, reward)
        gamma = self.discount
        self.counts = [n * gamma for n in self.counts]
        self.reward_sums = [s * gamma for s in self.reward_sums]
        self.counts[mode_id] += 1.0
        self.reward_sums[mode_id] += reward
        self.warmup_counts[mode_id] += 1
        self.total_updates += 1

    def mean_rewards(self) -> list[float]:
        return [s / max(n, self.eps) for n, s in zip(self.counts, self.reward_sums, strict=True)]

    def copy_statistics_from(self, other: DiscountedUCBController) -> None:
        """Copy N, S, W and T (not the RNG) — how a new context bucket inherits its prior."""
        self.counts = list(other.counts)
        self.reward_sums = list(other.reward_sums)
        self.warmup_counts = list(other.warmup_counts)
        self.total_updates = other.total_updates

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "kind": "discounted_ucb",
            "n_arms": self.n_arms,
            "counts": list(self.counts),
            "reward_sums": list(self.reward_sums),
            "warmup_counts": list(self.warmup_counts),
            "total_updates": self.total_updates,
            "rng": _rng_state(self._rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_kind(state, "discounted_ucb", self.n_arms)
        self.counts = [float(v) for v in state["counts"]]
        self.reward_sums = [float(v) for v in state["reward_sums"]]
        self.warmup_counts = [int(v) for v in state["warmup_counts"]]
        self.total_updates = int(state["total_updates"])
        _set_rng_state(self._rng, state["rng"])


class RandomController:
    """Uniform arm choice, ``random.Random(seed).randrange(n_arms)``; rewards are ignored."""

    def __init__(self, n_arms: int, *, random_seed: int | None = None) -> None:
        self.n_arms = check_int("n_arms", n_arms, minimum=1)
        self.random_seed = random_seed
        self._rng = random.Random(random_seed)

    def select_mode(self) -> int:
        return self._rng.randrange(self.n_arms)

    def update(self, mode_id: int, reward: float) -> None:
        _check_update(self.n_arms, mode_id, reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "kind": "random",
            "n_arms": self.n_arms,
            "rng": _rng_state(self._rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_kind(state, "random", self.n_arms)
        _set_rng_state(self._rng, state["rng"])


class BucketedContextualController:
    """One discounted UCB per context bucket, plus a global prior that sees every reward.

    A bucket's controller is created on its first visit, seeded ``random_seed + 1000 + index``,
    and (with ``prior_from_global``) starts from the global prior's current statistics. An
    update goes to the global prior and to the bucket active when the arm was selected.
    """

    def __init__(
        self,
        n_arms: int,
        *,
        bucket_names: Sequence[str] = TREND_CONTEXT_BUCKETS,
        random_seed: int | None = None,
        prior_from_global: bool = True,
        exploration_coef: float = 1.0,
        discount: float = 0.95,
        warmup_rounds: int = 1,
        eps: float = 1e-12,
    ) -> None:
        self.n_arms = check_int("n_arms", n_arms, minimum=1)
        self.bucket_names = tuple(bucket_names)
        if not self.bucket_names or len(set(self.bucket_names)) != len(self.bucket_names):
            raise ValueError(f"bucket_names must be non-empty and unique, got {bucket_names!r}.")
        self.random_seed = random_seed
        self.prior_from_global = prior_from_global
        self._ucb_kwargs = {
            "exploration_coef": exploration_coef,
            "discount": discount,
            "warmup_rounds": warmup_rounds,
            "eps": eps,
        }
        self.global_prior = DiscountedUCBController(
            n_arms, random_seed=random_seed, **self._ucb_kwargs
        )
        self.buckets: dict[str, DiscountedUCBController] = {}
        self.active_bucket: str | None = None

    def set_context(self, bucket: str) -> None:
        if bucket not in self.bucket_names:
            raise ValueError(
                f"Unknown context bucket {bucket!r}; expected one of {self.bucket_names}."
            )
        if bucket not in self.buckets:
            self.buckets[bucket] = self._new_bucket(bucket)
        self.active_bucket = bucket

    def _new_bucket(self, bucket: str) -> DiscountedUCBController:
        seed = None
        if self.random_seed is not None:
            seed = self.random_seed + 1000 + self.bucket_names.index(bucket)
        ctrl = DiscountedUCBController(self.n_arms, random_seed=seed, **self._ucb_kwargs)
        if self.prior_from_global:
            ctrl.copy_statistics_from(self.global_prior)
        return ctrl

    def _active(self) -> DiscountedUCBController:
        if self.active_bucket is None:
            raise RuntimeError("set_context() must be called before select_mode() or update().")
        return self.buckets[self.active_bucket]

    def select_mode(self) -> int:
        return self._active().select_mode()

    def update(self, mode_id: int, reward: float) -> None:
        active = self._active()
        self.global_prior.update(mode_id, reward)
        active.update(mode_id, reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "kind": "bucketed",
            "n_arms": self.n_arms,
            "random_seed": self.random_seed,  # seeds buckets not yet visited
            "global_prior": self.global_prior.state_dict(),
            "buckets": {name: c.state_dict() for name, c in self.buckets.items()},
            "active_bucket": self.active_bucket,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_kind(state, "bucketed", self.n_arms)
        self.random_seed = state["random_seed"]
        self.global_prior.load_state_dict(state["global_prior"])
        self.buckets = {}
        for name, sub in state["buckets"].items():
            if name not in self.bucket_names:
                raise ValueError(f"controller state has unknown bucket {name!r}.")
            ctrl = self._new_bucket(name)
            ctrl.load_state_dict(sub)
            self.buckets[name] = ctrl
        self.active_bucket = state["active_bucket"]


class PrecomputedController:
    """Open-loop replay of a fixed arm sequence; rewards are validated and ignored.

    Used to replay a schedule learned by an earlier run (``logs["selected_lr_indices"]``) or
    any hand-written schedule. After the sequence is exhausted the last arm is held.
    """

    def __init__(self, n_arms: int, schedule: Sequence[int]) -> None:
        self.n_arms = check_int("n_arms", n_arms, minimum=1)
        arms = list(schedule)
        if not arms:
            raise ValueError(f"schedule must contain at least one arm, got {arms!r}.")
        for a in arms:
            if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < n_arms:
                raise ValueError(f"schedule entries must be ints in [0, {n_arms}), got {a!r}.")
        self.schedule = arms
        self.position = 0

    def select_mode(self) -> int:
        arm = self.schedule[min(self.position, len(self.schedule) - 1)]
        self.position += 1
        return arm

    def update(self, mode_id: int, reward: float) -> None:
        _check_update(self.n_arms, mode_id, reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "kind": "precomputed",
            "n_arms": self.n_arms,
            "schedule": list(self.schedule),
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_kind(state, "precomputed", self.n_arms)
        if list(state["schedule"]) != self.schedule:
            raise ValueError("controller state holds a different precomputed schedule.")
        self.position = int(state["position"])


def _check_kind(state: dict[str, Any], kind: str, n_arms: int) -> None:
    if state.get("kind") != kind:
        raise ValueError(f"controller state is of kind {state.get('kind')!r}, expected {kind!r}.")
    if state.get("n_arms") != n_arms:
        raise ValueError(
            f"controller state has n_arms={state.get('n_arms')!r}, this controller has {n_arms}."
        )


def build_controller(
    n_arms: int, control_mode: str, context_mode: str, seed: int | None
) -> Controller | None:
    """pulseopt's controller choice for one axis: none for a single arm, random before trend."""
    if n_arms == 1:
        return None
    if control_mode == "random":
        return RandomController(n_arms, random_seed=seed)
    if context_mode == "trend":
        return BucketedContextualController(n_arms, random_seed=seed)
    return DiscountedUCBController(n_arms, random_seed=seed)
