"""The papers' empirical claims (docs/PAPERS.md), each judged on the runs at hand by a rule
written in this file. Which rules a campaign fixed before its data, and which it changed after
seeing data, is its plan's to record (runs/fashion_mnist/PLAN.md, "Changes"); the report prints
those changes beside the verdicts.

Every claim measures one effect, with the claimed sign, on the runs of one study, per dataset
and model (a "scope"):
- a paired effect over seeds (`statistics.paired_difference`: the same seed under two settings)
  or a trend over all runs of a sweep (`statistics.trend`);
- the verdict is `statistics.judge`'s: "reproduced" when the 95% interval excludes zero in the
  claimed direction ("contradicted" in the other; "inconclusive" otherwise, with the smallest
  effect the data could have detected); for a trend, when the permutation p-value is below
  `TREND_ALPHA` with the claimed sign;
- a comparison is "not judged" when it rests on fewer than `MIN_SEEDS` seeds, when a
  learning rate tuned per setting sits on the edge of its grid, or (generalization claims) when
  its runs did not fit their training set (final train accuracy below `FIT_THRESHOLD`);
  paper 3's claims (ranks, probes, OOD detection: claims about trained models) are judged on
  the runs that fit, with the trend over every run in the note.

Each `Claim` row names its rule with its parameters and the runs that carry it. The checks of
our own derivations (`tc.analysis.derivations`) are a separate table and never count as
reproduction.
"""

import dataclasses
import itertools
import os

import numpy as np
import pandas as pd
from scipy import stats

from tc.analysis import statistics, studies
from tc.analysis.derivations import P1, P2, P3

MIN_SEEDS = 3
FIT_THRESHOLD = 0.95  # final train accuracy a run needs for its generalization to be judged
# Per dataset, where a campaign's plan set another before its data (runs/fashion_mnist/PLAN.md).
FIT_THRESHOLDS = {"fashion_mnist": 0.90}
TREND_ALPHA = 0.05
EARLY_EPOCHS = 5  # "converges faster": mean train accuracy over the first epochs
WARMUP_EARLY_EPOCHS = 3
NOT_TESTABLE = "not testable on these runs"
VERDICTS = (*statistics.VERDICTS, NOT_TESTABLE)

PAIRED_RULE = ("{effect}, paired by seed; reproduced if its 95% CI (Student's t below 30 "
               "seeds, BCa bootstrap with 10,000 resamples from 30) excludes 0 on the {sign} "
               "side; contradicted if it excludes 0 on the other; inconclusive otherwise; not "
               "judged with fewer than {seeds} seeds")
TREND_RULE = ("Spearman rho of {effect} over all runs, permutation p-value (two-sided, 10,000 "
              "permutations); reproduced if rho {sign} 0 with p < {alpha}; contradicted if the "
              "opposite sign with p < {alpha}; inconclusive otherwise")


@dataclasses.dataclass
class Claim:
    paper: str
    claim: str
    scope: str
    verdict: str
    effect: str
    rule: str
    note: str = ""
    runs: str = ""
    # The claim this row is a part of, where one claim is judged in several parts (a layer's
    # rank, an OOD score); "" = the row's own claim.
    family: str = ""


def _paired_rule(effect, direction, extra=""):
    sign = "positive" if direction > 0 else "negative"
    return PAIRED_RULE.format(effect=effect, sign=sign, seeds=MIN_SEEDS) + extra


def _trend_rule(effect, direction):
    return TREND_RULE.format(effect=effect, sign=">" if direction > 0 else "<",
                             alpha=TREND_ALPHA)


def _scope_threshold(runs):
    """The fit threshold of the dataset of a scope's runs."""
    return fit_threshold(runs["dataset"].iloc[0] if len(runs) and "dataset" in runs else "")


def _fit_rule(runs):
    """The fit filter's part of a rule, with the threshold of the scope's dataset."""
    return (f"; runs below the fit threshold of final train accuracy "
            f"({_scope_threshold(runs):.2f}) are left out")


def fit_threshold(dataset):
    return FIT_THRESHOLDS.get(dataset, FIT_THRESHOLD)


def _fit_note(group, fitted):
    left_out = len(group) - len(fitted)
    if not left_out:
        return ""
    return (f"{left_out} of {len(group)} runs left out: final train accuracy below "
            f"{_scope_threshold(group):.2f}")


