"""Open-loop attribution controls for AEES-LR (docs/protocols.md §11).

Two reward-free controls test whether AEES's noisy-CIFAR gains come from *any* multiplier
changes or from its arm preference:

* ``uniform-random``: every episode's LR arm is ``rng.randrange(3)``;
* ``frequency-matched``: the arm *frequencies* of AEES on the other seeds (leave-one-seed-out,
  same task, label-noise regime and optimizer), turned into exact integer counts by
  largest-remainder apportionment and shuffled -- AEES's marginal preference without its timing.

Every random draw comes from a private ``random.Random(schedule_seed)``; the global RNG is never
touched. The whole sequence is computed before training and replayed with
:meth:`aees.AEES.replay` (a :class:`aees.PrecomputedController` on the LR axis, the noise axis
fixed at 0.0): rewards are still computed and logged, but no controller consumes them.

AEES source traces are found **by content** under ``--aees-trace-root``: every result file is
loaded and kept if its config says it is the matching AEES run (:func:`trace_mismatch`) and its
episode logs are complete and contiguous for the run geometry (:func:`trace_problem`).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees.results import RunResult, RunResultError, load_run_result
from aees.results.traces import (
    LR_MULTIPLIERS,
    arm_index,
    close_to,
    episode_count,
    trace_problem,
)
from aees.runner.config import OPEN_LOOP_MODES, RunConfig, UserError

__all__ = [
    "CIFAR100_SOURCE_SEEDS",
    "LR_MULTIPLIERS",
    "NOISE_CANDIDATES",
    "NOISE_REGIMES",
    "OPEN_LOOP_MODES",
    "OpenLoopPlan",
    "Trace",
    "TraceError",
    "apportion",
    "build_open_loop_plan",
    "check_executed",
    "episode_count",
    "find_aees_traces",
    "frequency_matched_plan",
    "pooled_frequencies",
    "trace_mismatch",
    "trace_problem",
    "uniform_plan",
]

NOISE_CANDIDATES = (0.0,)
#: The thesis CIFAR-100 regimes: name -> (label-noise type, rate).
NOISE_REGIMES = {
    "asym20": ("asymmetric", 0.2),
    "sym20": ("symmetric", 0.2),
    "sym40": ("symmetric", 0.4),
}
#: CIFAR-100 source seeds (thesis SOURCE_SEEDS); other tasks use the seeds that exist.
CIFAR100_SOURCE_SEEDS = (0, 1, 2, 3, 4)
_TOL = 1e-12


class TraceError(UserError):
    """A missing, duplicate or invalid AEES source trace (one line; CLI exit 2)."""


def apportion(probabilities: Sequence[float], total: int) -> list[int]:
    """Largest-remainder (Hamilton) apportionment of ``total`` units by ``probabilities``.

    Quotas ``p·total`` are floored; the leftover units go to the largest fractional parts, ties
    to the lower index. The probabilities must be >= 0 and sum to 1 within 1e-12.
    """
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if not probabilities or any(p < 0 or not math.isfinite(p) for p in probabilities):
        raise ValueError(f"probabilities must be finite and >= 0, got {list(probabilities)}")
    if abs(math.fsum(probabilities) - 1.0) > _TOL:
        raise ValueError(f"probabilities must sum to 1, got {math.fsum(probabilities)!r}")
    quotas = [p * total for p in probabilities]
    counts = [math.floor(q) for q in quotas]
    leftover = total - sum(counts)
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[:leftover]:
        counts[i] += 1
    return counts


def pooled_frequencies(
    lr_values: Iterable[Sequence[float]], candidates: Sequence[float] = LR_MULTIPLIERS
) -> tuple[list[int], list[float]]:
    """Pooled arm counts and q(a) = count(a) / total over several runs' ``selected_lr_values``."""
    counts = [0] * len(candidates)
    for values in lr_values:
        for v in values:
            counts[arm_index(v, candidates)] += 1
    total = sum(counts)
    if total == 0:
        raise ValueError("no selected LR values to pool")
    return counts, [c / total for c in counts]


@dataclass(frozen=True)
class OpenLoopPlan:
    """A fully precomputed LR-arm sequence and where it came from."""

    policy: str
    schedule_seed: int
    candidates: tuple[float, ...]
    indices: tuple[int, ...]
    probabilities: tuple[float, ...]
    integer_counts: tuple[int, ...]
    source_seeds: tuple[int, ...] = ()
    source_artifacts: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def episode_count(self) -> int:
        return len(self.indices)

    @property
    def multipliers(self) -> list[float]:
        return [self.candidates[i] for i in self.indices]

    def summary_line(self) -> str:
        """``precomputed <policy> schedule: episodes=<n> schedule_seed=<s> counts=[…]``."""
        return (
            f"precomputed {self.policy} schedule: episodes={self.episode_count} "
            f"schedule_seed={self.schedule_seed} counts={list(self.integer_counts)}"
        )

    def to_metadata(self) -> dict[str, Any]:
        """The thesis ``OpenLoopPlan.to_metadata()`` (docs/protocols.md §11), JSON-ready."""
        keys = [str(float(c)) for c in self.candidates]
        return {
            "policy": self.policy,
            "reward_free": True,
            "training_feedback_consulted": False,
            "sequence_fully_precomputed": True,
            "schedule_rng": "python.random.Random(local instance)",
            "schedule_seed": self.schedule_seed,
            "episode_count": self.episode_count,
            "lr_candidates": [float(c) for c in self.candidates],
            "probabilities": dict(zip(keys, self.probabilities, strict=True)),
            "integer_counts": dict(zip(keys, self.integer_counts, strict=True)),
            "source_seeds": list(self.source_seeds),
            "source_artifacts": list(self.source_artifacts),
            "planned_lr_indices": list(self.indices),
            "planned_lr_multipliers": self.multipliers,
            **dict(self.extra),
        }


