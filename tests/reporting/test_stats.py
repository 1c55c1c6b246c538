"""Statistics against numpy / scipy / the standard library."""

from __future__ import annotations

import math

import numpy as np
import pytest
import report_fixtures as fx
from scipy import stats as sps

from aees.reporting.stats import (
    compare_paired,
    compare_seed_maps,
    mean_sd,
    peak_epoch,
    run_metrics,
    steady_state,
)


def test_mean_sd_is_the_sample_sd():
    values = [0.61, 0.64, 0.58, 0.7]
    s = mean_sd(values)
    assert s.n == 4
    assert s.mean == pytest.approx(np.mean(values))
    assert s.sd == pytest.approx(np.std(values, ddof=1))
    assert s.sd != pytest.approx(np.std(values))  # not the population SD


def test_mean_sd_single_value_and_empty():
    one = mean_sd([0.5])
    assert (one.n, one.mean, one.sd) == (1, 0.5, 0.0)
    empty = mean_sd([])
    assert empty.n == 0 and math.isnan(empty.mean) and math.isnan(empty.sd)
    assert mean_sd([None, float("nan"), 2.0]).n == 1


def test_peak_epoch_first_argmax_plus_one():
    assert peak_epoch([0.1, 0.5, 0.3, 0.5]) == 2
    assert peak_epoch([0.9]) == 1
    assert peak_epoch([]) is None


def test_run_metrics_drop_is_best_minus_final():
    result = fx.make_result(fx.Spec(), seed=1, epochs=9, peak_at=4, offset=0.1)
    vals = fx.curve(0.1, 1, 9, 4)
    m = run_metrics(result)
    assert m.best == max(vals) and m.final == vals[-1]
    assert m.drop == pytest.approx(max(vals) - vals[-1])
    assert m.peak_epoch == int(np.argmax(vals)) + 1 == 4


def _reference_bootstrap(a, b, resamples=10_000, seed=0):
    d = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(resamples, d.size))
    return np.percentile(d[idx].mean(axis=1), [2.5, 97.5])


def test_compare_paired_matches_numpy_bootstrap_and_scipy_ttest():
    a = [0.62, 0.615, 0.63, 0.61, 0.625]
    b = [0.58, 0.59, 0.585, 0.575, 0.60]
    cmp = compare_paired(a, b, scale=100)
    low, high = _reference_bootstrap(a, b)
    assert cmp.n == 5
    assert cmp.diff_mean == pytest.approx(100 * (np.mean(a) - np.mean(b)))
    assert cmp.diff_ci_low == pytest.approx(100 * low)
    assert cmp.diff_ci_high == pytest.approx(100 * high)
    assert cmp.p_value == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert cmp.method_std == pytest.approx(100 * np.std(a, ddof=1))
    assert cmp.baseline_mean == pytest.approx(100 * np.mean(b))
    assert cmp.diff_ci_low <= cmp.diff_mean <= cmp.diff_ci_high
    # p is computed on unscaled values: identical for any scale
    assert compare_paired(a, b, scale=1).p_value == pytest.approx(cmp.p_value)


def test_compare_paired_edge_cases():
    with pytest.raises(ValueError):
        compare_paired([1.0, 2.0], [1.0])
    empty = compare_paired([], [])
    assert empty.n == 0 and math.isnan(empty.diff_ci_low)
    single = compare_paired([0.7], [0.6])
    assert single.n == 1 and math.isnan(single.p_value)
    assert single.diff_ci_low == pytest.approx(0.1) and single.diff_ci_high == pytest.approx(0.1)


def test_compare_seed_maps_pairs_on_shared_seeds_only():
    method = {0: 0.6, 1: 0.62, 2: 0.61, 7: 0.9}
    baseline = {0: 0.55, 1: 0.56, 2: 0.58, 3: 0.1}
    seeds, cmp = compare_seed_maps(method, baseline)
    assert seeds == [0, 1, 2]
    assert cmp.diff_mean == pytest.approx(np.mean([0.05, 0.06, 0.03]))


def test_steady_state_excludes_the_first_epoch():
    result = fx.make_result(fx.Spec(), epochs=4, epoch_times=[9.0, 2.0, 3.0, 4.0])
    ss = steady_state(result)
    assert ss is not None and ss.seconds_per_epoch == pytest.approx(3.0)
    assert ss.steps_per_second == pytest.approx(100 / 3.0)  # 400 steps / 4 epochs
    assert ss.tflops_per_second == pytest.approx(1.0 / 3.0)
    assert steady_state(fx.make_result(fx.Spec(), epochs=1, peak_at=1)) is None