def _untestable(paper, claim, why, scope="all"):
    return Claim(paper, claim, scope, NOT_TESTABLE, "", "", why)


def _scopes(runs):
    """`(scope name, runs)` per dataset and model."""
    if runs.empty:
        return []
    return [(f"{model} on {dataset}", group)
            for (dataset, model), group in runs.groupby(studies.GROUP)]


def _run_list(runs):
    return "; ".join(sorted(runs["run_dir"].astype(str))) if "run_dir" in runs else ""


def _fitted(runs):
    if runs.empty or "final/train/accuracy" not in runs:
        return runs
    datasets = runs["dataset"] if "dataset" in runs else [None] * len(runs)
    keep = [statistics.fits_training(value, fit_threshold(dataset))
            for value, dataset in zip(runs["final/train/accuracy"], datasets)]
    return runs[keep]


def _pairs(runs, key, first, second, value):
    """Seed-paired values of `value` at `key == first` and `key == second`."""
    a = runs[np.isclose(runs[key], first)].set_index("seed")[value]
    b = runs[np.isclose(runs[key], second)].set_index("seed")[value]
    seeds = sorted(set(a.dropna().index) & set(b.dropna().index))
    return a.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float), seeds


def _paired_claim(paper, claim, scope, a, b, direction, effect, runs, extra_rule="", note=""):
    rule = _paired_rule(effect, direction, extra_rule)
    if len(a) < MIN_SEEDS:
        return Claim(paper, claim, scope, statistics.NOT_JUDGED, f"n = {len(a)} seeds", rule,
                     _join(f"fewer than {MIN_SEEDS} seeds with both settings", note),
                     _run_list(runs))
    interval = statistics.paired_difference(a, b)
    verdict, detectable = statistics.judge(interval, direction)
    return Claim(paper, claim, scope, verdict, str(interval), rule, _join(detectable, note),
                 _run_list(runs))


def _join(*notes):
    return "; ".join(note for note in notes if note)


def _trend_claim(paper, claim, scope, x, y, direction, effect, runs, note=""):
    rule = _trend_rule(effect, direction)
    x, y = np.asarray(x, float), np.asarray(y, float)
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.sum() < 3 or len(set(x[finite])) < 3:
        return Claim(paper, claim, scope, statistics.NOT_JUDGED, f"n = {int(finite.sum())}",
                     rule, _join("fewer than 3 settings", note), _run_list(runs))
    found = statistics.trend(x[finite], y[finite])
    if found.p_value < TREND_ALPHA:
        verdict = (statistics.REPRODUCED if np.sign(found.rho) == direction
                   else statistics.CONTRADICTED)
    else:
        verdict = statistics.INCONCLUSIVE
    return Claim(paper, claim, scope, verdict, str(found), rule, note, _run_list(runs))


def _fitted_trend_claim(paper, claim, scope, group, x, y, direction, effect, family=""):
    """A trend judged on the runs of `group` that fit their training set (paper 3's claims
    are about trained models), with the trend over every run beside it in the note when some
    were left out."""
    fitted = _fitted(group)
    row = _trend_claim(paper, claim, scope, fitted[x], fitted[y], direction, effect, fitted,
                       note=_fit_note(group, fitted))
    row.rule += _fit_rule(group)
    row.family = family
    if len(fitted) < len(group):
        values = group[[x, y]].astype(float).dropna()
        if len(values) >= 3 and values[x].nunique() >= 3:
            row.note = _join(row.note, "with the runs that did not fit (all "
                             f"{len(values)}): {statistics.trend(values[x], values[y])}")
    return row


def _choose_on_validation(runs, key):
    """Per seed, the setting of `key` with the best and the worst validation accuracy, and
    their test accuracies: `(best_test, worst_test, seeds)`."""
    best, worst, seeds = [], [], []
    for seed, group in runs.groupby("seed"):
        group = group.dropna(subset=["best/val/accuracy", "final/test/accuracy"])
        if group[key].nunique() < 2:
            continue
        ranked = group.sort_values("best/val/accuracy")
        best.append(ranked.iloc[-1]["final/test/accuracy"])
        worst.append(ranked.iloc[0]["final/test/accuracy"])
        seeds.append(seed)
    return np.asarray(best, float), np.asarray(worst, float), seeds


