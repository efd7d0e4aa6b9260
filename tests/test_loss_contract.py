"""A loss added in one module of its own, registered with `tc.losses.register`, goes through
everything a built-in loss does, with no other file edited: `tc.train` (a single run and a
packed sweep), `tc.tune`, the saved model loaded in a fresh process, and the report.

The plugin is the Brier score of `softmax(beta z)`, `sum_k (p_k - y_k)^2`, checked against numpy
on the run's own stored test logits."""

import json

import numpy as np
import pandas as pd
import pytest

import tc
from tests.support import run_python

pytestmark = [pytest.mark.backend_independent,  # its subprocesses fix the backend: JAX
              pytest.mark.tensorflow_leg]  # JAX processes, in the shorter TensorFlow leg

PLUGIN = '''
"""A user's loss: the Brier score of softmax(beta z)."""
import keras
from keras import ops

from tc import losses


def brier(y_true, logits, beta=1.0, label_mode="sparse", label_smoothing=0.0):
    logits = ops.cast(logits, "float32")
    probabilities = ops.softmax(beta * logits, axis=-1)
    targets = losses.dense_targets(y_true, probabilities, label_mode, label_smoothing)
    return ops.sum(ops.square(probabilities - targets), axis=-1)


@keras.saving.register_keras_serializable(package="plugin")
class Brier(losses.BetaLoss):
    loss_fn = staticmethod(brier)
    default_name = "brier"
    scores_scaled_logits = True
    summary = "sum_k (softmax(beta z)_k - y_k)^2, the Brier score"


losses.register("brier", Brier)
'''


def command(plugin_dir, entry_point):
    return ["-c", f"import sys; sys.path.insert(0, {str(plugin_dir)!r}); import my_losses; "
                  f"from tc import {entry_point}; {entry_point}.run()"]


def brier_numpy(logits, labels, beta):
    scaled = beta * logits.astype(np.float64)
    probabilities = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    targets = np.eye(logits.shape[1])[labels]
    return float(np.mean(np.sum((probabilities - targets) ** 2, axis=1)))


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin")
    (path / "my_losses.py").write_text(PLUGIN)
    return path


TINY = ["--dataset=digits", "--model=mlp", "--epochs=2", "--batch_size=64",
        "--tensorboard=false", "--verbose=0"]


def test_a_registered_loss_trains_single_and_packed_tunes_loads_and_is_reported(plugin_dir,
                                                                                 tmp_path):
    runs = tmp_path / "runs"
    single = run_python(command(plugin_dir, "train") + TINY + [
        "--loss=brier", "--beta=2", "--save_predictions=true",
        f"--output_dir={runs / 'single'}"], backend="jax")
    assert single.returncode == 0, single.stderr[-3000:]
    with open(runs / "single" / "result.json") as handle:
        result = json.load(handle)
    assert result["status"] == "completed" and result["loss"] == "brier"
    # The run's test loss is the Brier score of its own stored test logits, which are the ones
    # its predictor scores (beta z, as the plugin says scores_scaled_logits).
    with np.load(runs / "single" / "predictions.npz") as arrays:
        expected = brier_numpy(arrays["test_logits"], arrays["test_labels"], 1.0)
    assert result["final"]["test/loss"] == pytest.approx(expected, rel=1e-4)

    packed = run_python(command(plugin_dir, "train") + TINY + [
        "--loss=brier", "--betas=0.5,2", f"--output_dir={runs / 'packed'}"], backend="jax")
    assert packed.returncode == 0, packed.stderr[-3000:]
    for copy in ("beta0.5", "beta2"):
        with open(runs / "packed" / copy / "result.json") as handle:
            assert json.load(handle)["status"] == "completed", copy
        assert "--loss=brier" in (runs / "packed" / copy / "flags.txt").read_text()

    tuned = run_python(command(plugin_dir, "tune") + [
        "--loss=brier", "--dataset=digits", "--model=mlp", "--grid_points=2", "--epochs=1",
        "--tensorboard=false", f"--output_dir={runs / 'tune'}"], backend="jax")
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert "best beta" in tuned.stdout

    # The saved model loads through tc.load_run wherever the plugin is imported.
    loaded = run_python(command(plugin_dir, "train")[:1] + [
        f"import sys; sys.path.insert(0, {str(plugin_dir)!r}); import my_losses, tc; "
        f"run = tc.load_run({str(runs / 'single')!r}); "
        "print(type(run.model.loss).__name__, float(run.model.loss.beta.numpy()))"],
        backend="jax")
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split()[-2:] == ["Brier", "2.0"]

    report = run_python(["-m", "tc.analysis.report", f"--runs={runs}",
                         f"--out={tmp_path / 'report'}"], backend="jax")
    assert report.returncode == 0, report.stderr[-3000:]
    table = pd.read_csv(tmp_path / "report" / "tables" / "runs.csv")
    trials = pd.read_csv(runs / "tune" / "trials.csv")
    assert len(trials) >= 2 and (trials["status"] == "completed").all()
    assert (table["loss"] == "brier").sum() == 1 + 2 + len(trials)  # single, copies, trials
    assert "brier" not in tc.losses.names()  # this process never imported the plugin


def test_register_refuses_a_taken_name_and_a_class_that_is_not_a_beta_loss():
    import keras

    with pytest.raises(ValueError, match="'temperature' is taken"):
        tc.losses.register("temperature", tc.losses.TemperatureCrossEntropy)
    with pytest.raises(ValueError, match="subclass of tc.losses.BetaLoss"):
        tc.losses.register("mse", keras.losses.MeanSquaredError)
    with pytest.raises(ValueError, match="identifier"):
        tc.losses.register("two words", tc.losses.TemperatureCrossEntropy)
    assert tc.losses.names() == ("temperature", "gradient_decay")
