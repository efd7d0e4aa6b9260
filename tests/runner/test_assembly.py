"""`tc.runner.assembly`: one run, from a config to its run directory: resume, divergence,
strategies, and bad input refused before anything is written."""

import json
import math
import os

import keras
import numpy as np
import pytest

from tc import run_files
from tc.runner import assembly, run_dir

BACKEND = keras.backend.backend()



def read_rows(path):
    return run_files.read_csv(os.path.join(path, "metrics.csv"))


def test_same_flags_and_seed_give_identical_metrics(tmp_path, small_config):
    assembly.run_one(small_config("first"))
    assembly.run_one(small_config("second", output_dir=str(tmp_path / "first_again")))
    first = (tmp_path / "first" / "metrics.csv").read_text()
    assert first == (tmp_path / "first_again" / "metrics.csv").read_text().replace(
        "first_again", "first")


def test_restart_of_a_finished_run_changes_nothing(tmp_path, small_config):
    config = small_config()
    assembly.run_one(config)
    before = (tmp_path / "run" / "metrics.csv").read_text()
    result = assembly.run_one(config)
    assert result["status"] == "completed" and result["epochs_completed"] == 3
    assert (tmp_path / "run" / "metrics.csv").read_text() == before


def test_a_rerun_never_rewrites_a_completed_run_even_with_a_damaged_checkpoint(tmp_path,
                                                                               small_config):
    config = small_config()
    first = assembly.run_one(config)
    checkpoint = tmp_path / "run" / "checkpoints" / "ckpt-00003.npz"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    files = {path: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
    again = assembly.run_one(config)
    assert again == json.loads(json.dumps(first)) and again["status"] == "completed"
    assert {path: path.read_bytes() for path in files} == files


def test_a_damaged_last_checkpoint_resumes_from_the_one_before_and_says_so(tmp_path,
                                                                           small_config):
    config = small_config()
    assembly.run_one(config)
    reference_rows = read_rows(tmp_path / "run")
    # A run killed before its result was written, whose last checkpoint was then damaged.
    (tmp_path / "run" / "result.json").unlink()
    checkpoint = tmp_path / "run" / "checkpoints" / "ckpt-00003.npz"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-50])
    result = assembly.run_one(config)
    assert result["status"] == "completed"
    assert result["rolled_back"]["from_epoch"] == 3 and result["rolled_back"]["to_epoch"] == 2
    assert "ckpt-00003.npz" in result["rolled_back"]["reason"]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["rolled_back"] == (
        result["rolled_back"])
    rows = read_rows(tmp_path / "run")
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    for row, expected in zip(rows, reference_rows):
        for key, value in expected.items():
            if isinstance(value, float) and key != "epoch":
                assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (row["epoch"], key)


def test_different_flags_in_the_same_directory_are_refused(tmp_path, small_config):
    assembly.run_one(small_config())
    with pytest.raises(run_dir.RunDirectoryConflict, match="--overwrite"):
        assembly.run_one(small_config(beta=0.5))
    result = assembly.run_one(small_config(beta=0.5, overwrite=True))
    assert result["beta"] == 0.5 and len(read_rows(tmp_path / "run")) == 3


def test_divergence_stops_cleanly_without_a_nan_checkpoint(tmp_path, small_config):
    config = small_config(beta=1e3, learning_rate=1e4, optimizer="sgd", epochs=4)
    result = assembly.run_one(config)
    assert result["status"] == "diverged"
    assert result["diverged_at"]["epoch"] >= 1 and "step" in result["diverged_at"]
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    assert on_disk["status"] == "diverged"
    committed = result["diverged_at"]["epoch"] - 1  # the epochs before the diverged one
    state_path = tmp_path / "run" / "checkpoints" / "state.json"
    metrics_path = tmp_path / "run" / "metrics.csv"
    state = json.loads(state_path.read_text())
    assert state["diverged_at"] == result["diverged_at"]  # so a restart stays diverged
    # The same command again trains nothing and reports the same divergence.
    again = assembly.run_one(config)
    assert again["status"] == "diverged" and again["diverged_at"] == result["diverged_at"]
    if committed == 0:
        assert state["completed_epochs"] == 0 and not metrics_path.exists()
        return
    rows = read_rows(tmp_path / "run")
    assert state["completed_epochs"] == len(rows) == committed
    assert all(math.isfinite(row["train/loss"]) for row in rows)
    with np.load(tmp_path / "run" / "checkpoints" / state["checkpoint"]) as stored:
        arrays = [stored[key] for key in stored.files]
    assert arrays and all(np.all(np.isfinite(a)) for a in arrays if a.dtype.kind == "f")


