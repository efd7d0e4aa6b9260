"""Calibration, NLL and logit-norm metrics against independent numpy implementations."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import tc
from tests.support import log_softmax, softmax


def calibration_reference(probabilities, labels, num_bins, weights=None):
    """ECE and MCE by an explicit loop over bins: bin = min(floor(B * conf), B - 1) in float32."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    bins = np.minimum(np.floor(np.float32(num_bins) * confidence).astype(int), num_bins - 1)
    ece, mce, total = 0.0, 0.0, weights.sum()
    for b in range(num_bins):
        members = bins == b
        count = weights[members].sum()
        if count == 0:
            continue
        accuracy = (weights[members] * correct[members]).sum() / count
        mean_confidence = (weights[members] * confidence[members].astype(np.float64)).sum() / count
        ece += count / total * abs(accuracy - mean_confidence)
        mce = max(mce, abs(accuracy - mean_confidence))
    return ece, mce


def random_probabilities(num_examples, num_classes, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((num_examples, num_classes)) * rng.uniform(0.1, 4, (num_examples, 1))
    labels = rng.integers(0, num_classes, num_examples)
    return softmax(logits).astype(np.float32), labels


def result(metric):
    return float(ops.convert_to_numpy(metric.result()))


@pytest.mark.parametrize("num_bins", [1, 10, 15])
def test_ece_and_mce_match_numpy_on_10000_predictions(num_bins):
    probabilities, labels = random_probabilities(10_000, 10, seed=num_bins)
    expected_ece, expected_mce = calibration_reference(probabilities, labels, num_bins)
    ece = tc.metrics.ExpectedCalibrationError(num_bins=num_bins, from_logits=False)
    mce = tc.metrics.MaximumCalibrationError(num_bins=num_bins, from_logits=False)
    for start in range(0, 10_000, 2_500):  # streamed in batches, as in evaluate()
        batch = slice(start, start + 2_500)
        ece.update_state(labels[batch], probabilities[batch])
        mce.update_state(labels[batch], probabilities[batch])
    np.testing.assert_allclose(result(ece), expected_ece, atol=1e-6)
    np.testing.assert_allclose(result(mce), expected_mce, atol=1e-6)
    assert expected_ece > 0.01  # the data are not trivially calibrated


def test_sample_weights_weight_the_bins():
    probabilities, labels = random_probabilities(2_000, 5, seed=1)
    weights = np.random.default_rng(1).uniform(0, 3, 2_000).astype(np.float32)
    expected_ece, expected_mce = calibration_reference(probabilities, labels, 15, weights)
    ece = tc.metrics.ExpectedCalibrationError(from_logits=False)
    mce = tc.metrics.MaximumCalibrationError(from_logits=False)
    ece.update_state(labels, probabilities, sample_weight=weights)
    mce.update_state(labels, probabilities, sample_weight=weights)
    np.testing.assert_allclose(result(ece), expected_ece, atol=1e-6)
    np.testing.assert_allclose(result(mce), expected_mce, atol=1e-6)


def test_confidence_of_exactly_one_and_empty_bins():
    probabilities = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0],
                              [0.5, 0.25, 0.25]], dtype=np.float32)
    labels = np.array([0, 1, 2, 0])
    # Bin 14 holds three confidence-1.0 examples, two right: gap 1/3. Bin 7 holds 0.5, right:
    # gap 0.5. The 13 other bins are empty.
    ece = tc.metrics.ExpectedCalibrationError(from_logits=False)
    mce = tc.metrics.MaximumCalibrationError(from_logits=False)
    ece.update_state(labels, probabilities)
    mce.update_state(labels, probabilities)
    np.testing.assert_allclose(result(ece), (3 / 4) * (1 / 3) + (1 / 4) * 0.5, atol=1e-7)
    np.testing.assert_allclose(result(mce), 0.5, atol=1e-7)


def test_empty_metric_is_zero_and_reset_clears_state():
    ece = tc.metrics.ExpectedCalibrationError()
    assert result(ece) == 0.0
    probabilities, labels = random_probabilities(100, 4, seed=2)
    ece.update_state(labels, np.log(probabilities))
    assert result(ece) > 0.0
    ece.reset_state()
    assert result(ece) == 0.0


def test_logits_are_scored_as_softmax_of_beta_z():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((500, 6)).astype(np.float32)
    labels = rng.integers(0, 6, 500)
    for beta in (None, 0.2, 5.0):
        ece = tc.metrics.ExpectedCalibrationError(beta=beta)
        ece.update_state(labels, logits)
        probabilities = softmax((1.0 if beta is None else beta) * logits.astype(np.float64))
        expected, _ = calibration_reference(probabilities, labels, 15)
        np.testing.assert_allclose(result(ece), expected, atol=1e-6)
        assert ece.scored_probabilities == ("softmax(z)" if beta is None else "softmax(beta*z)")