# --- paper 1 -----------------------------------------------------------------------------------

def paper1(runs, derivation_checks):
    sweep = studies.best_learning_rate(studies.paper1_beta_sweep(runs))
    all_rates = studies.paper1_beta_sweep(runs)
    return (_p1_beta_vs_norm(studies.paper1_logit_norm_grid(runs))
            + _p1_dynamical(sweep, all_rates, derivation_checks)
            + _p1_tuning_helps(sweep, all_rates) + _p1_stability(sweep))


def _edge_of_rate_grid(chosen_runs, all_rates):
    """The betas whose chosen learning rate is on the edge of the rates tried for them.

    The rates tried are those of the chosen runs' own dataset and model: another
    architecture's grid says nothing about where this one's best rate lies.
    """
    edges = set()
    for (dataset, model, beta), group in chosen_runs.groupby(studies.GROUP + ["beta"]):
        same_scope = ((all_rates["dataset"] == dataset) & (all_rates["model"] == model)
                      & np.isclose(all_rates["beta"], beta))
        tried = all_rates.loc[same_scope, "learning_rate"].unique()
        if len(tried) > 1 and statistics.on_grid_edge(group["learning_rate"].iloc[0], tried):
            edges.add(float(beta))
    return sorted(edges)


def _unless_on_grid_edge(row, sweep, all_rates):
    """`row`, not judged where a learning rate tuned per beta sits on the edge of its grid."""
    edges = _edge_of_rate_grid(sweep, all_rates)
    if edges:
        row.verdict = statistics.NOT_JUDGED
        row.note = _join("learning rate chosen on the edge of its grid for beta = "
                         f"{', '.join(f'{beta:g}' for beta in edges)}", row.note)
    return row


def _p1_beta_vs_norm(grid):
    """Judged on the seeds whose every (beta, norm) cell of the grid trained and fit: not judged
    where fewer than `MIN_SEEDS` seeds have the whole grid. The largest complete sub-grid
    (`_complete_subgrid`) is a rule chosen after seeing which cells trained (change 6 of
    runs/fashion_mnist/PLAN.md): its result is a post-hoc note beside the verdict, never the
    verdict."""
    claim = "Generalization depends strongly on beta and only weakly on ||beta z0||."
    trained = studies.completed(grid)
    if trained.empty or trained["beta"].nunique() < 2 or trained["init_logit_norm"].nunique() < 2:
        return [_untestable(P1, claim, "no (beta, ||beta z0||) grid among the runs")]
    rows = []
    for scope, planned in _scopes(grid):
        all_runs = studies.completed(planned)
        group = _fitted(all_runs)
        betas = sorted(planned["beta"].unique())
        norms = sorted(planned["init_logit_norm"].unique())
        beta_spread, norm_spread, missing = _grid_spreads(group, betas, norms)
        effect = ("test accuracy range over beta (mean over norms) minus range over "
                  "||beta z0|| (mean over betas), per seed with every cell of the grid")
        post_hoc = ""
        if len(beta_spread) < MIN_SEEDS:
            post_hoc = _subgrid_note(group, betas, norms)
        rows.append(_paired_claim(
            P1, claim, scope, np.array(beta_spread), np.array(norm_spread), +1, effect,
            all_runs, _fit_rule(all_runs),
            note=_join(_fit_note(all_runs, group), _missing_cells_note(missing, planned),
                       post_hoc)))
    return rows


def _subgrid_note(group, betas, norms):
    """The post-hoc sub-grid result (change 6 of the Fashion-MNIST plan), as a note."""
    subgrid = _complete_subgrid(group, betas, norms)
    if subgrid is None:
        return ""
    betas, norms = subgrid
    beta_spread, norm_spread, _ = _grid_spreads(group, betas, norms)
    interval = statistics.paired_difference(np.array(beta_spread), np.array(norm_spread))
    verdict, _ = statistics.judge(interval, +1)
    return (f"post-hoc, not the verdict (a rule chosen after seeing which cells trained): on "
            f"the largest sub-grid complete in {MIN_SEEDS} seeds, beta in "
            f"{{{', '.join(f'{b:g}' for b in betas)}}} x ||beta z0|| in "
            f"{{{', '.join(f'{n:g}' for n in norms)}}}: {interval}, which would read "
            f"{verdict}")


