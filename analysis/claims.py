"""Each claim of docs/PAPERS.md, judged on the runs at hand: a verdict and the numbers behind it.

A verdict is one of `VERDICTS`. Each function takes the study's runs (see `analysis.studies`)
and returns `Claim` rows; with no runs for a study the verdict is "not testable at this scale".
The rule each verdict follows is written in its `rule` field, so the report shows it next to
the numbers; the rules are ours, since the papers state their claims qualitatively.
"""

import dataclasses

import numpy as np
import pandas as pd

from analysis import studies
from analysis.derivations import P1, P2, P3
from analysis.load import over_seeds

REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE = ("reproduced", "not reproduced",
                                            "not testable at this scale")
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE)


@dataclasses.dataclass
class Claim:
    paper: str
    claim: str
    verdict: str
    evidence: str
    rule: str


def _verdict(holds):
    return REPRODUCED if holds else NOT_REPRODUCED


def _untestable(paper, claim, why):
    return Claim(paper, claim, NOT_TESTABLE, why, "")


def _spearman(x, y):
    frame = pd.DataFrame({"x": np.asarray(x, dtype=float), "y": np.asarray(y, dtype=float)})
    return float(frame.corr(method="spearman").loc["x", "y"])


def _means(runs, key, value):
    table = over_seeds(runs, [key], [value]).sort_values(key)
    return table[key].to_numpy(), table[f"{value}/mean"].to_numpy(), table[f"{value}/std"]


# --- paper 1 -----------------------------------------------------------------------------------



def paper1(runs, derivation_checks):
    sweep = studies.best_learning_rate(studies.paper1_beta_sweep(runs))
    grid = studies.completed(studies.paper1_logit_norm_grid(runs))
    return [_p1_beta_vs_norm(grid), _p1_dynamical(sweep, derivation_checks),
            _p1_tuning_helps(sweep), _p1_stability(sweep)]


def _p1_beta_vs_norm(grid):
    claim = "Generalization depends strongly on beta and only weakly on ||beta z0||."
    if grid.empty or grid["beta"].nunique() < 2 or grid["init_logit_norm"].nunique() < 2:
        return _untestable(P1, claim, "no (beta, ||beta z0||) grid among the runs")
    table = grid.pivot_table(index="init_logit_norm", columns="beta",
                             values="final/test/accuracy", aggfunc="mean")
    beta_range = float(np.ptp(table.mean(axis=0)))
    norm_range = float(np.ptp(table.mean(axis=1)))
    return Claim(P1, claim, _verdict(beta_range > 2 * norm_range),
                 f"mean test accuracy varies by {beta_range:.3f} across beta "
                 f"({', '.join(f'{b:g}' for b in table.columns)}) and by {norm_range:.3f} across "
                 f"||beta z0|| ({', '.join(f'{n:g}' for n in table.index)})",
                 "reproduced if the range over beta exceeds twice the range over ||beta z0||")


def _p1_dynamical(sweep, derivation_checks):
    claim = ("beta acts on the training dynamics, not on confidence: it does not change "
             "argmax(z), yet accuracy depends on it.")
    identity = derivation_checks.get("reparametrization")
    sweep = studies.completed(sweep)
    if sweep.empty or identity is None:
        return _untestable(P1, claim, "no beta sweep among the runs")
    betas, accuracy, std = _means(sweep, "beta", "final/test/accuracy")
    spread = float(np.ptp(accuracy))
    holds = identity.holds and spread > 2 * float(np.max(std))
    return Claim(P1, claim, _verdict(holds),
                 f"reparametrization identity: {identity.evidence}; test accuracy "
                 f"spans {spread:.3f} across beta, seed std at most {float(np.max(std)):.3f}",
                 f"reproduced if the identity {identity.rule[len('holds if '):]} and the "
                 "accuracy range over beta exceeds twice the largest seed std")


def _p1_tuning_helps(sweep):
    claim = "Tuning beta over [1e-2, 1e1] improves on beta = 1 (for every architecture)."
    sweep = studies.completed(sweep)
    if sweep.empty or not (sweep["beta"] == 1.0).any():
        return _untestable(P1, claim, "no beta sweep that includes beta = 1")
    parts, gains = [], []
    for (dataset, model), group in sweep.groupby(studies.GROUP):
        table = over_seeds(group, ["beta"], ["best/val/accuracy", "final/test/accuracy"])
        best = table.loc[table["best/val/accuracy/mean"].idxmax()]
        baseline = table[table["beta"] == 1.0].iloc[0]
        gain = best["final/test/accuracy/mean"] - baseline["final/test/accuracy/mean"]
        gains.append(gain)
        parts.append(f"{model}/{dataset}: beta = {best['beta']:g} chosen on validation, test "
                     f"{best['final/test/accuracy/mean']:.4f} vs {baseline['final/test/accuracy/mean']:.4f} "
                     f"at beta = 1 ({gain:+.4f})")
    return Claim(P1, claim, _verdict(all(g > 0 for g in gains)), "; ".join(parts),
                 "reproduced if the beta chosen on validation accuracy beats beta = 1 on test "
                 "accuracy for every architecture (each beta at its best learning rate)")


