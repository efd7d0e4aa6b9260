"""Calibration, likelihood and logit-norm metrics as stateful Keras metrics.

Every metric says which probabilities it scores (`scored_probabilities`):
- `beta=None` (default): `softmax(z)`, the predictor of gradient-decay CE (paper 2) and of
  plain CE;
- `beta=` a float, a scalar variable or a `tc` loss: `softmax(beta * z)`, the predictor that
  temperature CE trains (paper 1). Given a loss, the metric follows the loss's live `beta`;
- `from_logits=False`: `y_pred` already holds probabilities.

State variables aggregate by sum, so results are the same under `tf.distribute` (any number of
replicas) and `keras.distribution` as on one device. All math is float32 under any
mixed-precision policy.

Calibration (Guo et al. 2017; paper 2 reports ECE and MCE) uses top-label confidence
`conf = max_k p_k` and `B` equal-width bins. Bin rule: an example goes to bin
`min(floor(B * conf), B - 1)`, computed in float32, so `conf = 1.0` lands in the last bin. With
`n_b` examples, accuracy `acc_b` and mean confidence `conf_b` in bin `b`, and `n = sum n_b`:

    ECE = sum_b (n_b / n) |acc_b - conf_b|        MCE = max_{b : n_b > 0} |acc_b - conf_b|

Sample weights weight the counts. NaN predictions make the result NaN, never a silent drop.
"""

import numbers

import keras
from keras import ops

from tc import beta as beta_lib
from tc import losses as losses_lib

__all__ = ["check_num_bins", "ExpectedCalibrationError", "LogitNorm", "MaximumCalibrationError",
           "NegativeLogLikelihood", "ScoredProbabilities"]


