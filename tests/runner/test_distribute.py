"""Two replicas give the same losses and metrics as one device.

TensorFlow: `tf.distribute.MirroredStrategy` over two logical CPU devices. JAX:
`keras.distribution.DataParallel` over two host devices. Both are set up in conftest.py.
"""

import contextlib
import os

import keras
import numpy as np
import pytest
from keras import ops

import tc
from tests.support import run_python

BACKEND = keras.backend.backend()
pytestmark = [pytest.mark.skipif(BACKEND not in ("tensorflow", "jax"),
                                 reason="replicated CPU devices are set up for TF and JAX only"),
              pytest.mark.two_devices]


@contextlib.contextmanager
def two_replicas():
    if BACKEND == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            yield
    else:
        import jax

        devices = jax.devices("cpu")[:2]
        assert len(devices) == 2
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield
        finally:
            keras.distribution.set_distribution(None)


def replica_count(model):
    if BACKEND == "tensorflow":
        return model.distribute_strategy.num_replicas_in_sync
    distribution = keras.distribution.distribution()
    return 1 if distribution is None else len(distribution.device_mesh.devices.flatten())


def make_model(weights=None):
    model = keras.Sequential([
        keras.Input((12,)),
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.Dense(5),
    ])
    if weights is not None:
        model.set_weights(weights)
    return model


def data(num_examples=128, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((num_examples, 12)).astype("float32"),
            rng.integers(0, 5, num_examples))


def metrics():
    return [tc.metrics.ExpectedCalibrationError(beta=0.5), tc.metrics.MaximumCalibrationError(),
            tc.metrics.NegativeLogLikelihood(beta=0.5), tc.metrics.LogitNorm(beta=0.5)]


def test_calibration_metrics_agree_across_replicas():
    x, y = data(512)
    weights = make_model().get_weights()
    single = make_model(weights)
    single.compile(loss=tc.losses.TemperatureCrossEntropy(beta=0.5), metrics=metrics())
    expected = single.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    with two_replicas():
        replicated = make_model(weights)
        replicated.compile(loss=tc.losses.TemperatureCrossEntropy(beta=0.5), metrics=metrics())
        assert replica_count(replicated) == 2
        got = replicated.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert expected["ece"] > 0.0
    for key in ("loss", "ece", "mce", "nll", "logit_norm"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("loss_class", [tc.losses.TemperatureCrossEntropy,
                                        tc.losses.GradientDecayCrossEntropy])
def test_training_losses_agree_across_replicas(loss_class):
    """Same per-epoch losses and final weights: the loss is not scaled twice (or not at all)."""
    x, y = data(128)
    weights = make_model().get_weights()

    def train():
        model = make_model(weights)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5),
                      loss=loss_class(beta=0.5))
        history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
        weights_after = [ops.convert_to_numpy(w) for w in model.weights]
        return history.history["loss"], weights_after, replica_count(model)

    expected_losses, expected_weights, one = train()
    with two_replicas():
        losses, trained_weights, two = train()
    assert (one, two) == (1, 2)
    assert expected_losses[-1] < expected_losses[0]
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    for got, expected in zip(trained_weights, expected_weights):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_auto_stays_on_one_cpu_device_and_mirrored_spans_both():
    from tc.runner import distribute

    assert distribute.place("auto").num_replicas == 1
    assert distribute.place("mirrored").num_replicas == 2


def xla_pool_threads_started():
    """Threads of XLA's CPU pool in this process, counted by their name in /proc."""
    import jax.numpy as jnp

    x = jnp.ones((256, 256))
    (x @ x).block_until_ready()  # the pool starts with the CPU backend's first program
    tasks = os.listdir("/proc/self/task")
    return sum(open(f"/proc/self/task/{task}/comm").read().strip() == "tf_XLAEigen"
               for task in tasks)


@pytest.mark.skipif(BACKEND != "jax", reason="XLA's CPU pool and its deadlock are JAX's")
def test_the_host_devices_share_a_pool_large_enough_not_to_deadlock():
    # conftest.py sizes the pool. At one thread a core (2 on CI) 2 of 40 sessions of the two-device
    # tests deadlocked and aborted; at 8 threads none of 40 had an all-reduce wait even 3 s.
    from tc.runner import distribute

    threads = xla_pool_threads_started()
    assert threads == distribute.host_pool_threads()
    assert threads >= distribute.HOST_POOL_THREADS_PER_DEVICE * 2


@pytest.mark.skipif(BACKEND != "jax", reason="XLA's CPU pool and its deadlock are JAX's")
def test_the_pool_size_is_read_as_xla_reads_it(monkeypatch):
    # Counted in fresh processes: without NPROC one thread a schedulable core, else NPROC.
    script = """
        from tests.runner.test_distribute import xla_pool_threads_started
        from tc.runner import distribute
        print(xla_pool_threads_started(), distribute.host_pool_threads())
    """
    for nproc in (None, "3"):
        if nproc:
            monkeypatch.setenv("NPROC", nproc)
        else:
            monkeypatch.delenv("NPROC", raising=False)
        completed = run_python(script)
        assert completed.returncode == 0, completed.stderr[-2000:]
        counted, computed = completed.stdout.split()
        assert counted == computed == (nproc or str(len(os.sched_getaffinity(0))))


@pytest.mark.skipif(BACKEND != "jax", reason="XLA's CPU pool and its deadlock are JAX's")
def test_mirrored_over_host_devices_says_how_to_size_a_small_pool(monkeypatch, capsys):
    from tc.runner import distribute

    monkeypatch.setenv("NPROC", "2")
    assert distribute.place("mirrored").num_replicas == 2
    assert capsys.readouterr().err == (
        "tc: warning: 2 host devices share an XLA CPU pool of 2 threads, and their all-reduce "
        "can deadlock (see tc.runner.distribute); start the run with NPROC=8\n")
    monkeypatch.setenv("NPROC", "8")
    assert distribute.place("mirrored").num_replicas == 2
    assert distribute.place("auto").num_replicas == 1
    assert capsys.readouterr().err == ""