def test_metric_follows_a_loss_beta():
    loss = tc.losses.TemperatureCrossEntropy(beta=2.0)
    logit_norm = tc.metrics.LogitNorm(beta=loss)
    logits = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    logit_norm.update_state(None, logits)
    np.testing.assert_allclose(result(logit_norm), (2.0 * 5.0 + 0.0) / 2, rtol=1e-6)
    loss.beta.assign(0.5)
    logit_norm.reset_state()
    logit_norm.update_state(None, logits)
    np.testing.assert_allclose(result(logit_norm), 0.5 * 5.0 / 2, rtol=1e-6)
    assert float(ops.convert_to_numpy(loss.beta.value)) == 0.5  # reset never touches beta


def test_nll_matches_numpy_for_logits_and_probabilities():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((300, 7)).astype(np.float32)
    labels = rng.integers(0, 7, 300)
    nll = tc.metrics.NegativeLogLikelihood(beta=0.5)
    nll.update_state(labels, logits)
    expected = -log_softmax(0.5 * logits)[np.arange(300), labels].mean()
    np.testing.assert_allclose(result(nll), expected, rtol=1e-6)
    from_probabilities = tc.metrics.NegativeLogLikelihood(from_logits=False)
    from_probabilities.update_state(labels[:, None], softmax(0.5 * logits).astype(np.float32))
    np.testing.assert_allclose(result(from_probabilities), expected, rtol=1e-5)


def test_categorical_labels_give_the_same_calibration():
    probabilities, labels = random_probabilities(1_000, 5, seed=5)
    sparse = tc.metrics.ExpectedCalibrationError(from_logits=False)
    onehot = tc.metrics.ExpectedCalibrationError(from_logits=False, label_mode="categorical")
    sparse.update_state(labels, probabilities)
    onehot.update_state(np.eye(5, dtype=np.float32)[labels], probabilities)
    assert result(sparse) == pytest.approx(result(onehot), abs=1e-7)


def test_nan_predictions_give_nan_not_a_silent_drop():
    logits = np.array([[np.nan, 1.0], [2.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 0])
    for metric in (tc.metrics.ExpectedCalibrationError(), tc.metrics.NegativeLogLikelihood(),
                   tc.metrics.LogitNorm()):
        metric.update_state(labels, logits)
        assert np.isnan(result(metric)), metric.name


@pytest.mark.parametrize("bins", [0, -3, 2.5, True])
def test_bad_bin_counts_are_rejected(bins):
    with pytest.raises(ValueError, match="num_bins"):
        tc.metrics.ExpectedCalibrationError(num_bins=bins)
    with pytest.raises(ValueError, match="num_bins"):
        tc.metrics.MaximumCalibrationError(num_bins=bins)


def test_bad_metric_arguments_are_rejected():
    with pytest.raises(ValueError, match="beta"):
        tc.metrics.ExpectedCalibrationError(beta=-1.0)
    with pytest.raises(ValueError, match="from_logits"):
        tc.metrics.NegativeLogLikelihood(beta=2.0, from_logits=False)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        tc.metrics.ExpectedCalibrationError().update_state(np.zeros(3), np.zeros((4, 2)))


def test_metrics_in_evaluate_match_direct_updates():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = rng.integers(0, 3, 256)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    metrics = [tc.metrics.ExpectedCalibrationError(beta=0.7), tc.metrics.NegativeLogLikelihood()]
    model.compile(loss=tc.losses.TemperatureCrossEntropy(beta=0.7), metrics=metrics)
    logs = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    logits = ops.convert_to_numpy(model(x)).astype(np.float64)
    expected_ece, _ = calibration_reference(softmax(0.7 * logits), y, 15)
    np.testing.assert_allclose(logs["ece"], expected_ece, atol=1e-6)
    np.testing.assert_allclose(logs["nll"], -log_softmax(logits)[np.arange(256), y].mean(),
                               rtol=1e-5)


def test_labels_outside_the_classes_are_an_error_or_nan():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((32, 4)).astype("float32")
    labels = rng.integers(0, 4, 32)
    labels[3] = -1
    for metric in (tc.metrics.ExpectedCalibrationError(), tc.metrics.MaximumCalibrationError()):
        with pytest.raises(ValueError, match=r"\[0, 3\] for 4 classes; got -1\."):
            metric.update_state(labels, logits)
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 4\); got \[-1, 3\]"):
        tc.calibration.reliability_bins(softmax(logits), labels)
    # Compiled (model.evaluate), where nothing can raise, the metric is NaN.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Identity()])
    model.compile(loss=tc.losses.TemperatureCrossEntropy(),
                  metrics=[tc.metrics.ExpectedCalibrationError()], jit_compile=True)
    logs = model.evaluate(logits, labels, batch_size=32, verbose=0, return_dict=True)
    assert math.isnan(logs["ece"]) and math.isnan(logs["loss"])
    labels[3] = 0
    assert not math.isnan(model.evaluate(logits, labels, batch_size=32, verbose=0,
                                         return_dict=True)["ece"])
