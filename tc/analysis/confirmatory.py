"""The confirmatory campaign's rules, in code (runs/confirmatory/PLAN.md): its primary family
of tests, one per claim of the three papers, and how they are judged.

Each `PrimaryTest` names a claim (docs/PAPERS.md), its statistic, its direction and its unit.
The unit is the seed: every compared setting is trained at the same confirmation seeds, and
- a *paired* test takes one difference per seed (setting A minus setting B) and a one-sided
  t-test of its mean against 0 in the claimed direction;
- a *trend* test takes one Spearman rho per seed (the statistic against beta or T over that
  seed's runs) and a one-sided t-test of the mean rho against 0;
- an *equivalence* test ("top-1 roughly unchanged") is TOST on the per-seed differences with
  the margin `EQUIVALENCE_MARGIN`: equivalent when both one-sided tests reject.

The family's p-values are adjusted together with Holm's step-down correction (`holm`); a test
is *confirmed* when its adjusted p is below `ALPHA`, *not confirmed* otherwise. Runs below the
fit filter (`FIT_THRESHOLD`, accuracy on the un-augmented training set) are excluded, listed
with their accuracy; a setting chosen (a learning rate, a beta) is chosen on validation
accuracy of the tuning seed only, never on test.

`detectable_effect(sd, n)` is the smallest true effect a one-sided t-test at Holm's strictest
level (`ALPHA / family_size()`) detects with 80% power, for the plan's power table.

`judge_family(per_seed, excluded)` applies all of this to the family at once: each test's
per-seed values (after the fit filter) on each architecture give its p-value, the family's
p-values are Holm-adjusted together, and each test gets its verdict; `family_table` writes
them as the report's confirmatory table, beside the first campaign's short-budget verdicts.
"""

import dataclasses

import numpy as np
from scipy import stats

__all__ = ["ALPHA", "ARCHITECTURES", "EQUIVALENCE_MARGIN", "FIT_THRESHOLD", "MIN_SEEDS",
           "PRIMARY", "PrimaryTest", "detectable_effect", "equivalence", "family_size",
           "family_table", "holm", "judge_family", "one_sided_t"]

ALPHA = 0.05
# "Top-1 roughly unchanged": within half a point of test accuracy, both ways.
EQUIVALENCE_MARGIN = 0.005
# Accuracy on the un-augmented training set a run needs for any of its numbers to be compared.
FIT_THRESHOLD = 0.99
POWER = 0.80
# A test with fewer seeds left after the fit filter is not run (its p counts as 1 in the family).
MIN_SEEDS = 5
# Every primary test is made on each architecture: the family is PRIMARY x ARCHITECTURES.
ARCHITECTURES = ("resnet18", "vgg11")
TUNING_SEEDS = (90,)
CONFIRMATION_SEEDS = (100, 101, 102, 103, 104)
# Where the first campaign's effect sat near its detection limit: 8 seeds.
EXTENDED_SEEDS = CONFIRMATION_SEEDS + (105, 106, 107)


@dataclasses.dataclass(frozen=True)
class PrimaryTest:
    """One primary test of the family (see the module docstring)."""
    id: str
    paper: str
    claim: str
    kind: str  # "paired", "trend" or "equivalence"
    statistic: str
    direction: int  # +1: the claim says the statistic is positive; -1: negative
    seeds: tuple = CONFIRMATION_SEEDS


