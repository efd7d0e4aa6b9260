"""Rank of learned representations (Masarczyk et al., "Unpacking softmax", arXiv 2506.01562).

Paper 3's rank deficit bias: softmax-CE training finds representations of rank far below
`C - 1`, and the rank falls as the temperature `T = 1 / beta` rises. Both measures work on a
feature matrix `F` of shape `(N, D)` (more axes are flattened into `D`), centered over the `N`
examples by default, with singular values `sigma_1 >= sigma_2 >= ...`:

    numerical rank  = #{i : sigma_i > rtol * sigma_1}
    effective rank  = exp(-sum_i q_i log q_i),  q_i = sigma_i / sum_j sigma_j

(Roy & Vetterli, 2007). The SVD runs in float64 numpy: these are analysis measures, computed
outside the train step, and identical on every backend.
"""

import numpy as np
from keras import ops


def _feature_matrix(features, center):
    matrix = np.asarray(ops.convert_to_numpy(features), dtype=np.float64)
    if matrix.ndim < 2:
        raise ValueError(
            f"Features must have shape (N, D) or (N, ...); got shape {matrix.shape}."
        )
    matrix = matrix.reshape(matrix.shape[0], -1)
    if not np.all(np.isfinite(matrix)):
        raise ValueError("Features contain NaN or infinite values; their rank is undefined.")
    if center:
        matrix = matrix - matrix.mean(axis=0, keepdims=True)
    return matrix


def singular_values(features, center=True):
    """The singular values of the (centered) `(N, D)` feature matrix, largest first."""
    return np.linalg.svd(_feature_matrix(features, center), compute_uv=False)


def numerical_rank(features, rtol=1e-3, center=True):
    """The number of singular values above `rtol * sigma_max` (0 for a constant matrix).

    Args:
        features: `(N, D)` or `(N, ...)` array or tensor of activations over N examples.
        rtol: the relative threshold `gamma` (paper 3 uses about 1e-3).
        center: subtract the mean over examples first.
    """
    if not 0.0 < rtol < 1.0:
        raise ValueError(f"`rtol` must be in (0, 1); got {rtol!r}.")
    sigma = singular_values(features, center)
    if sigma.size == 0 or sigma[0] == 0.0:
        return 0
    return int(np.sum(sigma > rtol * sigma[0]))


def effective_rank(features, center=True):
    """`exp` of the entropy of the normalized singular values (0.0 for a constant matrix).

    It equals `r` when the matrix has `r` equal nonzero singular values, and lies between 1
    and the numerical rank otherwise.
    """
    sigma = singular_values(features, center)
    total = sigma.sum()
    if total == 0.0:
        return 0.0
    q = sigma[sigma > 0] / total
    return float(np.exp(-np.sum(q * np.log(q))))