def _p1_stability(sweep):
    claim = "Smaller beta can give better peak accuracy, at the cost of stability across seeds."
    if sweep.empty:
        return _untestable(P1, claim, "no beta sweep among the runs")
    scored = sweep.assign(score=sweep["final/test/accuracy"].where(
        sweep["status"] == "completed", np.nan))
    table = over_seeds(scored, ["beta"], ["score"]).sort_values("beta")
    small, large = table[table["beta"] < 1.0], table[table["beta"] >= 1.0]
    if small.empty or large.empty:
        return _untestable(P1, claim, "the sweep does not cover beta on both sides of 1")
    peak_small, peak_large = small["score/mean"].max(), large["score/mean"].max()
    std_small, std_large = small["score/std"].mean(), large["score/std"].mean()
    holds = peak_small > peak_large and std_small > std_large
    return Claim(P1, claim, _verdict(holds),
                 f"peak mean test accuracy {peak_small:.4f} (beta < 1) vs {peak_large:.4f} "
                 f"(beta >= 1); mean seed std {std_small:.4f} vs {std_large:.4f}",
                 "reproduced if beta < 1 has both the higher peak and the larger seed std")


# --- paper 2 -----------------------------------------------------------------------------------



def paper2(runs, epochs):
    sweep = studies.completed(studies.paper2_sweep(runs))
    warmup = studies.completed(studies.paper2_warmup(runs))
    return [_p2_calibration(sweep), _p2_speed(sweep, epochs), _p2_warmup(sweep, warmup, epochs),
            _untestable(P2, "Small beta shows a curriculum: easy samples are learned first.",
                        "needs per-example learning times, which tc does not record yet")]


def _p2_calibration(sweep):
    claim = "Larger beta lowers ECE and MCE while top-1 accuracy stays roughly unchanged."
    if sweep.empty or sweep["beta"].nunique() < 3:
        return _untestable(P2, claim, "no gradient-decay sweep among the runs")
    betas, ece, _ = _means(sweep, "beta", "final/test/ece")
    _, mce, _ = _means(sweep, "beta", "final/test/mce")
    _, accuracy, _ = _means(sweep, "beta", "final/test/accuracy")
    rho_ece, rho_mce = _spearman(betas, ece), _spearman(betas, mce)
    spread = float(np.ptp(accuracy))
    holds = rho_ece <= -0.5 and rho_mce <= -0.5 and spread <= 0.02
    return Claim(P2, claim, _verdict(holds),
                 f"Spearman rho(beta, ECE) = {rho_ece:+.2f}, rho(beta, MCE) = {rho_mce:+.2f}; "
                 f"ECE {ece[0]:.4f} at beta = {betas[0]:g} -> {ece[-1]:.4f} at {betas[-1]:g}; "
                 f"test accuracy spans {spread:.4f} over the sweep",
                 "reproduced if both rank correlations are <= -0.5 and accuracy spans <= 0.02")


def _early_train_accuracy(epochs, runs, first_epochs):
    curves = epochs[epochs["run_dir"].isin(runs["run_dir"]) & (epochs["epoch"] <= first_epochs)]
    return float(curves["train/accuracy"].mean())


def _p2_speed(sweep, epochs):
    claim = "Smaller beta converges faster, with higher training accuracy."
    if sweep.empty or sweep["beta"].nunique() < 2 or epochs.empty:
        return _untestable(P2, claim, "no gradient-decay sweep among the runs")
    low, high = sweep["beta"].min(), sweep["beta"].max()
    early = {b: _early_train_accuracy(epochs, sweep[sweep["beta"] == b], 5) for b in (low, high)}
    final = {b: sweep[sweep["beta"] == b]["final/train/accuracy"].mean() for b in (low, high)}
    holds = early[low] > early[high] and final[low] >= final[high]
    return Claim(P2, claim, _verdict(holds),
                 f"mean train accuracy over epochs 1-5: {early[low]:.4f} at beta = {low:g} vs "
                 f"{early[high]:.4f} at beta = {high:g}; final train accuracy {final[low]:.4f} "
                 f"vs {final[high]:.4f}",
                 "reproduced if the smallest beta leads early (epochs 1-5) and is not behind at "
                 "the end")


