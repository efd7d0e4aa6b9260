"""analysis/: synthetic run directories -> DataFrames, figures and the report's claim table."""

import dataclasses
import itertools
import json
import os
import pathlib

import numpy as np
import pandas as pd
import pytest

from tc.analysis import claims, load, statistics, studies
from tests.support import ROOT, run_python, write_synthetic_run

# This module tests code that never calls Keras (numpy, pandas, files): CI runs it in one
# backend's leg only (.ci/run).
pytestmark = pytest.mark.backend_independent

FIGURES = ("p1_accuracy_vs_beta", "p1_beta_logit_norm_heatmap", "p1_training_curves",
           "p2_calibration_vs_beta", "p2_reliability_diagrams", "p2_training_curves",
           "p3_rank_vs_temperature", "p3_logit_norm_curves", "p3_probe_vs_temperature")


def tiny_run(root, name, **flags):
    return write_synthetic_run(root / name, **flags)


SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    """Synthetic runs built so that the rules must reach each verdict:
    - paper 2's ECE falls steeply with beta in every seed: reproduced;
    - paper 2's early training is slower at small beta in every seed: contradicted;
    - paper 1's tuning gain is seed noise around zero: inconclusive;
    - paper 3 has one seed and no OOD score: not judged, and not testable.
    """
    root = tmp_path_factory.mktemp("runs")
    # beta = 10 wins on validation; its test accuracy differs from beta = 1's by +-0.01, +-0.02
    offsets = {0.1: [-0.005] * 4, 1.0: [0.0] * 4, 10.0: [0.01, -0.01, 0.02, -0.02]}
    for beta in (0.1, 1.0, 10.0):
        for seed in SEEDS:
            tiny_run(root / "p1", f"beta{beta}_seed{seed}", beta=beta, seed=seed,
                     values={"train/accuracy": 1.0, "test/accuracy": 0.9 + offsets[beta][seed],
                             "val/accuracy": 0.95 if beta == 10.0 else 0.9})
    for norm in ("0.1", "10"):
        tiny_run(root / "p1_grid", f"norm{norm}", beta=1.0, init_logit_norm=norm)
    for beta in (0.1, 1.0, 10.0):
        for seed in SEEDS:
            tiny_run(root / "p2", f"beta{beta}_seed{seed}", loss="gradient_decay", beta=beta,
                     seed=seed, values={
                         "test/ece": 0.1 / beta * (1 + 0.01 * seed), "test/mce": 0.3 / beta,
                         "train/accuracy": 0.5 + 0.1 * np.log10(beta) + 0.001 * seed})
    tiny_run(root / "p2", "warmup", loss="gradient_decay", beta=1.0, beta_schedule="log_linear",
             beta_start=0.1, beta_warmup=2)
    for beta in (0.1, 1.0, 10.0):
        tiny_run(root / "p3", f"beta{beta}", dataset="synthetic", beta=beta,
                 dataset_options="samples=512", rank_layers=("dense0", "features"),
                 probe_dataset="synthetic_shift", probe_size=500)
    # Two broken runs: one never finished, one with a corrupt result.json.
    unfinished = root / "broken" / "unfinished"
    unfinished.mkdir(parents=True)
    (unfinished / "flags.txt").write_text("--dataset=digits\n--beta=1.0\n")
    corrupt = root / "broken" / "corrupt"
    corrupt.mkdir()
    (corrupt / "flags.txt").write_text("--dataset=digits\n--beta=1.0\n")
    (corrupt / "result.json").write_text("{not json")
    return root


RUNS = 12 + 2 + 12 + 1 + 3


