"""Softmax cross-entropies with a `beta`: temperature CE (papers 1, 3) and gradient-decay CE (paper 2).

Each loss is a pure function over `keras.ops` plus a thin `keras.losses.Loss` class that holds its
configuration, in the style of `keras.losses`. The math always runs in float32 (float64 if the
inputs are float64), whatever the model's mixed-precision policy.

Temperature cross-entropy (Agarwala et al., "Temperature check", arXiv 2010.07344; Masarczyk et
al., "Unpacking softmax", arXiv 2506.01562, with `T = 1 / beta`):

    L(z, y) = CE(softmax(beta * z), y) = -log softmax(beta * z)_y

Its gradient is `dL/dz = beta * (softmax(beta * z) - onehot(y))`, so `beta` scales both the
logits the softmax sees and the step the readout takes.

Gradient-decay cross-entropy (Zhang & Xie, arXiv 2210.17145):

    J(z, c) = -log( e^{z_c} / (sum_{i != c} e^{z_i} + beta * e^{z_c}) )
            =  log( beta + sum_{i != c} e^{z_i - z_c} )
            =  CE(z + log(beta) * onehot(c), c) + log(beta)

It is plain CE at `beta = 1`. With `p = softmax(z)_c`, the target-logit gradient has magnitude
`(1 - p) / (1 + (beta - 1) p)`: concave in `p` for `beta < 1` (large margin), convex for
`beta > 1` (strong decay, better calibration). The last form, an additive margin `-log(beta)` on
the target logit, is what is computed for hard labels: it never exponentiates a large positive
number. For soft or smoothed targets `t` the loss is the expectation over classes,
`sum_c t_c J(z, c) = CE(z, t) + sum_c t_c log(1 + (beta - 1) softmax(z)_c)`.
"""

import numbers

import keras
import numpy as np
from keras import ops

from tc import beta as beta_lib
from tc import compat
from tc import schedules

__all__ = ["BetaLoss", "beta_config", "beta_state", "check_label_mode", "check_label_range",
           "check_label_shape", "check_label_smoothing", "dense_targets", "describe", "get",
           "gradient_decay_cross_entropy", "GradientDecayCrossEntropy", "LABEL_MODES",
           "labels_in_range", "names", "register", "sparse_cross_entropy",
           "temperature_cross_entropy", "TemperatureCrossEntropy"]

LABEL_MODES = ("sparse", "categorical")


def _compute_dtype(x):
    """float32, or float64 when the input already is: never a half-precision type."""
    return "float64" if str(getattr(x, "dtype", "")) == "float64" else "float32"


def check_label_mode(label_mode):
    """Returns `label_mode` if it is one of `LABEL_MODES` ("sparse", "categorical"); else a
    ValueError naming the value and the valid ones."""
    if label_mode not in LABEL_MODES:
        raise ValueError(f"`label_mode` must be one of {LABEL_MODES}; got {label_mode!r}.")
    return label_mode


def check_label_smoothing(label_smoothing):
    """Returns `label_smoothing` as a float if it is a real number in [0, 1); else a ValueError."""
    if (
        isinstance(label_smoothing, bool)
        or not isinstance(label_smoothing, numbers.Real)
        or not 0.0 <= float(label_smoothing) < 1.0
    ):
        raise ValueError(f"`label_smoothing` must be in [0, 1); got {label_smoothing!r}.")
    return float(label_smoothing)


def _shapes_compatible(a, b):
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def check_label_shape(labels_shape, logits_shape, label_mode):
    """Raises ValueError when labels of `labels_shape` cannot go with logits of `logits_shape`.

    Sparse labels are `(N,)` or `(N, 1)` for logits `(N, C)` (more leading axes are allowed);
    categorical labels have the logits' shape.
    """
    labels_shape, logits_shape = tuple(labels_shape), tuple(logits_shape)
    if label_mode == "sparse":
        ok = _shapes_compatible(labels_shape, logits_shape[:-1]) or (
            _shapes_compatible(labels_shape[:-1], logits_shape[:-1])
            and len(labels_shape) > 0
            and labels_shape[-1] in (1, None)
        )
        expected = f"{logits_shape[:-1]} or {logits_shape[:-1] + (1,)}"
    else:
        ok = _shapes_compatible(labels_shape, logits_shape)
        expected = f"{logits_shape}"
    if not ok:
        raise ValueError(
            f"Labels of shape {labels_shape} cannot match logits of shape {logits_shape} with "
            f"label_mode={label_mode!r}: expected labels of shape {expected}."
        )


