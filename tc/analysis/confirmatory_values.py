"""Each primary test's per-seed values, computed from the confirmatory campaign's runs.

`per_seed_values(runs, epochs, scaling)` returns what `confirmatory.judge_family` judges: for
every primary test (`confirmatory.PRIMARY`) on every architecture (`confirmatory.ARCHITECTURES`),
one value per confirmation seed, and the runs the fit filter took out. The statistics are the
plan's (runs/confirmatory/PLAN.md), fixed here before the campaign's first run:

- A run is compared only if it completed and its `final/train_eval/accuracy` (the un-augmented
  training set) is at least `confirmatory.FIT_THRESHOLD`. A seed gives a value only when every
  run its statistic reads is there and passed; otherwise the seed is dropped, and each failing
  run is listed in `excluded` with its accuracy. No run of a confirmation seed is left out for
  any other reason.
- Every choice is made on the tuning seeds (`confirmatory.TUNING_SEEDS`), on validation
  accuracy (`best/val/accuracy`), among runs that passed the fit filter: the learning rate per
  beta (per T), then the best and worst beta; a confirmation seed is measured at the choice and
  never chooses. Paper 2's decay sweep runs at one rate, so only its betas are chosen there.
- *Paired* values are differences of one seed's runs; *trend* values are one seed's Spearman
  rho of the statistic against beta (paper 2) or T = 1 / beta (paper 3) over all the sweep's
  settings; *equivalence* values are differences in test accuracy.

The paper-3 far-OOD statistic is the mean of the MSP AUROCs against the far sets the runs
scored (`far_ood/<set>/max_softmax_probability/auroc`), one number per run.
"""


import numpy as np
import pandas as pd
from scipy import stats

from tc.analysis import claims, confirmatory, studies

__all__ = ["SHORT_BUDGET_CLAIMS", "fit_passes", "has_campaign", "per_seed_values",
           "short_budget_verdicts", "tuned_choices"]

# The first campaign's claim (tc.analysis.claims, its claims.csv) that each primary test
# judges again, and what its scope adds after "<model> on fashion_mnist"; None: it had none.
SHORT_BUDGET_CLAIMS = {
    "p1_beta_matters": ("Generalization depends strongly on beta", ""),
    "p1_norm_weak": ("Generalization depends strongly on beta", ""),
    "p1_tuning_helps": ("Tuning beta over", ""),
    "p1_small_beta_peak": ("Smaller beta can give better peak accuracy", ""),
    "p2_decay_matters": ("Generalization depends significantly on the gradient-decay", ""),
    "p2_ece": ("Larger beta lowers ECE.", ""),
    "p2_mce": ("Larger beta lowers MCE.", ""),
    "p2_top1_unchanged": None,
    "p2_beats_scaling": ("A large decay beta calibrates better", ""),
    "p2_faster": ("Smaller beta converges faster", ""),
    "p2_warmup": ("Warming beta up", ", to beta = 1"),
    "p2_curriculum": ("Small beta shows a curriculum", ""),
    "p3_rank": ("Higher T gives lower-rank representations (features", ""),
    "p3_accuracy_holds": None,
    "p3_probe": ("Linear-probe transfer of the features", ""),
    "p3_detection_near": ("OOD detection improves at high T (max_softmax_probability", ""),
    "p3_detection_far": None,
}
TEST_ACCURACY = "final/test/accuracy"
VALIDATION_ACCURACY = "best/val/accuracy"
FIT_COLUMN = "final/train_eval/accuracy"
# Early-training windows of paper 2's speed and warm-up tests (PLAN.md).
SPEED_EPOCHS = 5
WARMUP_EPOCHS = 3


def fit_passes(run):
    """Whether a run may be compared: completed, and its un-augmented training accuracy at
    least `confirmatory.FIT_THRESHOLD`."""
    accuracy = run.get(FIT_COLUMN, np.nan)
    return run.get("status") == "completed" and bool(accuracy >= confirmatory.FIT_THRESHOLD)


def _study(runs, name, architecture):
    if runs.empty or "study" not in runs:
        return runs.iloc[0:0]
    return runs[(runs["study"] == name) & (runs["model"] == architecture)]


def _seeds(runs, seeds):
    return runs[runs["seed"].isin(seeds)]


def _setting(runs, column, value):
    return runs[np.isclose(runs[column].astype(float), float(value))]


