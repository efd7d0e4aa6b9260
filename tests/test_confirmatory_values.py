"""The confirmatory family's per-seed values, from run directories read as `tc.analysis.load`
reads them, against the plan's statistics computed here by hand (numpy / scipy)."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tc.analysis import confirmatory, confirmatory_values, load
from tc.analysis.scaling import temperature_scaling_table
from tests import support

pytestmark = pytest.mark.backend_independent

CONFIRMATION = confirmatory.CONFIRMATION_SEEDS
EXTENDED = confirmatory.EXTENDED_SEEDS
FITS = 0.995


def write(root, name, values, result_extra=None, learning=None, **flags):
    path = support.write_synthetic_run(os.path.join(root, name), epochs=5, values=values,
                                       rank_layers=("features",), **flags)
    if result_extra:
        with open(os.path.join(path, "result.json")) as handle:
            result = json.load(handle)
        result.update(result_extra)
        with open(os.path.join(path, "result.json"), "w") as handle:
            json.dump(result, handle)
    if learning is not None:
        np.savez(os.path.join(path, "example_learning.npz"), **learning)
    return path


def accuracy(beta, seed, rate, chosen):
    """A made-up test accuracy: varies with beta, the seed and, off the chosen rate, a lot."""
    return 0.90 + 0.01 * np.log10(beta) * -1 + 0.001 * (seed - 100) + (0 if chosen else -0.2)


P1_BETAS = (0.1, 1.0, 10.0)
P1_RATES = (0.01, 0.02)
# On the tuning seed: the rate each beta is best at, and its validation accuracy there.
P1_TUNED = {0.1: (0.02, 0.95), 1.0: (0.01, 0.93), 10.0: (0.02, 0.90)}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("confirmatory"))
    common = dict(dataset="synthetic_images", model="resnet18", loss="temperature")
    # Paper 1, tuning seed 90: every beta at every rate; the validation picks the tuned rate.
    for beta in P1_BETAS:
        for rate in P1_RATES:
            chosen_rate, val = P1_TUNED[beta]
            write(root, f"p1/b{beta}_lr{rate}_s90",
                  {"val/accuracy": val if rate == chosen_rate else val - 0.1,
                   "train_eval/accuracy": FITS}, study="p1_beta_sweep", beta=beta,
                  learning_rate=rate, seed=90, **common)
    # Confirmation seeds: each beta at its tuned rate, and a decoy at the other rate.
    for seed in EXTENDED:
        for beta in P1_BETAS:
            for rate in P1_RATES:
                chosen = rate == P1_TUNED[beta][0]
                fit = 0.95 if (seed, beta, chosen) == (101, 10.0, True) else FITS
                write(root, f"p1/b{beta}_lr{rate}_s{seed}",
                      {"test/accuracy": accuracy(beta, seed, rate, chosen),
                       "val/accuracy": 0.99, "train_eval/accuracy": fit},
                      study="p1_beta_sweep", beta=beta, learning_rate=rate, seed=seed, **common)
    # The (beta, norm) grid, confirmation seeds: accuracy = a(beta) + b(norm).
    for seed in CONFIRMATION:
        for beta, a in ((0.1, 0.02), (1.0, 0.0), (10.0, -0.03)):
            for norm, b in ((0.1, 0.001), (1.0, 0.0), (10.0, 0.004 + 0.001 * (seed - 100))):
                write(root, f"grid/b{beta}_n{norm}_s{seed}",
                      {"test/accuracy": 0.9 + a + b, "train_eval/accuracy": FITS},
                      study="p1_logit_norm_grid", beta=beta, init_logit_norm=str(norm),
                      learning_rate=0.02, seed=seed, **common)
    # Paper 2: the decay sweep on the tuning seed and the confirmation seeds.
    rng = np.random.default_rng(0)
    difficulty = {}
    for seed in (90,) + EXTENDED:
        for beta in (0.01, 1.0, 10.0):
            learned = rng.integers(0, 6, 50)
            nll = rng.uniform(0, 3, (5, 50))
            write(root, f"p2/b{beta}_s{seed}",
                  {"val/accuracy": {0.01: 0.91, 1.0: 0.92, 10.0: 0.90}[beta],
                   "test/accuracy": 0.9 + 0.0005 * (seed - 100) * (beta == 10.0),
                   "test/ece": 0.05 / (1 + beta) + 0.001 * seed,
                   "test/mce": 0.2 - 0.01 * beta + 0.002 * ((seed + beta) % 3),
                   "train/accuracy": 0.6 + 0.01 * (beta < 1) + 0.0002 * seed,
                   "train_eval/accuracy": FITS},
                  learning={"learned_at": learned, "margin": rng.normal(size=(5, 50)),
                            "nll": nll},
                  study="p2_decay_sweep", loss="gradient_decay", beta=beta,
                  learning_rate=0.05, seed=seed, save_predictions=True,
                  **{k: v for k, v in common.items() if k != "loss"})
            difficulty[(seed, beta)] = (learned, nll)
        write(root, f"p2/warmup_s{seed}",
              {"train/accuracy": 0.61 + 0.0003 * seed, "train_eval/accuracy": FITS},
              study="p2_warmup", loss="gradient_decay", beta=1.0, beta_schedule="log_linear",
              beta_start=0.1, beta_warmup=5, learning_rate=0.05, seed=seed,
              **{k: v for k, v in common.items() if k != "loss"})
    # Paper 3: T = 1 / beta, rates tuned on seed 90 (the rate 0.02 wins at every T).
    for seed in (90,) + CONFIRMATION:
        for beta in (10.0, 1.0, 0.1):
            for rate in (0.01, 0.02):
                temperature = 1 / beta
                write(root, f"p3/b{beta}_lr{rate}_s{seed}",
                      {"val/accuracy": 0.9 + 0.05 * (rate == 0.02),
                       "test/accuracy": 0.95 - 0.001 * temperature + 0.0001 * seed,
                       "rank/features/effective": 40 - 3 * temperature + (seed % 2),
                       "train_eval/accuracy": FITS},
                      result_extra={
                          "linear_probe": {"dataset": "fashion_mnist", "layer": "features",
                                           "train_examples": 500,
                                           "accuracy": 0.8 - 0.01 * temperature},
                          "ood_detection": {"max_softmax_probability": {
                              "auroc": 0.7 + 0.01 * temperature, "fpr_at_95_tpr": 0.5}},
                          "far_ood_detection": {
                              "digits": {"max_softmax_probability": {
                                  "auroc": 0.6 + 0.02 * temperature, "fpr_at_95_tpr": 0.5}},
                              "uniform_noise": {"max_softmax_probability": {
                                  "auroc": 0.9 - 0.005 * temperature * (seed % 2),
                                  "fpr_at_95_tpr": 0.5}}}},
                      study="p3_temperature_sweep", beta=beta, learning_rate=rate, seed=seed,
                      **common)
    results = load.load([root])
    assert results.problems.empty, results.problems
    scaling = temperature_scaling_table(results.runs, 15)
    return results, scaling, difficulty


def test_every_primary_test_gets_its_per_seed_values_by_the_plans_statistic(campaign):
    results, scaling, difficulty = campaign
    per_seed, excluded = confirmatory_values.per_seed_values(results.runs, results.epochs,
                                                             scaling)
    values = {test_id: np.asarray(v) for (test_id, arch), v in per_seed.items()
              if arch == "resnet18"}
    assert not any(arch == "vgg11" for _, arch in per_seed)  # it never ran
    assert set(values) == {test.id for test in confirmatory.PRIMARY}

    # Paper 1: best beta 0.1, worst 10 on the tuning seed; seed 101's beta = 10 run did not fit.
    kept = [seed for seed in CONFIRMATION if seed != 101]
    expected = [accuracy(0.1, s, 0.02, True) - accuracy(10.0, s, 0.02, True) for s in kept]
    np.testing.assert_allclose(values["p1_beta_matters"], expected, atol=1e-12)
    expected = [accuracy(0.1, s, 0.02, True) - accuracy(1.0, s, 0.01, True) for s in EXTENDED]
    np.testing.assert_allclose(values["p1_tuning_helps"], expected, atol=1e-12)
    np.testing.assert_allclose(values["p1_small_beta_peak"], expected[:len(CONFIRMATION)],
                               atol=1e-12)
    (run, fit), = excluded[("p1_beta_matters", "resnet18")]
    assert run.endswith(os.path.join("p1", "b10.0_lr0.02_s101")) and fit == pytest.approx(0.95)
    assert ("p1_tuning_helps", "resnet18") not in excluded

    # The grid: the range over beta, 0.05, minus that over the norm, 0.004 + 0.001 (seed - 100).
    expected = [0.05 - (0.004 + 0.001 * (s - 100)) for s in CONFIRMATION]
    np.testing.assert_allclose(values["p1_norm_weak"], expected, atol=1e-12)

    # Paper 2: on the tuning seed, beta = 1 validates best and 10 worst.
    np.testing.assert_allclose(values["p2_decay_matters"],
                               [-0.0005 * (s - 100) for s in CONFIRMATION], atol=1e-12)
    runs = results.runs
    for test_id, metric, seeds in (("p2_ece", "ece", CONFIRMATION),
                                   ("p2_mce", "mce", EXTENDED)):
        rhos = []
        for seed in seeds:
            seed_runs = runs[(runs["study"] == "p2_decay_sweep") & (runs["seed"] == seed)]
            rhos.append(stats.spearmanr(seed_runs["beta"],
                                        seed_runs[f"final/test/{metric}"]).statistic)
        np.testing.assert_allclose(values[test_id], rhos, atol=1e-12)
    np.testing.assert_allclose(values["p2_top1_unchanged"],
                               [0.0005 * (s - 100) for s in CONFIRMATION], atol=1e-12)
    sweep = runs[runs["study"] == "p2_decay_sweep"]
    after = dict(zip(scaling["run_dir"], scaling["ece_after"]))
    expected = []
    for seed in CONFIRMATION:
        plain = sweep[(sweep["seed"] == seed) & (sweep["beta"] == 1.0)].iloc[0]
        large = sweep[(sweep["seed"] == seed) & (sweep["beta"] == 10.0)].iloc[0]
        expected.append(after[plain["run_dir"]] - large["final/test/ece"])
    np.testing.assert_allclose(values["p2_beats_scaling"], expected, atol=1e-12)
    np.testing.assert_allclose(values["p2_faster"], [0.01] * len(EXTENDED), atol=1e-9)
    np.testing.assert_allclose(values["p2_warmup"],
                               [0.01 + 0.0001 * s for s in CONFIRMATION], atol=1e-9)
    expected = []
    for seed in CONFIRMATION:
        reference = difficulty[(seed, 1.0)][1][-1]
        rho = {}
        for beta in (0.01, 10.0):
            learned_at = difficulty[(seed, beta)][0].astype(float)
            learned_at[learned_at == 0] = 6
            rho[beta] = stats.spearmanr(learned_at, reference).statistic
        expected.append(rho[0.01] - rho[10.0])
    np.testing.assert_allclose(values["p2_curriculum"], expected, atol=1e-12)

    # Paper 3, at the tuned rate: the rank falls with T, the AUROCs rise (or hold), rho +-1.
    np.testing.assert_allclose(values["p3_rank"], [-1.0] * 5)
    np.testing.assert_allclose(values["p3_probe"], [-1.0] * 5)
    np.testing.assert_allclose(values["p3_detection_near"], [1.0] * 5)
    # Far: the mean of digits (+0.02 T) and noise (-0.005 T on odd seeds) rises with T.
    np.testing.assert_allclose(values["p3_detection_far"], [1.0] * 5)
    np.testing.assert_allclose(values["p3_accuracy_holds"], [-0.009] * 5, atol=1e-12)


def test_the_values_judge_as_a_family_and_a_missing_architecture_is_not_run(campaign):
    results, scaling, _ = campaign
    per_seed, excluded = confirmatory_values.per_seed_values(results.runs, results.epochs,
                                                             scaling)
    rows = confirmatory.judge_family(per_seed, excluded)
    assert len(rows) == confirmatory.family_size()
    by_key = {(row["id"], row["architecture"]): row for row in rows}
    assert all(row["verdict"] == "not run" for row in rows if row["architecture"] == "vgg11")
    assert by_key[("p1_beta_matters", "resnet18")]["n"] == 4
    assert by_key[("p1_beta_matters", "resnet18")]["verdict"] == "not run"  # 4 < MIN_SEEDS
    assert by_key[("p1_beta_matters", "resnet18")]["excluded"] == 1
    assert by_key[("p3_rank", "resnet18")]["verdict"] == "confirmed"
    table = confirmatory.family_table(rows)
    assert "| `p3_rank` | resnet18 | confirmed | 5 |" in table


def test_a_choice_is_made_on_the_tuning_seed_only(campaign):
    results, _, _ = campaign
    sweep = results.runs[results.runs["study"] == "p1_beta_sweep"]
    rates, ranked = confirmatory_values.tuned_choices(sweep)
    assert rates == {beta: rate for beta, (rate, _) in P1_TUNED.items()}
    assert ranked == [0.1, 1.0, 10.0]
    # The confirmation seeds validate every beta at 0.99: had they chosen, all would tie.
    flipped = sweep.assign(**{"best/val/accuracy": np.where(
        sweep["seed"] == 90, sweep["best/val/accuracy"], 1.0 - sweep["beta"] / 100)})
    assert confirmatory_values.tuned_choices(flipped)[1] == ranked


def test_the_report_prints_the_family_beside_the_first_campaigns_verdicts(campaign, tmp_path):
    results, _, _ = campaign
    root = os.path.dirname(os.path.dirname(results.runs["run_dir"].iloc[0]))
    first = tmp_path / "claims.csv"
    first.write_text("paper,claim,scope,verdict,effect,rule,note,runs,family\n"
                     "2. Gradient decay,Larger beta lowers ECE.,resnet18 on fashion_mnist,"
                     "reproduced,,,,,\n"
                     "2. Gradient decay,Larger beta lowers ECE.,cnn on fashion_mnist,"
                     "inconclusive,,,,,\n")
    completed = support.run_python(["-m", "tc.analysis.report", f"--runs={root}",
                                    f"--out={tmp_path / 'out'}",
                                    f"--short_budget_claims={first}"])
    assert completed.returncode == 0, completed.stderr[-3000:]
    report_text = (tmp_path / "out" / "REPORT.md").read_text()
    summary_text = (tmp_path / "out" / "SUMMARY.md").read_text()
    rows = confirmatory.judge_family(*confirmatory_values.per_seed_values(
        results.runs, results.epochs, temperature_scaling_table(results.runs, 15)))
    table = confirmatory.family_table(rows, {("p2_ece", "resnet18"): "reproduced"})
    assert table in report_text and table in summary_text
    assert "| `p2_ece` | resnet18 |" in table and table.count("| reproduced |") == 1
    excluded = pd.read_csv(tmp_path / "out" / "tables" / "confirmatory_excluded.csv")
    assert set(excluded["id"]) == {"p1_beta_matters"}
    assert excluded["train_eval_accuracy"].tolist() == [0.95]
    csv_rows = pd.read_csv(tmp_path / "out" / "tables" / "confirmatory.csv")
    assert len(csv_rows) == confirmatory.family_size()
    missing = support.run_python(["-m", "tc.analysis.report", f"--runs={root}",
                                  f"--out={tmp_path / 'out2'}",
                                  f"--short_budget_claims={tmp_path / 'nope.csv'}"])
    assert missing.returncode != 0 and "--short_budget_claims=" in missing.stderr
    assert not (tmp_path / "out2").exists()


def test_the_first_campaigns_verdicts_are_found_for_the_claims_it_judged():
    table = pd.read_csv(os.path.join(os.path.dirname(__file__), "..", "runs", "results",
                                     "tables", "claims.csv"), keep_default_na=False)
    verdicts = confirmatory_values.short_budget_verdicts(table)
    resnet = {test_id: verdict for (test_id, arch), verdict in verdicts.items()
              if arch == "resnet18"}
    expected = {}
    for row in table.itertuples():
        if row.scope == "resnet18 on fashion_mnist" and row.claim == "Larger beta lowers MCE.":
            expected["p2_mce"] = row.verdict
        if (row.scope == "resnet18 on fashion_mnist, to beta = 1"
                and row.claim.startswith("Warming")):
            expected["p2_warmup"] = row.verdict
    assert expected and all(resnet[key] == value for key, value in expected.items())
    # Claims the first campaign did not judge have no verdict beside them.
    assert not {"p2_top1_unchanged", "p3_accuracy_holds", "p3_detection_far"} & set(resnet)
    assert not any(arch == "vgg11" for _, arch in verdicts)
