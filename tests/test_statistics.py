"""`tc.analysis.statistics` on constructed data with known answers."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tc.analysis import statistics

# This module tests code that never calls Keras (numpy, pandas, files): CI runs it in one
# backend's leg only (.ci/run).
pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize("n, method", [(3, "t"), (8, "t"), (30, "bootstrap")])
def test_intervals_cover_the_true_mean_at_their_stated_rate(n, method):
    # 2,000 experiments of n paired differences with true mean 0.3: a 95% interval must
    # contain 0.3 in 93-97% of them. Below 30 values the interval is Student's t.
    rng = np.random.default_rng(n)
    draws = rng.normal(0.3, 1.0, size=(2000, n))
    make = statistics.t_intervals if method == "t" else statistics.bootstrap_intervals
    intervals = make(draws, resamples=2000)
    assert {interval.method for interval in intervals} == {method}
    covered = np.mean([interval.low <= 0.3 <= interval.high for interval in intervals])
    assert abs(covered - 0.95) <= 0.02, covered
    assert statistics.mean_interval(draws[0]).method == method


def test_the_bootstrap_undercovers_on_few_seeds_which_is_why_t_is_used_there():
    draws = np.random.default_rng(3).normal(0.3, 1.0, size=(2000, 3))
    intervals = statistics.bootstrap_intervals(draws, resamples=2000)
    covered = np.mean([interval.low <= 0.3 <= interval.high for interval in intervals])
    assert covered < 0.85


def test_the_t_interval_is_scipys():
    values = np.array([0.01, -0.004, 0.02, 0.006])
    interval = statistics.mean_interval(values)
    expected = scipy_stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high))


def test_a_paired_difference_is_the_mean_of_the_pairs():
    a, b = np.array([0.91, 0.92, 0.95, 0.90]), np.array([0.90, 0.90, 0.92, 0.91])
    interval = statistics.paired_difference(a, b)
    assert interval.estimate == pytest.approx(np.mean(a - b)) and interval.n == 4
    assert interval.low <= interval.estimate <= interval.high
    with pytest.raises(ValueError, match="same shape"):
        statistics.paired_difference(a, b[:3])
    with pytest.raises(ValueError, match="NaN"):
        statistics.paired_difference([1.0, math.nan], [0.0, 0.0])


def test_one_value_cannot_be_judged():
    interval = statistics.mean_interval([0.5])
    assert (interval.low, interval.high) == (-math.inf, math.inf)
    assert statistics.judge(interval, +1)[0] == statistics.INCONCLUSIVE


@pytest.mark.parametrize("n", [4, 5, 6])
def test_the_permutation_p_value_equals_the_exact_one_on_small_n(n):
    rng = np.random.default_rng(n)
    x, y = np.arange(n, dtype=float), rng.normal(size=n) + 0.5 * np.arange(n)
    found = statistics.trend(x, y, permutations=math.factorial(n))
    # The exact two-sided p-value: the share of all n! pairings whose |rho| is at least ours.
    import itertools

    observed = scipy_stats.spearmanr(x, y).statistic
    rhos = [scipy_stats.spearmanr(x, np.array(order)).statistic
            for order in itertools.permutations(y)]
    exact = np.mean(np.abs(rhos) >= abs(observed) - 1e-12)
    assert found.rho == pytest.approx(observed)
    assert found.p_value == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("low, high, direction, verdict", [
    (0.01, 0.05, +1, statistics.REPRODUCED), (-0.05, -0.01, -1, statistics.REPRODUCED),
    (-0.05, -0.01, +1, statistics.CONTRADICTED), (0.01, 0.05, -1, statistics.CONTRADICTED),
    (-0.01, 0.05, +1, statistics.INCONCLUSIVE), (-0.01, 0.05, -1, statistics.INCONCLUSIVE),
])
def test_verdicts_follow_the_interval(low, high, direction, verdict):
    found, note = statistics.judge(statistics.Interval(0.0, low, high, 5), direction)
    assert found == verdict
    if verdict == statistics.INCONCLUSIVE:
        assert f"{(high - low) / 2:.4f}" in note


def test_the_edge_of_a_grid_is_not_judged():
    grid = [0.001, 0.01, 0.1, 1.0]
    assert statistics.on_grid_edge(0.001, grid) and statistics.on_grid_edge(1.0, grid)
    assert not statistics.on_grid_edge(0.01, grid) and not statistics.on_grid_edge(0.1, grid)
    assert statistics.on_grid_edge(0.1, [0.1, 1.0])  # two points: every value is an edge


def test_the_fit_threshold():
    assert statistics.fits_training(0.995, 0.99) and statistics.fits_training(0.99, 0.99)
    assert not statistics.fits_training(0.98, 0.99)
    assert not statistics.fits_training(None, 0.99)
    assert not statistics.fits_training(math.nan, 0.99)
