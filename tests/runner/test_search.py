"""`tc.tune`: keras-tuner searches over beta whose trials are ordinary tc runs."""

import dataclasses
import json
import os
import time

import numpy as np
import pytest

from tc import run_files
from tc.runner import assembly, search
from tests.support import free_ports, run_python, start_python


@pytest.fixture
def base_config(small_config):
    """A search's base: small_config's runs with no run directory, 2 epochs, no ranks."""
    return lambda **overrides: small_config(**{"output_dir": "", "epochs": 2, "batch_size": 64,
                                               "rank_probe_size": 64, "track_rank_layers": "",
                                               **overrides})


def _fake_run(calls, fails, configs=None, accuracy=lambda config: 0.5 + 0.01 * config.beta):
    """A stand-in for assembly.run_one that writes a completed result without training (its
    val/accuracy `accuracy(config)`), and raises OSError (a full disk) while `fails(beta)` says
    so. The search's bookkeeping is what these tests check: the grid search test trains."""
    def run_one(config, *args, **kwargs):
        calls.append(config.beta)
        if configs is not None:
            configs.append(config)
        if fails(config.beta):
            raise OSError(28, "No space left on device")
        result = {"status": "completed", "seed": config.seed, "beta": config.beta,
                  "learning_rate": config.learning_rate, "epochs": config.epochs,
                  "final": {"val/accuracy": accuracy(config)}, "run_dir": config.output_dir}
        run_files.atomic_write_json(os.path.join(config.output_dir, "result.json"),
                                    run_files.check_result(result))
        return result
    return run_one


def test_log_grid_includes_both_endpoints():
    grid = search.log_grid(1e-2, 10.0, 6)
    assert grid[0] == 1e-2 and grid[-1] == 10.0 and len(grid) == 6
    assert grid == pytest.approx(list(10.0 ** np.linspace(-2, 1, 6)))


class Interrupt(BaseException):
    """Stands for a kill: keras-tuner does not catch it."""


def test_interrupted_search_resumes_without_rerunning_finished_trials(tmp_path, monkeypatch,
                                                                     base_config):
    settings = search.SearchConfig(output_dir=str(tmp_path / "resume"), tuner="grid",
                                   grid_points=4)
    calls = []
    completed_run = _fake_run(calls, lambda beta: False)

    def interrupted_run(config, *args, **kwargs):
        if len(calls) == 2:
            raise Interrupt()
        return completed_run(config)

    monkeypatch.setattr(assembly, "run_one", interrupted_run)
    with pytest.raises(Interrupt):
        search.search_beta(base_config(), settings, baseline=False)
    finished = list(calls)

    calls.clear()
    monkeypatch.setattr(assembly, "run_one", completed_run)
    summary = search.search_beta(base_config(), settings, baseline=False)
    assert len(summary["trials"]) == 4
    assert all(row["status"] == "completed" for row in summary["trials"])
    assert len(finished) == 2 and not set(finished) & set(calls)  # not run again
    assert len(calls) == 2


def test_diverged_trial_is_failed_and_the_search_finishes(tmp_path, base_config):
    settings = search.SearchConfig(output_dir=str(tmp_path / "diverge"), tuner="grid",
                                   beta_min=1e-2, beta_max=1e3, grid_points=3)
    base = base_config(optimizer="sgd", learning_rate=1.0)
    summary = search.search_beta(base, settings, baseline=False)
    rows = {row["beta"]: row for row in summary["trials"]}
    assert rows[1e3]["status"] == "failed" and "epoch" in rows[1e3]["reason"]
    assert rows[1e-2]["status"] == "completed"
    assert summary["best"]["beta"] != 1e3