def _grid_spreads(group, betas, norms):
    """Per seed with every (beta, norm) cell of `betas` x `norms`: the range over beta of the
    test accuracy averaged over norms, and the range over norm averaged over betas; and how
    many seeds each missing cell kept out."""
    cells = {(beta, norm) for beta in betas for norm in norms}
    beta_spread, norm_spread, missing = [], [], {}
    for _, seed_runs in group.groupby("seed"):
        absent = cells - set(zip(seed_runs["beta"], seed_runs["init_logit_norm"]))
        for cell in absent:
            missing[cell] = missing.get(cell, 0) + 1
        if absent:
            continue
        inside = seed_runs[seed_runs["beta"].isin(betas)
                           & seed_runs["init_logit_norm"].isin(norms)]
        table = inside.pivot_table(index="init_logit_norm", columns="beta",
                                   values="final/test/accuracy", aggfunc="mean")
        beta_spread.append(float(np.ptp(table.mean(axis=0))))
        norm_spread.append(float(np.ptp(table.mean(axis=1))))
    return beta_spread, norm_spread, missing


def _complete_subgrid(group, betas, norms):
    """The contiguous ranges of `betas` and `norms` (at least 2 of each) whose cells all
    trained and fit in at least `MIN_SEEDS` common seeds, with the most cells, then the most
    betas, then the smallest values; None if there is none."""
    seeds_of = {cell: set(cell_runs["seed"])
                for cell, cell_runs in group.groupby(["beta", "init_logit_norm"])}
    best, best_rank = None, None
    for beta_range, norm_range in itertools.product(_contiguous_ranges(betas),
                                                    _contiguous_ranges(norms)):
        common = set.intersection(*(seeds_of.get(cell, set())
                                    for cell in itertools.product(beta_range, norm_range)))
        rank = (len(beta_range) * len(norm_range), len(beta_range))
        if len(common) >= MIN_SEEDS and (best_rank is None or rank > best_rank):
            best, best_rank = (beta_range, norm_range), rank
    return best


def _contiguous_ranges(values, shortest=2):
    """Every run of consecutive `values` at least `shortest` long, from the first values on."""
    return [values[start:stop] for start in range(len(values))
            for stop in range(start + shortest, len(values) + 1)]


def _missing_cells_note(missing, planned):
    """Which (beta, norm) cells kept seeds out of the grid claim, and in how many diverged."""
    if not missing:
        return ""
    diverged = planned[planned["status"] == "diverged"].groupby(
        ["beta", "init_logit_norm"]).size().to_dict()
    cells = ", ".join(
        f"({beta:g}, {norm:g}) in {count} seed{'s' if count > 1 else ''}"
        + (f" ({diverged[beta, norm]} diverged)" if (beta, norm) in diverged else "")
        for (beta, norm), count in sorted(missing.items()))
    return f"seeds with a cell missing are left out; cells (beta, ||beta z0||) missing: {cells}"


def _p1_dynamical(sweep, all_rates, derivation_checks):
    claim = ("beta acts on the training dynamics, not on confidence: it does not change "
             "argmax(z), yet test accuracy depends on it.")
    identity = derivation_checks.get("reparametrization")
    sweep = studies.completed(sweep)
    if sweep.empty or sweep["beta"].nunique() < 2 or identity is None:
        return [_untestable(P1, claim, "no beta sweep among the runs")]
    rows = []
    for scope, all_runs in _scopes(sweep):
        group = _fitted(all_runs)
        best, worst, _ = _choose_on_validation(group, "beta")
        rows.append(_unless_on_grid_edge(_paired_claim(
            P1, claim, scope, best, worst, +1,
            "test accuracy of the beta with the best validation accuracy minus that of the "
            "beta with the worst", all_runs, _fit_rule(all_runs),
            note=_join(_fit_note(all_runs, group), "argmax invariance: the reparametrization "
                       f"identity, {identity.evidence}")), group, all_rates))
    return rows


