"""Test set-up: pick the backend before Keras loads, and give it two CPU devices.

`KERAS_BACKEND` (tensorflow by default) selects the backend, as in CI. Two logical CPU devices
let the distribution tests run a 2-replica `tf.distribute.MirroredStrategy` (TensorFlow) or a
2-device `keras.distribution.DataParallel` (JAX) on an ordinary CPU machine.

JAX's compiled programs go to a persistent compilation cache for the session (one directory per
pytest-xdist worker: JAX writes its entries without a lock), which the subprocesses of the tests
inherit, JAX ones under either backend. Most tests train a model of the same shapes as another,
and XLA's CPU compiler took three quarters of such a run's time.
"""

import atexit
import os
import shutil
import tempfile

BACKEND = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A directory of our own making (TC_TESTS_XLA_CACHE): pytest-xdist's workers inherit the one
# their controller made, and each makes its own instead. One set by the user is kept. Under the
# TensorFlow backend it serves the tests' JAX subprocesses (tests/test_fault_injection.py).
if os.environ.get("JAX_COMPILATION_CACHE_DIR", "") in ("", os.environ.get("TC_TESTS_XLA_CACHE")):
    _cache = tempfile.mkdtemp(prefix="tc-tests-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["TC_TESTS_XLA_CACHE"] = _cache
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
# XLA's CPU compiler at LLVM's lowest optimization level: a test compiles far more than it runs
# (resnet18's train step compiles in 11 s instead of 18 s; a digits run's whole test 40% faster).
# Every JAX process of the session, the tests' subprocesses included, compiles the same way, so
# the runs a test compares stay comparable.
_xla_flags = os.environ.get("XLA_FLAGS", "").split()
for _flag in ["--xla_backend_optimization_level=0"] + (
        ["--xla_force_host_platform_device_count=2"] if BACKEND == "jax" else []):
    if _flag not in _xla_flags:  # pytest-xdist's workers inherit their controller's
        _xla_flags.append(_flag)
os.environ["XLA_FLAGS"] = " ".join(_xla_flags)
if BACKEND == "jax":
    # XLA's CPU thread pool sized for the two host devices: with one thread per core (2 here)
    # their all-reduce deadlocks now and then, and XLA aborts the process (tc.runner.distribute).
    # Inherited by the tests' subprocesses, as XLA_FLAGS is.
    from tc.runner import distribute as _distribute

    os.environ.setdefault("NPROC", str(_distribute.HOST_POOL_THREADS_PER_DEVICE * 2))
if BACKEND == "tensorflow":
    import tensorflow as tf

    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def dtype_policy():
    """Sets a global dtype policy for one test and restores float32 afterwards."""
    previous = keras.config.dtype_policy()

    def set_policy(name):
        keras.config.set_dtype_policy(name)

    yield set_policy
    keras.config.set_dtype_policy(previous)


@pytest.fixture(autouse=True)
def fresh_keras_state(request):
    """Each test starts with a clean Keras name scope and a fixed seed.

    Without the full garbage collection `clear_session` runs by default: Python's own collector
    still frees the earlier tests' models, and a full pass over a worker's heap of Keras, JAX and
    TensorFlow objects cost up to 2 s before each test late in a session. Tests marked
    `two_devices` still start from a collected heap, as every test did before, and CI runs them
    on one process of their own (.ci/run): XLA's CPU all-reduce over two host devices aborts when
    a device has not joined it within its timeout, which a fully loaded machine made happen.
    """
    keras.backend.clear_session(free_memory=request.node.get_closest_marker("two_devices")
                                is not None)
    keras.utils.set_random_seed(0)
    yield


SMALL_RUN = dict(dataset="digits", epochs=3, batch_size=32, tensorboard=False, verbose=0,
                 rank_probe_size=128)


@pytest.fixture
def small_config(tmp_path):
    """Makes small, fast RunConfigs: `small_config(name="run", **overrides)`.

    Digits, 3 epochs, batch 32, no TensorBoard, writing to `tmp_path / name`; `output_dir=""`
    gives a config with no run directory of its own (a search's base).
    """
    from tc.runner import config as config_lib

    def make(name="run", **overrides):
        values = dict(SMALL_RUN, output_dir=str(tmp_path / name))
        values.update(overrides)
        return config_lib.RunConfig(**values)

    return make
