"""Bandit controllers over the arms of one axis (LR multipliers or noise stds).

Every controller has the same small interface::

    arm = ctrl.select_mode()          # int in [0, n_arms)
    ctrl.update(arm, reward)          # credit one episode's reward
    state = ctrl.state_dict(); ctrl.load_state_dict(state)   # exact, including the RNG

The discounted UCB and the random controller reproduce pulseopt 0.3.0 decision for decision
(same seeds, same tie-breaking RNG calls). State is plain Python (lists, ints, the
``random.Random`` state tuple), so it pickles with ``torch.save`` and resumes bit-exactly.

Loading is in two steps so that a parent can load several parts all-or-nothing
(docs/algorithm.md §12): ``check_state_dict(state, where)`` validates the whole state (types,
lengths, ranges, finiteness, the counters' invariants, the RNG state) and returns a checked
copy without changing anything, naming the key and the value in a ``ValueError``;
``load_checked_state_dict(checked)`` assigns it and cannot fail. ``load_state_dict`` is the two
in a row. Controllers written by users need only ``load_state_dict`` (see
:class:`~aees.episode.StructuredEpisodeManager` for how they are loaded).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from aees.checks import check_float, check_int
from aees.state_checks import (
    same_plain,
    state_equal,
    state_error,
    state_floats,
    state_int,
    state_ints,
    state_keys,
    state_list,
    state_mapping,
    state_mismatch,
    state_path,
)

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


_MT_WORDS = 624  # the Mersenne Twister's state words; the internal state adds its position


def check_rng_state(where: str, value: Any) -> tuple[Any, ...]:
    """A saved ``random.Random`` state (``[3, [624 words + position], gauss_next]``), checked
    and tried on a scratch generator; returned as the tuple ``setstate`` takes."""
    items = state_list(where, value, length=3)
    version = state_equal(state_path(where, 0), items[0], 3)
    internal = state_ints(
        state_path(where, 1), items[1], length=_MT_WORDS + 1, maximum=(1 << 32) - 1
    )
    state_int(state_path(state_path(where, 1), _MT_WORDS), internal[-1], maximum=_MT_WORDS)
    gauss = items[2]
    if gauss is not None and (type(gauss) is not float or not math.isfinite(gauss)):
        raise state_error(state_path(where, 2), gauss, "None or a finite float")
    state = (version, tuple(internal), gauss)
    try:
        random.Random().setstate(state)
    except (TypeError, ValueError, OverflowError) as exc:  # pragma: no cover - checked above
        raise state_error(where, value, f"a random.Random state ({exc})") from None
    return state


def _check_header(where: str, state: Any, kind: str, n_arms: int, keys: Sequence[str]) -> None:
    """The keys every controller state has, its kind and its number of arms."""
    if isinstance(state, dict) and "kind" in state and not same_plain(state["kind"], kind):
        raise ValueError(
            f"cannot load AEES state: {state_path(where, 'kind')} is {state['kind']!r}, "
            f"expected {kind!r} (a controller of another kind was saved)."
        )
    state_keys(where, state, ("version", "kind", "n_arms", *keys))
    state_equal(state_path(where, "version"), state["version"], _STATE_VERSION)
    if type(state["n_arms"]) is not int or state["n_arms"] != n_arms:
        raise state_error(
            state_path(where, "n_arms"), state["n_arms"], f"{n_arms} (this controller's arms)"
        )


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

    def check_state_dict(self, state: Any, where: str = "state") -> dict[str, Any]:
        """The checked copy of ``state`` (see the module docstring). Besides types and lengths:
        N_a ≥ 0 and finite, S_a finite, W_a ≥ 0, T = Σ W_a, and N_a ≤ W_a (γ ≤ 1: an update
        adds 1 to N_a and decays it)."""
        keys = ("counts", "reward_sums", "warmup_counts", "total_updates", "rng")
        _check_header(where, state, "discounted_ucb", self.n_arms, keys)
        n = self.n_arms
        counts = state_floats(state_path(where, "counts"), state["counts"], length=n, minimum=0.0)
        sums = state_floats(state_path(where, "reward_sums"), state["reward_sums"], length=n)
        warmup = state_ints(state_path(where, "warmup_counts"), state["warmup_counts"], length=n)
        total = state_int(state_path(where, "total_updates"), state["total_updates"])
        if total != sum(warmup):
            raise state_error(
                state_path(where, "total_updates"), total, f"sum(warmup_counts) = {sum(warmup)}"
            )
        for a, (n_a, w_a) in enumerate(zip(counts, warmup, strict=True)):
            if n_a > w_a:
                raise state_error(
                    state_path(state_path(where, "counts"), a),
                    n_a,
                    f"<= warmup_counts[{a}] = {w_a}",
                )
        rng = check_rng_state(state_path(where, "rng"), state["rng"])
        return {
            "counts": counts,
            "reward_sums": sums,
            "warmup_counts": warmup,
            "total_updates": total,
            "rng": rng,
        }

    def load_checked_state_dict(self, checked: dict[str, Any]) -> None:
        self.counts = list(checked["counts"])
        self.reward_sums = list(checked["reward_sums"])
        self.warmup_counts = list(checked["warmup_counts"])
        self.total_updates = checked["total_updates"]
        self._rng.setstate(checked["rng"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_checked_state_dict(self.check_state_dict(state))


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

    def check_state_dict(self, state: Any, where: str = "state") -> dict[str, Any]:
        """The checked copy of ``state`` (see the module docstring)."""
        _check_header(where, state, "random", self.n_arms, ("rng",))
        return {"rng": check_rng_state(state_path(where, "rng"), state["rng"])}

    def load_checked_state_dict(self, checked: dict[str, Any]) -> None:
        self._rng.setstate(checked["rng"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_checked_state_dict(self.check_state_dict(state))


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

    def check_state_dict(self, state: Any, where: str = "state") -> dict[str, Any]:
        """The checked copy of ``state`` (see the module docstring): the prior and every visited
        bucket are discounted-UCB states; the active bucket is one of them (``None`` only
        before the first visit)."""
        keys = ("random_seed", "global_prior", "buckets", "active_bucket")
        _check_header(where, state, "bucketed", self.n_arms, keys)
        seed = state["random_seed"]
        if seed is not None and type(seed) is not int:
            raise state_error(state_path(where, "random_seed"), seed, "None or an int")
        prior = self.global_prior.check_state_dict(
            state["global_prior"], state_path(where, "global_prior")
        )
        at = state_path(where, "buckets")
        buckets = state_mapping(at, state["buckets"], "a dict of bucket states")
        checked = {}
        for name, sub in buckets.items():
            if type(name) is not str or name not in self.bucket_names:
                raise state_error(at, name, f"bucket names from {list(self.bucket_names)}")
            checked[name] = self.global_prior.check_state_dict(sub, state_path(at, name))
        active = state["active_bucket"]
        if not (type(active) is str and active in checked if checked else active is None):
            raise state_error(
                state_path(where, "active_bucket"), active, f"one of the buckets {list(checked)}"
            )
        return {
            "random_seed": seed,
            "global_prior": prior,
            "buckets": checked,
            "active_bucket": active,
        }

    def check_visits(self, checked: dict[str, Any], visits: Sequence[str], where: str) -> None:
        """``checked`` (from :meth:`check_state_dict`) agrees with the buckets this controller
        was set to, in order: those buckets exist, no other, and the last one is active."""
        if set(checked["buckets"]) != set(visits):
            raise state_mismatch(
                state_path(where, "buckets"),
                f"holds buckets {sorted(checked['buckets'])}, but the logged episodes visited "
                f"{sorted(set(visits))}",
            )
        expected = visits[-1] if visits else None
        if checked["active_bucket"] != expected:
            raise state_error(
                state_path(where, "active_bucket"), checked["active_bucket"], repr(expected)
            )

    def load_checked_state_dict(self, checked: dict[str, Any]) -> None:
        self.random_seed = checked["random_seed"]
        self.global_prior.load_checked_state_dict(checked["global_prior"])
        self.buckets = {}
        for name, sub in checked["buckets"].items():
            ctrl = self._new_bucket(name)
            ctrl.load_checked_state_dict(sub)
            self.buckets[name] = ctrl
        self.active_bucket = checked["active_bucket"]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_checked_state_dict(self.check_state_dict(state))


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

    def check_state_dict(self, state: Any, where: str = "state") -> dict[str, Any]:
        """The checked copy of ``state`` (see the module docstring)."""
        _check_header(where, state, "precomputed", self.n_arms, ("schedule", "position"))
        at = state_path(where, "schedule")
        if state_ints(at, state["schedule"], maximum=self.n_arms - 1) != self.schedule:
            raise state_mismatch(at, "is a different precomputed schedule from this controller's")
        return {"position": state_int(state_path(where, "position"), state["position"])}

    def load_checked_state_dict(self, checked: dict[str, Any]) -> None:
        self.position = checked["position"]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_checked_state_dict(self.check_state_dict(state))


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