def _p1_tuning_helps(sweep, all_rates):
    claim = "Tuning beta over [1e-2, 1e1] improves on beta = 1 (for every architecture)."
    sweep = studies.completed(sweep)
    if sweep.empty or not np.isclose(sweep["beta"], 1.0).any():
        return [_untestable(P1, claim, "no beta sweep that includes beta = 1")]
    rows = []
    for scope, all_runs in _scopes(sweep):
        group = _fitted(all_runs)
        if group.empty:
            rows.append(Claim(P1, claim, scope, statistics.NOT_JUDGED, "", "",
                              _fit_note(all_runs, group), _run_list(all_runs)))
            continue
        table = group.groupby("beta")["best/val/accuracy"].mean()
        chosen = float(table.idxmax())
        a, b, _ = _pairs(group, "beta", chosen, 1.0, "final/test/accuracy")
        rows.append(_unless_on_grid_edge(_paired_claim(
            P1, claim, scope, a, b, +1,
            f"test accuracy at the beta chosen on mean validation accuracy (here {chosen:g}) "
            "minus at beta = 1, each at its tuned learning rate", all_runs, _fit_rule(all_runs),
            note=_fit_note(all_runs, group)), group, all_rates))
    return rows


def _p1_stability(sweep):
    claim = "Smaller beta can give better peak accuracy, at the cost of seed sensitivity."
    sweep = studies.completed(sweep)
    if sweep.empty or not ((sweep["beta"] < 1).any() and (sweep["beta"] >= 1).any()):
        return [_untestable(P1, claim, "the sweep does not cover beta on both sides of 1")]
    rows = []
    for scope, group in _scopes(sweep):
        peaks = {}
        for side, part in (("small", group[group["beta"] < 1]),
                           ("large", group[group["beta"] >= 1])):
            peaks[side] = part.groupby("seed")["final/test/accuracy"].max()
        seeds = sorted(set(peaks["small"].index) & set(peaks["large"].index))
        rows.append(_paired_claim(
            P1, claim, scope, peaks["small"].loc[seeds].to_numpy(float),
            peaks["large"].loc[seeds].to_numpy(float), +1,
            "best test accuracy over beta < 1 minus best over beta >= 1", group,
            note="judges the peak only: the seed-sensitivity half needs more seeds per beta "
                 "than an interval on a standard deviation allows here"))
    return rows


# --- paper 2 -----------------------------------------------------------------------------------

def paper2(runs, epochs, scaling):
    sweep = studies.completed(studies.paper2_sweep(runs))
    warmup = studies.completed(studies.paper2_warmup(runs))
    return (_p2_generalization(sweep) + _p2_calibration(sweep)
            + _p2_versus_temperature_scaling(sweep, scaling) + _p2_speed(sweep, epochs)
            + _p2_warmup(sweep, warmup, epochs) + _p2_curriculum(sweep))


def _p2_generalization(sweep):
    claim = "Generalization depends significantly on the gradient-decay rate beta."
    if sweep.empty or sweep["beta"].nunique() < 2:
        return [_untestable(P2, claim, "no gradient-decay sweep among the runs")]
    rows = []
    for scope, all_runs in _scopes(sweep):
        group = _fitted(all_runs)
        best, worst, _ = _choose_on_validation(group, "beta")
        rows.append(_paired_claim(
            P2, claim, scope, best, worst, +1,
            "test accuracy of the beta with the best validation accuracy minus that of the "
            "beta with the worst", all_runs, _fit_rule(all_runs), note=_fit_note(all_runs, group)))
    return rows


def _p2_calibration(sweep):
    # The papers' "top-1 accuracy roughly unchanged" is a claim of equivalence, which a trend
    # test cannot make: these rows judge the calibration half only, and say so.
    claim = "Larger beta lowers ECE and MCE."
    if sweep.empty or sweep["beta"].nunique() < 3:
        return [_untestable(P2, claim, "no gradient-decay sweep of 3 or more betas")]
    rows = []
    for scope, group in _scopes(sweep):
        for metric in ("ece", "mce"):
            rows.append(_trend_claim(
                P2, claim.replace("ECE and MCE", metric.upper()), scope, group["beta"],
                group[f"final/test/{metric}"], -1, f"test {metric.upper()} against beta",
                group, note="judges calibration only: that top-1 accuracy stays roughly "
                            "unchanged needs an equivalence test, not run here"))
    return rows


