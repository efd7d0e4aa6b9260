"""`tc.runner.packing`: K copies in one program equal K separate runs, with their own beta, rate,
seed and init norm under every optimizer; a diverging copy stops alone; a killed sweep resumes."""

import json
import os

import numpy as np
import pytest

from tc import run_files
from tc.runner import assembly, packing
from tc.runner import config as config_lib
from tests.support import run_python


@pytest.fixture
def config_for(small_config):
    """One-epoch, batch-64 configs of `small_config`."""
    return lambda name, **overrides: small_config(name, **{"epochs": 1, "batch_size": 64,
                                                            **overrides})


def rows_of(path):
    return run_files.read_csv(os.path.join(path, "metrics.csv"))


def assert_rows_match(packed_rows, single_rows, rtol=1e-5):
    assert len(packed_rows) == len(single_rows)
    for packed_row, single_row in zip(packed_rows, single_rows):
        assert set(packed_row) == set(single_row)
        for key, value in single_row.items():
            np.testing.assert_allclose(packed_row[key], value, rtol=rtol, atol=1e-6, err_msg=key)


def test_each_copy_of_a_packed_run_matches_a_separate_run(tmp_path, config_for):
    betas = (0.3, 1.0, 4.0)
    results = assembly.run(config_for("sweep", betas="0.3,1,4"))
    assert [result["beta"] for result in results] == list(betas)
    for index, (beta, result) in enumerate(zip(betas, results)):
        copy_dir = tmp_path / "sweep" / f"beta{beta:g}"
        assert result["status"] == "completed" and result["run_dir"] == str(copy_dir)
        assert result["packed"] == {"copy": index, "copies": 3,
                                    "sweep": {"betas": "0.3,1,4", "grid": "product"}}
        flags = (copy_dir / "flags.txt").read_text()
        # A copy's flags.txt is a single run's: rerunning it trains that copy alone.
        assert f"--beta={beta}\n" in flags and "--betas" not in flags
        assert json.loads((copy_dir / "result.json").read_text())["status"] == "completed"
        single = assembly.run_one(config_for(f"single{beta:g}", beta=beta))
        packed_rows, single_rows = rows_of(copy_dir), rows_of(single["run_dir"])
        # The epoch-1 loss within 1e-5, and every other column of the row too.
        np.testing.assert_allclose(packed_rows[0]["train/loss"], single_rows[0]["train/loss"],
                                   rtol=1e-5)
        assert_rows_match(packed_rows, single_rows)
        with np.load(copy_dir / "predictions.npz") as packed_predictions, \
                np.load(os.path.join(single["run_dir"], "predictions.npz")) as single_predictions:
            np.testing.assert_allclose(packed_predictions["test_logits"],
                                       single_predictions["test_logits"], rtol=1e-4, atol=1e-5)


def test_a_sweep_larger_than_a_program_runs_as_several_with_the_same_numbers(tmp_path,
                                                                            config_for):
    # Three copies, at most two a program: copies 0-1 packed, then copy 2 alone, each from the
    # same data order; every row equals the one-program sweep's, and a rerun trains nothing.
    whole = assembly.run(quiet(config_for, "whole", betas="0.3,1,4", epochs=1))
    split_config = quiet(config_for, "split", betas="0.3,1,4", epochs=1, max_copies_per_program=2)
    split = assembly.run(split_config)
    assert [result["packed"]["copy"] for result in split] == [0, 1, 2]
    assert {result["packed"]["copies"] for result in split} == {3}
    for one, other in zip(whole, split):
        assert_rows_match(rows_of(one["run_dir"]), rows_of(other["run_dir"]))
        assert "max_copies" not in open(os.path.join(other["run_dir"], "flags.txt")).read()
    written = [os.path.getmtime(os.path.join(result["run_dir"], "metrics.csv"))
               for result in split]
    again = assembly.run(split_config)
    assert [os.path.getmtime(os.path.join(result["run_dir"], "metrics.csv"))
            for result in again] == written
    assert [rows_of(result["run_dir"]) for result in again] == [
        rows_of(result["run_dir"]) for result in split]
    assert [result["final"] for result in again] == [result["final"] for result in split]


