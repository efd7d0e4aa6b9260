"""`tc.compat`: the one module that touches Keras internals, and its Keras version check."""

import os
import re

import keras
import pytest

from tc import compat
from tests.support import ROOT, run_python

INTERNALS = re.compile(r"keras\.src|_maybe_symbolic_build|reduce_per_replica|is_default"
                       r"|jax_state_sync|\.test_step\(")


def test_keras_internals_are_used_only_in_the_compatibility_module():
    users = []
    for folder, _, files in os.walk(os.path.join(ROOT, "tc")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as handle:
                    if INTERNALS.search(handle.read()):
                        users.append(os.path.relpath(path, ROOT))
    assert users == ["tc/compat.py"]


def test_the_installed_keras_is_in_the_tested_range():
    first, last = compat.TESTED_KERAS
    assert first <= compat.keras_version() <= last
    compat.check_keras_version()


@pytest.mark.parametrize("version", ["3.7.0", "4.0.0", "3.99.1"])
def test_an_untested_keras_is_refused_naming_both_versions(version, monkeypatch):
    monkeypatch.delenv(compat.ALLOW_UNTESTED_ENV, raising=False)
    with pytest.raises(compat.UnsupportedKerasVersion, match=re.escape(version)) as error:
        compat.check_keras_version(version)
    assert compat.ALLOW_UNTESTED_ENV in str(error.value)
    monkeypatch.setenv(compat.ALLOW_UNTESTED_ENV, "1")
    compat.check_keras_version(version)


@pytest.mark.backend_independent  # pinned to JAX: the check reads keras.__version__ alone
def test_import_tc_fails_clearly_under_an_untested_keras():
    completed = run_python(backend="jax", arguments="""
        import keras
        keras.__version__ = "9.1.0"
        try:
            import tc
        except Exception as error:
            print(type(error).__name__, error)
    """)
    assert "UnsupportedKerasVersion" in completed.stdout and "9.1.0" in completed.stdout


def test_step_quiet_list_skips_step_hooks_only_when_no_callback_reads_them():
    class ReadsSteps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    quiet = compat.StepQuietCallbackList([keras.callbacks.Callback()])
    reading = compat.StepQuietCallbackList([ReadsSteps()])
    assert not quiet._reads_train_steps and reading._reads_train_steps
    assert not quiet._reads_test_steps and not quiet._reads_predict_steps


@pytest.mark.backend_independent  # pinned to JAX: the path that skips TensorFlow
def test_a_jax_run_is_seeded_as_keras_seeds_it_without_loading_tensorflow(tmp_path):
    completed = run_python(f"""
        import sys
        import keras
        from tc import compat
        from tc.runner import assembly, config

        compat.set_random_seed(3)
        ours = keras.ops.convert_to_numpy(keras.random.uniform((5,))).tolist()
        import random, numpy as np
        python_and_numpy = (random.random(), float(np.random.rand()))
        loaded_before = "tensorflow" in sys.modules
        loaded_in_training = []

        class Watch(keras.callbacks.Callback):
            def on_train_end(self, logs=None):
                loaded_in_training.append("tensorflow" in sys.modules)

        result = assembly.run(config.RunConfig(epochs=2, output_dir={str(tmp_path / "run")!r},
                                               verbose=0), [Watch()])[0]
        print(result["status"], loaded_before, loaded_in_training[0], "tensorflow" in sys.modules)
        keras.utils.set_random_seed(3)
        print(ours == keras.ops.convert_to_numpy(keras.random.uniform((5,))).tolist(),
              python_and_numpy == (random.random(), float(np.random.rand())))
    """, backend="jax")
    assert completed.returncode == 0, completed.stderr[-2000:]
    # Training with TensorBoard on (two epochs, both committed) and saving model.keras never
    # load TensorFlow; the draws match Keras's seeding.
    assert completed.stdout.split() == ["completed", "False", "False", "False", "True", "True"]


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the JAX trainer's step state")
def test_the_step_state_is_kept_off_the_tracker_and_training_is_unchanged():
    import types

    import numpy as np

    from keras.src.utils import tracking

    from tests.support import dense_model

    x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 64)
    seen, calls, state_arrays = [], [], {}

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(type(self.model._jax_state))

    def trained(untracked):
        model = dense_model(5, 3, seed=0)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if untracked:
            compat.untracked_step_state(model)
        original = tracking.Tracker.track

        def counted(tracker, attr):
            calls.append(untracked)
            return original(tracker, attr)

        tracking.Tracker.track = counted
        try:
            model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
                      callbacks=[Watch()] if untracked else [])
        finally:
            tracking.Tracker.track = original
        state_arrays[untracked] = (len(model.trainable_variables)
                                   + len(model.non_trainable_variables)
                                   + len(model.optimizer.variables) + len(model.metrics_variables))
        return [np.asarray(w) for w in model.get_weights()]

    plain, untracked = trained(False), trained(True)
    for a, b in zip(plain, untracked):
        np.testing.assert_array_equal(a, b)  # the same training, bit for bit
    assert seen and all(kind is types.MappingProxyType for kind in seen)
    # The plain model's tracker visited each of the 8 steps' state arrays; the other's did not.
    assert state_arrays[True] == state_arrays[False] > 5
    assert calls.count(False) - calls.count(True) >= 8 * state_arrays[False]
