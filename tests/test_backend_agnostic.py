"""The library needs no TensorFlow: it imports and trains under JAX with TensorFlow blocked."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import sys

    class BlockTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError(f"blocked import of {name}")
            return None

    sys.meta_path.insert(0, BlockTensorFlow())

    import keras
    import numpy as np

    import tc

    assert keras.backend.backend() == "jax"
    x = np.random.default_rng(0).standard_normal((64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    loss = tc.losses.GradientDecayCrossEntropy(beta=tc.schedules.LogLinearWarmup(0.5, 2.0, 2))
    model.compile("sgd", loss, metrics=[tc.metrics.ExpectedCalibrationError(),
                                        tc.metrics.LogitNorm()])
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[tc.schedules.BetaScheduler(loss)])
    print("betas", [round(b, 4) for b in history.history["beta"]])
    print("tensorflow loaded:", "tensorflow" in sys.modules)
""")


def test_tc_trains_under_jax_without_tensorflow():
    env = dict(os.environ, KERAS_BACKEND="jax")
    completed = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "betas [0.5, 1.0, 2.0]" in completed.stdout
    assert "tensorflow loaded: False" in completed.stdout
