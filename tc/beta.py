"""`beta` as live training state.

Both papers' `beta` (the inverse temperature of paper 1 / paper 3, and the gradient-decay factor of
paper 2) is a positive, finite scalar that may change during training (paper 2's warm-up). `tc`
keeps it in a non-trainable scalar `keras.Variable`, so the compiled train step reads its current
value instead of a Python float frozen at trace time.

On the TensorFlow backend a captured variable is always read live. On the JAX backend a jitted step
only sees variables that the model tracks as state; a free-floating variable is baked in as a
constant. `track_beta` makes the model track one, through a small metric that also logs the
current value under the key `beta`. Metrics are not part of saved model weights, so a tracked model
still saves and loads like an untracked one.
"""

import math
import numbers

import keras
from keras import ops

from tc import compat

__all__ = ["beta_variable_of", "BetaTracker", "check_beta", "check_beta_variable",
           "make_beta_variable", "track_beta", "variable_value"]


def check_beta(value, name="beta"):
    """Returns `value` as a float after checking that it is positive and finite.

    Raises:
        ValueError: naming the value when it is not a real number, is NaN or infinite, or is
            not strictly positive.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a positive finite number; got {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(
            f"`{name}` must be positive and finite (valid: 0 < {name} < inf); got {value!r}."
        )
    return value


def variable_value(variable):
    """The current value of a scalar Keras variable as a Python float."""
    return float(ops.convert_to_numpy(variable.value))


def make_beta_variable(initial_value, name="beta"):
    """A non-trainable float32 scalar variable that holds `beta`."""
    return keras.Variable(
        initializer=check_beta(initial_value, name),
        shape=(),
        dtype="float32",
        trainable=False,
        name=name,
    )


def check_beta_variable(variable, name="beta"):
    """Checks that a user-supplied variable can hold `beta`: a float scalar with a valid value."""
    if tuple(variable.shape) != ():
        raise ValueError(
            f"`{name}` must be a scalar variable; got shape {tuple(variable.shape)}."
        )
    if "float" not in str(variable.dtype):
        raise ValueError(f"`{name}` must be a float variable; got dtype {variable.dtype}.")
    check_beta(variable_value(variable), name)
    return variable


def beta_variable_of(source):
    """The beta variable behind `source`: a Keras variable, or anything with a `.beta` variable.

    Returns None for a plain number, which has no variable to track.
    """
    if isinstance(source, keras.Variable):
        return source
    candidate = getattr(source, "beta", None)
    if isinstance(candidate, keras.Variable):
        return candidate
    return None


@keras.saving.register_keras_serializable(package="tc")
class BetaTracker(keras.metrics.Metric):
    """Reports the current value of a beta variable and keeps it in the model's state.

    `update_state` and `reset_state` do nothing: the variable belongs to whoever drives it (a
    loss, a schedule callback). Its `result()` is the value the last step used.
    """

    def __init__(self, beta_variable=None, name="beta", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if beta_variable is None:
            beta_variable = make_beta_variable(1.0)
        self.beta_variable = beta_variable

    def update_state(self, *args, **kwargs):
        pass

    def reset_state(self):
        pass

    def result(self):
        return ops.convert_to_tensor(self.beta_variable.value)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def track_beta(model, source, name="beta"):
    """Makes `model` carry the beta variable of `source` in its training state.

    Needed on the JAX backend whenever beta changes during `fit` (a `tc.schedules.BetaScheduler`
    calls it for you). Harmless elsewhere. Idempotent: tracking the same variable twice adds
    nothing. The variable's current value is logged as `name` (default `beta`) each epoch.

    Args:
        model: a Keras model.
        source: a `tc` loss or metric with a `.beta` variable, or a scalar Keras variable.
        name: the log key of the value.

    Returns:
        The tracker metric now attached to the model.
    """
    variable = beta_variable_of(source)
    if variable is None:
        raise ValueError(
            f"Nothing to track: {source!r} is neither a Keras variable nor an object with a "
            "`.beta` variable (a plain float never changes during training)."
        )
    for metric in model.metrics:
        if isinstance(metric, BetaTracker) and metric.beta_variable is variable:
            return metric
    return compat.attach_metric(model, f"_tc_beta_tracker_{id(variable)}",
                                BetaTracker(variable, name=name))