def test_copies_with_their_own_data_order_move_as_their_separate_runs(tmp_path, config_for):
    # --data_order=per_copy: a 2 betas x 2 seeds grid runs as one program per seed; the copy of
    # seed 1 draws seed 1's batches, as a separate run of its flags.txt (which has no
    # --shuffle_seed) does, not seed 0's.
    sweep = quiet(config_for, "sweep", betas="0.5,2", seeds="0,1", data_order="per_copy",
                  epochs=1)
    results = assembly.run(sweep)
    assert [result["packed"]["copy"] for result in results] == [0, 1, 2, 3]
    copy = results[1]["run_dir"]
    flags = open(os.path.join(copy, "flags.txt")).read()
    assert "--seed=1\n" in flags and "shuffle_seed" not in flags and "data_order" not in flags
    single = assembly.run_one(config_lib.RunConfig.from_flagfile(
        flags, output_dir=str(tmp_path / "single")))
    assert_rows_match(rows_of(copy), rows_of(single["run_dir"]))
    shared = assembly.run(quiet(config_for, "shared", betas="0.5", seeds="0,1", epochs=1))
    assert rows_of(shared[1]["run_dir"])[0]["train/loss"] != rows_of(copy)[0]["train/loss"]


def quiet(config_for, name, **overrides):
    """A two-epoch config without the extras that do not change metrics.csv's training columns."""
    return config_for(name, **{"epochs": 2, "track_rank_layers": "", "save_predictions": False,
                               "model_options": "width=32", **overrides})


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
def test_copies_with_their_own_rate_seed_and_norm_move_as_separate_runs(tmp_path, config_for,
                                                                      optimizer):
    # Four copies differing in every per-copy setting at once (--grid=zip), on a cosine schedule
    # with warm-up so the whole schedule must be scaled; every copy's flags.txt holds its own
    # settings, and the first and last (which differ in all of them) are rerun alone from it.
    rate = {"sgd": "0.2,0.05,0.1,0.02", "momentum": "0.05,0.01,0.02,0.004",
            "adam": "0.003,0.001,0.0003,0.002", "adamw": "0.003,0.001,0.0003,0.002"}[optimizer]
    sweep = quiet(config_for, "sweep", optimizer=optimizer, betas="0.3,1,3,1", grid="zip",
                  learning_rates=rate, seeds="0,1,2,3", init_logit_norms="1,3,10,0.5",
                  weight_decay=0.01 if optimizer == "adamw" else 0.0, lr_schedule="cosine",
                  lr_warmup_epochs=1)
    results = assembly.run(sweep)
    assert [result["status"] for result in results] == ["completed"] * 4
    names = sorted(os.listdir(tmp_path / "sweep"))
    assert len(names) == 4 and names[0].startswith("beta0.3_lr")
    for index, result in enumerate(results):
        flags = open(os.path.join(result["run_dir"], "flags.txt")).read()
        single_config = config_lib.RunConfig.from_flagfile(
            flags, output_dir=str(tmp_path / f"single{index}"))
        assert single_config.seed == index and single_config.data_order_seed == sweep.seed
        assert single_config.learning_rate == float(rate.split(",")[index])
        assert single_config.beta == float(sweep.betas.split(",")[index])
        norms = sweep.init_logit_norms.split(",")
        assert float(single_config.init_logit_norm) == float(norms[index])
        if index not in (0, 3):
            continue
        single = assembly.run_one(single_config)
        packed_rows, single_rows = rows_of(result["run_dir"]), rows_of(single["run_dir"])
        assert [row["epoch"] for row in packed_rows] == [1, 2]
        assert_rows_match(packed_rows, single_rows)


