"""Beta schedules, and the callback that changes a loss's beta inside the compiled step."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import tc
from tests.support import log_softmax

NUM_CLASSES = 4


def test_log_linear_warmup_is_geometric_then_holds():
    schedule = tc.schedules.LogLinearWarmup(0.1, 1.0, duration=5)
    values = [schedule(t) for t in range(8)]
    np.testing.assert_allclose(values[:6], np.geomspace(0.1, 1.0, 6), rtol=1e-12)
    assert values[5:] == [1.0, 1.0, 1.0]
    assert schedule.initial_value == pytest.approx(0.1)


def test_cosine_warmup_meets_endpoints_and_geometric_midpoint():
    schedule = tc.schedules.CosineWarmup(0.01, 1.0, duration=10, unit="step")
    assert schedule(0) == pytest.approx(0.01)
    assert schedule(5) == pytest.approx(0.1)  # halfway in log space
    assert schedule(10) == pytest.approx(1.0) and schedule(50) == pytest.approx(1.0)
    # Slow start: a cosine ramp moves less than the log-linear one in its first step.
    linear = tc.schedules.LogLinearWarmup(0.01, 1.0, duration=10, unit="step")
    assert schedule(1) < linear(1)


def test_constant_schedule_and_get():
    assert tc.schedules.ConstantBeta(2.5)(100) == 2.5
    assert tc.schedules.get(3.0)(7) == 3.0
    warmup = tc.schedules.LogLinearWarmup(0.2, 2.0, duration=3)
    rebuilt = tc.schedules.get(keras.saving.serialize_keras_object(warmup))
    assert isinstance(rebuilt, tc.schedules.LogLinearWarmup)
    assert rebuilt.get_config() == warmup.get_config()


@pytest.mark.parametrize("kwargs, match", [
    (dict(beta_start=0.0, beta_end=1.0, duration=3), "beta_start"),
    (dict(beta_start=0.1, beta_end=math.nan, duration=3), "beta_end"),
    (dict(beta_start=0.1, beta_end=1.0, duration=0), "duration"),
    (dict(beta_start=0.1, beta_end=1.0, duration=2.5), "duration"),
    (dict(beta_start=0.1, beta_end=1.0, duration=3, unit="batch"), "unit"),
])
def test_bad_schedule_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tc.schedules.LogLinearWarmup(**kwargs)


def test_negative_time_is_rejected():
    with pytest.raises(ValueError, match="-1"):
        tc.schedules.CosineWarmup(0.1, 1.0, duration=3)(-1)


def test_scheduler_needs_a_schedule():
    with pytest.raises(ValueError, match="schedule"):
        tc.schedules.BetaScheduler(tc.losses.TemperatureCrossEntropy(beta=0.5))
    with pytest.raises(ValueError, match="beta variable"):
        tc.schedules.BetaScheduler(0.5, schedule=tc.schedules.ConstantBeta(1.0))


class TraceCountingLoss(tc.losses.GradientDecayCrossEntropy):
    """Counts Python executions of `call`: in a compiled step, that is the number of traces."""

    traces = 0

    def call(self, y_true, y_pred):
        type(self).traces += 1
        return super().call(y_true, y_pred)


def frozen_problem(num_examples=32, seed=0):
    """A fixed linear model (learning rate 0) so the loss changes only through beta."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_examples, 5)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, num_examples)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(NUM_CLASSES)])
    logits = ops.convert_to_numpy(model(x))
    return model, x, y, logits


def gradient_decay_mean(logits, labels, beta):
    """Mean gradient-decay CE from the formula's CE + log(1 + (beta - 1) p) form, float64."""
    log_p = log_softmax(logits)[np.arange(len(labels)), labels]
    return np.mean(-log_p + np.log1p((beta - 1.0) * np.exp(log_p)))


class TraceRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.traces_after_epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.traces_after_epoch.append(TraceCountingLoss.traces)


def test_epoch_warmup_changes_the_loss_mid_fit_without_retracing():
    model, x, y, logits = frozen_problem()
    schedule = tc.schedules.LogLinearWarmup(0.1, 10.0, duration=4, unit="epoch")
    loss = TraceCountingLoss(beta=schedule)
    TraceCountingLoss.traces = 0
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=loss)
    recorder = TraceRecorder()
    history = model.fit(x, y, batch_size=8, epochs=6, shuffle=False, verbose=0,
                        callbacks=[tc.schedules.BetaScheduler(loss), recorder])
    expected_betas = [schedule(epoch) for epoch in range(6)]
    np.testing.assert_allclose(history.history["beta"], expected_betas, rtol=1e-6)
    expected_losses = [gradient_decay_mean(logits, y, b) for b in expected_betas]
    np.testing.assert_allclose(history.history["loss"], expected_losses, rtol=1e-5)
    assert len(set(np.round(history.history["loss"], 4))) == 5  # epochs 4 and 5 hold beta_end
    # Traced during the first epoch only; the five beta changes after it reuse that program.
    assert recorder.traces_after_epoch[0] >= 1
    assert recorder.traces_after_epoch == [recorder.traces_after_epoch[0]] * 6


def test_step_warmup_follows_the_global_step():
    model, x, y, logits = frozen_problem(num_examples=8)
    x_repeated, y_repeated = np.tile(x, (4, 1)), np.tile(y, 4)  # 4 identical batches per epoch
    schedule = tc.schedules.LogLinearWarmup(0.1, 1.0, duration=3, unit="step")
    loss = tc.losses.GradientDecayCrossEntropy(beta=schedule)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=loss)
    history = model.fit(x_repeated, y_repeated, batch_size=8, epochs=2, shuffle=False, verbose=0,
                        callbacks=[tc.schedules.BetaScheduler(loss)])
    first_epoch = np.mean([gradient_decay_mean(logits, y, schedule(step)) for step in range(4)])
    np.testing.assert_allclose(history.history["loss"][0], first_epoch, rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"][1], gradient_decay_mean(logits, y, 1.0),
                               rtol=1e-5)


def test_resumed_fit_continues_the_epoch_schedule():
    model, x, y, logits = frozen_problem()
    schedule = tc.schedules.LogLinearWarmup(0.1, 10.0, duration=4)
    loss = tc.losses.TemperatureCrossEntropy(beta=schedule)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=loss)
    history = model.fit(x, y, batch_size=32, initial_epoch=2, epochs=3, verbose=0,
                        callbacks=[tc.schedules.BetaScheduler(loss)])
    np.testing.assert_allclose(history.history["beta"], [schedule(2)], rtol=1e-6)


def test_tracked_model_still_saves_and_loads(tmp_path):
    model, x, y, _ = frozen_problem()
    loss = tc.losses.TemperatureCrossEntropy(beta=tc.schedules.LogLinearWarmup(0.5, 2.0, 2))
    model.compile(optimizer="sgd", loss=loss)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[tc.schedules.BetaScheduler(loss)])
    path = tmp_path / "tracked.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(ops.convert_to_numpy(restored(x)), ops.convert_to_numpy(model(x)),
                               rtol=1e-6)
