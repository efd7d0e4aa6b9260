"""Numerical and effective rank on matrices of known rank and spectrum."""

import numpy as np
import pytest
from keras import ops

import tc


def centered_orthonormal_columns(num_rows, num_columns, seed):
    """Orthonormal columns that are also orthogonal to the all-ones vector (already centered)."""
    random = np.random.default_rng(seed).standard_normal((num_rows, num_columns))
    random -= random.mean(axis=0, keepdims=True)
    q, _ = np.linalg.qr(random)
    return q


def with_spectrum(singular_values, num_rows=200, num_columns=40, seed=0):
    k = len(singular_values)
    left = centered_orthonormal_columns(num_rows, k, seed)
    right, _ = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal((num_columns, k)))
    return left @ np.diag(singular_values) @ right.T


@pytest.mark.parametrize("rank", [1, 3, 9])
def test_numerical_rank_of_a_low_rank_product(rank):
    rng = np.random.default_rng(rank)
    features = rng.standard_normal((300, rank)) @ rng.standard_normal((rank, 64))
    assert tc.representation.numerical_rank(features) == rank


def test_centering_removes_a_constant_offset():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((100, 4)) @ rng.standard_normal((4, 30)) + 5.0
    assert tc.representation.numerical_rank(features) == 4
    assert tc.representation.numerical_rank(features, center=False) == 5


def test_numerical_rank_threshold_is_relative_to_sigma_max():
    features = with_spectrum([10.0, 1.0, 0.02, 0.005])  # cuts: 0.01 at rtol=1e-3, 0.1 at 1e-2
    assert tc.representation.numerical_rank(features, rtol=1e-3) == 3
    assert tc.representation.numerical_rank(features, rtol=1e-2) == 2
    assert tc.representation.numerical_rank(features, rtol=0.5) == 1


def test_effective_rank_of_a_known_spectrum():
    spectrum = np.array([4.0, 2.0, 1.0, 1.0])
    q = spectrum / spectrum.sum()
    expected = np.exp(-np.sum(q * np.log(q)))
    assert tc.representation.effective_rank(with_spectrum(spectrum)) == pytest.approx(expected,
                                                                                      rel=1e-9)
    assert tc.representation.effective_rank(with_spectrum([3.0] * 6)) == pytest.approx(6.0,
                                                                                       rel=1e-9)


def test_constant_features_have_rank_zero():
    constant = np.full((50, 8), 3.0)
    assert tc.representation.numerical_rank(constant) == 0
    assert tc.representation.effective_rank(constant) == 0.0


def test_tensors_and_higher_rank_activations_are_flattened():
    rng = np.random.default_rng(5)
    features = (rng.standard_normal((64, 2)) @ rng.standard_normal((2, 4 * 4 * 3))).reshape(
        64, 4, 4, 3)
    assert tc.representation.numerical_rank(ops.convert_to_tensor(features.astype("float32"))) == 2


def test_bad_features_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        tc.representation.numerical_rank(np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        tc.representation.effective_rank(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="rtol"):
        tc.representation.numerical_rank(np.eye(3), rtol=0.0)


def _trained_mlp(epochs=2):
    import keras

    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 12)).astype("float32")
    y = (x[:, :3].argmax(axis=1)).astype("int32")
    inputs = keras.Input((12,))
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
    features = keras.layers.Dense(8, activation="relu", name="features")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(features))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, x, y


def test_rank_tracker_matches_numerical_rank_on_the_same_activations():
    model, x, y = _trained_mlp()
    tracker = tc.representation.RankTracker(["hidden", "features"], x[:128], batch_size=64)
    history = model.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[tracker])
    assert [row["epoch"] for row in tracker.history] == [1, 2]
    activations = tc.representation.layer_activations(model, ["hidden", "features"], x[:128])
    assert activations["hidden"].shape == (128, 32) and activations["features"].shape == (128, 8)
    # The last epoch's numbers equal the functions run directly on the final activations.
    for name in ("hidden", "features"):
        expected_numerical = tc.representation.numerical_rank(activations[name])
        expected_effective = tc.representation.effective_rank(activations[name])
        assert tracker.history[-1][f"rank/{name}/numerical"] == expected_numerical
        assert tracker.history[-1][f"rank/{name}/effective"] == pytest.approx(expected_effective,
                                                                             rel=1e-6)
        assert history.history[f"rank/{name}/numerical"][-1] == expected_numerical


def test_rank_tracker_names_a_missing_layer():
    model, x, y = _trained_mlp()
    tracker = tc.representation.RankTracker(["nope"], x[:16])
    with pytest.raises(ValueError, match="No layer.*'nope'.*its layers: .*features"):
        tracker.set_model(model)


def test_linear_probe_separates_a_linear_task_and_not_a_random_one():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((1200, 10))
    linear_labels = (features @ rng.standard_normal((10, 4))).argmax(axis=1)
    random_labels = rng.integers(0, 4, 1200)
    good = tc.representation.linear_probe_accuracy(features[:1000], linear_labels[:1000],
                                                   features[1000:], linear_labels[1000:])
    chance = tc.representation.linear_probe_accuracy(features[:1000], random_labels[:1000],
                                                     features[1000:], random_labels[1000:])
    assert good > 0.9 and chance < 0.4


def test_linear_probe_needs_two_classes():
    features = np.random.default_rng(0).standard_normal((8, 3))
    with pytest.raises(ValueError, match="at least 2 classes among its 8 training examples"):
        tc.representation.linear_probe_accuracy(features, np.zeros(8), features, np.zeros(8))


def test_batched_extractor_outputs_equal_predict_and_leave_the_weights_alone():
    model, x, _ = _trained_mlp()
    extractor = tc.representation.activation_model(model, ["hidden", "features"])
    weights = [np.array(w) for w in model.get_weights()]
    # 100 examples in batches of 32: three full batches and a partial one.
    outputs = tc.representation.extractor_outputs(extractor, x[:100], batch_size=32)
    expected = extractor.predict(x[:100], batch_size=100, verbose=0)
    assert len(outputs) == 2
    for output, want in zip(outputs, expected):
        np.testing.assert_allclose(np.asarray(output), want, rtol=1e-5, atol=1e-6)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_background_ranks_equal_rank_row_and_keep_blas_on_one_thread(monkeypatch):
    import threadpoolctl

    features = {"a": with_spectrum([5.0, 2.0, 1e-5]), "b": with_spectrum([1.0] * 7, seed=3)}
    expected = tc.representation.rank_row(features)
    threads = []
    rank_row = tc.representation.rank_row

    def spying_rank_row(activations, rtol=1e-3):
        threads.extend(pool["num_threads"] for pool in threadpoolctl.threadpool_info()
                       if pool["user_api"] == "blas")
        return rank_row(activations, rtol)

    monkeypatch.setattr(tc.representation, "rank_row", spying_rank_row)
    assert tc.representation.background_rank_row(features) == expected
    assert expected["rank/a/numerical"] == 2 and expected["rank/b/numerical"] == 7
    assert threads and set(threads) == {1}
