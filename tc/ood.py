"""Out-of-distribution detection scores and their evaluation (paper 3: Masarczyk et al.,
"Unpacking softmax", arXiv 2506.01562, whose reviews report that OOD detection improves at high
temperature, "e.g., with NECO").

Every score is larger for inputs that look in-distribution:

    maximum softmax probability   MSP(z)    = max_c softmax(z)_c
    energy                        E(z)      = logsumexp_c z_c        (the negative free energy)
    principal-subspace share      PS(h)     = ||P (h - mu)|| / ||h - mu||

where `P` projects onto the top `dimension` principal directions of the in-distribution
features `h` (centered at their mean `mu`): a feature-space score in the spirit of NECO, which
scores the share of a feature vector's norm in the principal subspace of the in-distribution
features (neural collapse puts in-distribution features there).

`auroc(in_scores, out_scores)` is the area under the ROC curve for telling in- from
out-of-distribution inputs, ties counted half (the Mann-Whitney statistic), and
`fpr_at_tpr(in_scores, out_scores, 0.95)` the share of OOD inputs accepted when 95% of the
in-distribution inputs are. All numpy, float64: analysis measures, identical on every backend.
"""

import numpy as np

__all__ = ["auroc", "energy", "fpr_at_tpr", "max_softmax_probability", "PrincipalSubspaceScore"]


def _logits(logits):
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"Logits must have shape (N, C); got shape {logits.shape}.")
    if not np.all(np.isfinite(logits)):
        raise ValueError("Logits contain NaN or infinite values.")
    return logits


def max_softmax_probability(logits):
    """`max_c softmax(z)_c` of each row of `(N, C)` logits."""
    logits = _logits(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return 1.0 / np.exp(shifted).sum(axis=1)


def energy(logits):
    """`logsumexp_c z_c` of each row of `(N, C)` logits (the negative free energy)."""
    logits = _logits(logits)
    top = logits.max(axis=1)
    return top + np.log(np.exp(logits - top[:, None]).sum(axis=1))


class PrincipalSubspaceScore:
    """The share of a feature vector's (centered) norm in the principal subspace of the
    in-distribution features.

    Args:
        features: `(N, D)` in-distribution features (e.g. the `features` layer on training data).
        dimension: how many principal directions span the subspace (`< D`).
    """

    def __init__(self, features, dimension):
        features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        if not 0 < dimension < features.shape[1]:
            raise ValueError(f"dimension must be in [1, {features.shape[1] - 1}] for "
                             f"{features.shape[1]}-dimensional features; got {dimension}.")
        self.mean = features.mean(axis=0)
        _, _, directions = np.linalg.svd(features - self.mean, full_matrices=False)
        self.basis = directions[:dimension]  # (dimension, D), orthonormal rows

    def __call__(self, features):
        centered = np.asarray(features, np.float64).reshape(len(features), -1) - self.mean
        norms = np.linalg.norm(centered, axis=1)
        projected = np.linalg.norm(centered @ self.basis.T, axis=1)
        return np.divide(projected, norms, out=np.ones_like(norms), where=norms > 0)


def _scores(in_scores, out_scores):
    in_scores = np.asarray(in_scores, np.float64).ravel()
    out_scores = np.asarray(out_scores, np.float64).ravel()
    if not len(in_scores) or not len(out_scores):
        raise ValueError("Both the in-distribution and the OOD scores need at least one value.")
    if not (np.all(np.isfinite(in_scores)) and np.all(np.isfinite(out_scores))):
        raise ValueError("Scores contain NaN or infinite values.")
    return in_scores, out_scores


def auroc(in_scores, out_scores):
    """P(score of an in-distribution input > score of an OOD input), ties counted half."""
    in_scores, out_scores = _scores(in_scores, out_scores)
    combined = np.concatenate([in_scores, out_scores])
    order = np.argsort(combined, kind="mergesort")
    ranks = np.empty(len(combined))
    sorted_values = combined[order]
    # average ranks of ties (1-based), as the Mann-Whitney U statistic needs
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(combined)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    in_rank_sum = ranks[:len(in_scores)].sum()
    u = in_rank_sum - len(in_scores) * (len(in_scores) + 1) / 2.0
    return float(u / (len(in_scores) * len(out_scores)))


def fpr_at_tpr(in_scores, out_scores, tpr=0.95):
    """The share of OOD inputs whose score reaches the threshold that accepts `tpr` of the
    in-distribution inputs (the largest threshold that does)."""
    in_scores, out_scores = _scores(in_scores, out_scores)
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1]; got {tpr}.")
    ranked = np.sort(in_scores)[::-1]
    threshold = ranked[int(np.ceil(tpr * len(ranked))) - 1]
    return float(np.mean(out_scores >= threshold))
