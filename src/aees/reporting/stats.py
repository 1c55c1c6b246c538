"""Statistics used by every table and figure (docs/reporting.md §4).

* Mean and **sample** SD (``statistics.stdev``, ddof = 1) over seeds; SD = 0 for n = 1 (printed
  as ``± 0.00``), NaN for n = 0.
* Per seed: best = ``best_val_accuracy`` (max over epochs), final = ``final_val_accuracy``,
  drop = best − final, peak epoch = first argmax of ``val_accuracies`` + 1.
* Paired comparisons on shared seeds: d = a − b; bootstrap 95% CI of mean(d) from 10 000
  resamples of the seeds (``numpy.random.default_rng(0)``, percentile method, linear
  interpolation); two-sided paired t-test p (``scipy.stats.ttest_rel``, on unscaled values).
* Steady-state time per epoch = mean(epoch_wall_clock_seconds[1:]) (first epoch excluded).
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aees.results import RunResult

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "PairedComparison",
    "RunMetrics",
    "SteadyState",
    "Summary",
    "compare_paired",
    "compare_seed_maps",
    "mean_sd",
    "peak_epoch",
    "run_metrics",
    "steady_state",
]

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Summary:
    """n, mean and sample SD of a list of values (NaN-free)."""

    n: int
    mean: float
    sd: float

    @property
    def empty(self) -> bool:
        return self.n == 0

    def scaled(self, factor: float) -> Summary:
        return Summary(self.n, self.mean * factor, self.sd * abs(factor))


def mean_sd(values: Sequence[float | None]) -> Summary:
    """mean = Σx/n, sd = sqrt(Σ(x − mean)² / (n − 1)); sd = 0 for n = 1, both NaN for n = 0.
    ``None``, NaN and ±inf entries are ignored (discovery rejects files holding them; this
    keeps a derived infinity, say a rate over a zero time, from breaking ``statistics``)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return Summary(0, math.nan, math.nan)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return Summary(len(xs), statistics.mean(xs), sd)


def peak_epoch(val_accuracies: Sequence[float]) -> int | None:
    """1-based epoch of the first maximum of ``val_accuracies`` (NaN entries never peak);
    None for an empty or all-NaN list."""
    finite = [(v, i) for i, v in enumerate(val_accuracies) if not math.isnan(v)]
    if not finite:
        return None
    best = max(v for v, _ in finite)
    return next(i for v, i in finite if v == best) + 1


@dataclass(frozen=True)
class RunMetrics:
    """Per-seed accuracy metrics (fractions)."""

    best: float
    final: float
    drop: float
    peak_epoch: int | None


def run_metrics(result: RunResult) -> RunMetrics:
    """best = best_val_accuracy, final = final_val_accuracy, drop = best − final,
    peak epoch = first argmax(val_accuracies) + 1."""
    best = float(result.best_val_accuracy)
    final = float(result.final_val_accuracy)
    return RunMetrics(best, final, best - final, peak_epoch(result.val_accuracies))


@dataclass(frozen=True)
class SteadyState:
    """Timing of a run with the first (warm-up) epoch excluded.

    seconds_per_epoch = mean(t[1:]); steps_per_second = (total_steps / total_epochs) /
    seconds_per_epoch; tflops_per_second = mean(epoch_tflops[1:]) / seconds_per_epoch.
    """

    epochs_counted: int
    seconds_per_epoch: float
    steps_per_second: float | None
    tflops_per_second: float | None


def steady_state(result: RunResult) -> SteadyState | None:
    """Steady-state timing of ``result``; None with fewer than 2 timed epochs."""
    times = result.epoch_wall_clock_seconds
    if len(times) < 2:
        return None
    sec = statistics.fmean(times[1:])
    if sec <= 0:
        return None
    steps = None
    if result.total_epochs > 0 and result.total_steps > 0:
        steps = (result.total_steps / result.total_epochs) / sec
    tflops = None
    if result.epoch_tflops and len(result.epoch_tflops) >= 2:
        tflops = statistics.fmean(result.epoch_tflops[1:]) / sec
    return SteadyState(len(times) - 1, sec, steps, tflops)


@dataclass(frozen=True)
class PairedComparison:
    """Method a vs baseline b on shared seeds; every value but ``p_value`` is scaled."""

    n: int
    method_mean: float
    method_std: float
    baseline_mean: float
    baseline_std: float
    diff_mean: float
    diff_ci_low: float
    diff_ci_high: float
    p_value: float


def compare_paired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    scale: float = 1.0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedComparison:
    """Paired comparison of seed-aligned ``a`` (method) and ``b`` (baseline).

    d = a − b. Means are arithmetic means, SDs sample SDs (0 for n < 2). The CI is the
    [2.5, 97.5] percentile of the means of ``resamples`` bootstrap resamples of d (indices
    ``default_rng(seed).integers(0, n, (resamples, n))``); NaN for n = 0. p is the two-sided
    paired t-test (``scipy.stats.ttest_rel(a, b)``), NaN for n < 2 or zero-variance d with
    zero mean. All values except p are multiplied by ``scale``.

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    import numpy as np

    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    if xa.shape != xb.shape or xa.ndim != 1:
        raise ValueError(f"paired arrays must have the same 1-D shape, got {xa.shape}, {xb.shape}")
    n = int(xa.size)
    if n == 0:
        nan = math.nan
        return PairedComparison(0, nan, nan, nan, nan, nan, nan, nan, nan)
    d = xa - xb
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    boot = d[idx].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    p = math.nan
    if n >= 2:
        from scipy import stats as sps

        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # near-constant d: p stays defined
            p = float(sps.ttest_rel(xa, xb).pvalue)

    def sd(x: np.ndarray) -> float:
        return float(np.std(x, ddof=1)) if x.size > 1 else 0.0

    return PairedComparison(
        n=n,
        method_mean=float(xa.mean()) * scale,
        method_std=sd(xa) * abs(scale),
        baseline_mean=float(xb.mean()) * scale,
        baseline_std=sd(xb) * abs(scale),
        diff_mean=float(d.mean()) * scale,
        diff_ci_low=float(low) * scale,
        diff_ci_high=float(high) * scale,
        p_value=p,
    )


def compare_seed_maps(
    method: Mapping[int, float], baseline: Mapping[int, float], *, scale: float = 1.0
) -> tuple[list[int], PairedComparison]:
    """:func:`compare_paired` on the seeds present in both maps (sorted)."""
    shared = sorted(set(method) & set(baseline))
    return shared, compare_paired(
        [method[s] for s in shared], [baseline[s] for s in shared], scale=scale
    )
