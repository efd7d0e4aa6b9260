"""`tc.train` and the experiment function: run directory, resume, divergence, strategies, errors."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tc import config as config_lib
from tc import experiment, run_dir
from tests.support import ROOT, free_ports, run_python, start_python

BACKEND = keras.backend.backend()


def small_config(tmp_path, name="run", **overrides):
    values = dict(dataset="digits", epochs=3, batch_size=32, output_dir=str(tmp_path / name),
                  tensorboard=False, verbose=0, rank_probe_size=128)
    values.update(overrides)
    return config_lib.RunConfig(**values)


def read_rows(path):
    return run_dir.read_csv(os.path.join(path, "metrics.csv"))


def test_default_main_job_completes_with_well_formed_outputs(tmp_path):
    output = tmp_path / "main"
    completed = run_python(["-m", "tc.train", f"--output_dir={output}", "--verbose=0"])
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "status: completed" in completed.stdout and str(output) in completed.stdout
    assert "predictions.npz" in completed.stdout and (output / "predictions.npz").exists()
    result = json.loads((output / "result.json").read_text())
    assert result["status"] == "completed" and result["epochs_completed"] == 30
    assert result["final"]["test/accuracy"] >= 0.95
    assert result["scored_probabilities"] == "softmax(beta*z)"
    assert result["backend"] == BACKEND and result["examples_per_second"] > 0
    assert {"keras", "numpy", "tc"} <= set(result["versions"])
    rows = read_rows(output)
    assert [row["epoch"] for row in rows] == list(range(1, 31))
    for column in ("train/loss", "train/accuracy", "train/nll", "train/ece", "train/mce",
                   "train/logit_norm", "train/beta_logit_norm", "val/loss", "val/accuracy",
                   "test/loss", "test/accuracy", "test/ece", "test/mce", "learning_rate",
                   "beta", "rank/features/numerical", "rank/features/effective"):
        assert all(row[column] is not None and math.isfinite(row[column]) for row in rows), column
    # flags.txt is a flagfile that reproduces the run.
    flags_text = (output / "flags.txt").read_text()
    assert f"--output_dir={output}\n" in flags_text and "--beta=1.0\n" in flags_text
    checkpoints = os.listdir(output / "checkpoints")
    assert "state.json" in checkpoints and "ckpt-00030.npz" in checkpoints
    assert os.listdir(output / "tensorboard")


def test_later_callbacks_see_the_validation_logs_that_metrics_csv_records(tmp_path):
    class Seen(keras.callbacks.Callback):
        logs = []

        def on_epoch_end(self, epoch, logs=None):
            self.logs.append(dict(logs))

    config = small_config(tmp_path, epochs=2)
    experiment.run(config, extra_callbacks=[Seen()])
    rows = read_rows(config.run_dir)
    assert len(Seen.logs) == 2
    for logs, row in zip(Seen.logs, rows):
        assert {"val_loss", "val_accuracy", "val_ece", "loss"} <= set(logs)
        for key in ("loss", "accuracy", "ece"):
            assert logs[f"val_{key}"] == pytest.approx(row[f"val/{key}"], rel=1e-6)


def test_flagfile_reproduces_the_config(tmp_path):
    from absl import flags

    original = small_config(tmp_path, loss="gradient_decay", beta=0.3, beta_schedule="cosine",
                            model_options="depth=1;width=32", init_logit_norm="2.5")
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text(original.to_flagfile())
    values = flags.FlagValues()
    config_lib.define_flags(values)
    values(["tc.train", f"--flagfile={flagfile}", "--verbose=0", "--tensorboard=false"])
    assert config_lib.from_flags(values) == original


def test_same_flags_and_seed_give_identical_metrics(tmp_path):
    experiment.run(small_config(tmp_path, "first"))
    experiment.run(small_config(tmp_path, "second", output_dir=str(tmp_path / "first_again")))
    first = (tmp_path / "first" / "metrics.csv").read_text()
    assert first == (tmp_path / "first_again" / "metrics.csv").read_text().replace(
        "first_again", "first")


def test_restart_of_a_finished_run_changes_nothing(tmp_path):
    config = small_config(tmp_path)
    experiment.run(config)
    before = (tmp_path / "run" / "metrics.csv").read_text()
    result = experiment.run(config)
    assert result["status"] == "completed" and result["epochs_completed"] == 3
    assert (tmp_path / "run" / "metrics.csv").read_text() == before


def test_different_flags_in_the_same_directory_are_refused(tmp_path):
    experiment.run(small_config(tmp_path))
    with pytest.raises(run_dir.RunDirectoryConflict, match="--overwrite"):
        experiment.run(small_config(tmp_path, beta=0.5))
    result = experiment.run(small_config(tmp_path, beta=0.5, overwrite=True))
    assert result["beta"] == 0.5 and len(read_rows(tmp_path / "run")) == 3


def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path):
    flags = ["-m", "tc.train", "--epochs=6", "--batch_size=8", "--verbose=0",
             "--tensorboard=false", "--rank_probe_size=64"]
    reference = run_python(flags + [f"--output_dir={tmp_path / 'reference'}"])
    assert reference.returncode == 0, reference.stderr[-2000:]

    output = tmp_path / "killed"
    command = [sys.executable, *flags, f"--output_dir={output}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    state_file = output / "checkpoints" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if state_file.exists() and json.loads(state_file.read_text())["completed_epochs"] >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads(state_file.read_text())["completed_epochs"]
    assert 2 <= killed_at < 6

    resumed = run_python(flags + [f"--output_dir={output}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows, reference_rows = read_rows(output), read_rows(tmp_path / "reference")
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5, 6]
    for row, expected in zip(rows, reference_rows):
        for key, value in expected.items():
            if isinstance(value, float):
                assert row[key] == pytest.approx(value, rel=1e-4), (row["epoch"], key)


def test_divergence_stops_cleanly_without_a_nan_checkpoint(tmp_path):
    config = small_config(tmp_path, beta=1e3, learning_rate=1e4, optimizer="sgd", epochs=4)
    result = experiment.run(config)
    assert result["status"] == "diverged"
    assert result["diverged_at"]["epoch"] >= 1 and "step" in result["diverged_at"]
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    assert on_disk["status"] == "diverged"
    state = json.loads((tmp_path / "run" / "checkpoints" / "state.json").read_text()) if (
        tmp_path / "run" / "checkpoints" / "state.json").exists() else None
    rows = read_rows(tmp_path / "run") if (tmp_path / "run" / "metrics.csv").exists() else []
    assert all(math.isfinite(row["train/loss"]) for row in rows)
    if state is not None:  # any checkpoint left is a finite one
        with np.load(tmp_path / "run" / "checkpoints" / state["checkpoint"]) as stored:
            arrays = [stored[key] for key in stored.files]
        assert arrays and all(np.all(np.isfinite(a)) for a in arrays if a.dtype.kind == "f")


def test_divergence_exit_code_is_distinct(tmp_path):
    completed = run_python(["-m", "tc.train", "--beta=1000", "--learning_rate=10000",
                            "--optimizer=sgd", "--epochs=3", "--verbose=0", "--tensorboard=false",
                            f"--output_dir={tmp_path / 'diverged'}"])
    assert completed.returncode == experiment.STATUS_EXIT_CODES["diverged"] == 3
    assert "status: diverged" in completed.stdout and "diverged at epoch" in completed.stdout


def test_two_replicas_match_one_device_after_an_epoch(tmp_path):
    one = experiment.run(small_config(tmp_path, "one", strategy="one_device", epochs=1))
    two = experiment.run(small_config(tmp_path, "two", strategy="mirrored", epochs=1))
    assert (one["replicas"], two["replicas"]) == (1, 2)
    for key, value in one["final"].items():
        if isinstance(value, float) and not key.startswith("rank/"):
            assert two["final"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("overrides, match", [
    (dict(beta=0.0), "--beta=0.0"), (dict(beta=-1.0), "--beta=-1.0"),
    (dict(beta=float("nan")), "--beta=nan"), (dict(dataset="cifar11"), "valid values: 'digits'"),
    (dict(model="resnet19"), "valid values: ''"), (dict(epochs=0), "--epochs=0"),
    (dict(strategy="mirrored", batch_size=33), "--batch_size=33 does not divide"),
    (dict(model_options="heads=2"), "valid options"),
    (dict(dataset_options="samples=0", dataset="synthetic"), "samples"),
    (dict(dataset_options="seed=3"), "--dataset_options: set \\['seed'\\]"),
    (dict(dataset_options="colour=1"), "valid options"),
])
def test_bad_input_fails_before_creating_the_run_directory(tmp_path, overrides, match):
    config = small_config(tmp_path, **overrides)
    with pytest.raises(ValueError, match=match):
        experiment.run(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag, message", [
    ("--beta=0", "--beta=0.0"), ("--dataset=cifar11", "should be one of <digits|"),
    ("--model=resnet19", "resnet50"), ("--epochs=0", "--epochs=0"),
])
def test_bad_flags_exit_nonzero_with_the_flag_and_valid_values(tmp_path, flag, message):
    output = tmp_path / "never"
    completed = run_python(["-m", "tc.train", flag, f"--output_dir={output}"])
    assert completed.returncode != 0
    assert message in completed.stderr
    assert not output.exists()


@pytest.mark.skipif(BACKEND != "tensorflow", reason="MultiWorkerMirroredStrategy is TensorFlow's")
def test_two_workers_finish_a_run_together_with_one_devices_metrics(tmp_path):
    ports = free_ports(2)
    output = tmp_path / "cluster"
    workers = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                     "task": {"type": "worker", "index": index}}
        workers.append(start_python(
            ["-m", "tc.train", "--strategy=multi_worker", "--epochs=1", "--batch_size=32",
             "--verbose=0", "--tensorboard=false", "--rank_probe_size=128",
             f"--output_dir={output}"], TF_CONFIG=json.dumps(tf_config)))
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
        assert "status: completed" in stdout
    result = json.loads((output / "result.json").read_text())  # written by worker 0 only
    assert (result["strategy"], result["replicas"]) == ("multi_worker", 2)
    one = experiment.run(small_config(tmp_path, "one", strategy="one_device", epochs=1))
    for key, value in one["final"].items():
        if isinstance(value, float) and not key.startswith("rank/"):
            assert result["final"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_multi_worker_without_a_cluster_is_refused_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    expected = "TF_CONFIG is unset" if BACKEND == "tensorflow" else "needs the TensorFlow backend"
    with pytest.raises(ValueError, match=expected):
        experiment.run(small_config(tmp_path, strategy="multi_worker"))
    assert not (tmp_path / "run").exists()


def test_predictions_and_linear_probe_of_a_completed_run(tmp_path):
    from tc import calibration

    result = experiment.run(small_config(tmp_path, dataset="synthetic", epochs=2, beta=2.0,
                                         probe_dataset="synthetic_shift", probe_size=1000))
    probe = result["linear_probe"]
    assert probe["dataset"] == "synthetic_shift" and probe["train_examples"] == 1000
    assert 0.0 <= probe["accuracy"] <= 1.0
    arrays = np.load(tmp_path / "run" / result["predictions"])
    assert arrays["test_logits"].shape == (2000, 10) and arrays["val_logits"].shape == (1000, 10)
    # The stored logits are beta * z: their softmax reproduces the run's own test ECE/accuracy.
    probabilities = calibration.softmax(arrays["test_logits"])
    ece, _ = calibration.calibration_errors(probabilities, arrays["test_labels"], 15)
    assert ece == pytest.approx(result["final"]["test/ece"], abs=1e-4)
    accuracy = np.mean(probabilities.argmax(1) == arrays["test_labels"])
    assert accuracy == pytest.approx(result["final"]["test/accuracy"], abs=1e-6)


@pytest.mark.parametrize("overrides, match", [
    (dict(probe_dataset="digits", dataset="synthetic"), "inputs of shape \\(8, 8, 1\\)"),
    (dict(probe_dataset="digits", probe_layer="nope"), "--probe_layer: No layer"),
    (dict(track_rank_layers="features,nope"), "--track_rank_layers: No layer"),
])
def test_bad_probe_settings_fail_before_creating_the_run_directory(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        experiment.run(small_config(tmp_path, **overrides))
    assert not (tmp_path / "run").exists()


def test_checkpoint_files_hold_what_np_savez_would_write(tmp_path):
    arrays = {"matrix": np.arange(12.0).reshape(3, 4).T, "scalar": np.array(3, np.int64),
              "empty": np.zeros((0, 5), np.float32), "flag": np.array(True),
              "weights": np.random.default_rng(0).normal(size=(300, 70)).astype(np.float32)}
    run_dir.atomic_write_arrays(str(tmp_path / "ours.npz"), arrays)
    np.savez(tmp_path / "numpy.npz", **arrays)
    with np.load(tmp_path / "ours.npz") as ours, np.load(tmp_path / "numpy.npz") as reference:
        assert ours.files == reference.files
        for key in reference.files:
            assert ours[key].dtype == reference[key].dtype
            assert ours[key].shape == reference[key].shape
            np.testing.assert_array_equal(ours[key], reference[key])


def test_a_snapshot_keeps_its_instant_through_later_steps_and_flags_non_finite_weights():
    from tc import checkpoint
    from tests.support import dense_model

    model = dense_model(4, 3)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.arange(32) % 3
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    expected = [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]
    snapshot = checkpoint.snapshot(model)
    # Training on replaces (and on JAX, donates) the variables' buffers; the copies stay.
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    arrays = snapshot.arrays()
    assert snapshot.finite
    for index, value in enumerate(expected):
        np.testing.assert_array_equal(arrays[f"model_{index:04d}"], value)
    assert not np.array_equal(arrays["model_0000"], keras.ops.convert_to_numpy(model.weights[0]))
    poisoned = np.array(expected[0])
    poisoned[0, 0] = np.nan
    model.weights[0].assign(poisoned)
    assert not checkpoint.snapshot(model).finite
    model.weights[0].assign(np.full_like(poisoned, np.inf))
    assert not checkpoint.snapshot(model).finite


def test_a_checkpoint_restores_weights_and_optimizer_state_exactly(tmp_path):
    from tc import checkpoint
    from tests.support import dense_model

    model = dense_model(4, 3)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.arange(32) % 3
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    snapshot = checkpoint.snapshot(model)
    assert snapshot.finite
    arrays = snapshot.arrays()
    directory = run_dir.RunDirectory(str(tmp_path / "run"))
    directory.prepare("--flags\n")
    directory.commit_epoch(snapshot, [{"epoch": 1}], 1)
    directory.wait()
    state = directory.resume_state()
    assert state == {"completed_epochs": 1, "checkpoint": "ckpt-00001.npz"}

    fresh = dense_model(4, 3, seed=1)
    fresh.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    fresh.optimizer.build(fresh.trainable_variables)
    checkpoint.restore(fresh, directory.checkpoint_path(state))
    restored = checkpoint.snapshot(fresh).arrays()
    assert sorted(restored) == sorted(arrays) and any(k.startswith("optimizer") for k in arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(restored[key], value, err_msg=key)
    # The next steps of the restored model are those of the original.
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    fresh.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="arrays"):
        checkpoint.restore(dense_model(4, 3, hidden=8), directory.checkpoint_path(state))