@pytest.mark.two_devices
def test_two_replicas_match_one_device_after_an_epoch(tmp_path, small_config):
    one = assembly.run_one(small_config("one", strategy="one_device", epochs=1))
    two = assembly.run_one(small_config("two", strategy="mirrored", epochs=1))
    assert (one["replicas"], two["replicas"]) == (1, 2)
    for key, value in one["final"].items():
        if isinstance(value, float) and not key.startswith("rank/"):
            assert two["final"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("overrides, match", [
    (dict(beta=0.0), "--beta=0.0"), (dict(beta=-1.0), "--beta=-1.0"),
    (dict(beta=float("nan")), "--beta=nan"), (dict(dataset="cifar11"), "valid datasets: digits"),
    (dict(model="resnet19"), "valid values: ''"), (dict(epochs=0), "--epochs=0"),
    (dict(strategy="mirrored", batch_size=33), "--batch_size=33 does not divide"),
    (dict(model_options="heads=2"), "valid options"),
    (dict(dataset_options="samples=0", dataset="synthetic"), "samples"),
    (dict(dataset_options="seed=3"), "no option\\(s\\) \\['seed'\\]"),
    (dict(dataset_options="colour=1"), "valid options"),
])
def test_bad_input_fails_before_creating_the_run_directory(tmp_path, overrides, match, small_config):
    config = small_config(**overrides)
    with pytest.raises(ValueError, match=match):
        assembly.run_one(config)
    assert not (tmp_path / "run").exists()


def test_multi_worker_without_a_cluster_is_refused_with_the_reason(tmp_path, monkeypatch, small_config):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    expected = ("TF_CONFIG is unset" if BACKEND == "tensorflow"
                else "could not connect the JAX processes.*--coordinator_address")
    with pytest.raises(ValueError, match=expected):
        assembly.run_one(small_config(strategy="multi_worker"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overrides, match", [
    (dict(probe_dataset="digits", dataset="synthetic"), "inputs of shape \\(8, 8, 1\\)"),
    (dict(probe_dataset="digits", probe_layer="nope"), "--probe_layer: No layer"),
    (dict(track_rank_layers="features,nope"), "--track_rank_layers: No layer"),
])
def test_bad_probe_settings_fail_before_creating_the_run_directory(tmp_path, overrides, match, small_config):
    with pytest.raises(ValueError, match=match):
        assembly.run_one(small_config(**overrides))
    assert not (tmp_path / "run").exists()




def test_a_run_killed_before_its_first_commit_point_starts_afresh(tmp_path, small_config):
    # metrics.csv of epoch 1 was written, state.json (the commit point) was not.
    config = small_config(epochs=1)
    directory = run_dir.RunDirectory(config.run_dir)
    directory.prepare(config.to_flagfile())
    run_files.atomic_write_text(directory.file("metrics.csv"), "epoch,train/loss\n1,9.0\n")
    directory.unlock()  # the killed process's lock, which the kernel released
    result = assembly.run_one(config)
    rows = read_rows(config.run_dir)
    assert result["epochs_completed"] == 1 and [row["epoch"] for row in rows] == [1]
    assert rows[0]["train/loss"] != 9.0