def test_grid_search_writes_trials_csv_and_runs_3_trials_packed_in_2_programs_alike(
        tmp_path, base_config, monkeypatch):
    alone = search.SearchConfig(output_dir=str(tmp_path / "alone"), tuner="grid", grid_points=3)
    summary = search.search_beta(base_config(epochs=1), alone)
    rows = run_files.read_csv(tmp_path / "alone" / "trials.csv")
    # beta = 1 is not on the grid: it is trained as the baseline, and is a row of its own.
    (baseline,) = [row for row in rows if row["trial_id"] == search.BASELINE_ID]
    rows = [row for row in rows if row["trial_id"] != search.BASELINE_ID]
    assert baseline["beta"] == 1.0 and baseline["score"] == summary["baseline"]
    baseline_result = json.loads((tmp_path / "alone" / baseline["run_dirs"] / "result.json")
                                 .read_text())
    assert baseline["score"] == pytest.approx(baseline_result["final"]["val/accuracy"])
    assert len(rows) == 3 and all(row["status"] == "completed" for row in rows)
    assert sorted(row["beta"] for row in rows) == pytest.approx(search.log_grid(1e-2, 10.0, 3))
    for row in rows:  # every trial is an ordinary run directory
        run = tmp_path / "alone" / row["run_dirs"]
        result = json.loads((run / "result.json").read_text())
        assert result["beta"] == pytest.approx(row["beta"])
        assert row["score"] == pytest.approx(result["final"]["val/accuracy"])
        assert (run / "metrics.csv").exists() and (run / "flags.txt").exists()
        assert "--betas" not in (run / "flags.txt").read_text()
    assert summary["best"]["score"] == max(row["score"] for row in rows)
    assert summary["baseline"] is not None  # beta = 1 trained for comparison
    programs, real_run = [], assembly.run

    def counted(config, extra_callbacks=(), members=None):
        programs.append(len(members) if members else 1)
        return real_run(config, extra_callbacks, members)

    monkeypatch.setattr(assembly, "run", counted)
    packed = dataclasses.replace(alone, output_dir=str(tmp_path / "packed"), packed=2)
    search.search_beta(base_config(epochs=1), packed, baseline=False)
    assert programs == [2, 1]
    rows = {name: sorted((row for row in run_files.read_csv(tmp_path / name / "trials.csv")
                          if row["trial_id"] != search.BASELINE_ID), key=lambda row: row["beta"])
            for name in ("alone", "packed")}
    assert len(rows["packed"]) == 3
    for one, together in zip(rows["alone"], rows["packed"]):
        assert together["status"] == one["status"] == "completed"
        for key in [k for k in one if k == "score" or k.startswith(("val/", "test/"))]:
            assert together[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6), key


def test_inverse_beta_squared_scaling_sets_each_trial_learning_rate(tmp_path, base_config,
                                                                     monkeypatch):
    settings = search.SearchConfig(output_dir=str(tmp_path / "scaled"), tuner="grid",
                                   beta_min=0.5, beta_max=2.0, grid_points=2,
                                   tune_learning_rate=True, lr_min=0.01, lr_max=0.04,
                                   lr_grid_points=2, lr_scaling="inverse_beta_squared")
    trained = []
    monkeypatch.setattr(assembly, "run_one", _fake_run([], lambda beta: False, trained))
    summary = search.search_beta(base_config(epochs=1), settings, baseline=False)
    assert len(summary["trials"]) == 4
    for row in summary["trials"]:
        assert row["learning_rate"] == pytest.approx(row["eta_tilde"] / row["beta"] ** 2)
    expected = sorted((beta, eta / beta ** 2) for beta in (0.5, 2.0) for eta in (0.01, 0.04))
    assert np.allclose(sorted((config.beta, config.learning_rate) for config in trained),
                       expected, rtol=1e-12)


def test_random_search_samples_inside_the_range(tmp_path, base_config, monkeypatch):
    settings = search.SearchConfig(output_dir=str(tmp_path / "random"), tuner="random",
                                   max_trials=3, beta_min=0.1, beta_max=1.0)
    monkeypatch.setattr(assembly, "run_one", _fake_run([], lambda beta: False))
    summary = search.search_beta(base_config(epochs=1), settings, baseline=False)
    assert len(summary["trials"]) == 3
    assert all(0.1 <= row["beta"] <= 1.0 for row in summary["trials"])