def uniform_plan(
    episodes: int, schedule_seed: int, candidates: Sequence[float] = LR_MULTIPLIERS
) -> OpenLoopPlan:
    """``[rng.randrange(k) for each episode]`` with ``rng = random.Random(schedule_seed)``."""
    rng = random.Random(schedule_seed)
    k = len(candidates)
    indices = tuple(rng.randrange(k) for _ in range(episodes))
    counts = tuple(indices.count(i) for i in range(k))
    return OpenLoopPlan(
        policy="uniform-random",
        schedule_seed=schedule_seed,
        candidates=tuple(float(c) for c in candidates),
        indices=indices,
        probabilities=tuple(1.0 / k for _ in range(k)),
        integer_counts=counts,
        extra={"sampling_seed": schedule_seed},
    )


def frequency_matched_plan(
    source_lr_values: Mapping[int, Sequence[float]],
    target_seed: int,
    episodes: int,
    schedule_seed: int,
    candidates: Sequence[float] = LR_MULTIPLIERS,
    source_artifacts: Mapping[int, str] | None = None,
) -> OpenLoopPlan:
    """Leave-one-seed-out q₋ₛ from the other seeds' ``selected_lr_values``, apportioned to
    exact counts and shuffled with ``random.Random(schedule_seed)``."""
    sources = sorted(s for s in source_lr_values if s != target_seed)
    if not sources:
        raise ValueError(f"no source seeds other than the target seed {target_seed}")
    _, q = pooled_frequencies((source_lr_values[s] for s in sources), candidates)
    counts = apportion(q, episodes)
    indices = [i for i, c in enumerate(counts) for _ in range(c)]
    random.Random(schedule_seed).shuffle(indices)
    artifacts = source_artifacts or {}
    return OpenLoopPlan(
        policy="frequency-matched",
        schedule_seed=schedule_seed,
        candidates=tuple(float(c) for c in candidates),
        indices=tuple(indices),
        probabilities=tuple(q),
        integer_counts=tuple(counts),
        source_seeds=tuple(sources),
        source_artifacts=tuple(artifacts[s] for s in sources if s in artifacts),
        extra={
            "shuffle_seed": schedule_seed,
            "q_minus_target_seed": {str(float(c)): p for c, p in zip(candidates, q, strict=True)},
        },
    )


# --------------------------------------------------------------------------------------------
# AEES source traces
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    """One validated AEES source trace."""

    seed: int
    path: Path
    lr_values: tuple[float, ...]


def _same_list(a: Any, b: Sequence[float]) -> bool:
    return (
        isinstance(a, list)
        and len(a) == len(b)
        and all(close_to(x, y) for x, y in zip(a, b, strict=True))
    )


def trace_mismatch(result: RunResult, config: RunConfig) -> str | None:
    """Why ``result`` is not an AEES run matching the open-loop ``config`` (None if it is):
    adaptive control, same task, optimizer (and SGD momentum), label-noise type and rate,
    candidates, episode length, epochs, batch size, base LR, weight decay, no LR schedule,
    independent axes, no context."""
    c = result.config
    checks: list[tuple[str, bool]] = [
        ("control_mode", c.get("control_mode") == "adaptive"),
        ("task", result.task_name == config.task_name),
        ("optimizer", c.get("optimizer") == config.optimizer),
        ("label_noise_type", c.get("label_noise_type") == config.label_noise_type),
        ("label_noise_rate", close_to(c.get("label_noise_rate"), config.label_noise_rate)),
        ("lr_candidates", _same_list(c.get("lr_candidates"), config.lr_candidates)),
        ("noise_candidates", _same_list(c.get("noise_candidates"), config.noise_candidates)),
        ("episode_length", c.get("episode_length") == config.episode_length),
        ("epochs", c.get("epochs") == config.epochs),
        ("batch_size", c.get("batch_size") == config.batch_size),
        ("lr", close_to(c.get("lr"), config.lr)),
        ("weight_decay", close_to(c.get("weight_decay"), config.weight_decay)),
        ("lr_scheduler", c.get("lr_scheduler", "none") == "none"),
        ("structured_control_mode", c.get("structured_control_mode") == "independent"),
        ("context_mode", c.get("context_mode", "none") == "none"),
    ]
    if config.optimizer == "SGD":
        checks.append(("momentum", close_to(c.get("momentum"), config.momentum)))
    for key, ok in checks:
        if not ok:
            return f"config {key} differs"
    return None


