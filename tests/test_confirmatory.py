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


def _family(effect_of, n=5, seed=0):
    """Per-seed values for every test: a strong effect in the claimed direction (or, for an
    equivalence test, differences well inside the margin) unless `effect_of` says otherwise."""
    rng = np.random.default_rng(seed)
    values = {}
    for test in confirmatory.PRIMARY:
        for architecture in confirmatory.ARCHITECTURES:
            mean = effect_of.get((test.id, architecture),
                                 0.0 if test.kind == "equivalence" else 0.05 * test.direction)
            values[(test.id, architecture)] = mean + rng.normal(0, 0.001, n)
    return values


def test_the_family_is_judged_with_holm_over_all_its_tests():
    values = _family({("p1_tuning_helps", "vgg11"): 0.0, ("p3_accuracy_holds", "resnet18"): 0.02})
    rows = confirmatory.judge_family(values, excluded={("p2_ece", "resnet18"): ["r1", "r2"]})
    assert len(rows) == confirmatory.family_size()
    by_key = {(row["id"], row["architecture"]): row for row in rows}
    # Every p by scipy, the adjusted ones by Holm over all 34.
    for test in confirmatory.PRIMARY:
        for architecture in confirmatory.ARCHITECTURES:
            row, sample = by_key[(test.id, architecture)], values[(test.id, architecture)]
            if test.kind == "equivalence":
                expected = max(stats.ttest_1samp(sample, -0.005, alternative="greater").pvalue,
                               stats.ttest_1samp(sample, 0.005, alternative="less").pvalue)
            else:
                expected = stats.ttest_1samp(
                    sample, 0.0, alternative="greater" if test.direction > 0 else "less").pvalue
            assert row["p"] == pytest.approx(expected)
    np.testing.assert_allclose([row["holm_p"] for row in rows],
                               confirmatory.holm([row["p"] for row in rows]))
    assert by_key[("p2_ece", "resnet18")]["verdict"] == "confirmed"
    assert by_key[("p2_ece", "resnet18")]["excluded"] == 2
    assert by_key[("p1_tuning_helps", "vgg11")]["verdict"] == "not confirmed"
    assert by_key[("p2_top1_unchanged", "vgg11")]["verdict"] == "equivalent"
    # A difference of 0.02 is outside the +-0.005 margin: not shown equivalent.
    assert by_key[("p3_accuracy_holds", "resnet18")]["verdict"] == "not shown equivalent"


def test_a_test_with_too_few_seeds_is_not_run_and_counts_as_p_1():
    values = _family({})
    values[("p2_mce", "vgg11")] = values[("p2_mce", "vgg11")][:confirmatory.MIN_SEEDS - 1]
    del values[("p3_probe", "resnet18")]
    rows = confirmatory.judge_family(values)
    by_key = {(row["id"], row["architecture"]): row for row in rows}
    for key in (("p2_mce", "vgg11"), ("p3_probe", "resnet18")):
        assert by_key[key]["verdict"] == "not run" and by_key[key]["p"] == 1.0
    assert by_key[("p2_mce", "vgg11")]["n"] == confirmatory.MIN_SEEDS - 1
    # Still 34 in the family: the strictest multiplier is 34, not 32.
    smallest = min(rows, key=lambda row: row["p"])
    assert smallest["holm_p"] == pytest.approx(min(1.0, smallest["p"] * 34))


def test_the_family_refuses_unknown_tests_and_non_finite_values():
    with pytest.raises(ValueError, match=r"not primary tests.*valid ids: p1_beta_matters"):
        confirmatory.judge_family({("p9_unknown", "resnet18"): [0.1] * 5})
    with pytest.raises(ValueError, match="p2_ece on vgg11 has a value that is not finite"):
        confirmatory.judge_family({("p2_ece", "vgg11"): [0.1, np.nan, 0.2, 0.3, 0.1]})


def test_the_table_shows_each_verdict_beside_the_short_budget_one():
    rows = confirmatory.judge_family(_family({}))
    table = confirmatory.family_table(rows, {("p2_ece", "resnet18"): "reproduced"})
    lines = table.strip().splitlines()
    assert len(lines) == 2 + confirmatory.family_size()
    ece = next(line for line in lines if line.startswith("| `p2_ece` | resnet18 |"))
    cells = [cell.strip() for cell in ece.strip("|").split("|")]
    assert cells[2] == "confirmed" and cells[3] == "5" and cells[-1] == "reproduced"
    assert next(line for line in lines if "`p2_ece` | vgg11" in line).endswith("| - |")