PRIMARY = (
    PrimaryTest("p1_beta_matters", "1", "Generalization depends strongly on beta.", "paired",
                "test accuracy at the beta best on validation (tuning seed) minus at the beta "
                "worst on validation, each at its own tuned learning rate", +1),
    PrimaryTest("p1_norm_weak", "1", "... and only weakly on ||beta z0||.", "paired",
                "range of test accuracy over beta (mean over norms) minus range over "
                "||beta z0|| (mean over betas), on the whole grid", +1),
    PrimaryTest("p1_tuning_helps", "1", "Tuning beta over [1e-2, 1e1] improves on beta = 1.",
                "paired", "test accuracy at the beta chosen on validation minus at beta = 1",
                +1, EXTENDED_SEEDS),
    PrimaryTest("p1_small_beta_peak", "1", "Smaller beta can give better peak accuracy.",
                "paired", "test accuracy at the beta < 1 best on validation minus at the "
                "beta >= 1 best on validation", +1),
    PrimaryTest("p2_decay_matters", "2", "Generalization depends on the gradient-decay beta.",
                "paired", "test accuracy at the beta best on validation minus at the beta worst "
                "on validation", +1),
    PrimaryTest("p2_ece", "2", "Larger beta lowers ECE.", "trend",
                "per-seed Spearman rho of test ECE (15 bins) against beta", -1),
    PrimaryTest("p2_mce", "2", "Larger beta lowers MCE.", "trend",
                "per-seed Spearman rho of test MCE (15 bins) against beta", -1, EXTENDED_SEEDS),
    PrimaryTest("p2_top1_unchanged", "2", "... with top-1 accuracy roughly unchanged.",
                "equivalence", "test accuracy at the largest beta minus at beta = 1, within "
                f"+-{EQUIVALENCE_MARGIN}", 0),
    PrimaryTest("p2_beats_scaling", "2", "A large decay beta calibrates better than post-hoc "
                "temperature scaling.", "paired", "test ECE of the beta = 1 run after "
                "temperature scaling (T fit on validation) minus test ECE at the largest beta",
                +1),
    PrimaryTest("p2_faster", "2", "Smaller beta converges faster.", "paired",
                "mean train accuracy over the first 5 epochs at the smallest beta minus at "
                "beta = 1", +1, EXTENDED_SEEDS),
    PrimaryTest("p2_warmup", "2", "Warming beta up speeds early training.", "paired",
                "mean train accuracy over the first 3 epochs with the warm-up minus at the "
                "fixed target beta", +1),
    PrimaryTest("p2_curriculum", "2", "Small beta learns easy samples first.", "paired",
                "Spearman rho of learning epoch against difficulty at the smallest beta minus "
                "at the largest", +1),
    PrimaryTest("p3_rank", "3", "Higher T gives lower-rank representations.", "trend",
                "per-seed Spearman rho of the features' final effective rank against T", -1),
    PrimaryTest("p3_accuracy_holds", "3", "... while in-distribution accuracy holds.",
                "equivalence", "test accuracy at the largest T minus at T = 1, within "
                f"+-{EQUIVALENCE_MARGIN}", 0),
    PrimaryTest("p3_probe", "3", "Linear-probe transfer to OOD data gets worse at high T.",
                "trend", "per-seed Spearman rho of the features' linear-probe accuracy on the "
                "held-out classes against T", -1),
    PrimaryTest("p3_detection_near", "3", "OOD detection improves at high T (near OOD).",
                "trend", "per-seed Spearman rho of the MSP AUROC against the held-out classes "
                "against T", +1),
    PrimaryTest("p3_detection_far", "3", "OOD detection improves at high T (far OOD).",
                "trend", "per-seed Spearman rho of the MSP AUROC against far OOD images "
                "(digits resized to 28 x 28, and uniform noise) against T", +1),
)


def family_size():
    """How many tests Holm's correction adjusts together: each primary test per architecture."""
    return len(PRIMARY) * len(ARCHITECTURES)


def one_sided_t(values, direction):
    """p-value of a one-sided t-test that the mean of `values` lies on the side of `direction`
    (+1: positive, -1: negative) of 0."""
    values = np.asarray(values, float)
    if len(values) < 2 or direction not in (1, -1):
        raise ValueError(f"one_sided_t needs 2 or more values and a direction of +-1; got "
                         f"{len(values)} values, direction {direction!r}.")
    alternative = "greater" if direction > 0 else "less"
    return float(stats.ttest_1samp(values, 0.0, alternative=alternative).pvalue)


def equivalence(values, margin=EQUIVALENCE_MARGIN):
    """TOST p-value that the mean of `values` lies within (-margin, +margin): the larger of the
    two one-sided t-tests' p-values (equivalent when it is below alpha)."""
    values = np.asarray(values, float)
    if len(values) < 2 or not margin > 0:
        raise ValueError(f"equivalence needs 2 or more values and a positive margin; got "
                         f"{len(values)} values, margin {margin!r}.")
    above = stats.ttest_1samp(values, -margin, alternative="greater").pvalue
    below = stats.ttest_1samp(values, margin, alternative="less").pvalue
    return float(max(above, below))


def holm(p_values):
    """Holm's step-down adjusted p-values, in the order given: the k-th smallest of m is
    multiplied by (m - k + 1), made monotone, capped at 1."""
    p = np.asarray(p_values, float)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"holm needs a list of p-values in [0, 1]; got {p_values!r}.")
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted_sorted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return adjusted