def tuned_choices(sweep, setting="beta"):
    """On the tuning seeds' runs of `sweep` that passed the fit filter: the learning rate with
    the best validation accuracy at each value of `setting`, and the values of `setting` ranked
    by validation accuracy at their chosen rates (best first).

    Returns `({setting value: learning rate}, [setting values, best first])`; both are empty
    when no tuning run passed."""
    tuning = _seeds(sweep, confirmatory.TUNING_SEEDS)
    tuning = tuning[[fit_passes(run) for _, run in tuning.iterrows()]] if len(tuning) else tuning
    rates, scores = {}, {}
    for value, group in tuning.groupby(setting):
        by_rate = group.groupby("learning_rate")[VALIDATION_ACCURACY].mean()
        rates[float(value)] = float(by_rate.idxmax())
        scores[float(value)] = float(by_rate.max())
    return rates, sorted(scores, key=lambda value: -scores[value])


class _Seeds:
    """Collects one test's per-seed values and the runs its fit filter took out."""

    def __init__(self):
        self.values, self.excluded = [], {}

    def passed(self, runs):
        """True when `runs` is non-empty and every run passed; records those that did not."""
        if runs is None or len(runs) == 0:
            return False
        failing = [run for _, run in runs.iterrows() if not fit_passes(run)]
        for run in failing:
            self.excluded[run["run_dir"]] = float(run.get(FIT_COLUMN, np.nan))
        return not failing


def _one(runs, column, value):
    """The single run of `runs` at `column == value`, as a one-row frame (None if there is not
    exactly one)."""
    chosen = _setting(runs, column, value)
    return chosen if len(chosen) == 1 else None


def _paired(sweep, seeds, pick_a, pick_b, statistic):
    """Per seed, `statistic(a) - statistic(b)` of the runs `pick_a(seed runs)` and `pick_b`."""
    collected = _Seeds()
    for seed in seeds:
        seed_runs = _seeds(sweep, (seed,))
        a, b = pick_a(seed_runs), pick_b(seed_runs)
        if collected.passed(a) & collected.passed(b):
            collected.values.append(statistic(a) - statistic(b))
    return collected


def _test_accuracy(runs):
    return float(runs[TEST_ACCURACY].iloc[0])


def _at_tuned_rate(rates, value, setting="beta"):
    def pick(seed_runs):
        if value not in rates:
            return None
        at_value = _setting(seed_runs, setting, value)
        return _one(at_value, "learning_rate", rates[value])
    return pick


def _trend(sweep, seeds, x, statistic, settings):
    """Per seed, Spearman rho of `statistic(run)` against `x` over the seed's run at each of
    `settings` (every one must be there and pass)."""
    collected = _Seeds()
    for seed in seeds:
        seed_runs = _seeds(sweep, (seed,))
        picked = [_one(seed_runs, x, value) for value in settings]
        if len(settings) >= 3 and all([collected.passed(run) for run in picked]):
            xs = [float(run[x].iloc[0]) for run in picked]
            ys = [statistic(run) for run in picked]
            collected.values.append(float(stats.spearmanr(xs, ys).statistic))
    return collected


def _column(name):
    return lambda runs: float(runs[name].iloc[0])


def _far_msp_auroc(runs):
    columns = [c for c in runs if c.startswith("far_ood/")
               and c.endswith("/max_softmax_probability/auroc")]
    values = runs[columns].iloc[0].astype(float)
    return float(values.mean()) if len(columns) and values.notna().all() else float("nan")


def _early_train_accuracy(epochs, first_epochs):
    def statistic(runs):
        run_dir = runs["run_dir"].iloc[0]
        curve = epochs[(epochs["run_dir"] == run_dir) & (epochs["epoch"] <= first_epochs)]
        if curve["epoch"].nunique() < first_epochs:
            return float("nan")
        return float(curve["train/accuracy"].mean())
    return statistic


def _paper1(runs, architecture, seeds_of):
    sweep = _study(runs, studies.P1_BETA_SWEEP, architecture)
    rates, ranked = tuned_choices(sweep)
    results = {}
    if ranked:
        best, worst = ranked[0], ranked[-1]
        small = [beta for beta in ranked if beta < 1.0]
        large = [beta for beta in ranked if beta >= 1.0]
        pairs = {"p1_beta_matters": (best, worst), "p1_tuning_helps": (best, 1.0)}
        if small and large:
            pairs["p1_small_beta_peak"] = (small[0], large[0])
        for test_id, (a, b) in pairs.items():
            results[test_id] = _paired(sweep, seeds_of(test_id), _at_tuned_rate(rates, a),
                                       _at_tuned_rate(rates, b), _test_accuracy)
    grid = _study(runs, studies.P1_LOGIT_NORM_GRID, architecture)
    results["p1_norm_weak"] = _norm_weak(grid, seeds_of("p1_norm_weak"))
    return results


