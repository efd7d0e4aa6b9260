"""The confirmatory campaign's rules (tc.analysis.confirmatory) against closed forms and scipy."""

import numpy as np
import pytest
from scipy import stats

from tc.analysis import confirmatory

pytestmark = pytest.mark.backend_independent  # numpy and scipy only


def test_holm_matches_the_step_down_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> monotone
    # 0.02, 0.03, 0.06, 0.06, back in the order given.
    np.testing.assert_allclose(confirmatory.holm([0.01, 0.04, 0.03, 0.005]),
                               [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(confirmatory.holm([0.5, 0.9]), [1.0, 1.0])
    with pytest.raises(ValueError, match=r"p-values in \[0, 1\]"):
        confirmatory.holm([0.1, 1.5])


def test_one_sided_t_and_tost_match_the_t_distribution():
    values = np.array([0.012, 0.004, 0.009, 0.015, 0.007])
    t = values.mean() / (values.std(ddof=1) / np.sqrt(len(values)))
    assert confirmatory.one_sided_t(values, +1) == pytest.approx(stats.t.sf(t, 4))
    assert confirmatory.one_sided_t(values, -1) == pytest.approx(stats.t.cdf(t, 4))
    small = np.array([0.001, -0.002, 0.0005, 0.0015, -0.001])
    se = small.std(ddof=1) / np.sqrt(len(small))
    lower = stats.t.sf((small.mean() + 0.005) / se, 4)
    upper = stats.t.cdf((small.mean() - 0.005) / se, 4)
    assert confirmatory.equivalence(small) == pytest.approx(max(lower, upper))
    assert confirmatory.equivalence(small) < 0.05 < confirmatory.equivalence(values)


def test_the_detectable_effect_has_80_percent_power_in_simulation():
    # Monte Carlo: draws of n per-seed values with that mean and sd; the one-sided t-test at
    # Holm's strictest level rejects in about 80% of them.
    rng = np.random.default_rng(0)
    alpha = confirmatory.ALPHA / confirmatory.family_size()
    for sd, n in ((0.003, 5), (0.01, 8)):
        effect = confirmatory.detectable_effect(sd, n)
        draws = rng.normal(effect, sd, size=(20000, n))
        p = stats.ttest_1samp(draws, 0.0, axis=1, alternative="greater").pvalue
        assert np.mean(p < alpha) == pytest.approx(0.80, abs=0.015), (sd, n)
    assert confirmatory.detectable_effect(0.003, 8) < confirmatory.detectable_effect(0.003, 5)


def test_the_primary_family_has_one_test_per_claim_fresh_seeds_and_the_plan_lists_each():
    import pathlib

    ids = [test.id for test in confirmatory.PRIMARY]
    assert len(ids) == len(set(ids)) and {test.paper for test in confirmatory.PRIMARY} == {
        "1", "2", "3"}
    used_before = set(range(0, 6))  # the first campaign's seeds
    for test in confirmatory.PRIMARY:
        assert len(test.seeds) >= 5 and not set(test.seeds) & used_before
        assert not set(test.seeds) & set(confirmatory.TUNING_SEEDS)
        assert test.kind in ("paired", "trend", "equivalence")
        assert (test.direction == 0) == (test.kind == "equivalence")
    plan = (pathlib.Path(__file__).resolve().parent.parent / "runs" / "confirmatory" /
            "PLAN.md").read_text()
    for test in confirmatory.PRIMARY:
        assert f"`{test.id}`" in plan, test.id