def detectable_effect(sd, n, alpha=None, power=POWER):
    """The smallest true mean a one-sided t-test on `n` per-seed values of standard deviation
    `sd` detects with probability `power`, at level `alpha` (default: Holm's strictest,
    ALPHA / the family's size): the mean whose noncentral t (df = n - 1, noncentrality
    mean / (sd / sqrt(n))) exceeds the test's critical value with probability `power`."""
    from scipy import optimize

    alpha = ALPHA / family_size() if alpha is None else alpha
    if n < 2 or not sd >= 0:
        raise ValueError(f"detectable_effect needs n >= 2 and sd >= 0; got n={n}, sd={sd}.")
    df = n - 1
    critical = stats.t.ppf(1 - alpha, df)
    noncentrality = optimize.brentq(lambda delta: stats.nct.sf(critical, df, delta) - power,
                                    0.0, 1e3)
    return float(noncentrality * sd / np.sqrt(n))


def judge_family(per_seed, excluded=None):
    """The verdict of every primary test on every architecture, Holm-adjusted together.

    Args:
        per_seed: `{(test id, architecture): per-seed values}`, the values of the seeds whose
            runs passed the fit filter (a paired difference, a trend's rho, or an equivalence
            test's difference). A missing pair is a test that was not run.
        excluded: `{(test id, architecture): [excluded run, ...]}`, the runs the fit filter
            took out (listed with their accuracy by the caller).

    Returns:
        One dict per test and architecture, in `PRIMARY` order: id, architecture, kind, n,
        mean, p, holm_p, verdict ("confirmed" / "not confirmed" for paired and trend tests,
        "equivalent" / "not shown equivalent" for equivalence tests, "not run" with fewer than
        `MIN_SEEDS` seeds), detectable (the smallest effect with 80% power at Holm's strictest
        level, for paired and trend tests) and excluded (how many runs the fit filter took out).
        The family has `family_size()` members whether or not each ran: a test not run counts
        as p = 1, so no verdict gains from another's absence.
    """
    excluded = excluded or {}
    known = {(test.id, architecture) for test in PRIMARY for architecture in ARCHITECTURES}
    unknown = sorted(set(per_seed) - known)
    if unknown:
        raise ValueError(f"judge_family got values for {unknown}, which are not primary tests "
                         f"on {', '.join(ARCHITECTURES)}; valid ids: "
                         f"{', '.join(test.id for test in PRIMARY)}.")
    rows = []
    for test in PRIMARY:
        for architecture in ARCHITECTURES:
            values = np.asarray(per_seed.get((test.id, architecture), ()), float)
            if not np.all(np.isfinite(values)):
                raise ValueError(f"{test.id} on {architecture} has a value that is not finite: "
                                 f"{values.tolist()}.")
            ran = len(values) >= MIN_SEEDS
            if not ran:
                p = 1.0
            elif test.kind == "equivalence":
                p = equivalence(values)
            else:
                p = one_sided_t(values, test.direction)
            rows.append({"id": test.id, "architecture": architecture, "kind": test.kind,
                         "n": int(len(values)),
                         "mean": float(values.mean()) if len(values) else float("nan"),
                         "p": p, "ran": ran,
                         "excluded": len(excluded.get((test.id, architecture), ())),
                         "detectable": (detectable_effect(float(values.std(ddof=1)), len(values))
                                        if ran and test.kind != "equivalence"
                                        else float("nan"))})
    for row, adjusted in zip(rows, holm([row["p"] for row in rows])):
        row["holm_p"] = float(adjusted)
        passed = row["ran"] and adjusted < ALPHA
        if not row["ran"]:
            row["verdict"] = "not run"
        elif row["kind"] == "equivalence":
            row["verdict"] = "equivalent" if passed else "not shown equivalent"
        else:
            row["verdict"] = "confirmed" if passed else "not confirmed"
        del row["ran"]
    return rows


def family_table(rows, short_budget=None):
    """The report's confirmatory table (markdown) of `judge_family`'s rows, with the first
    campaign's exploratory short-budget verdict of the same claim beside each
    (`short_budget`: `{(test id, architecture): verdict}`, "-" where it had none)."""
    short_budget = short_budget or {}
    lines = ["| test | architecture | verdict | n | mean | p | Holm p | 80% power at | "
             "excluded by the fit filter | first campaign (exploratory, short budget) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        key = (row["id"], row["architecture"])
        detectable = "-" if np.isnan(row["detectable"]) else f"{row['detectable']:.4f}"
        mean = "-" if np.isnan(row["mean"]) else f"{row['mean']:+.4f}"
        lines.append(f"| `{row['id']}` | {row['architecture']} | {row['verdict']} | {row['n']} | "
                     f"{mean} | {row['p']:.3g} | {row['holm_p']:.3g} | {detectable} | "
                     f"{row['excluded']} | {short_budget.get(key, '-')} |")
    return "\n".join(lines) + "\n"