def _norm_weak(grid, seeds):
    """Per seed, the range over beta of test accuracy (mean over norms) minus the range over
    the initial logit norm (mean over betas), on the seed's whole grid."""
    collected = _Seeds()
    betas = sorted(grid["beta"].unique()) if len(grid) else []
    norms = sorted(grid["init_logit_norm"].dropna().unique()) if len(grid) else []
    for seed in seeds:
        seed_runs = _seeds(grid, (seed,))
        cells = [[_one(_setting(seed_runs, "beta", beta), "init_logit_norm", norm)
                  for norm in norms] for beta in betas]
        if len(betas) < 2 or len(norms) < 2 or not all(
                [collected.passed(cell) for row in cells for cell in row]):
            continue
        accuracy = np.array([[_test_accuracy(cell) for cell in row] for row in cells])
        over_beta, over_norm = accuracy.mean(axis=1), accuracy.mean(axis=0)
        collected.values.append(float(np.ptp(over_beta) - np.ptp(over_norm)))
    return collected


def _paper2(runs, epochs, scaling, architecture, seeds_of):
    sweep = _study(runs, studies.P2_DECAY_SWEEP, architecture)
    warmup = _study(runs, studies.P2_WARMUP, architecture)
    results = {}
    betas = sorted(float(beta) for beta in sweep["beta"].unique()) if len(sweep) else []
    if not betas:
        return results
    _, ranked = tuned_choices(sweep)
    at = lambda beta: lambda seed_runs: _one(seed_runs, "beta", beta)  # noqa: E731
    if ranked:
        results["p2_decay_matters"] = _paired(sweep, seeds_of("p2_decay_matters"),
                                              at(ranked[0]), at(ranked[-1]), _test_accuracy)
    for test_id, metric in (("p2_ece", "ece"), ("p2_mce", "mce")):
        results[test_id] = _trend(sweep, seeds_of(test_id), "beta",
                                  _column(f"final/test/{metric}"), betas)
    smallest, largest = betas[0], betas[-1]
    results["p2_top1_unchanged"] = _paired(sweep, seeds_of("p2_top1_unchanged"), at(largest),
                                           at(1.0), _test_accuracy)
    scaled_ece = {} if scaling is None or scaling.empty else dict(
        zip(scaling["run_dir"], scaling["ece_after"]))
    results["p2_beats_scaling"] = _paired(
        sweep, seeds_of("p2_beats_scaling"), at(1.0), at(largest),
        _ScaledOrPlainECE(scaled_ece))
    results["p2_faster"] = _paired(sweep, seeds_of("p2_faster"), at(smallest), at(1.0),
                                   _early_train_accuracy(epochs, SPEED_EPOCHS))
    warm_at = lambda seed_runs: warmup[warmup["seed"].isin(seed_runs["seed"])]  # noqa: E731
    results["p2_warmup"] = _paired(
        sweep, seeds_of("p2_warmup"),
        lambda seed_runs: warm_at(seed_runs) if len(warm_at(seed_runs)) == 1 else None,
        at(1.0), _early_train_accuracy(epochs, WARMUP_EPOCHS))
    results["p2_curriculum"] = _curriculum(sweep, seeds_of("p2_curriculum"), smallest, largest)
    return results


class _ScaledOrPlainECE:
    """Test ECE of a beta = 1 run after temperature scaling (the first call of a pair), and the
    plain test ECE of the large-beta run (the second)."""

    def __init__(self, scaled_ece):
        self.scaled_ece = scaled_ece

    def __call__(self, runs):
        run = runs.iloc[0]
        if np.isclose(float(run["beta"]), 1.0):
            return float(self.scaled_ece.get(run["run_dir"], np.nan))
        return float(run["final/test/ece"])


def _curriculum(sweep, seeds, smallest, largest):
    collected = _Seeds()
    for seed in seeds:
        seed_runs = _seeds(sweep, (seed,))
        small, plain, large = (_one(seed_runs, "beta", beta) for beta in (smallest, 1.0, largest))
        if all([collected.passed(run) for run in (small, plain, large)]):
            difficulty = claims.example_difficulty(plain.iloc[0])
            collected.values.append(claims.learning_order_rho(small.iloc[0], difficulty)
                                    - claims.learning_order_rho(large.iloc[0], difficulty))
    return collected


