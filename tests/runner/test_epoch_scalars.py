"""tc.runner.epoch_scalars: metrics.csv's rows as classic TensorBoard scalars, 1-based."""

import pytest

from tc.runner import epoch_scalars

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

pytestmark = pytest.mark.backend_independent


def read_scalars(logdir):
    accumulator = event_accumulator.EventAccumulator(str(logdir))
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def rows(count):
    return [{"epoch": epoch, "learning_rate": 0.1 / epoch, "train/loss": 2.0 / epoch,
             "test/accuracy": 0.5 + 0.1 * epoch, "rank/features/effective": 10.0 + epoch,
             "val/ece": float("nan") if epoch == 2 else 0.01 * epoch}
            for epoch in range(1, count + 1)]


def test_every_column_is_a_scalar_at_its_metrics_csv_epoch(tmp_path):
    assert epoch_scalars.available()
    writer = epoch_scalars.EpochScalars(str(tmp_path))
    writer.write(rows(2))
    writer.write(rows(3))  # only epoch 3 is new
    writer.close()
    scalars = read_scalars(tmp_path)
    assert set(scalars) == {"learning_rate", "train/loss", "test/accuracy",
                            "rank/features/effective", "val/ece"}
    for column in ("learning_rate", "train/loss", "test/accuracy", "rank/features/effective"):
        assert [step for step, _ in scalars[column]] == [1, 2, 3]
        assert [value for _, value in scalars[column]] == pytest.approx(
            [row[column] for row in rows(3)])
    assert [step for step, _ in scalars["val/ece"]] == [1, 3]  # a NaN is left out


def test_a_resumed_run_writes_only_the_epochs_after_its_restart(tmp_path):
    first = epoch_scalars.EpochScalars(str(tmp_path))
    first.write(rows(2))
    first.close()
    resumed = epoch_scalars.EpochScalars(str(tmp_path), already_written=2)
    resumed.write(rows(4))
    resumed.close()
    assert [step for step, _ in read_scalars(tmp_path)["train/loss"]] == [1, 2, 3, 4]