def _sparse_labels(y_true, logits):
    labels = ops.cast(y_true, "int32")
    if len(labels.shape) == len(logits.shape):
        labels = ops.squeeze(labels, axis=-1)
    check_label_range(labels, logits.shape[-1])
    return labels


def check_label_range(labels, num_classes):
    """Raises ValueError when integer `labels` that hold values now (eager) fall outside
    `[0, num_classes - 1]`. Inside a compiled function, where nothing can raise, the losses and
    calibration metrics give NaN for such a label instead (`labels_in_range`), never the loss of
    another class."""
    values = compat.concrete_values(labels)
    if values is None or values.size == 0 or num_classes is None:
        return
    bad = np.unique(values[(values < 0) | (values >= num_classes)])
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise ValueError(f"Labels must be class ids in [0, {num_classes - 1}] for "
                         f"{num_classes} classes; got {shown}.")


def labels_in_range(labels, num_classes):
    """`(N,)` booleans: which integer labels are class ids in `[0, num_classes - 1]`."""
    return ops.logical_and(ops.greater_equal(labels, 0), ops.less(labels, num_classes))


def _gatherable(labels, logits):
    """Labels clipped into range for the gather (whose out-of-range behaviour differs between
    backends and devices); `_nan_unless_in_range` then marks those examples."""
    return ops.clip(labels, 0, logits.shape[-1] - 1)


def _nan_unless_in_range(losses, labels, num_classes):
    return ops.where(labels_in_range(labels, num_classes), losses,
                     ops.cast(float("nan"), losses.dtype))


def _nan_unless_in_sparse_range(losses, y_true, logits, label_mode):
    """Smoothed sparse labels go through one-hot targets, where an out-of-range id would give a
    zero row: NaN instead, as for hard labels."""
    if label_mode != "sparse":
        return losses
    return _nan_unless_in_range(losses, _sparse_labels(y_true, logits), logits.shape[-1])


def sparse_cross_entropy(labels, logits):
    """Per-example `logsumexp(z) - z_y` for integer `labels`.

    The same value as `ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)`,
    written so that XLA fuses the scaling in front of it: forward+backward runs faster than
    Keras's own op on CPU (see `python -m tc.bench`), where the log-softmax form was up to 1.5x
    slower once `beta * z` was put in front of it.
    """
    picked = ops.take_along_axis(logits, ops.expand_dims(labels, -1), axis=-1)
    return ops.logsumexp(logits, axis=-1) - ops.squeeze(picked, axis=-1)


def dense_targets(y_true, logits, label_mode, label_smoothing):
    """One-hot (sparse mode) or given (categorical mode) targets, smoothed as Keras does."""
    num_classes = logits.shape[-1]
    if label_mode == "sparse":
        targets = ops.one_hot(_sparse_labels(y_true, logits), num_classes, dtype=logits.dtype)
    else:
        targets = ops.cast(y_true, logits.dtype)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    return targets


def _prepare(y_true, logits, beta, label_mode, label_smoothing):
    check_label_mode(label_mode)
    label_smoothing = check_label_smoothing(label_smoothing)
    if isinstance(beta, numbers.Real):
        beta_lib.check_beta(beta)
    logits = ops.convert_to_tensor(logits)
    logits = ops.cast(logits, _compute_dtype(logits))
    y_true = ops.convert_to_tensor(y_true)
    check_label_shape(y_true.shape, logits.shape, label_mode)
    beta = ops.cast(beta, logits.dtype)
    hard_labels = label_mode == "sparse" and not label_smoothing
    return y_true, logits, beta, label_smoothing, hard_labels


def temperature_cross_entropy(
    y_true, logits, beta=1.0, label_mode="sparse", label_smoothing=0.0
):
    """Per-example `CE(softmax(beta * logits), y_true)` (papers 1 and 3).

    Args:
        y_true: integer class ids `(N,)` / `(N, 1)` (`label_mode="sparse"`), or one-hot / soft
            targets `(N, C)` (`label_mode="categorical"`).
        logits: `(N, C)` raw model outputs `z`.
        beta: the inverse temperature, a positive float or a scalar tensor.
        label_mode: `"sparse"` or `"categorical"`.
        label_smoothing: in [0, 1); targets become `t * (1 - eps) + eps / C`.

    Returns:
        `(N,)` losses in float32.
    """
    y_true, logits, beta, label_smoothing, hard_labels = _prepare(
        y_true, logits, beta, label_mode, label_smoothing
    )
    scaled_logits = beta * logits
    if hard_labels:
        labels = _sparse_labels(y_true, logits)
        return _nan_unless_in_range(sparse_cross_entropy(_gatherable(labels, logits),
                                                         scaled_logits),
                                    labels, logits.shape[-1])
    targets = dense_targets(y_true, logits, label_mode, label_smoothing)
    losses = ops.categorical_crossentropy(targets, scaled_logits, from_logits=True)
    return _nan_unless_in_sparse_range(losses, y_true, logits, label_mode)