@pytest.mark.parametrize("overrides, match", [
    (dict(beta_min=10.0, beta_max=1.0), "--beta_min=10.0 must be below --beta_max=1.0"),
    (dict(beta_min=0.0), "--beta_min"), (dict(tuner="annealing"), "valid values: random"),
    (dict(lr_scaling="inverse_beta_squared"), "--tune_learning_rate"),
    (dict(packed=4, tuner="bayesian"), "--packed=4 works with --tuner=grid or random"),
    (dict(packed=0), "--packed=0 must be >= 1"),
])
def test_bad_search_settings_are_rejected(overrides, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(search.SearchConfig(), **overrides).validate()


@pytest.mark.backend_independent  # pinned to JAX: the command's output and exit codes
def test_tune_command_reports_best_beta_and_rejects_bad_ranges(tmp_path):
    output = tmp_path / "cli"
    completed = run_python(["-m", "tc.tune", "--grid_points=2", "--epochs=1",
                            f"--output_dir={output}"], backend="jax")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "best beta" in completed.stdout and "(beta = 1:" in completed.stdout
    assert os.path.exists(output / "trials.csv")
    bad = run_python(["-m", "tc.tune", "--beta_min=5", "--beta_max=1",
                      f"--output_dir={tmp_path / 'bad'}"], backend="jax")
    assert bad.returncode != 0 and "--beta_min=5.0 must be below --beta_max=1.0" in bad.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.backend_independent  # pinned to JAX: the oracle's bookkeeping is the same on both
@pytest.mark.tensorflow_leg  # JAX processes: CI runs them in the TensorFlow leg, the shorter
def test_distributed_search_with_a_chief_and_two_workers(tmp_path):
    (port,) = free_ports(1)
    output = tmp_path / "distributed"
    processes = {
        tuner_id: start_python(
            ["-m", "tc.tune", "--grid_points=4", "--epochs=2", "--tensorboard=false",
             f"--output_dir={output}"],
            KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(port), KERAS_BACKEND="jax")
        for tuner_id in ("chief", "tuner0", "tuner1")}
    outputs = {name: process.communicate(timeout=400) for name, process in processes.items()}
    for name, process in processes.items():  # every process exits by itself, successfully
        assert process.returncode == 0, (name, outputs[name][1][-3000:])
    assert "best beta" in outputs["chief"][0]
    rows = run_files.read_csv(output / "trials.csv")
    assert len(rows) == 4 and all(row["status"] == "completed" for row in rows)
    assert len({row["beta"] for row in rows}) == 4  # no grid point twice
    started = [line.split()[3] for name in ("tuner0", "tuner1")  # "trial #1 (trials/0) ..."
               for line in outputs[name][0].splitlines() if line.startswith("tc.tune: trial")]
    assert sorted(started) == sorted(f"(trials/{row['trial_id']})" for row in rows)  # once
    for row in rows:
        assert len(run_files.read_csv(output / row["run_dirs"] / "metrics.csv")) == 2


@pytest.mark.backend_independent  # pinned to JAX: the oracle's bookkeeping is the same on both
def test_a_worker_killed_mid_trial_has_its_trial_finished_by_another_and_all_exit(tmp_path):
    (port,) = free_ports(1)
    output = tmp_path / "distributed"
    flags = ["-m", "tc.tune", "--grid_points=3", "--epochs=4", "--tensorboard=false",
             "--worker_timeout=10", f"--output_dir={output}"]
    env = dict(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port),
               KERAS_BACKEND="jax")
    chief = start_python(flags, KERASTUNER_TUNER_ID="chief", **env)
    doomed = start_python(flags, KERASTUNER_TUNER_ID="tuner1", **env)
    killed_trial = None
    for line in doomed.stdout:  # its first trial starts: kill it in its first epochs
        if line.startswith("tc.tune: trial"):
            killed_trial = " ".join(line.split()[2:4])  # "#1 (trials/0)"
            break
    doomed.kill()
    doomed.communicate()
    survivor = start_python(flags, KERASTUNER_TUNER_ID="tuner0", **env)
    started = time.time()
    # The chief hands the dead worker's trial to the survivor after --worker_timeout, and both
    # exit by themselves.
    outputs = {name: process.communicate(timeout=300)
               for name, process in (("chief", chief), ("tuner0", survivor))}
    assert time.time() - started < 300
    for name, process in (("chief", chief), ("tuner0", survivor)):
        assert process.returncode == 0, (name, outputs[name][1][-3000:])
    assert f"no word from tuner1 for 10 s; trial {killed_trial} goes to" in outputs["chief"][0]
    rows = run_files.read_csv(output / "trials.csv")
    trials = [row for row in rows if row["trial_id"] != search.BASELINE_ID]
    assert len(trials) == 3 and all(row["status"] == "completed" for row in trials)
    assert len({row["beta"] for row in trials}) == 3  # every grid point once
    ran = [line.split()[3] for line in outputs["tuner0"][0].splitlines()
           if line.startswith("tc.tune: trial")]  # "tc.tune: trial #1 (trials/0) ..."
    assert sorted(ran) == sorted(f"(trials/{row['trial_id']})" for row in trials)  # and the
    # killed one
    for row in trials:
        assert len(run_files.read_csv(output / row["run_dirs"] / "metrics.csv")) == 4
    # keras-tuner's own state files are whole JSON (written atomically).
    for state in (output / "tuner").rglob("*.json"):
        json.loads(state.read_text())


