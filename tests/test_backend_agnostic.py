"""The library needs no TensorFlow: it imports and trains under JAX with TensorFlow blocked."""

import pytest

from tests.support import run_python

SCRIPT = """
    import sys

    import keras
    import numpy as np

    import tc

    assert keras.backend.backend() == "jax"
    x = np.random.default_rng(0).standard_normal((64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = tc.models.build("mlp", (4,), 2, depth=1, width=8)
    loss = tc.losses.GradientDecayCrossEntropy(beta=tc.schedules.LogLinearWarmup(0.5, 2.0, 2))
    model.compile("sgd", loss, metrics=[tc.metrics.ExpectedCalibrationError(),
                                        tc.metrics.LogitNorm()])
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[tc.schedules.BetaScheduler(loss)])
    print("betas", [round(b, 4) for b in history.history["beta"]])
    print("tensorflow loaded:", "tensorflow" in sys.modules)
"""


@pytest.mark.backend_independent  # its subprocess runs under JAX whatever the leg
def test_tc_trains_under_jax_without_tensorflow():
    completed = run_python(SCRIPT, backend="jax", block_tensorflow=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "betas [0.5, 1.0, 2.0]" in completed.stdout
    assert "tensorflow loaded: False" in completed.stdout
