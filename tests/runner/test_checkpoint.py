"""`tc.runner.checkpoint`: snapshots that keep their instant, and exact restores."""

import keras
import numpy as np
import pytest

from tc import run_files
from tc.runner import checkpoint, run_dir
from tests.support import dense_model


def test_a_snapshot_keeps_its_instant_through_later_steps_and_flags_non_finite_weights():
    model = dense_model(4, 3)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.arange(32) % 3
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    expected = [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]
    snapshot = checkpoint.snapshot(model)
    # Training on replaces (and on JAX, donates) the variables' buffers; the copies stay.
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    arrays = snapshot.arrays()
    assert snapshot.finite
    for index, value in enumerate(expected):
        np.testing.assert_array_equal(arrays[f"model_{index:04d}"], value)
    assert not np.array_equal(arrays["model_0000"], keras.ops.convert_to_numpy(model.weights[0]))
    poisoned = np.array(expected[0])
    poisoned[0, 0] = np.nan
    model.weights[0].assign(poisoned)
    assert not checkpoint.snapshot(model).finite
    model.weights[0].assign(np.full_like(poisoned, np.inf))
    assert not checkpoint.snapshot(model).finite


def test_a_checkpoint_restores_weights_and_optimizer_state_exactly(tmp_path):
    model = dense_model(4, 3)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.arange(32) % 3
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    snapshot = checkpoint.snapshot(model)
    assert snapshot.finite
    arrays = snapshot.arrays()
    directory = run_dir.RunDirectory(str(tmp_path / "run"))
    directory.prepare("--flags\n")
    directory.commit_epoch(snapshot, [{"epoch": 1}], 1)
    directory.wait()
    state = directory.resume_state()
    assert (state["completed_epochs"], state["checkpoint"]) == (1, "ckpt-00001.npz")
    assert state["checkpoint_sha256"] == run_files.file_sha256(directory.checkpoint_path(state))

    fresh = dense_model(4, 3, seed=1)
    fresh.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    fresh.optimizer.build(fresh.trainable_variables)
    checkpoint.restore(fresh, directory.checkpoint_path(state))
    restored = checkpoint.snapshot(fresh).arrays()
    assert sorted(restored) == sorted(arrays) and any(k.startswith("optimizer") for k in arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(restored[key], value, err_msg=key)
    # The next steps of the restored model are those of the original.
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    fresh.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="arrays"):
        checkpoint.restore(dense_model(4, 3, hidden=8), directory.checkpoint_path(state))