def test_loader_gives_one_row_per_run_and_per_epoch(runs_root):
    results = load.load(runs_root)
    assert len(results.runs) == RUNS and len(results.epochs) == 2 * RUNS
    assert sorted(results.problems["run_dir"].map(os.path.basename)) == ["corrupt", "unfinished"]
    for column in ("dataset", "model", "loss", "beta", "seed", "learning_rate", "status",
                   "final/test/accuracy", "final/test/ece", "best/val/accuracy",
                   "probe/accuracy", "predictions", "run_dir", "experiment"):
        assert column in results.runs, column
    assert results.runs["beta"].dtype == float and results.runs["seed"].dtype == np.int64
    assert set(results.runs["experiment"]) == {"p1", "p1_grid", "p2", "p3"}
    for column in ("epoch", "train/loss", "val/accuracy", "test/accuracy", "beta", "seed",
                   "run_dir"):
        assert column in results.epochs, column
    # final/ columns are the last metrics.csv row of the run
    run = results.runs.iloc[0]
    last = results.epochs[results.epochs["run_dir"] == run["run_dir"]].iloc[-1]
    assert run["final/test/accuracy"] == pytest.approx(last["test/accuracy"])


def test_over_seeds_matches_a_hand_computation():
    frame = pd.DataFrame({"beta": [1, 1, 2], "acc": [0.5, 0.7, 0.9]})
    table = load.over_seeds(frame, ["beta"], ["acc"]).set_index("beta")
    assert table.loc[1, "acc/mean"] == pytest.approx(0.6)
    assert table.loc[1, "acc/std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert table.loc[2, "acc/std"] == 0.0 and table.loc[2, "acc/count"] == 1


def test_studies_split_the_runs_by_their_flags(runs_root):
    runs = load.load(runs_root).runs
    assert len(studies.paper1_beta_sweep(runs)) == 12
    assert len(studies.paper1_logit_norm_grid(runs)) == 2
    assert len(studies.paper2_sweep(runs)) == 12 and len(studies.paper2_warmup(runs)) == 1
    sweep = studies.paper3_sweep(runs)
    assert sorted(sweep["temperature"]) == pytest.approx([0.1, 1.0, 10.0])


def test_best_learning_rate_counts_a_diverged_seed_as_zero():
    runs = pd.DataFrame({
        "dataset": "d", "model": "m", "beta": 1.0, "learning_rate": [0.1, 0.1, 1.0, 1.0],
        "status": ["completed", "completed", "completed", "diverged"],
        "best/val/accuracy": [0.8, 0.8, 0.95, np.nan]})
    # lr 1.0 scores (0.95 + 0) / 2 < 0.8, so lr 0.1 wins despite its lower best seed
    assert set(studies.best_learning_rate(runs)["learning_rate"]) == {0.1}


def test_report_command_writes_figures_tables_and_the_claim_table(runs_root, tmp_path):
    out = tmp_path / "report"
    completed = run_python(["-m", "tc.analysis.report", f"--runs={runs_root}", f"--out={out}",
                            f"--flagfiles={os.path.join(ROOT, 'runs')}", "--throughput="])
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"{RUNS} runs, 2 skipped" in completed.stdout
    for name in FIGURES:
        path = out / "figures" / f"{name}.png"
        assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert "<svg" in (out / "figures" / f"{name}.svg").read_text()[:2000], name
    claim_table = pd.read_csv(out / "tables" / "claims.csv", keep_default_na=False)
    assert set(claim_table["verdict"]) <= set(claims.VERDICTS)
    assert set(claim_table["paper"]) == {claims.P1, claims.P2, claims.P3}
    verdict = {(row.claim, row.scope): row.verdict for row in claim_table.itertuples()}
    assert verdict[("Larger beta lowers ECE.",
                    "mlp on digits")] == statistics.REPRODUCED
    assert verdict[("Smaller beta converges faster (higher early training accuracy).",
                    "mlp on digits")] == statistics.CONTRADICTED
    assert verdict[("Tuning beta over [1e-2, 1e1] improves on beta = 1 (for every "
                    "architecture).", "mlp on digits")] == statistics.INCONCLUSIVE
    assert statistics.NOT_JUDGED in set(claim_table["verdict"])
    assert claims.NOT_TESTABLE in set(claim_table["verdict"])
    judged = claim_table[claim_table["verdict"].isin(
        [statistics.REPRODUCED, statistics.CONTRADICTED, statistics.INCONCLUSIVE])]
    assert len(judged) and all(("% CI, " in effect and "n = " in effect)
                               or ("Spearman rho" in effect) for effect in judged["effect"])
    assert all(judged["runs"].str.len() > 0)
    derivation_table = pd.read_csv(out / "tables" / "derivations.csv")
    assert len(derivation_table) == 5 and derivation_table["holds"].all()
    assert not claim_table["claim"].str.startswith(("Reparametrization", "Curvature")).any()
    report = (out / "REPORT.md").read_text()
    assert "## Checks of our derivations (not reproductions)" in report
    for row in claim_table.itertuples():
        assert row.claim.replace("|", "\\|") in report and row.verdict in report
    for name in FIGURES:
        assert f"(figures/{name}.png) ([SVG](figures/{name}.svg))" in report
    assert report.count("Error bars: 95% confidence interval of the mean over seeds") >= 2
    assert "unfinished" in report and "corrupt" in report  # the skipped runs are listed
    runs_csv = pd.read_csv(out / "tables" / "runs.csv")
    assert len(runs_csv) == RUNS
    full_scale = pd.read_csv(out / "tables" / "full_scale.csv")
    assert "runs/paper1/wrn_cifar10_beta_grid.cfg" in set(full_scale["flagfile"])
    scaling = pd.read_csv(out / "tables" / "p2_temperature_scaling.csv")
    assert (scaling["temperature/mean"] > 0).all()


def test_claims_follow_their_rules_on_constructed_runs():
    runs = pd.DataFrame({
        "dataset": "d", "model": "m", "loss": "gradient_decay", "beta_schedule": "constant",
        "status": "completed", "seed": np.repeat([0, 1, 2], 4), "run_dir": "r",
        "beta": np.tile([0.1, 1.0, 3.0, 10.0], 3),
        "final/test/ece": np.tile([0.10, 0.05, 0.03, 0.01], 3),
        "final/test/mce": np.tile([0.3, 0.2, 0.15, 0.1], 3),
        "final/test/accuracy": 0.9})
    ece, mce = claims._p2_calibration(runs)
    assert ece.verdict == mce.verdict == statistics.REPRODUCED
    assert "Spearman rho -1.00" in ece.effect  # ECE falls with beta in every seed
    worse = runs.assign(**{"final/test/ece": np.tile([0.01, 0.03, 0.05, 0.10], 3)})
    assert claims._p2_calibration(worse)[0].verdict == statistics.CONTRADICTED
    assert claims._p2_calibration(runs.iloc[:0])[0].verdict == claims.NOT_TESTABLE


def test_a_learning_rate_on_the_edge_of_its_grid_is_not_judged():
    rows = []
    for beta, chosen in ((0.1, 0.01), (1.0, 0.1)):
        for rate in (0.01, 0.1, 1.0):
            for seed in (0, 1, 2):
                best = rate == chosen
                rows.append({"dataset": "d", "model": "m", "beta": beta, "learning_rate": rate,
                             "seed": seed, "status": "completed", "run_dir": f"{beta}{rate}{seed}",
                             "best/val/accuracy": 0.9 if best else 0.5,
                             "final/test/accuracy": 0.9 + 0.01 * seed if best else 0.5,
                             "final/train/accuracy": 1.0})
    runs = pd.DataFrame(rows)
    chosen = studies.best_learning_rate(runs)
    assert claims._edge_of_rate_grid(chosen, runs) == [0.1]
    row, = claims._p1_tuning_helps(chosen, runs)
    assert row.verdict == statistics.NOT_JUDGED and "edge of its grid for beta = 0.1" in row.note


def test_the_edge_of_a_grid_is_that_of_the_model_and_dataset_it_was_tuned_on():
    # Model a chose its smallest rate; model b tried a smaller one, which must not hide the edge.
    rows = []
    for model, rates in (("a", (0.1, 1.0, 10.0)), ("b", (0.01, 1.0, 10.0))):
        for rate in rates:
            for seed in (0, 1, 2):
                rows.append({"dataset": "d", "model": model, "beta": 0.1, "learning_rate": rate,
                             "seed": seed, "status": "completed", "run_dir": f"{model}{rate}{seed}",
                             "best/val/accuracy": 0.9 if rate == rates[0] and model == "a"
                             else 0.5 + 0.1 * (rate == 1.0)})
    runs = pd.DataFrame(rows)
    chosen = studies.best_learning_rate(runs)
    assert claims._edge_of_rate_grid(chosen[chosen["model"] == "a"], runs) == [0.1]
    assert claims._edge_of_rate_grid(chosen[chosen["model"] == "b"], runs) == []


def test_the_warm_up_is_judged_per_model_and_target_beta():
    # cnn's warm-up to beta = 1 is ahead of fixed beta = 1 in every seed, to beta = 10 behind
    # fixed beta = 10; mlp's is behind: pooling any two would blur opposite effects.
    runs, epochs = [], []
    gains = {("cnn", 1.0): +0.05, ("cnn", 10.0): -0.05, ("mlp", 1.0): -0.05}
    for (model, beta), gain in gains.items():
        for schedule in ("constant", "log_linear"):
            for seed in (0, 1, 2):
                run_dir = f"{model}_{beta}_{schedule}_{seed}"
                runs.append({"dataset": "d", "model": model, "beta": beta, "seed": seed,
                             "beta_schedule": schedule, "run_dir": run_dir})
                accuracy = 0.5 + 0.01 * seed + (gain if schedule == "log_linear" else 0.0)
                epochs += [{"run_dir": run_dir, "seed": seed, "epoch": epoch,
                            "train/accuracy": accuracy} for epoch in (1, 2, 3, 4)]
    runs, epochs = pd.DataFrame(runs), pd.DataFrame(epochs)
    rows = claims._p2_warmup(runs[runs["beta_schedule"] == "constant"],
                             runs[runs["beta_schedule"] == "log_linear"], epochs)
    assert {row.scope: row.verdict for row in rows} == {
        "cnn on d, to beta = 1": statistics.REPRODUCED,
        "cnn on d, to beta = 10": statistics.CONTRADICTED,
        "mlp on d, to beta = 1": statistics.CONTRADICTED}
    for row in rows:
        assert f"at fixed beta = {row.scope.rsplit('= ', 1)[1]}, paired" in row.rule


def test_the_logit_norm_grid_claim_compares_the_two_ranges_on_complete_seeds():
    rows = []
    for seed in (0, 1, 2):
        for beta, norm in itertools.product((0.1, 1.0, 10.0), (0.1, 1.0)):
            accuracy = 0.8 + 0.05 * np.log10(beta) ** 2 + 0.01 * norm + 0.003 * seed * norm
            rows.append({"dataset": "d", "model": "m", "beta": beta, "init_logit_norm": norm,
                         "seed": seed, "status": "completed", "run_dir": f"{beta}_{norm}_{seed}",
                         "final/test/accuracy": accuracy, "final/train/accuracy": 1.0})
    runs = pd.DataFrame(rows)
    row, = claims._p1_beta_vs_norm(runs)
    table = runs.pivot_table(index=["seed", "init_logit_norm"], columns="beta",
                             values="final/test/accuracy")
    effect = [np.ptp(table.loc[seed].mean(axis=0)) - np.ptp(table.loc[seed].mean(axis=1))
              for seed in (0, 1, 2)]
    assert row.verdict == statistics.REPRODUCED
    assert f"{np.mean(effect):+.4f}" in row.effect and "n = 3" in row.effect
    # A cell that diverged in every seed leaves no complete seed: not judged under the rule.
    # The largest complete sub-grid (beta 0.1-1 x both norms), a rule chosen after the data,
    # is a post-hoc note beside it, never the verdict.
    diverged = (runs["beta"] == 10.0) & (runs["init_logit_norm"] == 1.0)
    row, = claims._p1_beta_vs_norm(runs.assign(status=np.where(diverged, "diverged",
                                                               "completed")))
    assert row.verdict == statistics.NOT_JUDGED and "n = 0" in row.effect
    inside = table.loc[:, [0.1, 1.0]]
    effect = [np.ptp(inside.loc[seed].mean(axis=0)) - np.ptp(inside.loc[seed].mean(axis=1))
              for seed in (0, 1, 2)]
    assert "post-hoc, not the verdict" in row.note
    assert "beta in {0.1, 1} x ||beta z0|| in {0.1, 1}: " in row.note
    assert f"{np.mean(effect):+.4f}" in row.note and "which would read reproduced" in row.note
    assert "(10, 1) in 3 seeds (3 diverged)" in row.note and "sub-grid" not in row.rule
    # With (1, 1) gone as well no sub-grid of 2 betas x 2 norms is left: not judged.
    diverged |= (runs["beta"] == 1.0) & (runs["init_logit_norm"] == 1.0)
    row, = claims._p1_beta_vs_norm(runs.assign(status=np.where(diverged, "diverged",
                                                               "completed")))
    assert row.verdict == statistics.NOT_JUDGED and "(1, 1) in 3 seeds" in row.note
    assert "post-hoc" not in row.note


def test_runs_that_did_not_fit_are_left_out_of_generalization_claims():
    runs = pd.DataFrame({"final/train/accuracy": [0.99, 0.5, np.nan]})
    assert list(claims._fitted(runs).index) == [0]


def test_a_flagfile_parses_to_typed_config_values():
    values = load.parse_flagfile("--beta=0.5\n--epochs=3\n--tensorboard=false\n"
                                 "--init_logit_norm=\n--model=mlp\n")
    assert values == {"beta": 0.5, "epochs": 3, "tensorboard": False,
                      "init_logit_norm": pytest.approx(np.nan, nan_ok=True), "model": "mlp"}
    # Typed as the RunConfig fields are, not as strings that merely compare equal.
    assert [type(values[name]) for name in ("beta", "epochs", "tensorboard", "model")] == [
        float, int, bool, str]


def test_a_recorded_study_places_a_run_over_its_flags():
    runs = pd.DataFrame({"loss": "temperature", "init_logit_norm": np.nan, "probe_dataset": "",
                         "beta_schedule": "constant", "beta": 1.0,
                         "study": ["", "p1_logit_norm_grid", "p3_temperature_sweep"]})
    assert list(studies.paper1_beta_sweep(runs).index) == [0]
    assert list(studies.paper1_logit_norm_grid(runs).index) == [1]
    assert list(studies.paper3_sweep(runs).index) == [2]
    assert studies.paper2_sweep(runs).empty


# The studies of runs/fashion_mnist/PLAN.md with committed results, and the claims each tests.
CAMPAIGN = pathlib.Path(ROOT) / "runs" / "results" / "fashion_mnist"
CAMPAIGN_CLAIMS = {
    ("p1_beta_sweep_mlp", "mlp"): ("Tuning beta over", "training dynamics, not on confidence",
                                   "Smaller beta can give better peak"),
    ("p1_beta_sweep_cnn", "cnn"): ("Tuning beta over", "training dynamics, not on confidence",
                                   "Smaller beta can give better peak"),
    ("p1_beta_sweep_resnet18", "resnet18"): ("Tuning beta over",
                                             "training dynamics, not on confidence",
                                             "Smaller beta can give better peak"),
    ("p1_logit_norm_grid_mlp", "mlp"): ("only weakly on ||beta z0||",),
    ("p2_warmup_cnn", "cnn"): ("Warming beta up",),
    ("p2_warmup_resnet18", "resnet18"): ("Warming beta up",),
    ("p2_decay_sweep_resnet18", "resnet18"): ("Generalization depends significantly",
                                              "Larger beta lowers ECE", "Larger beta lowers MCE",
                                              "post-hoc temperature scaling",
                                              "Smaller beta converges"),
    ("p3_temperature_sweep_resnet18", "resnet18"): ("lower-rank representations (features",
                                                    "Linear-probe transfer",
                                                    "OOD detection improves"),
    ("p3_lr_control_resnet18", "resnet18"): ("The effect of T holds when the learning rate",),
    ("p2_decay_sweep_cnn_tracked", "cnn"): ("Small beta shows a curriculum",),
    ("p3_lr_control_mlp", "mlp"): ("The effect of T holds when the learning rate moves",),
    ("p2_decay_sweep_cnn", "cnn"): ("Generalization depends significantly",
                                    "Larger beta lowers ECE", "Larger beta lowers MCE",
                                    "post-hoc temperature scaling", "Smaller beta converges"),
    ("p3_temperature_sweep_mlp", "mlp"): ("lower-rank representations (features",
                                          "Linear-probe transfer", "OOD detection improves"),
}
INTERVAL = r"\[[-+]\d\.\d+, [-+]\d\.\d+\] \(95% CI, (t|BCa bootstrap), n = (\d+)\)"
TREND = r"Spearman rho [-+]\d\.\d+ \(permutation p = [\d.e-]+, n = (\d+)\)"


def test_the_committed_campaign_gives_every_planned_claim_a_verdict_rule_and_interval(tmp_path):
    # The report's build, as its command runs it, with its figures laid out but not drawn
    # (test_report_command_writes_figures_tables_and_the_claim_table draws every figure); in a
    # subprocess, as the report's absl flags would clash with other modules' in this one.
    completed = run_python(f"""
        from matplotlib import pyplot
        from tc.analysis import figures, report
        figures._save = lambda figure, path: (pyplot.close(figure), path)[1]
        report.build([{str(CAMPAIGN)!r}], {str(tmp_path)!r}, flagfile_root="",
                     plan_path={ROOT + "/runs/fashion_mnist/PLAN.md"!r})
    """)
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = pd.read_csv(tmp_path / "tables" / "claims.csv").fillna("")
    markdown = (tmp_path / "REPORT.md").read_text()
    assert "## The Fashion-MNIST campaign" in markdown and "A second learning-rate grid" in markdown
    for (study, model), expected in CAMPAIGN_CLAIMS.items():
        assert any((CAMPAIGN / study / f"seed{seed}" / "DONE").exists() for seed in range(6))
        scoped = table[table["scope"].str.startswith(f"{model} on fashion_mnist")]
        for claim in expected:
            rows = scoped[scoped["claim"].str.contains(claim, regex=False)]
            assert len(rows), (study, claim)
            for _, row in rows.iterrows():
                assert row["verdict"] in claims.VERDICTS and row["rule"], (claim, row)
                if row["verdict"] == statistics.NOT_JUDGED and "CI" not in row["effect"]:
                    # Not judged under its rule (the logit-norm grid: no seed has every
                    # cell): its n and why, with any post-hoc result only in the note.
                    assert row["effect"].startswith("n = ") and row["note"], (claim, row)
                    continue
                found = (pd.Series([row["effect"]]).str.extract(INTERVAL)[1].iloc[0]
                         if "CI" in row["effect"] else
                         pd.Series([row["effect"]]).str.extract(TREND)[0].iloc[0])
                assert isinstance(found, str) and int(found) >= 3, (claim, row["effect"])


def test_error_bars_are_the_t_interval_of_the_mean_and_heatmap_text_contrasts():
    from scipy import stats

    from tc.analysis import figures

    seeds = np.array([0.90, 0.93, 0.91])
    low, high = stats.t.interval(0.95, len(seeds) - 1, loc=seeds.mean(), scale=stats.sem(seeds))
    width = figures.interval_half_width([seeds.std(ddof=1)], [len(seeds)])[0]
    assert width == pytest.approx((high - low) / 2, rel=1e-12)
    assert figures.interval_half_width([0.1], [1])[0] == 0.0
    assert figures.contrasting_text_colour((1.0, 1.0, 0.6, 1.0)) == "black"
    assert figures.contrasting_text_colour((0.2, 0.0, 0.3, 1.0)) == "white"
    # One diverged cell (0.1) does not stretch the colour scale over the trained ones.
    assert figures.heatmap_range(np.array([[0.1, 0.90], [0.92, np.nan]])) == {
        "vmin": pytest.approx(0.82), "vmax": 0.92}


def test_the_curriculum_claim_compares_learning_order_with_difficulty(tmp_path):
    # Per seed: at beta = 0.1 the examples are learned in the order of their difficulty under
    # the beta = 1 run; at beta = 10 in an order unrelated to it. Reproduced, paired by seed.
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        difficulty = rng.random(40)
        order = {0.1: np.argsort(np.argsort(difficulty)) // 8 + 1, 1.0: rng.integers(1, 6, 40),
                 10.0: rng.integers(1, 6, 40)}
        for beta, learned_at in order.items():
            run_dir = tmp_path / f"beta{beta}_seed{seed}"
            run_dir.mkdir()
            nll = np.stack([difficulty + 1.0, difficulty])  # epochs x examples
            np.savez(run_dir / "example_learning.npz", learned_at=learned_at, nll=nll,
                     margin=np.ones_like(nll))
            rows.append({"dataset": "d", "model": "m", "beta": beta, "seed": seed,
                         "run_dir": str(run_dir)})
    row, = claims._p2_curriculum(pd.DataFrame(rows))
    assert row.verdict == statistics.REPRODUCED and "n = 3" in row.effect
    assert "at beta = 0.1 minus at beta = 10" in row.rule
    untracked = pd.DataFrame(rows).assign(run_dir=str(tmp_path / "nowhere"))
    assert claims._p2_curriculum(untracked)[0].verdict == claims.NOT_TESTABLE


def test_each_further_probed_layer_gets_its_own_probe_row():
    temperature = np.repeat([0.1, 1.0, 10.0], 3)
    runs = pd.DataFrame({"dataset": "d", "model": "m", "temperature": temperature,
                         "seed": np.tile([0, 1, 2], 3), "run_dir": "r",
                         "probe/dataset": "other", "probe/layer": "features",
                         "probe/accuracy": 0.9 - 0.01 * np.log10(temperature),
                         "probe/features/accuracy": 0.9 - 0.01 * np.log10(temperature),
                         "probe/dense0/accuracy": 0.5 + 0.01 * np.log10(temperature)})
    rows = claims._p3_probe(runs)
    assert [row.claim for row in rows] == [
        "Linear-probe transfer of the features to OOD data gets worse at high T.",
        "Linear-probe transfer of layer dense0 to OOD data gets worse at high T."]
    assert [row.verdict for row in rows] == [statistics.REPRODUCED, statistics.CONTRADICTED]


# Phrases of this repository's own campaign text (runs/report_notes.md, runs/fashion_mnist/):
# none may reach the report of someone else's runs.
CAMPAIGN_PHRASES = ("Fashion-MNIST", "fashion_mnist", "reproduce.sh", "H100", "H200",
                    "PLAN.md", "campaign", "committed CPU runs", "Full scale")


def test_a_report_on_a_users_own_folder_says_only_what_its_runs_say_and_splits_budgets(
        tmp_path):
    # A user's folder: beta sweeps of the same MLP on digits at 3 and at 30 epochs, 3 seeds.
    mine = tmp_path / "mine"
    for epochs in (3, 30):
        for beta in (0.1, 1.0, 10.0):
            for seed in range(3):
                tiny_run(mine, f"e{epochs}_b{beta}_s{seed}", epochs=epochs, beta=beta, seed=seed,
                         values={"train/accuracy": 1.0})
    out = tmp_path / "report"
    # The figures' lines are recorded instead of drawn: which lines each figure labels.
    completed = run_python(f"""
        import json
        from matplotlib import pyplot
        from tc.analysis import figures, report
        drawn = {{}}
        def record(figure, path):
            drawn[path.rsplit("/", 1)[-1]] = [
                axis.get_legend_handles_labels()[1] for axis in figure.axes]
            pyplot.close(figure)
            return path
        figures._save = record
        report.build([{str(mine)!r}], {str(out)!r})
        print(json.dumps(drawn))
    """)
    assert completed.returncode == 0, completed.stderr[-3000:]
    drawn = json.loads(completed.stdout.strip().splitlines()[-1])
    markdown = (out / "REPORT.md").read_text()
    for phrase in CAMPAIGN_PHRASES:
        assert phrase not in markdown, phrase
    # Each budget is its own scope: two curves, two rows per beta, claims per budget.
    sweep = pd.read_csv(out / "tables" / "p1_beta_sweep.csv")
    assert sorted(sweep["model"].unique()) == ["mlp (3 epochs)", "mlp (30 epochs)"]
    assert len(sweep) == 6 and (sweep["final/test/accuracy/count"] == 3).all()
    (curve_axis,) = drawn["p1_accuracy_vs_beta.png"]
    assert {"mlp (3 epochs) on digits", "mlp (30 epochs) on digits"} <= set(curve_axis)
    assert not any(label == "mlp on digits" for label in curve_axis)
    scopes = set(pd.read_csv(out / "tables" / "claims.csv")["scope"])
    assert {"mlp (3 epochs) on digits", "mlp (30 epochs) on digits"} <= scopes
    assert "mlp on digits" not in scopes


def test_a_missing_runs_folder_is_an_error_of_the_library_call_too(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: no such directory"):
        load.load([str(tmp_path), str(tmp_path / "nowhere")])


def test_the_colour_scale_of_an_accuracy_heatmap_stays_inside_0_and_1():
    from tc.analysis import figures

    assert figures.heatmap_range(np.array([[1.0]])) == {"vmin": pytest.approx(0.9), "vmax": 1.0}
    assert figures.heatmap_range(np.array([[0.03]])) == {"vmin": 0.0, "vmax": 0.1}
    for values in ([[0.5]], [[0.97, 0.99], [0.2, 1.0]], [[0.0]]):
        scale = figures.heatmap_range(np.array(values))
        assert 0.0 <= scale["vmin"] < scale["vmax"] <= 1.0, values


def test_the_tally_counts_a_claim_once_per_scope_and_keeps_datasets_apart():
    rows = [claims.Claim(claims.P3, f"Higher T gives lower-rank representations ({layer}).",
                         "mlp on digits", verdict, "", "", family="rank")
            for layer, verdict in (("a", statistics.REPRODUCED), ("b", statistics.INCONCLUSIVE))]
    rows += [claims.Claim(claims.P3, f"OOD detection improves ({score}).", "cnn on fashion_mnist",
                          statistics.REPRODUCED, "", "", family="ood") for score in "xyz"]
    rows += [claims.Claim(claims.P1, "Tuning beta helps.", scope, statistics.CONTRADICTED, "", "")
             for scope in ("mlp on digits", "cnn on fashion_mnist", "mlp on fashion_mnist")]
    rows.append(claims.Claim(claims.P3, "Width sets the norm.", "all", claims.NOT_TESTABLE, "",
                             ""))
    table = pd.DataFrame([dataclasses.asdict(row) for row in rows])
    assert claims.tally(table) == {
        "digits": {"mixed": 1, statistics.CONTRADICTED: 1},
        "fashion_mnist": {statistics.REPRODUCED: 1, statistics.CONTRADICTED: 2}}