def _result_files(root: Path) -> Iterable[Path]:
    """``.json`` and extensionless files under ``root`` (sorted), skipping hidden and ``_``
    directories, hidden files and sweep manifests."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            suffix = Path(name).suffix
            extensionless = not any(ch.isalpha() for ch in suffix)
            if name.startswith(".") or name.endswith("manifest.json"):
                continue
            if suffix.lower() == ".json" or extensionless:
                yield Path(dirpath) / name


def find_aees_traces(
    root: str | os.PathLike[str], config: RunConfig, steps_per_epoch: int
) -> dict[int, Trace]:
    """The validated AEES source traces of ``config``'s leave-one-seed-out pool, by seed.

    CIFAR-100 needs exactly one trace for each of the seeds 0-4 other than ``config.seed``;
    other tasks use every seed with a matching trace (at least one besides the target).

    Raises:
        TraceError: the root is missing, a required seed has no complete trace or several, or no
            other seed has one (one line naming the seed and what was found).
    """
    base = Path(root)
    if not base.is_dir():
        raise TraceError(f"--aees-trace-root {str(base)!r} is not a directory")
    valid: dict[int, list[Trace]] = {}
    invalid: dict[int, list[str]] = {}
    for path in _result_files(base):
        try:
            result = load_run_result(path)
        except (RunResultError, OSError):
            continue
        if trace_mismatch(result, config) is not None:
            continue
        problem = trace_problem(result, steps_per_epoch)
        if problem is not None:
            invalid.setdefault(result.seed, []).append(f"{path}: {problem}")
            continue
        values = tuple(float(v) for v in (result.episode_logs or {})["selected_lr_values"])
        valid.setdefault(result.seed, []).append(Trace(result.seed, path.resolve(), values))
    what = (
        f"{config.task_name} {config.label_noise_type} {config.label_noise_rate:g} "
        f"{config.optimizer}"
    )
    if config.task_name == "cifar100":
        seeds = [s for s in CIFAR100_SOURCE_SEEDS if s != config.seed]
    else:
        seeds = sorted(s for s in set(valid) | set(invalid) if s != config.seed)
    if not seeds:
        raise TraceError(
            f"--aees-trace-root {str(base)!r}: no AEES trace of another seed for {what} "
            f"(target seed {config.seed})"
        )
    out: dict[int, Trace] = {}
    for seed in seeds:
        found = valid.get(seed, [])
        if len(found) > 1:
            paths = ", ".join(str(t.path) for t in found)
            raise TraceError(f"AEES trace for {what} seed {seed}: {len(found)} found ({paths})")
        if not found:
            bad = invalid.get(seed)
            detail = f"only incomplete ones: {'; '.join(bad)}" if bad else "none found"
            raise TraceError(f"AEES trace for {what} seed {seed} under {str(base)!r}: {detail}")
        out[seed] = found[0]
    return out


def build_open_loop_plan(
    config: RunConfig, steps_per_epoch: int, trace_root: str | os.PathLike[str] | None = None
) -> OpenLoopPlan:
    """The plan of an open-loop ``config`` (``uniform-random`` or ``frequency-matched``).

    Raises:
        TraceError: (frequency-matched) the source traces are missing or invalid.
    """
    if config.control_mode not in OPEN_LOOP_MODES:
        raise ValueError(f"{config.control_mode!r} is not an open-loop mode")
    n = episode_count(steps_per_epoch, config.epochs, config.episode_length)
    seed = config.schedule_seed if config.schedule_seed is not None else 10_000 + config.seed
    if config.control_mode == "uniform-random":
        return uniform_plan(n, seed, config.lr_candidates)
    root = trace_root or config.aees_trace_root or "results/cifar_noisy"
    traces = find_aees_traces(root, config, steps_per_epoch)
    return frequency_matched_plan(
        {s: t.lr_values for s, t in traces.items()},
        config.seed,
        n,
        seed,
        config.lr_candidates,
        {s: str(t.path) for s, t in traces.items()},
    )


def check_executed(plan: OpenLoopPlan, episode_logs: Mapping[str, Any] | None) -> list[float]:
    """The executed LR multipliers; ``ValueError`` unless they equal the planned ones."""
    executed = [float(v) for v in (episode_logs or {}).get("selected_lr_values", [])]
    planned = plan.multipliers
    if len(executed) != len(planned) or any(
        not close_to(a, b) for a, b in zip(executed, planned, strict=True)
    ):
        first = next(
            (
                i
                for i, (a, b) in enumerate(zip(executed, planned, strict=False))
                if not close_to(a, b)
            ),
            min(len(executed), len(planned)),
        )
        raise ValueError(
            f"executed LR schedule differs from the plan at episode {first} "
            f"({len(executed)} executed, {len(planned)} planned)"
        )
    return executed
