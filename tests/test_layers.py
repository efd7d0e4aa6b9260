"""InverseTemperature, TemperatureSoftmax and the initial-logit-norm rescaling."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import tc
from tests.support import dense_model, softmax


def test_inverse_temperature_scales_logits():
    logits = np.random.default_rng(0).standard_normal((5, 3)).astype("float32")
    layer = tc.layers.InverseTemperature(beta=0.25)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(logits)), 0.25 * logits, rtol=1e-6)
    assert layer.trainable_weights == []
    np.testing.assert_allclose(float(ops.convert_to_numpy(layer.beta)), 0.25, rtol=1e-6)


def test_trainable_inverse_temperature_learns_log_beta_and_stays_positive():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    inputs = keras.Input((4,))
    logits = keras.layers.Dense(2, trainable=False)(inputs)
    scaled = tc.layers.InverseTemperature(beta=0.01, trainable=True, name="temperature")(logits)
    model = keras.Model(inputs, scaled)
    layer = model.get_layer("temperature")
    assert [w.name for w in layer.trainable_weights] == ["log_beta"]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=5.0),
                  loss=tc.losses.TemperatureCrossEntropy())
    model.fit(x, y, epochs=5, verbose=0)
    learned = float(ops.convert_to_numpy(layer.beta))
    assert learned > 0.0 and not math.isclose(learned, 0.01, rel_tol=1e-3)


def test_temperature_softmax_matches_numpy_and_returns_float32(dtype_policy):
    logits = np.random.default_rng(2).standard_normal((6, 4)).astype("float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(tc.layers.TemperatureSoftmax(beta=3.0)(logits)),
        softmax(3.0 * logits), rtol=1e-5, atol=1e-7)
    dtype_policy("mixed_bfloat16")
    inputs = keras.Input((4,))
    half_precision_logits = keras.layers.Dense(4)(inputs)
    probabilities = tc.layers.TemperatureSoftmax(beta=3.0)(half_precision_logits)
    model = keras.Model(inputs, [half_precision_logits, probabilities])
    logits_out, probabilities_out = model(logits)
    assert keras.backend.standardize_dtype(logits_out.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(probabilities_out.dtype) == "float32"


@pytest.mark.parametrize("layer_class", [tc.layers.InverseTemperature,
                                         tc.layers.TemperatureSoftmax])
@pytest.mark.parametrize("bad_beta", [0.0, -2.0, math.nan, math.inf])
def test_layers_reject_bad_beta(layer_class, bad_beta):
    with pytest.raises(ValueError, match="beta"):
        layer_class(beta=bad_beta)


@pytest.mark.parametrize("target", [1e-2, 1e-1, 1.0, 10.0, 1e2])
@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_readout_rescaling_hits_the_target_logit_norm(target, beta):
    model = dense_model(8, 10, hidden=32)
    batch = np.random.default_rng(3).standard_normal((128, 8)).astype("float32")
    hidden_before = ops.convert_to_numpy(model.layers[1].kernel).copy()
    achieved = tc.layers.set_initial_logit_norm(model, batch, target, beta=beta)
    logits = ops.convert_to_numpy(model(batch)).astype(np.float64)
    measured = np.mean(np.linalg.norm(beta * logits, axis=1))
    assert abs(measured - target) <= 0.01 * target
    assert achieved == pytest.approx(measured, rel=1e-6)
    np.testing.assert_array_equal(ops.convert_to_numpy(model.layers[1].kernel), hidden_before)


def test_readout_rescaling_through_a_nonlinear_head_iterates_to_the_target():
    inputs = keras.Input((8,))
    logits = keras.layers.Dense(10, name="readout")(keras.layers.Dense(16)(inputs))
    model = keras.Model(inputs, keras.layers.Activation("tanh")(logits) + 0.1 * logits)
    batch = np.random.default_rng(4).standard_normal((64, 8)).astype("float32")
    tc.layers.set_initial_logit_norm(model, batch, 2.0, readout="readout")
    measured = np.mean(np.linalg.norm(ops.convert_to_numpy(model(batch)), axis=1))
    assert abs(measured - 2.0) <= 0.01 * 2.0


def test_readout_rescaling_rejects_bad_input():
    model = dense_model(4, 3)
    batch = np.ones((4, 4), dtype="float32")
    with pytest.raises(ValueError, match="target_norm"):
        tc.layers.set_initial_logit_norm(model, batch, 0.0)
    zero_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="zeros")])
    with pytest.raises(ValueError, match="zero"):
        tc.layers.set_initial_logit_norm(zero_model, batch, 1.0)
