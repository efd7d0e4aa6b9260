"""Under mixed precision, losses and metrics still compute in float32."""

import keras
import numpy as np
import pytest
from keras import ops

import tc

CAST_TOLERANCE = {"mixed_bfloat16": 2e-2, "mixed_float16": 2e-3}


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_losses_and_metrics_are_float32_under_mixed_precision(policy, dtype_policy):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 16)).astype("float32")
    y = rng.integers(0, 10, 128)
    reference_model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(10)])
    float32_logits = ops.convert_to_numpy(reference_model(x))

    dtype_policy(policy)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(10)])
    model.set_weights(reference_model.get_weights())
    half_logits = model(x)
    assert keras.backend.standardize_dtype(half_logits.dtype) != "float32"
    upcast_logits = ops.cast(half_logits, "float32")

    objects = [
        tc.losses.TemperatureCrossEntropy(beta=0.5),
        tc.losses.GradientDecayCrossEntropy(beta=3.0),
        tc.metrics.ExpectedCalibrationError(beta=0.5),
        tc.metrics.NegativeLogLikelihood(beta=0.5),
        tc.metrics.LogitNorm(beta=0.5),
    ]
    for obj in objects:
        def evaluate(logits):
            if isinstance(obj, keras.losses.Loss):
                return obj(y, logits)
            obj.reset_state()
            obj.update_state(y, logits)
            return obj.result()

        from_half = evaluate(half_logits)
        assert keras.backend.standardize_dtype(from_half.dtype) == "float32", obj.name
        # Same input values: the float32 math gives the float32 answer exactly.
        np.testing.assert_allclose(ops.convert_to_numpy(from_half),
                                   ops.convert_to_numpy(evaluate(upcast_logits)), rtol=1e-6,
                                   atol=1e-7)
        # Against the all-float32 model: only the logits' rounding differs.
        np.testing.assert_allclose(ops.convert_to_numpy(from_half),
                                   ops.convert_to_numpy(evaluate(float32_logits)),
                                   rtol=CAST_TOLERANCE[policy], atol=CAST_TOLERANCE[policy])


def test_fit_under_mixed_bfloat16_reports_finite_float32_loss(dtype_policy):
    dtype_policy("mixed_bfloat16")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 8)).astype("float32")
    y = rng.integers(0, 3, 64)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=tc.losses.GradientDecayCrossEntropy(beta=0.5),
                  metrics=[tc.metrics.ExpectedCalibrationError()])
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.all(np.isfinite(history.history["ece"]))
