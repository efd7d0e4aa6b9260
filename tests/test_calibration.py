"""tc.calibration: temperature scaling and numpy ECE/MCE against independent references."""

import keras
import numpy as np
import pytest

from tc import calibration, metrics
from tests.support import softmax


def sampled_task(scale, examples=20000, classes=10, seed=0):
    """Labels drawn from softmax(z); a model that reports `scale * z` is miscalibrated by `scale`."""
    rng = np.random.default_rng(seed)
    true_logits = 1.5 * rng.standard_normal((examples, classes))
    cumulative = softmax(true_logits).cumsum(axis=1)
    labels = (rng.random((examples, 1)) > cumulative).sum(axis=1)
    return scale * true_logits, labels


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_fitted_temperature_recovers_the_known_miscalibration(scale):
    logits, labels = sampled_task(scale)
    # The NLL-optimal temperature undoes the scale; sampling noise is well under 3%.
    assert calibration.fit_temperature(logits, labels) == pytest.approx(scale, rel=0.03)


def test_fitted_temperature_is_the_nll_minimum_against_scipy():
    from scipy.optimize import minimize_scalar

    logits, labels = sampled_task(2.0, examples=3000, seed=1)
    reference = minimize_scalar(
        lambda log_t: calibration.negative_log_likelihood(logits, labels, np.exp(log_t)),
        bounds=(-3, 3), method="bounded", options={"xatol": 1e-10}).x
    assert calibration.fit_temperature(logits, labels) == pytest.approx(np.exp(reference),
                                                                        rel=1e-5)


def test_temperature_scaling_lowers_ece_of_an_overconfident_model_and_keeps_accuracy():
    val_logits, val_labels = sampled_task(3.0, seed=2)
    test_logits, test_labels = sampled_task(3.0, seed=3)
    report = calibration.temperature_scaling_report(val_logits, val_labels, test_logits,
                                                    test_labels)
    assert report["temperature"] == pytest.approx(3.0, rel=0.03)
    assert report["ece_before"] > 0.1 and report["ece_after"] < 0.02
    assert report["nll_after"] < report["nll_before"]
    assert report["accuracy"] == np.mean(test_logits.argmax(1) == test_labels)


def test_separable_data_hits_the_lower_temperature_bound():
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    assert calibration.fit_temperature(logits, [0, 1], min_temperature=1e-3) == 1e-3


def loop_ece_mce(probabilities, labels, num_bins):
    """A plain-loop reference of top-label ECE/MCE, bin = min(floor(B conf), B - 1)."""
    gaps, weights = [], []
    for b in range(num_bins):
        members = [i for i, p in enumerate(probabilities)
                   if min(int(np.floor(p.max() * num_bins)), num_bins - 1) == b]
        if members:
            accuracy = np.mean([probabilities[i].argmax() == labels[i] for i in members])
            confidence = np.mean([probabilities[i].max() for i in members])
            gaps.append(abs(accuracy - confidence))
            weights.append(len(members) / len(labels))
    return float(np.dot(gaps, weights)), float(max(gaps))


@pytest.mark.parametrize("num_bins", [1, 10, 15])
def test_numpy_ece_and_mce_match_a_loop_and_the_keras_metric(num_bins):
    logits, labels = sampled_task(2.0, examples=2000, seed=4)
    probabilities = softmax(logits)
    ece, mce = calibration.calibration_errors(probabilities, labels, num_bins)
    reference = loop_ece_mce(probabilities, labels, num_bins)
    assert (ece, mce) == pytest.approx(reference, abs=1e-9)
    metric = metrics.ExpectedCalibrationError(num_bins=num_bins)
    metric.update_state(labels, logits.astype("float32"))
    assert float(keras.ops.convert_to_numpy(metric.result())) == pytest.approx(ece, abs=1e-5)


def test_reliability_bins_report_empty_bins_as_nan():
    probabilities = np.array([[0.95, 0.05], [0.9, 0.1], [0.55, 0.45]])
    bins = calibration.reliability_bins(probabilities, [0, 1, 0], num_bins=10)
    assert bins["count"].tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert np.isnan(bins["accuracy"][0]) and bins["accuracy"][9] == 0.5


@pytest.mark.parametrize("logits, labels, match", [
    (np.zeros((3, 2)), [0, 1], "shape"), (np.zeros((2, 2)), [0, 2], "Labels must be in"),
    (np.array([[np.nan, 0.0]]), [0], "NaN"), (np.zeros((0, 2)), [], "at least one"),
])
def test_bad_input_is_rejected(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        calibration.fit_temperature(logits, labels)
