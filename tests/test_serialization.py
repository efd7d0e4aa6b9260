"""Every loss, layer, metric and schedule round-trips through its config and a .keras file."""

import keras
import numpy as np
import pytest
from keras import ops

import tc

SCHEDULES = [
    tc.schedules.ConstantBeta(0.3, unit="step"),
    tc.schedules.LogLinearWarmup(0.1, 1.0, duration=5),
    tc.schedules.CosineWarmup(0.01, 2.0, duration=100, unit="step"),
]
LOSSES = [
    tc.losses.TemperatureCrossEntropy(beta=0.05, label_smoothing=0.1, reduction="sum"),
    tc.losses.TemperatureCrossEntropy(beta=SCHEDULES[2], label_mode="categorical"),
    tc.losses.GradientDecayCrossEntropy(beta=7.0, name="gd"),
    tc.losses.GradientDecayCrossEntropy(beta=SCHEDULES[1]),
]
METRICS = [
    tc.metrics.ExpectedCalibrationError(num_bins=10, beta=0.5),
    tc.metrics.MaximumCalibrationError(from_logits=False, label_mode="categorical"),
    tc.metrics.NegativeLogLikelihood(beta=2.0),
    tc.metrics.LogitNorm(),
]
LAYERS = [
    tc.layers.InverseTemperature(beta=0.2, trainable=True),
    tc.layers.TemperatureSoftmax(beta=4.0, axis=-1),
]


def round_trip(obj):
    serialized = keras.saving.serialize_keras_object(obj)
    return keras.saving.deserialize_keras_object(serialized)


@pytest.mark.parametrize("obj", SCHEDULES + LOSSES + METRICS + LAYERS,
                         ids=lambda o: type(o).__name__)
def test_config_round_trip(obj):
    rebuilt = round_trip(obj)
    assert type(rebuilt) is type(obj)
    assert rebuilt.get_config() == obj.get_config()
    assert type(obj).from_config(obj.get_config()).get_config() == obj.get_config()


def test_round_tripped_losses_compute_the_same_values():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((16, 5)).astype("float32")
    labels = rng.integers(0, 5, 16)
    for loss in (LOSSES[0], LOSSES[2], LOSSES[3]):
        np.testing.assert_allclose(ops.convert_to_numpy(round_trip(loss)(labels, logits)),
                                   ops.convert_to_numpy(loss(labels, logits)), rtol=1e-7)


def test_variable_beta_is_saved_as_its_current_value():
    beta = keras.Variable(0.5, trainable=False)
    loss = tc.losses.TemperatureCrossEntropy(beta=beta)
    beta.assign(0.125)
    assert loss.get_config()["beta"] == 0.125


def test_keras_model_with_tc_objects_saves_and_loads_without_custom_objects(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 6)).astype("float32")
    y = rng.integers(0, 4, 64)
    inputs = keras.Input((6,))
    logits = keras.layers.Dense(4)(keras.layers.Dense(8, activation="relu")(inputs))
    scaled = tc.layers.InverseTemperature(beta=0.5, trainable=True)(logits)
    model = keras.Model(inputs, scaled)
    loss = tc.losses.GradientDecayCrossEntropy(beta=tc.schedules.LogLinearWarmup(0.2, 1.0, 2))
    model.compile(optimizer="adam", loss=loss, metrics=[
        tc.metrics.ExpectedCalibrationError(), tc.metrics.MaximumCalibrationError(num_bins=10),
        tc.metrics.NegativeLogLikelihood(), tc.metrics.LogitNorm()])
    model.fit(x, y, epochs=2, verbose=0, callbacks=[tc.schedules.BetaScheduler(loss)])
    path = tmp_path / "model.keras"
    model.save(path)

    restored = keras.models.load_model(path)  # no custom_objects: `tc` registered them
    np.testing.assert_allclose(ops.convert_to_numpy(restored(x)), ops.convert_to_numpy(model(x)),
                               rtol=1e-6)
    assert isinstance(restored.loss, tc.losses.GradientDecayCrossEntropy)
    assert restored.loss.get_config() == loss.get_config()
    assert isinstance(restored.layers[-1], tc.layers.InverseTemperature)
    original = model.evaluate(x, y, verbose=0, return_dict=True)
    reloaded = restored.evaluate(x, y, verbose=0, return_dict=True)
    for key in ("ece", "mce", "nll", "logit_norm"):
        np.testing.assert_allclose(reloaded[key], original[key], rtol=1e-5)


def _numpy_ece(labels, logits, beta, bins=15):
    scaled = beta * logits
    probabilities = np.exp(scaled - scaled.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    confidence, correct = probabilities.max(-1), probabilities.argmax(-1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return sum(abs(correct[which == b].mean() - confidence[which == b].mean()) * np.mean(which == b)
               for b in range(bins) if np.any(which == b))


def test_metrics_that_follow_a_loss_follow_the_loaded_loss(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((256, 6)).astype("float32")
    y = rng.integers(0, 4, 256)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    loss = tc.losses.TemperatureCrossEntropy(beta=0.5)
    model.compile(optimizer="sgd", loss=loss, metrics=[
        tc.metrics.ExpectedCalibrationError(beta=loss), tc.metrics.NegativeLogLikelihood(beta=loss),
        tc.metrics.LogitNorm(beta=loss), tc.metrics.ExpectedCalibrationError(beta=3.0, name="e3")])
    model.save(tmp_path / "model.keras")

    restored = keras.models.load_model(tmp_path / "model.keras")
    followers = [metric for metric in restored._compile_config.config["metrics"]
                 if metric.name != "e3"]
    assert len(followers) == 3
    for metric in followers:  # one loss again: the restored model's, and its beta variable
        assert metric._scoring.beta_loss is restored.loss
        assert metric._scoring.beta_variable is restored.loss.beta
    restored.loss.beta.assign(2.0)  # as a beta schedule does
    logits = ops.convert_to_numpy(restored(x))
    results = restored.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(results["ece"], _numpy_ece(y, logits, 2.0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results["e3"], _numpy_ece(y, logits, 3.0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results["logit_norm"],
                               np.linalg.norm(2.0 * logits, axis=-1).mean(), rtol=1e-5)


def test_probability_model_with_temperature_softmax_round_trips(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, tc.layers.TemperatureSoftmax(beta=2.0)(keras.layers.Dense(5)(inputs)))
    path = tmp_path / "probabilities.keras"
    model.save(path)
    x = np.random.default_rng(2).standard_normal((4, 3)).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(keras.models.load_model(path)(x)),
                               ops.convert_to_numpy(model(x)), rtol=1e-6)
