"""Calibration analysis of stored logits: reliability bins, ECE/MCE, and temperature scaling.

Post-hoc temperature scaling (Guo et al., 2017) is paper 2's calibration baseline (Zhang & Xie,
arXiv 2210.17145) and backs paper 1's point that beta acts on training, not only on confidence
(Agarwala et al., arXiv 2010.07344). One scalar `T > 0` is fit on validation logits `z` by
minimising the negative log-likelihood of `softmax(z / T)`:

    T* = argmin_T  mean_n [ logsumexp(z_n / T) - z_{n, y_n} / T ]

With `a = 1 / T` the objective is convex (its second derivative is the variance of `z` under
`softmax(a z)`), and its derivative `mean_n (E_{softmax(a z_n)}[z_n] - z_{n, y_n})` increases
with `a`. So `fit_temperature` finds the root of the derivative by bisection on `log a`:
deterministic, no step size, exact to float64.

ECE and MCE use top-label confidence and `B` equal-width bins; an example goes to bin
`min(floor(B * conf), B - 1)`, so confidence 1.0 lands in the last bin:

    ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)|,    MCE = max_{b non-empty} |acc - conf|

the same definition as `tc.metrics.ExpectedCalibrationError`, here on numpy arrays for analysis.
"""

import numpy as np

__all__ = ["calibration_errors", "fit_temperature", "negative_log_likelihood", "reliability_bins",
           "softmax", "temperature_scaling_report"]


def softmax(logits, temperature=1.0):
    """Row-wise `softmax(logits / temperature)` in float64."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    exponentials = np.exp(scaled)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def _check(logits, labels):
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"Expected logits of shape (N, C) and N labels; got logits "
                         f"{logits.shape} and labels {labels.shape}.")
    if logits.shape[0] == 0:
        raise ValueError("Calibration needs at least one example; got none.")
    if not np.all(np.isfinite(logits)):
        raise ValueError("Logits contain NaN or infinite values.")
    _check_label_range(labels, logits.shape[1])
    return logits, labels


def _check_label_range(labels, num_classes):
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"Labels must be in [0, {num_classes}); got "
                         f"[{labels.min()}, {labels.max()}].")


def negative_log_likelihood(logits, labels, temperature=1.0):
    """`mean_n -log softmax(z_n / T)[y_n]`, in float64."""
    logits, labels = _check(logits, labels)
    scaled = logits / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_normalizer = np.log(np.exp(scaled - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_normalizer - scaled[np.arange(len(labels)), labels]))


def fit_temperature(logits, labels, min_temperature=1e-3, max_temperature=1e3, tolerance=1e-10):
    """The temperature `T` that minimises the NLL of `softmax(logits / T)` (see module doc).

    Returns a float in `[min_temperature, max_temperature]`; it is a bound when the optimum
    lies beyond it (e.g. separable data, whose NLL keeps falling as `T -> 0`).
    """
    logits, labels = _check(logits, labels)
    if not 0 < min_temperature < max_temperature:
        raise ValueError(f"Need 0 < min_temperature < max_temperature; got {min_temperature!r}, "
                         f"{max_temperature!r}.")
    target = logits[np.arange(len(labels)), labels]

    def slope(log_inverse):  # d NLL / d a at a = exp(log_inverse)
        probabilities = softmax(logits * np.exp(log_inverse))
        return float(np.mean((probabilities * logits).sum(axis=1) - target))

    low, high = -np.log(max_temperature), -np.log(min_temperature)
    if slope(low) >= 0:
        return float(max_temperature)
    if slope(high) <= 0:
        return float(min_temperature)
    while high - low > tolerance:
        middle = 0.5 * (low + high)
        if slope(middle) > 0:
            high = middle
        else:
            low = middle
    return float(np.exp(-0.5 * (low + high)))


def reliability_bins(probabilities, labels, num_bins=15):
    """Per-bin `count`, mean `confidence` and `accuracy` (NaN for empty bins), and the `edges`."""
    if int(num_bins) != num_bins or num_bins < 1:
        raise ValueError(f"num_bins must be an integer >= 1; got {num_bins!r}.")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    _check_label_range(labels, probabilities.shape[-1])
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    index = np.minimum(np.floor(confidence * num_bins).astype(np.int64), num_bins - 1)
    count = np.bincount(index, minlength=num_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, num_bins) / count
        accuracy = np.bincount(index, correct, num_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_confidence, "accuracy": accuracy}


def calibration_errors(probabilities, labels, num_bins=15):
    """`(ECE, MCE)` of top-label confidence over equal-width bins (see module doc)."""
    bins = reliability_bins(probabilities, labels, num_bins)
    filled = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    weights = bins["count"][filled] / bins["count"].sum()
    return float(np.sum(weights * gaps)), float(gaps.max())


def temperature_scaling_report(val_logits, val_labels, test_logits, test_labels, num_bins=15):
    """Fits `T` on validation logits; test NLL, ECE and MCE before and after, and accuracy.

    Accuracy is unchanged by any `T > 0` (argmax is scale invariant); it is reported so a table
    shows it.
    """
    temperature = fit_temperature(val_logits, val_labels)
    report = {"temperature": temperature,
              "accuracy": float(np.mean(np.argmax(test_logits, axis=1) == test_labels))}
    for name, value in (("before", 1.0), ("after", temperature)):
        ece, mce = calibration_errors(softmax(test_logits, value), test_labels, num_bins)
        report[f"nll_{name}"] = negative_log_likelihood(test_logits, test_labels, value)
        report[f"ece_{name}"], report[f"mce_{name}"] = ece, mce
    return report
