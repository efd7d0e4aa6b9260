"""Epoch-end evaluation: the compiled path of `tc.evaluation` gives `model.evaluate`'s logs."""

import keras
import numpy as np
import pytest

from tc import losses
from tc.runner import assembly, evaluation
from tc.data import device_stream

JAX = keras.backend.backend() == "jax"


def compiled_model(outputs=1, seed=0):
    """A small model with batch norm and every metric of a tc run, trained a little."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    features = keras.layers.Dense(16, activation="relu")(inputs)
    features = keras.layers.BatchNormalization()(features)
    logits = [keras.layers.Dense(5, name=f"logits_{k}")(features) for k in range(outputs)]
    model = keras.Model(inputs, logits if outputs > 1 else logits[0])
    loss = losses.TemperatureCrossEntropy(beta=0.5)
    model.compile(keras.optimizers.SGD(0.1), loss=[loss] * outputs if outputs > 1 else loss,
                  metrics=[assembly.build_metrics(loss) for _ in range(outputs)]
                  if outputs > 1 else assembly.build_metrics(loss))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, 8)).astype("float32")
    y = rng.integers(0, 5, 300).astype("int32")
    model.fit(x, (y,) * outputs if outputs > 1 else y, batch_size=64, epochs=1, verbose=0)
    return model, loss


def split(examples, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((examples, 8)).astype("float32")
    return x, rng.integers(0, 5, examples).astype("int32")


def keras_logs(model, x, y, batch_size):
    return model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)


def assert_same_logs(got, expected):
    assert set(got) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.skipif(not JAX, reason="the compiled path is the JAX backend's")
@pytest.mark.parametrize("examples", [200, 64, 50, 137])  # several full batches, one, none
def test_compiled_evaluation_gives_the_logs_of_model_evaluate(examples):
    model, loss = compiled_model()
    loss.beta.assign(0.8)  # read live: not the beta the model was compiled with
    x, y = split(examples)
    data = device_stream.on_device((x, y))
    assert evaluation.supported(model, data)
    got = evaluation.read(evaluation.start(model, *data, batch_size=64))
    assert_same_logs(got, keras_logs(model, x, y, 64))


@pytest.mark.skipif(not JAX, reason="the compiled path is the JAX backend's")
def test_compiled_evaluation_of_a_model_with_several_outputs():
    model, _ = compiled_model(outputs=3)
    x, y = split(100)
    x_on_device, y_on_device = device_stream.on_device((x, y))
    got = evaluation.read(evaluation.start(model, x_on_device, (y_on_device,) * 3, 32))
    assert_same_logs(got, keras_logs(model, x, (y,) * 3, 32))


@pytest.mark.skipif(not JAX, reason="the compiled path is the JAX backend's")
def test_compiled_evaluation_leaves_the_model_and_its_metrics_alone():
    model, _ = compiled_model()
    before = [np.array(v) for v in model.weights + model.metrics_variables]
    evaluation.read(evaluation.start(model, *device_stream.on_device(split(100)), 64))
    after = [np.array(v) for v in model.weights + model.metrics_variables]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


def test_compiled_path_only_takes_device_arrays_of_a_jax_model():
    model, _ = compiled_model()
    x, y = split(10)
    assert not evaluation.supported(model, (x, y))  # numpy: left to model.evaluate
    assert evaluation.supported(model, device_stream.on_device((x, y))) == JAX
    assert not evaluation.supported(model, None)
    assert not evaluation.supported(model, device_stream.on_device(split(0)))  # nothing to score


def test_evaluate_splits_matches_model_evaluate_for_every_kind_of_split():
    model, _ = compiled_model()
    on_device = device_stream.on_device(split(90, seed=2))
    on_host = split(70, seed=3)
    logs = evaluation.evaluate_splits(model, [on_device, None, on_host], batch_size=32)
    assert logs[1] is None
    for got, (x, y) in ((logs[0], on_device), (logs[2], on_host)):
        assert_same_logs(got, keras_logs(model, np.asarray(x), np.asarray(y), 32))


def test_validation_logs_join_the_epoch_logs_as_fit_would_name_them():
    model, _ = compiled_model()
    validation, test = split(60, seed=4), split(40, seed=5)
    logs = {"loss": 1.0}
    train = split(30, seed=6)
    test_logs, train_logs = evaluation.evaluate_with_validation(model, logs, validation, test,
                                                                32, train)
    expected = keras_logs(model, *validation, 32)
    assert set(logs) == {"loss"} | {f"val_{key}" for key in expected}
    np.testing.assert_allclose(logs["val_loss"], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(test_logs["accuracy"], keras_logs(model, *test, 32)["accuracy"])
    np.testing.assert_allclose(train_logs["accuracy"], keras_logs(model, *train, 32)["accuracy"])
    assert evaluation.evaluate_with_validation(model, {}, validation, test, 32)[1] is None