class ScoredProbabilities:
    """Turns `y_pred` into the probabilities a metric scores. See the module docstring."""

    def __init__(self, beta=None, from_logits=True):
        if not from_logits and beta is not None:
            raise ValueError(
                "`beta` scales logits; it cannot be used with from_logits=False "
                f"(got beta={beta!r})."
            )
        self.from_logits = bool(from_logits)
        self.beta_variable = None
        self.beta_value = None
        # A loss is kept, so that the config names it: saved and loaded together with the
        # model's compiled loss, the metric follows the loaded loss's beta as it did the saved one.
        self.beta_loss = beta if isinstance(beta, keras.losses.Loss) else None
        if beta is not None:
            self.beta_variable = beta_lib.beta_variable_of(beta)
            if self.beta_variable is None:
                self.beta_value = beta_lib.check_beta(beta)

    @property
    def description(self):
        if not self.from_logits:
            return "given probabilities"
        return "softmax(z)" if self.beta_config is None else "softmax(beta*z)"

    @property
    def beta_config(self):
        if self.beta_variable is not None:
            return beta_lib.variable_value(self.beta_variable)
        return self.beta_value

    def beta(self):
        """The current beta as a tensor (live when it is a variable), or 1.0."""
        if self.beta_variable is not None:
            return self.beta_variable.value
        return 1.0 if self.beta_value is None else self.beta_value

    def scaled_logits(self, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        if self.beta_variable is None and self.beta_value is None:
            return y_pred
        return ops.cast(self.beta(), "float32") * y_pred

    def probabilities(self, y_pred):
        if not self.from_logits:
            return ops.cast(y_pred, "float32")
        return ops.softmax(self.scaled_logits(y_pred), axis=-1)


class _Scored:
    """Mixin for metrics that score `ScoredProbabilities`: the shared options and config."""

    def _init_scoring(self, beta, from_logits, label_mode):
        self.label_mode = losses_lib.check_label_mode(label_mode)
        self._scoring = ScoredProbabilities(beta, from_logits)

    @property
    def scored_probabilities(self):
        """`"softmax(z)"`, `"softmax(beta*z)"` or `"given probabilities"`."""
        return self._scoring.description

    def _beta_config(self):
        """The beta of the config: a number, or the serialized loss the metric follows. Keras
        saves an object met twice in one model once (its shared-object scope), so a loaded
        metric and the loaded model's compiled loss are one loss again."""
        loss = self._scoring.beta_loss
        if loss is None:
            return self._scoring.beta_config
        return keras.saving.serialize_keras_object(loss)

    def get_config(self):
        return {
            "beta": self._beta_config(),
            "from_logits": self._scoring.from_logits,
            "label_mode": self.label_mode,
            "name": self.name,
            "dtype": self.dtype,
        }

    @classmethod
    def from_config(cls, config):
        if isinstance(config.get("beta"), dict):
            config = {**config, "beta": keras.saving.deserialize_keras_object(config["beta"])}
        return cls(**config)


def check_num_bins(num_bins):
    """Returns `num_bins` as an int if it is an integer >= 1 (not a bool); else a ValueError."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, numbers.Integral) or num_bins < 1:
        raise ValueError(f"`num_bins` must be an integer >= 1; got {num_bins!r}.")
    return int(num_bins)


def _flat_labels(y_true, num_classes, label_mode):
    if label_mode == "categorical":
        return ops.argmax(ops.reshape(y_true, (-1, num_classes)), axis=-1)
    return ops.reshape(ops.cast(y_true, "int32"), (-1,))


def _flat_weights(sample_weight, num_examples):
    if sample_weight is None:
        return ops.ones((num_examples,), dtype="float32")
    return ops.reshape(ops.cast(sample_weight, "float32"), (-1,))


class _CalibrationBins(_Scored, keras.metrics.Metric):
    """Per-bin weighted count, confidence sum and correct sum of top-label predictions."""

    def __init__(self, num_bins=15, beta=None, from_logits=True, label_mode="sparse",
                 name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_bins = check_num_bins(num_bins)
        self._init_scoring(beta, from_logits, label_mode)
        shape = (self.num_bins,)
        self.bin_count = self.add_variable(shape, "zeros", "float32", "sum", "bin_count")
        self.bin_confidence = self.add_variable(shape, "zeros", "float32", "sum", "bin_confidence")
        self.bin_correct = self.add_variable(shape, "zeros", "float32", "sum", "bin_correct")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        losses_lib.check_label_shape(y_true.shape, y_pred.shape, self.label_mode)
        num_classes = y_pred.shape[-1]
        probabilities = ops.reshape(self._scoring.probabilities(y_pred), (-1, num_classes))
        confidence = ops.max(probabilities, axis=-1)
        labels = ops.cast(_flat_labels(y_true, num_classes, self.label_mode), "int32")
        if self.label_mode == "sparse":
            losses_lib.check_label_range(labels, num_classes)
        correct = ops.cast(ops.equal(ops.argmax(probabilities, axis=-1), labels), "float32")
        weights = _flat_weights(sample_weight, ops.shape(confidence)[0])
        bin_index = ops.minimum(
            ops.cast(ops.floor(confidence * float(self.num_bins)), "int32"), self.num_bins - 1
        )
        weighted_membership = ops.one_hot(bin_index, self.num_bins, dtype="float32") * weights[
            :, None
        ]
        # Adding 0 * sum(confidence) keeps a NaN prediction visible: its bin index is undefined
        # and one_hot would silently drop it.
        # An out-of-range label in a compiled step (where nothing can raise) is a NaN too.
        nan_witness = 0.0 * ops.sum(confidence)
        if self.label_mode == "sparse":
            nan_witness = nan_witness + ops.sum(ops.where(
                losses_lib.labels_in_range(labels, num_classes), 0.0, float("nan")))
        # Sums of products, not matrix products: exact float32 on every device (a GPU may run
        # a float32 matmul in TF32), and one fused reduction with the count instead of two
        # small matrix-multiply launches per step.
        self.bin_count.assign_add(ops.sum(weighted_membership, axis=0))
        self.bin_confidence.assign_add(
            ops.sum(confidence[:, None] * weighted_membership, axis=0) + nan_witness
        )
        self.bin_correct.assign_add(ops.sum(correct[:, None] * weighted_membership, axis=0))

    def _bin_gaps(self):
        """`|correct_b - confidence_b|` per bin (weighted sums, not means)."""
        return ops.abs(self.bin_correct - self.bin_confidence)

    def reset_state(self):
        for variable in (self.bin_count, self.bin_confidence, self.bin_correct):
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        return {"num_bins": self.num_bins, **super().get_config()}


@keras.saving.register_keras_serializable(package="tc")
class ExpectedCalibrationError(_CalibrationBins):
    """Expected calibration error, `sum_b (n_b / n) |acc_b - conf_b|` over equal-width bins.

    Args:
        num_bins: the number of equal-width confidence bins `B` (default 15).
        beta: None to score `softmax(z)`; a float, variable or `tc` loss to score
            `softmax(beta * z)`.
        from_logits: False when `y_pred` holds probabilities.
        label_mode: `"sparse"` (integer labels) or `"categorical"` (one-hot; argmax is the label).
        name: the metric name (default `"ece"`).

    Example:
        ```python
        loss = tc.losses.TemperatureCrossEntropy(beta=0.3)
        model.compile("sgd", loss, metrics=[tc.metrics.ExpectedCalibrationError(beta=loss)])
        ```
    """

    def __init__(self, num_bins=15, beta=None, from_logits=True, label_mode="sparse",
                 name="ece", dtype=None):
        super().__init__(num_bins, beta, from_logits, label_mode, name, dtype)

    def result(self):
        total = ops.sum(self.bin_count)
        return ops.divide_no_nan(ops.sum(self._bin_gaps()), total)


@keras.saving.register_keras_serializable(package="tc")
class MaximumCalibrationError(_CalibrationBins):
    """Maximum calibration error, `max_b |acc_b - conf_b|` over the non-empty bins.

    Args: as `ExpectedCalibrationError` (default name `"mce"`).
    """

    def __init__(self, num_bins=15, beta=None, from_logits=True, label_mode="sparse",
                 name="mce", dtype=None):
        super().__init__(num_bins, beta, from_logits, label_mode, name, dtype)

    def result(self):
        return ops.max(ops.divide_no_nan(self._bin_gaps(), self.bin_count))


class _ScoredMean(_Scored, keras.metrics.Mean):
    """A weighted mean of a per-example value of the scored logits or probabilities."""

    def __init__(self, beta=None, from_logits=True, label_mode="sparse", name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._init_scoring(beta, from_logits, label_mode)


@keras.saving.register_keras_serializable(package="tc")
class NegativeLogLikelihood(_ScoredMean):
    """Mean negative log-likelihood `-log p_y` of the scored probabilities.

    With `beta` this is exactly the temperature-CE training loss without smoothing; with
    `beta=None` it is the NLL of `softmax(z)`. Args as `ExpectedCalibrationError`
    (default name `"nll"`).
    """

    def __init__(self, beta=None, from_logits=True, label_mode="sparse", name="nll", dtype=None):
        super().__init__(beta, from_logits, label_mode, name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self._scoring.from_logits:
            values = losses_lib.temperature_cross_entropy(
                y_true, ops.cast(y_pred, "float32"), beta=self._scoring.beta(),
                label_mode=self.label_mode,
            )
        else:
            y_true = ops.convert_to_tensor(y_true)
            probabilities = ops.cast(y_pred, "float32")
            losses_lib.check_label_shape(y_true.shape, probabilities.shape, self.label_mode)
            targets = losses_lib.dense_targets(y_true, probabilities, self.label_mode, 0.0)
            values = ops.categorical_crossentropy(targets, probabilities, from_logits=False)
        return super().update_state(values, sample_weight=sample_weight)


@keras.saving.register_keras_serializable(package="tc")
class LogitNorm(_ScoredMean):
    """Mean L2 norm of the logits, `||z||`, or of `beta * z` when `beta` is given.

    Paper 1's `||beta z0||` at initialization and paper 3's logit norm during training.
    `y_true` is ignored. Default name `"logit_norm"`.
    """

    def __init__(self, beta=None, name="logit_norm", dtype=None):
        super().__init__(beta, True, "sparse", name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        logits = self._scoring.scaled_logits(y_pred)
        values = ops.sqrt(ops.sum(ops.square(logits), axis=-1))
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {"beta": self._beta_config(), "name": self.name, "dtype": self.dtype}