def test_a_two_dimensional_grid_names_every_copy_and_scales_rates_by_beta(tmp_path, config_for):
    config = quiet(config_for, "grid", betas="0.5,2", learning_rates="0.1,0.4", epochs=1,
                   lr_scaling="inverse_beta_squared", validation_size=0)
    copies = packing.copy_configs(config)
    assert [os.path.basename(copy.output_dir) for copy in copies] == [
        "beta0.5_lr0.1", "beta0.5_lr0.4", "beta2_lr0.1", "beta2_lr0.4"]
    assert [copy.effective_learning_rate for copy in copies] == [0.4, 1.6, 0.025, 0.1]
    results = assembly.run(config)
    for copy, result in zip(copies, results):
        row = rows_of(result["run_dir"])[0]
        np.testing.assert_allclose(row["learning_rate"], copy.effective_learning_rate, rtol=1e-6)
        assert result["trained_learning_rate"] == copy.effective_learning_rate


def test_a_diverging_copy_stops_alone_and_the_others_equal_a_sweep_without_it(tmp_path,
                                                                             config_for):
    # beta = 1e6 multiplies the gradient a million-fold: that copy's weights overflow in epoch 1.
    with_it = assembly.run(quiet(config_for, "with", betas="0.5,1,1e6", learning_rate=0.5))
    *stable, diverged = with_it
    assert diverged["status"] == "diverged" and diverged["diverged_at"]["epoch"] == 1
    assert diverged["epochs_completed"] == 0
    state = json.loads((tmp_path / "with" / "beta1e+06" / "checkpoints" / "state.json")
                       .read_text())
    assert state["diverged_at"]["epoch"] == 1
    without = assembly.run(quiet(config_for, "without", betas="0.5,1", learning_rate=0.5))
    for kept, alone in zip(stable, without):
        assert kept["status"] == "completed" and kept["epochs_completed"] == 2
        assert_rows_match(rows_of(kept["run_dir"]), rows_of(alone["run_dir"]))
    # Rerun, the finished sweep trains nothing again, and the diverged copy stays diverged.
    rerun = assembly.run(quiet(config_for, "with", betas="0.5,1,1e6", learning_rate=0.5))
    assert [result["status"] for result in rerun] == ["completed", "completed", "diverged"]
    assert_rows_match(rows_of(rerun[0]["run_dir"]), rows_of(without[0]["run_dir"]))


# A packed sweep killed (SIGKILL) or preempted (SIGTERM) at every fault point, between every
# pair of its copies' file writes, and run again: tests/test_fault_injection.py.


@pytest.mark.parametrize("betas,message", [
    ("1", "at least 2 copies"), ("0.1,0.1", "repeats a value"), ("0.1,-1", "positive"),
    ("0.1,x", "comma-separated list"),
    ("0.1,0.1000001", "print alike would share the run directories \\['beta0.1'\\]")])
def test_bad_betas_are_refused_before_anything_is_written(tmp_path, betas, message, config_for):
    with pytest.raises(assembly.ConfigurationError, match=message):
        assembly.run(config_for("sweep", betas=betas))
    assert not (tmp_path / "sweep").exists()


def test_float16_uneven_zip_lists_and_shared_default_directories_are_refused(tmp_path, config_for):
    with pytest.raises(assembly.ConfigurationError, match="float16"):
        assembly.run(config_for("sweep", betas="0.5,2", mixed_precision="float16"))
    with pytest.raises(assembly.ConfigurationError, match="--betas has 2, --seeds has 3"):
        assembly.run(config_for("sweep", betas="0.5,2", seeds="0,1,2", grid="zip"))
    assert not (tmp_path / "sweep").exists()
    # Two rates of one beta and seed would share a single run's default directory.
    with pytest.raises(assembly.ConfigurationError, match="give --output_dir"):
        assembly.run(config_for("", output_dir="", betas="0.5,2", learning_rates="0.1,0.2"))


@pytest.mark.backend_independent  # pinned to JAX: the command's report of each copy
def test_the_train_entry_point_reports_every_copy(tmp_path):
    output = tmp_path / "sweep"
    completed = run_python(["-m", "tc.train", "--betas=0.5,2", "--epochs=1", "--verbose=0",
                            "--tensorboard=false", f"--output_dir={output}"], backend="jax")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("status: completed") == 2
    assert "beta = 0.5" in completed.stdout and "beta = 2" in completed.stdout
    assert sorted(os.listdir(output)) == ["beta0.5", "beta2"]