def gradient_decay_cross_entropy(
    y_true, logits, beta=1.0, label_mode="sparse", label_smoothing=0.0
):
    """Per-example `log(beta + sum_{i != c} exp(z_i - z_c))` (paper 2).

    Args: as `temperature_cross_entropy`, with `beta` the gradient-decay factor (`beta = 1` is
    plain CE).

    Returns:
        `(N,)` losses in float32. Negative values are normal for `beta < 1`.
    """
    y_true, logits, beta, label_smoothing, hard_labels = _prepare(
        y_true, logits, beta, label_mode, label_smoothing
    )
    log_beta = ops.log(beta)
    if hard_labels:
        labels = _sparse_labels(y_true, logits)
        margin = log_beta * ops.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
        losses = sparse_cross_entropy(_gatherable(labels, logits), logits + margin) + log_beta
        return _nan_unless_in_range(losses, labels, logits.shape[-1])
    targets = dense_targets(y_true, logits, label_mode, label_smoothing)
    cross_entropy = ops.categorical_crossentropy(targets, logits, from_logits=True)
    probabilities = ops.softmax(logits, axis=-1)
    correction = ops.sum(targets * ops.log1p((beta - 1.0) * probabilities), axis=-1)
    return _nan_unless_in_sparse_range(cross_entropy + correction, y_true, logits, label_mode)


def beta_state(beta):
    """`(schedule, variable)` for a loss's `beta` argument: a float, a variable or a schedule."""
    if isinstance(beta, keras.Variable):
        return None, beta_lib.check_beta_variable(beta)
    if isinstance(beta, (schedules.BetaSchedule, dict)):
        schedule = schedules.get(beta)
        return schedule, beta_lib.make_beta_variable(schedule.initial_value)
    return None, beta_lib.make_beta_variable(beta)


def beta_config(schedule, variable):
    """What `get_config` stores for `beta`: the schedule, or the variable's current value."""
    if schedule is not None:
        return keras.saving.serialize_keras_object(schedule)
    return beta_lib.variable_value(variable)


class BetaLoss(keras.losses.Loss):
    """The base of every loss with a `beta`: its configuration (`beta`, label mode, smoothing)
    and its call, `loss_fn(y_true, y_pred, beta=, label_mode=, label_smoothing=)` per example.

    A new loss is a pure per-example function and a thin subclass that sets `loss_fn`,
    `default_name`, `scores_scaled_logits` (whether its predictor is `softmax(beta z)`, True,
    or `softmax(z)`) and `summary` (its formula and paper, one line); `register` makes it a
    `tc.train --loss` choice.
    """

    loss_fn = None  # the per-example function, set by each subclass
    default_name = None
    # Whether the predictor this loss trains scores `softmax(beta z)` (True) or `softmax(z)`.
    scores_scaled_logits = False
    # One line for `--loss`'s help: the formula and the papers.
    summary = ""

    def __init__(
        self,
        beta=1.0,
        label_mode="sparse",
        label_smoothing=0.0,
        reduction="sum_over_batch_size",
        name=None,
    ):
        super().__init__(name=name or self.default_name, reduction=reduction)
        self.label_mode = check_label_mode(label_mode)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.schedule, self.beta = beta_state(beta)

    def call(self, y_true, y_pred):
        return type(self).loss_fn(
            y_true,
            y_pred,
            beta=self.beta.value,
            label_mode=self.label_mode,
            label_smoothing=self.label_smoothing,
        )

    @property
    def scored_probabilities(self):
        """The predictor this loss trains, as recorded in run outputs."""
        return "softmax(beta*z)" if self.scores_scaled_logits else "softmax(z)"

    def get_config(self):
        return {
            "name": self.name,
            "reduction": self.reduction,
            "beta": beta_config(self.schedule, self.beta),
            "label_mode": self.label_mode,
            "label_smoothing": self.label_smoothing,
        }


