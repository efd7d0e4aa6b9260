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