def _p2_versus_temperature_scaling(sweep, scaling):
    claim = ("A large decay beta calibrates better than post-hoc temperature scaling of the "
             "beta = 1 model.")
    if sweep.empty or scaling.empty or not np.isclose(sweep["beta"], 1.0).any():
        return [_untestable(P2, claim, "no sweep with beta = 1 and stored logits")]
    rows = []
    for scope, group in _scopes(sweep):
        largest = float(group["beta"].max())
        if largest <= 1.0:
            continue
        large = group[np.isclose(group["beta"], largest)].set_index("seed")["final/test/ece"]
        fitted = scaling[scaling["run_dir"].isin(group["run_dir"])
                         & np.isclose(scaling["beta"], 1.0)].set_index("seed")["ece_after"]
        seeds = sorted(set(large.index) & set(fitted.index))
        rows.append(_paired_claim(
            P2, claim, scope, large.loc[seeds].to_numpy(float),
            fitted.loc[seeds].to_numpy(float), -1,
            f"test ECE at beta = {largest:g} minus test ECE of the beta = 1 model after "
            "temperature scaling fit on its validation split", group))
    return rows or [_untestable(P2, claim, "no beta above 1 in the sweep")]


def _early_train_accuracy(epochs, runs, first_epochs):
    """Per seed, the mean train accuracy of `runs` over their first epochs."""
    curves = epochs[epochs["run_dir"].isin(runs["run_dir"]) & (epochs["epoch"] <= first_epochs)]
    return curves.groupby("seed")["train/accuracy"].mean()


def _p2_speed(sweep, epochs):
    claim = "Smaller beta converges faster (higher early training accuracy)."
    if sweep.empty or epochs.empty or not np.isclose(sweep["beta"], 1.0).any():
        return [_untestable(P2, claim, "no gradient-decay sweep with beta = 1 among the runs")]
    rows = []
    for scope, group in _scopes(sweep):
        smallest = float(group["beta"].min())
        if smallest >= 1.0:
            continue
        small = _early_train_accuracy(epochs, group[np.isclose(group["beta"], smallest)],
                                      EARLY_EPOCHS)
        plain = _early_train_accuracy(epochs, group[np.isclose(group["beta"], 1.0)],
                                      EARLY_EPOCHS)
        seeds = sorted(set(small.index) & set(plain.index))
        rows.append(_paired_claim(
            P2, claim, scope, small.loc[seeds].to_numpy(float), plain.loc[seeds].to_numpy(float),
            +1, f"mean train accuracy over epochs 1-{EARLY_EPOCHS} at beta = {smallest:g} "
                "minus at beta = 1", group))
    return rows or [_untestable(P2, claim, "no beta below 1 in the sweep")]


def _p2_warmup(sweep, warmup, epochs):
    """Per dataset, model and target beta: the warm-up to beta against the sweep's fixed beta."""
    claim = "Warming beta up (small to large) speeds early training."
    if warmup.empty or epochs.empty:
        return [_untestable(P2, claim, "no warm-up runs among the runs")]
    rows = []
    for scope, group in _scopes(warmup):
        dataset, model = group["dataset"].iloc[0], group["model"].iloc[0]
        same_scope = (sweep[(sweep["dataset"] == dataset) & (sweep["model"] == model)]
                      if not sweep.empty else sweep)
        for target, warm_runs in group.groupby("beta"):
            fixed = (same_scope[np.isclose(same_scope["beta"], target)]
                     if not same_scope.empty else same_scope)
            if fixed.empty:
                rows.append(_untestable(P2, claim, f"no fixed beta = {target:g} runs to "
                                        "compare with", f"{scope}, to beta = {target:g}"))
                continue
            warm = _early_train_accuracy(epochs, warm_runs, WARMUP_EARLY_EPOCHS)
            plain = _early_train_accuracy(epochs, fixed, WARMUP_EARLY_EPOCHS)
            seeds = sorted(set(warm.index) & set(plain.index))
            rows.append(_paired_claim(
                P2, claim, f"{scope}, to beta = {target:g}", warm.loc[seeds].to_numpy(float),
                plain.loc[seeds].to_numpy(float), +1,
                f"mean train accuracy over epochs 1-{WARMUP_EARLY_EPOCHS} with the warm-up to "
                f"beta = {target:g} minus at fixed beta = {target:g}",
                pd.concat([warm_runs, fixed])))
    return rows


