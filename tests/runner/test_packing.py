"""`tc.runner.packing`: K betas in one program equal K separate runs; a diverging copy stops alone."""

import json
import os

import numpy as np
import pytest

from tc.runner import config as config_lib
from tc.runner import assembly, run_dir
from tests.support import run_python


@pytest.fixture
def config_for(small_config):
    """One-epoch, batch-64 configs of `small_config`."""
    return lambda name, **overrides: small_config(name, **{"epochs": 1, "batch_size": 64,
                                                            **overrides})


def rows_of(path):
    return run_dir.read_csv(os.path.join(path, "metrics.csv"))


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
        assert result["packed"] == {"betas": list(betas), "copy": index, "copies": 3}
        flags = (copy_dir / "flags.txt").read_text()
        assert f"--beta={beta}\n" in flags and "--betas=0.3,1,4\n" in flags
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


def test_a_diverging_copy_is_marked_and_the_others_train_on(tmp_path, config_for):
    # beta = 1e6 multiplies the gradient a million-fold: that copy's weights overflow in epoch 1.
    results = assembly.run(config_for("sweep", betas="1,1e6", epochs=2,
                                    learning_rate=0.5))
    stable, diverged = results
    assert diverged["status"] == "diverged" and diverged["diverged_at"]["epoch"] == 1
    assert diverged["epochs_completed"] == 0
    assert stable["status"] == "completed" and stable["epochs_completed"] == 2
    single = assembly.run_one(config_for("single", epochs=2, learning_rate=0.5))
    assert_rows_match(rows_of(stable["run_dir"]), rows_of(single["run_dir"]))


@pytest.mark.parametrize("betas,message", [
    ("1", "at least 2 betas"), ("0.1,0.1", "repeats a value"), ("0.1,-1", "positive"),
    ("0.1,x", "comma-separated list"),
    ("0.1,0.1000001", "print alike would share the run directories \\['beta0.1'\\]")])
def test_bad_betas_are_refused_before_anything_is_written(tmp_path, betas, message, config_for):
    with pytest.raises(assembly.ConfigurationError, match=message):
        assembly.run(config_for("sweep", betas=betas))
    assert not (tmp_path / "sweep").exists()


def test_float16_is_refused_and_a_finished_sweep_is_not_resumed(tmp_path, config_for):
    with pytest.raises(assembly.ConfigurationError, match="float16"):
        assembly.run(config_for("sweep", betas="0.5,2", mixed_precision="float16"))
    assert not (tmp_path / "sweep").exists()
    config = config_for("sweep", betas="0.5,2", validation_size=0,
                        track_rank_layers="", save_predictions=False)
    assembly.run(config)
    with pytest.raises(assembly.ConfigurationError, match="does not resume"):
        assembly.run(config)
    results = assembly.run(config_lib.RunConfig(**{**config.to_dict(), "overwrite": True}))
    assert [result["status"] for result in results] == ["completed", "completed"]


def test_the_train_entry_point_reports_every_copy(tmp_path):
    output = tmp_path / "sweep"
    completed = run_python(["-m", "tc.train", "--betas=0.5,2", "--epochs=1", "--verbose=0",
                            "--tensorboard=false", f"--output_dir={output}"])
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("status: completed") == 2
    assert "beta = 0.5" in completed.stdout and "beta = 2" in completed.stdout
    assert sorted(os.listdir(output)) == ["beta0.5", "beta2"]