def _p2_warmup(sweep, warmup, epochs):
    claim = "Warming beta up (small to large) speeds early training."
    if warmup.empty or epochs.empty:
        return _untestable(P2, claim, "no warm-up runs among the runs")
    target = warmup["beta"].iloc[0]
    fixed = sweep[np.isclose(sweep["beta"], target)]
    if fixed.empty:
        return _untestable(P2, claim, f"no fixed beta = {target:g} runs to compare the warm-up to")
    warm, plain = (_early_train_accuracy(epochs, warmup, 3),
                   _early_train_accuracy(epochs, fixed, 3))
    final_warm = warmup["final/test/accuracy"].mean()
    final_plain = fixed["final/test/accuracy"].mean()
    return Claim(P2, claim, _verdict(warm > plain),
                 f"mean train accuracy over epochs 1-3: {warm:.4f} with the warm-up to beta = "
                 f"{target:g} vs {plain:.4f} at fixed beta = {target:g}; final test accuracy "
                 f"{final_warm:.4f} vs {final_plain:.4f}",
                 "reproduced if the warm-up's early training accuracy is higher")


# --- paper 3 -----------------------------------------------------------------------------------



def rank_layers(sweep):
    columns = [c for c in sweep.columns
               if c.startswith("final/rank/") and c.endswith("/numerical")]
    return [c[len("final/rank/"):-len("/numerical")] for c in columns]


def paper3(runs):
    sweep = studies.completed(studies.paper3_sweep(runs))
    return [_p3_rank(sweep), _p3_probe(sweep),
            _untestable(P3, "OOD detection can improve at high T.",
                        "tc has no OOD-detection score yet"),
            _untestable(P3, "Initialization scale, width and normalization set the logit norm.",
                        "no sweep over initialization, width or normalization among the runs")]


def _p3_rank(sweep):
    claim = "Higher T gives lower-rank representations while accuracy roughly holds."
    layers = rank_layers(sweep)
    if sweep.empty or sweep["temperature"].nunique() < 3 or not layers:
        return _untestable(P3, claim, "no temperature sweep with rank tracking among the runs")
    parts, falling = [], 0
    for layer in layers:
        temperatures, effective, _ = _means(sweep, "temperature", f"final/rank/{layer}/effective")
        _, numerical, _ = _means(sweep, "temperature", f"final/rank/{layer}/numerical")
        rho = _spearman(temperatures, effective)
        falling += rho <= -0.5
        parts.append(f"{layer}: effective rank {effective[0]:.1f} at T = {temperatures[0]:g} -> "
                     f"{effective[-1]:.1f} at T = {temperatures[-1]:g} (rho {rho:+.2f}), "
                     f"numerical rank {numerical[0]:.1f} -> {numerical[-1]:.1f}")
    _, accuracy, _ = _means(sweep, "temperature", "final/test/accuracy")
    drop = float(accuracy.max() - accuracy.min())
    holds = falling > len(layers) / 2 and drop <= 0.05
    return Claim(P3, claim, _verdict(holds),
                 "; ".join(parts) + f"; test accuracy spans {drop:.4f}",
                 "reproduced if most layers' effective rank falls with T (Spearman rho <= -0.5) "
                 "and test accuracy spans <= 0.05; the numerical rank (gamma = 1e-3) is shown "
                 "beside it")


def _p3_probe(sweep):
    claim = "Linear-probe transfer of the features to OOD data gets worse at high T."
    if sweep.empty or sweep["probe/accuracy"].isna().all() or sweep["temperature"].nunique() < 3:
        return _untestable(P3, claim, "no temperature sweep with a linear probe among the runs")
    temperatures, probe, _ = _means(sweep, "temperature", "probe/accuracy")
    rho = _spearman(temperatures, probe)
    dataset = sweep["probe/dataset"].dropna().iloc[0]
    return Claim(P3, claim, _verdict(rho <= -0.5 and probe[-1] < probe[0]),
                 f"probe accuracy on {dataset}: {probe[0]:.4f} at T = {temperatures[0]:g} -> "
                 f"{probe[-1]:.4f} at T = {temperatures[-1]:g} (Spearman rho {rho:+.2f})",
                 "reproduced if probe accuracy falls with T (rho <= -0.5, last below first)")


# --- theory --------------------------------------------------------------------------------------


def derivations(checks):
    """Claims of the derivation checks (`analysis.derivations.run_all()`)."""
    return [Claim(check.paper, check.statement, _verdict(check.holds), check.evidence, check.rule)
            for check in checks.values()]