def example_difficulty(run):
    """Each tracked training example's difficulty under `run` (a beta = 1 run): its loss at the
    run's last epoch, from example_learning.npz."""
    with np.load(os.path.join(run["run_dir"], "example_learning.npz")) as arrays:
        return arrays["nll"][-1]


def learning_order_rho(run, difficulty):
    """Spearman rho of the tracked examples' learning epochs in `run` (never learned: after its
    last epoch) against `difficulty`."""
    with np.load(os.path.join(run["run_dir"], "example_learning.npz")) as arrays:
        learned_at = arrays["learned_at"].astype(float)
        learned_at[learned_at == 0] = arrays["margin"].shape[0] + 1
    return float(stats.spearmanr(learned_at, difficulty).statistic)


def _p2_curriculum(sweep):
    """Paper 2's curriculum: at small beta, easy examples (low loss under the beta = 1 run of
    the same seed, at its last epoch) are learned first, more so than at the largest beta."""
    claim = "Small beta shows a curriculum: easy samples are learned first."
    tracked = sweep[sweep["run_dir"].map(
        lambda path: os.path.exists(os.path.join(str(path), "example_learning.npz")))] if (
        not sweep.empty) else sweep
    if tracked.empty:
        return [_untestable(P2, claim, "no run of the sweep recorded per-example learning "
                                       "(--track_example_learning)")]
    rows = []
    for scope, group in _scopes(tracked):
        small_beta, large_beta = float(group["beta"].min()), float(group["beta"].max())
        small, large = [], []
        for _, seed_runs in group.groupby("seed"):
            by_beta = {float(beta): runs.iloc[0] for beta, runs in seed_runs.groupby("beta")}
            if not {small_beta, 1.0, large_beta} <= set(by_beta) or small_beta >= 1.0:
                continue
            difficulty = example_difficulty(by_beta[1.0])
            small.append(learning_order_rho(by_beta[small_beta], difficulty))
            large.append(learning_order_rho(by_beta[large_beta], difficulty))
        rows.append(_paired_claim(
            P2, claim, scope, np.array(small), np.array(large), +1,
            f"Spearman rho of the epoch each tracked training example is learned at (never: "
            f"after the last epoch) against its difficulty (its last-epoch loss under the "
            f"beta = 1 run of the same seed), at beta = {small_beta:g} minus at beta = "
            f"{large_beta:g}", group))
    return rows


# --- paper 3 -----------------------------------------------------------------------------------

def rank_layers(sweep):
    columns = [c for c in sweep.columns
               if c.startswith("final/rank/") and c.endswith("/numerical")]
    return [c[len("final/rank/"):-len("/numerical")] for c in columns]


def paper3(runs):
    sweep = studies.completed(studies.paper3_sweep(runs))
    control = studies.completed(studies.paper3_lr_control(runs))
    return (_p3_rank(sweep) + _p3_probe(sweep) + _p3_detection(sweep) + [
        _untestable(P3, "Initialization scale, width and normalization set the logit norm.",
                    "no sweep over initialization, width or normalization among the runs")]
        + _p3_lr_control(control))


def _p3_lr_control(control):
    claim = "The effect of T holds when the learning rate moves with T (features, effective rank)."
    column = "final/rank/features/effective"
    if control.empty or control["temperature"].nunique() < 3 or column not in control:
        return [_untestable(P3, claim, "no learning-rate control runs among the runs")]
    return [_trend_claim(P3, claim, scope, group["temperature"], group[column], -1,
                         "the final effective rank of features against T, each run at a "
                         "learning rate moving as T^2", group)
            for scope, group in _scopes(control)]


def _p3_rank(sweep):
    claim = "Higher T gives lower-rank representations ({layer}, effective rank)."
    layers = rank_layers(sweep)
    if sweep.empty or sweep["temperature"].nunique() < 3 or not layers:
        return [_untestable(P3, claim.format(layer="every layer"),
                            "no temperature sweep with rank tracking among the runs")]
    rows = []
    for scope, group in _scopes(sweep):
        for layer in layers:
            if group[f"final/rank/{layer}/effective"].isna().all():
                continue  # this architecture has no such layer, or it was not tracked
            rows.append(_fitted_trend_claim(
                P3, claim.format(layer=layer), scope, group, "temperature",
                f"final/rank/{layer}/effective", -1,
                f"the final effective rank of {layer} against T",
                family="Higher T gives lower-rank representations."))
    return rows