@keras.saving.register_keras_serializable(package="tc")
class TemperatureCrossEntropy(BetaLoss):
    """Softmax cross-entropy at inverse temperature `beta`: `CE(softmax(beta * z), y)`.

    Papers 1 ("Temperature check") and 3 ("Unpacking softmax", `beta = 1 / T`). The trained
    predictor is `softmax(beta * z)`; score it with `tc.metrics` given `beta=loss`.

    Args:
        beta: a positive float, a scalar `keras.Variable` you drive yourself, or a
            `tc.schedules` schedule (driven by `tc.schedules.BetaScheduler`).
        label_mode: `"sparse"` (integer labels `(N,)` or `(N, 1)`, the default) or
            `"categorical"` (one-hot or soft targets `(N, C)`).
        label_smoothing: in [0, 1).
        reduction: any Keras reduction (`"sum_over_batch_size"`, `"sum"`, `"mean"`,
            `"mean_with_sample_weight"`, `"none"`, None).
        name: the loss name (default `"temperature_cross_entropy"`).

    Example:
        ```python
        loss = tc.losses.TemperatureCrossEntropy(beta=0.1)
        model.compile(optimizer="sgd", loss=loss)
        ```
    """

    loss_fn = staticmethod(temperature_cross_entropy)
    default_name = "temperature_cross_entropy"
    scores_scaled_logits = True
    summary = "CE(softmax(beta z)) (papers 1, 3)"


@keras.saving.register_keras_serializable(package="tc")
class GradientDecayCrossEntropy(BetaLoss):
    """Paper 2's gradient-decay softmax loss: `log(beta + sum_{i != c} exp(z_i - z_c))`.

    `beta = 1` is plain CE; `beta < 1` decays the gradient slowly (large margin, fast, over-
    confident); `beta > 1` decays it fast (better calibrated). Predictions, accuracy and
    calibration use the plain `softmax(z)`.

    Args: as `TemperatureCrossEntropy`; `beta` here is the gradient-decay factor.

    Example:
        ```python
        warmup = tc.schedules.LogLinearWarmup(beta_start=0.1, beta_end=1.0, duration=5)
        loss = tc.losses.GradientDecayCrossEntropy(beta=warmup)
        model.compile(optimizer="sgd", loss=loss)
        model.fit(x, y, epochs=10, callbacks=[tc.schedules.BetaScheduler(loss)])
        ```
    """

    loss_fn = staticmethod(gradient_decay_cross_entropy)
    default_name = "gradient_decay_cross_entropy"
    summary = "log(beta + sum_{i != c} exp(z_i - z_c)), paper 2's loss"


# The losses `tc.train --loss=<name>` trains, by name.
_REGISTRY = {"temperature": TemperatureCrossEntropy, "gradient_decay": GradientDecayCrossEntropy}


def register(name, loss_class):
    """Makes `loss_class` (a `BetaLoss` subclass) the loss `tc.train --loss=<name>` trains.

    Register before `tc.train`'s flags are defined (import the module that registers, then
    `tc.train.run()`), and register the class with Keras too
    (`@keras.saving.register_keras_serializable`), so that a saved model.keras loads wherever
    that module is imported. Raises ValueError for a taken or malformed name, or a class that is
    not a `BetaLoss` with a `summary`.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"A loss name is an identifier such as 'focal'; got {name!r}.")
    if name in _REGISTRY:
        raise ValueError(f"The loss name {name!r} is taken (by "
                         f"{_REGISTRY[name].__name__}); registered: {', '.join(_REGISTRY)}.")
    if not (isinstance(loss_class, type) and issubclass(loss_class, BetaLoss)
            and loss_class.loss_fn is not None and loss_class.summary):
        raise ValueError(f"register({name!r}, {loss_class!r}): the loss must be a subclass of "
                         "tc.losses.BetaLoss that sets loss_fn and summary.")
    _REGISTRY[name] = loss_class
    return loss_class


def names():
    """The registered loss names, in registration order."""
    return tuple(_REGISTRY)


def get(name):
    """The loss class registered as `name`; a ValueError naming the valid names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown loss {name!r}; valid losses: {', '.join(_REGISTRY)}.")
    return _REGISTRY[name]


def describe():
    """`name: summary` of every registered loss, joined by '; ' (the `--loss` help)."""
    return "; ".join(f"{name}: {loss.summary}" for name, loss in _REGISTRY.items())
