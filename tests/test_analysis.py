"""analysis/: synthetic run directories -> DataFrames, figures and the report's claim table."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from analysis import claims, load, studies
from tests.support import ROOT, run_python, write_synthetic_run

FIGURES = ("p1_accuracy_vs_beta", "p1_beta_logit_norm_heatmap", "p1_training_curves",
           "p2_calibration_vs_beta", "p2_reliability_diagrams", "p2_training_curves",
           "p3_rank_vs_temperature", "p3_logit_norm_curves", "p3_probe_vs_temperature")


def tiny_run(root, name, **flags):
    return write_synthetic_run(root / name, **flags)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for beta in (0.1, 1.0):
        for seed in (0, 1):
            tiny_run(root / "p1", f"beta{beta}_seed{seed}", beta=beta, seed=seed)
    for norm in ("0.1", "10"):
        tiny_run(root / "p1_grid", f"norm{norm}", beta=1.0, init_logit_norm=norm)
    for beta in (0.1, 1.0):
        tiny_run(root / "p2", f"beta{beta}", loss="gradient_decay", beta=beta)
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


def test_loader_gives_one_row_per_run_and_per_epoch(runs_root):
    results = load.load(runs_root)
    assert len(results.runs) == 12 and len(results.epochs) == 24
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
    assert len(studies.paper1_beta_sweep(runs)) == 4
    assert len(studies.paper1_logit_norm_grid(runs)) == 2
    assert len(studies.paper2_sweep(runs)) == 2 and len(studies.paper2_warmup(runs)) == 1
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
    completed = run_python(["-m", "analysis.report", f"--runs={runs_root}", f"--out={out}",
                            f"--flagfiles={os.path.join(ROOT, 'runs')}", "--throughput="])
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "12 runs, 2 skipped" in completed.stdout
    for name in FIGURES:
        path = out / "figures" / f"{name}.png"
        assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    claim_table = pd.read_csv(out / "tables" / "claims.csv")
    assert set(claim_table["verdict"]) <= set(claims.VERDICTS)
    assert set(claim_table["paper"]) == {claims.P1, claims.P2, claims.P3}
    theory_rows = claim_table[claim_table["claim"].str.startswith(
        ("Reparametrization", "Curvature", "Time to learn", "g(p)", "sigma_2"))]
    assert len(theory_rows) == 5 and set(theory_rows["verdict"]) == {claims.REPRODUCED}
    report = (out / "REPORT.md").read_text()
    for row in claim_table.itertuples():
        assert row.claim.replace("|", "\\|") in report and row.verdict in report
    for name in FIGURES:
        assert f"(figures/{name}.png)" in report
    assert "unfinished" in report and "corrupt" in report  # the skipped runs are listed
    runs_csv = pd.read_csv(out / "tables" / "runs.csv")
    assert len(runs_csv) == 12
    full_scale = pd.read_csv(out / "tables" / "full_scale.csv")
    assert "runs/paper1/wrn_cifar10_beta_grid.cfg" in set(full_scale["flagfile"])
    scaling = pd.read_csv(out / "tables" / "p2_temperature_scaling.csv")
    assert (scaling["temperature/mean"] > 0).all()


def test_claims_follow_their_rules_on_constructed_runs():
    runs = pd.DataFrame({
        "dataset": "d", "model": "m", "loss": "gradient_decay", "beta_schedule": "constant",
        "status": "completed", "seed": 0, "beta": [0.1, 1.0, 10.0],
        "final/test/ece": [0.10, 0.05, 0.01], "final/test/mce": [0.3, 0.2, 0.1],
        "final/test/accuracy": [0.90, 0.905, 0.91]})
    calibration_claim = claims._p2_calibration(runs)
    assert calibration_claim.verdict == claims.REPRODUCED
    worse = runs.assign(**{"final/test/ece": [0.01, 0.05, 0.10]})
    assert claims._p2_calibration(worse).verdict == claims.NOT_REPRODUCED
    assert claims._p2_calibration(runs.iloc[:0]).verdict == claims.NOT_TESTABLE


def test_a_flagfile_parses_to_typed_config_values():
    values = load.parse_flagfile("--beta=0.5\n--epochs=3\n--tensorboard=false\n"
                                 "--init_logit_norm=\n--model=mlp\n")
    assert values == {"beta": 0.5, "epochs": 3, "tensorboard": False,
                      "init_logit_norm": pytest.approx(np.nan, nan_ok=True), "model": "mlp"}
    assert json.dumps({k: v for k, v in values.items() if k != "init_logit_norm"})


def test_a_recorded_study_places_a_run_over_its_flags():
    runs = pd.DataFrame({"loss": "temperature", "init_logit_norm": np.nan, "probe_dataset": "",
                         "beta_schedule": "constant", "beta": 1.0,
                         "study": ["", "p1_logit_norm_grid", "p3_temperature_sweep"]})
    assert list(studies.paper1_beta_sweep(runs).index) == [0]
    assert list(studies.paper1_logit_norm_grid(runs).index) == [1]
    assert list(studies.paper3_sweep(runs).index) == [2]
    assert studies.paper2_sweep(runs).empty
