"""`tc.ood`: OOD scores against closed forms, and AUROC / FPR against scikit-learn."""

import numpy as np
import pytest
from scipy import special
from sklearn import metrics as sk_metrics

from tc import ood

# This module tests code that never calls Keras (numpy, pandas, files): CI runs it in one
# backend's leg only (.ci/run).
pytestmark = pytest.mark.backend_independent


def test_msp_and_energy_are_their_closed_forms():
    logits = np.random.default_rng(0).normal(size=(50, 7)) * 5
    np.testing.assert_allclose(ood.max_softmax_probability(logits),
                               special.softmax(logits, axis=1).max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(ood.energy(logits), special.logsumexp(logits, axis=1), rtol=1e-12)
    huge = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    np.testing.assert_allclose(ood.energy(huge), [1000.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        ood.energy([[np.nan, 1.0]])


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_scikit_learn_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    inside = rng.normal(1.0, 1.0, 300)
    outside = rng.normal(0.0, 1.0, 200)
    if seed % 2:  # ties: round the scores
        inside, outside = np.round(inside), np.round(outside)
    labels = np.r_[np.ones(len(inside)), np.zeros(len(outside))]
    expected = sk_metrics.roc_auc_score(labels, np.r_[inside, outside])
    assert abs(ood.auroc(inside, outside) - expected) < 1e-9


def test_fpr_at_95_tpr_matches_the_roc_curve():
    rng = np.random.default_rng(7)
    inside, outside = rng.normal(2.0, 1.0, 400), rng.normal(0.0, 1.0, 400)
    labels = np.r_[np.ones(400), np.zeros(400)]
    fpr, tpr, _ = sk_metrics.roc_curve(labels, np.r_[inside, outside])
    expected = fpr[np.searchsorted(tpr, 0.95, side="left")]
    assert ood.fpr_at_tpr(inside, outside, 0.95) == pytest.approx(expected, abs=1e-12)
    assert ood.fpr_at_tpr(inside, inside + 100, 0.95) == 1.0
    assert ood.fpr_at_tpr(inside, inside - 100, 0.95) == 0.0


def test_the_principal_subspace_score_separates_features_off_the_subspace():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(16, 3)))[0]  # a 3-D subspace of R^16
    inside = rng.normal(size=(500, 3)) @ basis.T * 5 + rng.normal(size=(500, 16)) * 0.1
    outside = rng.normal(size=(200, 16)) * 2
    score = ood.PrincipalSubspaceScore(inside, dimension=3)
    share_inside, share_outside = score(inside), score(outside)
    assert np.all((share_inside >= 0) & (share_inside <= 1 + 1e-12))
    assert share_inside.mean() > 0.99 and share_outside.mean() < 0.6
    assert ood.auroc(share_inside, share_outside) > 0.99
    # a vector in the fitted subspace scores 1, one orthogonal to it scores 0
    vector = rng.normal(size=16)
    orthogonal = vector - score.basis.T @ (score.basis @ vector)
    assert score((score.mean + score.basis[0])[None])[0] == pytest.approx(1.0)
    assert score((score.mean + orthogonal)[None])[0] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="dimension must be in"):
        ood.PrincipalSubspaceScore(inside, dimension=16)