def test_hyperband_trains_each_trial_for_its_bracket_budget(tmp_path, base_config, monkeypatch):
    settings = search.SearchConfig(output_dir=str(tmp_path / "hyperband"), tuner="hyperband",
                                   beta_min=0.1, beta_max=1.0)
    monkeypatch.setattr(assembly, "run_one", _fake_run([], lambda beta: False))
    summary = search.search_beta(base_config(epochs=3), settings, baseline=False)
    assert len(summary["trials"]) >= 2
    budgets = set()
    for row in summary["trials"]:
        assert row["status"] == "completed" and 0.1 <= row["beta"] <= 1.0
        result = json.loads((tmp_path / "hyperband" / row["run_dirs"] / "result.json").read_text())
        budgets.add(result["epochs"])
    assert budgets <= {1, 2, 3} and max(budgets) == 3


def test_a_trial_that_failed_outside_training_is_retried_and_never_lets_a_best_be_named(
        tmp_path, monkeypatch, base_config):
    settings = search.SearchConfig(output_dir=str(tmp_path / "retry"), tuner="grid",
                                   grid_points=3)
    calls = []
    # Within a search: two failures of the middle trial, then it runs.
    failures = iter([True, True])
    monkeypatch.setattr(assembly, "run_one", _fake_run(
        calls, lambda beta: beta != 0.01 and beta != 10.0 and next(failures, False)))
    summary = search.search_beta(base_config(), settings, baseline=False)
    assert [row["status"] for row in summary["trials"]] == ["completed"] * 3
    assert len(calls) == 5 and summary["best"]["beta"] == 10.0

    # A trial that keeps failing: no best beta, the trial named; a rerun retries it.
    settings = dataclasses.replace(settings, output_dir=str(tmp_path / "rerun"))
    calls.clear()
    monkeypatch.setattr(assembly, "run_one", _fake_run(calls, lambda beta: beta == 10.0))
    summary = search.search_beta(base_config(), settings, baseline=False)
    assert summary["best"] is None and len(summary["incomplete"]) == 1
    failed, = [row for row in summary["trials"] if row["status"] != "completed"]
    assert failed["beta"] == 10.0 and calls.count(10.0) == 1 + search.TRIAL_RETRIES
    calls.clear()
    monkeypatch.setattr(assembly, "run_one", _fake_run(calls, lambda beta: False))
    summary = search.search_beta(base_config(), settings, baseline=False)
    assert calls == [10.0] and summary["incomplete"] == []
    assert summary["best"]["beta"] == 10.0


