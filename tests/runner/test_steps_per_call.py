"""`--steps_per_call`: training steps fused into one compiled call (JAX) train as one step per
call does: single runs, and each copy of a packed sweep under the four optimizers with its own
beta, rate and seed (a diverging copy among them), with a short last call in each epoch; and a
run stopped in an epoch resumes to the same numbers."""

import os
import signal

import keras
import pytest

from tc import data, run_files
from tc.runner import assembly, interruption
from tests.runner.test_interruption import SignalAt

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax",
                                reason="steps are fused on the JAX backend only")

STEPS_PER_CALL = 5
SCHEDULED = dict(lr_schedule="cosine", epochs=2)  # each step's rate reads the step count


def _rows(path):
    return run_files.read_csv(os.path.join(path, "metrics.csv"))


def _assert_same_rows(path, reference):
    written = [os.path.exists(os.path.join(folder, "metrics.csv")) for folder in (path, reference)]
    assert written[0] == written[1]
    if not written[1]:  # a copy that diverged in its first epoch commits no row
        return
    rows, expected = _rows(path), _rows(reference)
    assert [row["epoch"] for row in rows] == [row["epoch"] for row in expected]
    for row, want in zip(rows, expected):
        assert set(row) == set(want)
        for key, value in want.items():
            if isinstance(value, float):
                assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), (
                    row["epoch"], key)


def test_an_epoch_does_not_divide_into_the_calls():
    steps = data.load("digits").steps_per_epoch(32)
    assert steps % STEPS_PER_CALL, steps  # so each epoch ends on a shorter call


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_fused_steps_train_a_run_as_one_step_per_call_does(small_config, optimizer):
    one = assembly.run_one(small_config("one", optimizer=optimizer, **SCHEDULED))
    fused = assembly.run_one(small_config("fused", optimizer=optimizer,
                                          steps_per_call=STEPS_PER_CALL, **SCHEDULED))
    assert fused["status"] == one["status"] == "completed"
    _assert_same_rows(fused["run_dir"], one["run_dir"])


RATES = {"sgd": "0.2,0.05,0.1", "momentum": "0.05,0.01,1e6", "adam": "0.003,0.001,0.0003",
         "adamw": "0.003,0.001,0.0003"}


@pytest.mark.parametrize("optimizer", list(RATES))
def test_fused_steps_train_each_copy_of_a_packed_sweep_as_one_step_per_call_does(small_config,
                                                                               optimizer):
    # Each copy its own beta, rate and seed; under momentum the third copy's rate diverges.
    sweep = dict(betas="0.5,2,1", learning_rates=RATES[optimizer], seeds="0,1,2", grid="zip",
                 optimizer=optimizer, weight_decay=0.01 if optimizer == "adamw" else 0.0,
                 **SCHEDULED)
    one = assembly.run(small_config("one", **sweep))
    fused = assembly.run(small_config("fused", steps_per_call=STEPS_PER_CALL, **sweep))
    assert [result["status"] for result in fused] == [result["status"] for result in one]
    if optimizer == "momentum":
        assert [result["status"] for result in fused] == ["completed", "completed", "diverged"]
        assert fused[2]["diverged_at"] == one[2]["diverged_at"]
    assert [result["beta"] for result in fused] == [result["beta"] for result in one]
    for copy, reference in zip(fused, one):
        _assert_same_rows(copy["run_dir"], reference["run_dir"])


def test_a_fused_run_stopped_in_an_epoch_resumes_to_the_uninterrupted_numbers(small_config):
    settings = dict(steps_per_call=STEPS_PER_CALL, lr_schedule="cosine", epochs=3)
    reference = assembly.run_one(small_config("reference", **settings))
    config = small_config("stopped", **settings)
    with interruption.handling_signals():  # the second call of epoch 2
        stopped = assembly.run_one(config, extra_callbacks=[SignalAt(signal.SIGTERM, 1, 1)])
    assert (stopped["status"], stopped["epochs_completed"]) == ("interrupted", 1)
    resumed = assembly.run_one(config)
    assert resumed["status"] == "completed"
    _assert_same_rows(resumed["run_dir"], reference["run_dir"])


def test_fused_steps_over_several_replicas_are_refused_before_the_run_directory(tmp_path,
                                                                                small_config):
    with pytest.raises(ValueError, match=r"--steps_per_call=4 fuses the steps of one device; the "
                                         r"\S*mirrored\S* strategy spans 2 replicas"):
        assembly.run_one(small_config(strategy="mirrored", steps_per_call=4))
    assert not (tmp_path / "run").exists()