def _p3_probe(sweep):
    claim = "Linear-probe transfer of the features to OOD data gets worse at high T."
    if sweep.empty or sweep["probe/accuracy"].isna().all() or sweep["temperature"].nunique() < 3:
        return [_untestable(P3, claim, "no temperature sweep with a linear probe among the runs")]
    rows = []
    for scope, group in _scopes(sweep):
        probe_name = group["probe/dataset"].dropna().iloc[0]
        rows.append(_fitted_trend_claim(P3, claim, scope, group, "temperature", "probe/accuracy",
                                        -1, f"linear-probe accuracy on {probe_name} against T",
                                        family=claim))
        # Runs that probed several layers (--probe_layer=a,b): one row per further layer.
        first = group["probe/layer"].dropna().iloc[0] if "probe/layer" in group else None
        for column in sorted(c for c in group if c.startswith("probe/") and
                             c.endswith("/accuracy") and c.count("/") == 2):
            layer = column.split("/")[1]
            if layer != first and group[column].notna().any():
                rows.append(_fitted_trend_claim(
                    P3, claim.replace("the features", f"layer {layer}"), scope, group,
                    "temperature", column, -1,
                    f"linear-probe accuracy of layer {layer} on {probe_name} against T",
                    family=claim))
    return rows


OOD_SCORES = ("max_softmax_probability", "energy", "principal_subspace")


def _p3_detection(sweep):
    claim = "OOD detection improves at high T ({score} AUROC)."
    columns = [f"ood/{score}/auroc" for score in OOD_SCORES]
    if sweep.empty or sweep["temperature"].nunique() < 3 or not any(c in sweep for c in columns):
        return [_untestable(P3, claim.format(score="every score"),
                            "no temperature sweep with OOD detection (--probe_dataset) among "
                            "the runs")]
    return [_fitted_trend_claim(P3, claim.format(score=score), scope, group, "temperature",
                                f"ood/{score}/auroc", +1,
                                f"the {score} AUROC (in-distribution test vs "
                                f"{group['probe/dataset'].dropna().iloc[0]} test) against T",
                                family="OOD detection improves at high T.")
            for scope, group in _scopes(sweep) for score in OOD_SCORES
            if f"ood/{score}/auroc" in group]


def tally(claim_table):
    """`{dataset: {verdict: count}}` of the empirical claims: each claim counted once per
    scope. A claim judged in parts (`family`) counts as its parts' verdict where they agree and
    as "mixed" where they differ. Untestable claims (no scope) are left out."""
    counts = {}
    if claim_table.empty:
        return counts
    for (dataset, _, _), verdict in claim_verdicts(claim_table).items():
        counts.setdefault(dataset, {}).setdefault(verdict, 0)
        counts[dataset][verdict] += 1
    return counts


def scope_parts(scope):
    """`(dataset, model)` of a scope name: 'cnn on fashion_mnist, to beta = 1' ->
    ('fashion_mnist', 'cnn')."""
    model, _, rest = scope.partition(" on ")
    return rest.split(",")[0], model


def claim_verdicts(claim_table):
    """`{(dataset, model, claim): verdict}` of the empirical claims, a claim judged in parts
    (`family`) as one (its parts' verdict where they agree, "mixed" where they differ; several
    rows of one claim and scope, such as warm-up targets, the same way). Untestable claims (no
    scope) are left out."""
    verdicts = {}
    if claim_table.empty:
        return verdicts
    table = claim_table[claim_table["verdict"] != NOT_TESTABLE]
    families = table["family"].where(table["family"] != "", table["claim"])
    for key, rows in table.groupby([table["scope"].map(lambda s: scope_parts(s)[0]),
                                    table["scope"].map(lambda s: scope_parts(s)[1]),
                                    families], sort=False):
        found = set(rows["verdict"])
        verdicts[key] = found.pop() if len(found) == 1 else "mixed"
    return verdicts


# --- checks of our derivations (never counted as reproduction) ---------------------------------

def derivations(checks):
    """The derivation checks (`analysis.derivations.run_all()`) as a table of their own."""
    return pd.DataFrame([{"paper": check.paper, "check": check.statement,
                          "holds": bool(check.holds), "evidence": check.evidence,
                          "rule": check.rule} for check in checks.values()])
