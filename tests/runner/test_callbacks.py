"""`tc.runner.callbacks`: the epoch end, one owner per duty."""

import math

import keras
import numpy as np
import pytest

from tc import run_files
from tc.runner import assembly, callbacks

from tests.support import dense_model


def test_later_callbacks_see_the_validation_logs_that_metrics_csv_records(tmp_path, small_config):
    class Seen(keras.callbacks.Callback):
        logs = []

        def on_epoch_end(self, epoch, logs=None):
            self.logs.append(dict(logs))

    config = small_config(epochs=2)
    assembly.run_one(config, extra_callbacks=[Seen()])
    rows = read_rows(config.run_dir)
    assert len(Seen.logs) == 2
    for logs, row in zip(Seen.logs, rows):
        assert {"val_loss", "val_accuracy", "val_ece", "loss"} <= set(logs)
        for key in ("loss", "accuracy", "ece"):
            assert logs[f"val_{key}"] == pytest.approx(row[f"val/{key}"], rel=1e-6)


def read_rows(path):
    return run_files.read_csv(f"{path}/metrics.csv")


class FakeRunDirectory:
    """Records what a recorder commits, in place of a RunDirectory."""

    path = "fake"

    def __init__(self):
        self.commits = []
        self.divergences = []

    def commit_divergence(self, diverged_at):
        self.divergences.append(diverged_at)

    def commit_epoch(self, snapshot, rows, completed_epochs, finish_row=None):
        extra = finish_row() if finish_row is not None else {}
        self.commits.append((completed_epochs, dict(rows[-1], **extra)))


def compiled_model(small_config):
    model = dense_model(4, 3)
    loss = assembly.build_loss(small_config(beta=2.0))
    model.compile(keras.optimizers.SGD(0.05), loss=loss, metrics=assembly.build_metrics(loss))
    return model, loss


@pytest.mark.parametrize("loss, finite_weights, diverged", [
    (0.5, True, False), (math.nan, True, True), (math.inf, True, True), (0.5, False, True)])
def test_the_guard_judges_the_loss_and_the_weights(loss, finite_weights, diverged):
    class Snapshot:
        finite = finite_weights

    guard = callbacks.DivergenceGuard()
    assert guard.check(4, {"train/loss": loss}, Snapshot()) is diverged
    assert (guard.diverged_at is not None) is diverged
    if diverged:
        assert guard.diverged_at["epoch"] == 5
        assert guard.check(5, {"train/loss": 0.1}, Snapshot()) and guard.diverged_at["epoch"] == 5


@pytest.mark.parametrize("row, diverged", [
    ({"train/loss": 9.6e18}, True), ({"train/loss": 0.5, "train/logit_norm": math.inf}, True),
    ({"train/loss": 0.5, "val/loss": math.nan}, True),
    ({"train/loss": 0.5, "test/ece": -2e12}, True),
    ({"train/loss": 0.5, "train/logit_norm": 3e11, "epoch": 7}, False)])
def test_the_guard_judges_every_logged_value(row, diverged):
    class Snapshot:
        finite = True

    guard = callbacks.DivergenceGuard()
    assert guard.check(0, row, Snapshot()) is diverged
    if diverged:
        bad = next(key for key, value in row.items() if not abs(value) <= 1e12)
        assert bad in guard.diverged_at["reason"] and "1e+12" in guard.diverged_at["reason"]


def test_a_recorder_commits_finite_epochs_and_nothing_after_divergence(small_config):
    model, loss = compiled_model(small_config)
    directory = FakeRunDirectory()
    recorder = callbacks.EpochRecorder(directory, [], loss, model, lambda: 0.05)
    recorder.start_epoch()
    recorder.record(0, {"loss": 0.7, "accuracy": 0.5, "val_loss": 0.9}, {"loss": 1.0},
                    ranks_later=lambda: {"rank/features/numerical": 3})
    assert [epoch for epoch, _ in directory.commits] == [1]
    row = directory.commits[0][1]
    assert row["train/loss"] == 0.7 and row["val/loss"] == 0.9 and row["test/loss"] == 1.0
    assert row["beta"] == pytest.approx(2.0) and row["learning_rate"] == pytest.approx(0.05)
    assert row["rank/features/numerical"] == 3 and len(recorder.epoch_seconds) == 1
    recorder.start_epoch()
    recorder.record(1, {"loss": math.nan}, {})
    recorder.start_epoch()
    recorder.record(2, {"loss": 0.1}, {})
    assert len(directory.commits) == 1 and recorder.guard.diverged_at["epoch"] == 2
    assert directory.divergences == [recorder.guard.diverged_at]  # recorded once, for a restart
    assert len(recorder.rows) == 1


def test_a_nan_weight_is_divergence_even_with_a_finite_loss(small_config):
    model, loss = compiled_model(small_config)
    model.weights[0].assign(np.full(model.weights[0].shape, np.nan, np.float32))
    directory = FakeRunDirectory()
    recorder = callbacks.EpochRecorder(directory, [], loss, model, lambda: 0.05)
    recorder.start_epoch()
    recorder.record(0, {"loss": 0.3}, {})
    assert directory.commits == [] and recorder.guard.diverged_at["epoch"] == 1


def test_split_logs_names_follow_the_convention():
    assert callbacks.split_logs({"loss": 1.0, "val_accuracy": 0.5, "beta": 2.0}) == {
        "train/loss": 1.0, "val/accuracy": 0.5}


def test_rank_activations_of_two_models_equal_each_models_own():
    from tc import representation

    models = [dense_model(4, 3, seed=0), dense_model(4, 3, seed=5)]
    inputs = np.random.default_rng(1).normal(size=(40, 4)).astype("float32")
    joint = callbacks.RankActivations(models, ["readout"], inputs, batch_size=16)
    joint.take()
    for index, model in enumerate(models):
        own = representation.layer_activations(model, ["readout"], inputs)
        np.testing.assert_allclose(np.asarray(joint.activations[index]["readout"]),
                                   own["readout"], rtol=1e-5, atol=1e-6)
        assert joint.ranks_later(index)() == pytest.approx(representation.rank_row(own))
    assert callbacks.RankActivations(models, [], inputs, 16).ranks_later(0) is None