def _paper3(runs, architecture, seeds_of):
    sweep = _study(runs, studies.P3_TEMPERATURE_SWEEP, architecture)
    if sweep.empty:
        return {}
    sweep = sweep.assign(temperature=1.0 / sweep["beta"].astype(float))
    rates, _ = tuned_choices(sweep, "temperature")
    temperatures = sorted(rates)
    # The confirmation seeds' runs at each T's chosen rate.
    chosen = [run for temperature in temperatures for run in [_setting(
        _setting(sweep, "temperature", temperature), "learning_rate", rates[temperature])]]
    confirmed = pd.concat(chosen) if chosen else sweep.iloc[0:0]
    at = lambda t: lambda seed_runs: _one(seed_runs, "temperature", t)  # noqa: E731
    results = {
        "p3_rank": _trend(confirmed, seeds_of("p3_rank"), "temperature",
                          _column("final/rank/features/effective"), temperatures),
        "p3_probe": _trend(confirmed, seeds_of("p3_probe"), "temperature",
                           _column("probe/accuracy"), temperatures),
        "p3_detection_near": _trend(confirmed, seeds_of("p3_detection_near"), "temperature",
                                    _column("ood/max_softmax_probability/auroc"), temperatures),
        "p3_detection_far": _trend(confirmed, seeds_of("p3_detection_far"), "temperature",
                                   _far_msp_auroc, temperatures),
    }
    if temperatures:
        results["p3_accuracy_holds"] = _paired(confirmed, seeds_of("p3_accuracy_holds"),
                                               at(temperatures[-1]), at(1.0), _test_accuracy)
    return results


def per_seed_values(runs, epochs, scaling=None):
    """`(per_seed, excluded)` for `confirmatory.judge_family`.

    Args:
        runs: `tc.analysis.load`'s table of the campaign's runs (any others are ignored: a
            run belongs to a study by its `--study`).
        epochs: `tc.analysis.load`'s per-epoch table of the same runs.
        scaling: `tc.analysis.scaling.temperature_scaling_table` of the runs (needed by
            `p2_beats_scaling`; without it that test has no values).

    Returns:
        `per_seed`: `{(test id, architecture): [value per seed that gave one]}`; `excluded`:
        `{(test id, architecture): [(run directory, un-augmented training accuracy)]}`.
    """
    seeds_by_test = {test.id: test.seeds for test in confirmatory.PRIMARY}
    per_seed, excluded = {}, {}
    for architecture in confirmatory.ARCHITECTURES:
        found = {}
        found.update(_paper1(runs, architecture, seeds_by_test.get))
        found.update(_paper2(runs, epochs, scaling, architecture, seeds_by_test.get))
        found.update(_paper3(runs, architecture, seeds_by_test.get))
        for test_id, collected in found.items():
            values = [value for value in collected.values if np.isfinite(value)]
            if values:
                per_seed[(test_id, architecture)] = values
            if collected.excluded:
                excluded[(test_id, architecture)] = sorted(collected.excluded.items())
    return per_seed, excluded


def has_campaign(runs):
    """Whether `runs` hold any run of the confirmatory campaign (a study of its flagfiles at a
    tuning or confirmation seed)."""
    if runs.empty or "study" not in runs:
        return False
    names = {studies.P1_BETA_SWEEP, studies.P1_LOGIT_NORM_GRID, studies.P2_DECAY_SWEEP,
             studies.P2_WARMUP, studies.P3_TEMPERATURE_SWEEP, studies.CONFIRMATORY_PILOT}
    seeds = set(confirmatory.TUNING_SEEDS) | set(confirmatory.EXTENDED_SEEDS)
    return bool((runs["study"].isin(names) & runs["seed"].isin(seeds)).any())


def short_budget_verdicts(claim_table, dataset="fashion_mnist"):
    """`{(test id, architecture): verdict}` of the first campaign's claim table (its
    claims.csv) for each primary test it judged on `dataset`, marked exploratory."""
    verdicts = {}
    if claim_table is None or claim_table.empty:
        return verdicts
    for test_id, source in SHORT_BUDGET_CLAIMS.items():
        if source is None:
            continue
        start, scope_tail = source
        for architecture in confirmatory.ARCHITECTURES:
            scope = f"{architecture} on {dataset}{scope_tail}"
            rows = claim_table[claim_table["claim"].str.startswith(start)
                               & (claim_table["scope"] == scope)]
            if len(rows):
                verdicts[(test_id, architecture)] = " / ".join(sorted(set(rows["verdict"])))
    return verdicts