def test_a_calibration_objective_never_crowns_a_trial_far_less_accurate_than_the_best():
    settings = search.SearchConfig(objective="val_ece")
    rows = [{"trial_id": "0", "beta": 0.01, "score": 0.004, "val/accuracy": 0.14},
            {"trial_id": "1", "beta": 1.0, "score": 0.03, "val/accuracy": 0.93},
            {"trial_id": "2", "beta": 3.0, "score": 0.02, "val/accuracy": 0.915}]
    kept, passed_over = search.accurate_enough(settings, rows)
    assert [row["trial_id"] for row in kept] == ["1", "2"] and passed_over == ["0"]
    from tc.runner.search import run as search_run

    assert search_run._best(settings, kept)["trial_id"] == "2"  # the lowest ECE among them
    accuracy = search.SearchConfig(objective="val_accuracy")
    assert search.accurate_enough(accuracy, rows) == (rows, [])


def test_a_val_ece_search_does_not_choose_a_collapsed_beta(tmp_path, base_config):
    settings = search.SearchConfig(output_dir=str(tmp_path / "ece"), tuner="grid",
                                   grid_points=3, objective="val_ece")
    summary = search.search_beta(base_config(epochs=3), settings, baseline=False)
    by_beta = {row["beta"]: row for row in summary["trials"]}
    collapsed = by_beta[0.01]  # three epochs at beta = 0.01 barely leave chance accuracy
    assert collapsed["val/accuracy"] < 0.5
    assert collapsed["score"] == min(row["score"] for row in summary["trials"])  # lowest ECE
    assert collapsed["trial_id"] in summary["passed_over"]
    assert summary["best"]["beta"] != 0.01
    best_accuracy = max(row["val/accuracy"] for row in summary["trials"])
    assert summary["best"]["score"] == min(
        row["score"] for row in summary["trials"]
        if row["val/accuracy"] >= best_accuracy - search.ACCURACY_MARGIN)


def test_the_baseline_is_scored_like_a_trial_over_its_seeds_and_learning_rates(
        tmp_path, base_config, monkeypatch):
    settings = search.SearchConfig(output_dir=str(tmp_path / "lr"), tuner="grid",
                                   beta_min=0.5, beta_max=2.0, grid_points=2,
                                   tune_learning_rate=True, lr_min=0.01, lr_max=0.1,
                                   lr_grid_points=2, executions_per_trial=2)
    # Accuracies that differ by beta, learning rate and seed, so that any other mean or choice
    # of the baseline's scores would give another number.
    monkeypatch.setattr(assembly, "run_one", _fake_run([], lambda beta: False, accuracy=(
        lambda config: 0.5 + 0.01 * config.beta + 0.3 * config.learning_rate
        + 0.001 * config.seed)))
    summary = search.search_beta(base_config(epochs=1), settings)
    (baseline,) = [row for row in run_files.read_csv(tmp_path / "lr" / "trials.csv")
                   if row["trial_id"] == search.BASELINE_ID]
    # Two seeds, as every trial, at the better of the grid's two learning rates.
    assert baseline["seeds"] == "0;1"
    scores = []
    for point in ("point0", "point1"):
        finals = [json.loads((tmp_path / "lr" / "baseline_beta1" / point / f"seed{k}" /
                              "result.json").read_text())["final"]["val/accuracy"]
                  for k in (0, 1)]
        scores.append(sum(finals) / 2)
    assert max(scores) == pytest.approx(0.5 + 0.01 + 0.3 * 0.1 + 0.0005)
    assert summary["baseline"] == pytest.approx(max(scores))
    assert baseline["score"] == pytest.approx(max(scores))
