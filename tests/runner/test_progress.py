"""tc.runner.progress: the progress line reads no step logs and shows the epoch's metrics."""

import io

import keras
import numpy as np
import pytest

from tc import compat
from tc.runner import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_fit_calls_the_line_once_per_step_and_never_hands_it_step_logs():
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    stream = Terminal()
    line = progress.ProgressLine(epochs=2, steps_per_epoch=5, examples_per_step=8,
                                 stream=stream, redraw_seconds=0.0)
    ticks = []
    chain = compat.StepQuietCallbackList(
        [line], model, add_history=True, after_step=[line.tick, ticks.append], epochs=2,
        steps=5)
    # The line defines no batch-end hook, so the list converts no step's logs (the host would
    # wait for the device at every step).
    assert not chain._reads_train_steps
    history = model.fit(x, y, batch_size=8, epochs=2, callbacks=chain, verbose=0)
    assert ticks == [0, 1, 2, 3, 4] * 2
    text = stream.getvalue()
    frames = [frame for frame in text.replace("\n", "\r").split("\r") if frame.strip()]
    live = [frame for frame in frames if "ETA" in frame]
    assert len(live) == 10 and "epoch 1/2" in live[0] and " 1/5 " in live[0]
    assert " 5/5 " in live[-1] and "ETA 0:00" in live[-1]
    epoch_lines = text.split("\n")[:-1]
    assert len(epoch_lines) == 2 and epoch_lines[1].rstrip().split("\r")[-1].startswith(
        "epoch 2/2  5 steps")
    for name in ("loss", "accuracy"):
        assert f"{name} {history.history[name][-1]:.4g}" in epoch_lines[1]


def test_without_a_terminal_or_at_verbose_2_only_the_epoch_lines_are_written():
    for stream, verbose in ((io.StringIO(), 1), (Terminal(), 2)):
        line = progress.ProgressLine(epochs=3, steps_per_epoch=4, examples_per_step=2,
                                     verbose=verbose, stream=stream, redraw_seconds=0.0)
        for epoch in range(3):
            line.on_epoch_begin(epoch)
            for step in range(4):
                line.tick(step)
            line.on_epoch_end(epoch, {"loss": 0.5, "val_accuracy": 0.25, "val_ece": 0.1})
        lines = stream.getvalue().splitlines()
        assert [text.split("  ")[0] for text in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
        assert "\r" not in stream.getvalue() and "ETA" not in stream.getvalue()
        assert lines[0].endswith("loss 0.5  val_accuracy 0.25")  # ECE is left to metrics.csv


def test_a_packed_sweep_shows_each_value_as_its_range_over_the_copies():
    logs = {"0/copy_0_loss": 0.5, "1/copy_1_loss": 0.25, "copy_0_accuracy": 0.75,
            "copy_1_accuracy": 0.875}

    def logs_of(all_logs, index):
        return {"loss": all_logs[f"{index}/copy_{index}_loss"],
                "accuracy": all_logs[f"copy_{index}_accuracy"]}

    stream = io.StringIO()
    line = progress.ProgressLine(epochs=1, steps_per_epoch=2, examples_per_step=4, members=2,
                                 logs_of=logs_of, stream=stream)
    line.on_epoch_begin(0)
    line.on_epoch_end(0, logs)
    assert stream.getvalue().rstrip().endswith("loss 0.25-0.5  accuracy 0.75-0.875 over 2 copies")


@pytest.mark.parametrize("seconds,text", [(5, "0:05"), (65, "1:05"), (3725, "1:02:05")])
def test_durations_read_as_a_clock(seconds, text):
    assert progress._duration(seconds) == text
