"""Layers for the softmax temperature, and paper 1's control of the initial logit norm.

- `InverseTemperature`: `z -> beta * z`, with `beta` fixed or learned as `log beta`.
- `TemperatureSoftmax`: `z -> softmax(beta * z)` (`T = 1 / beta` in paper 3).
- `set_initial_logit_norm`: rescales a model's readout so that the mean `||beta * z0||_2` over a
  batch hits a target (Agarwala et al., arXiv 2010.07344, the second knob besides `beta`).
"""

import math

import keras
import numpy as np
from keras import ops

from tc import beta as beta_lib

__all__ = ["find_readout", "InverseTemperature", "mean_logit_norm", "set_initial_logit_norm",
           "TemperatureSoftmax"]


@keras.saving.register_keras_serializable(package="tc")
class InverseTemperature(keras.layers.Layer):
    """Multiplies its input by `beta`: `z -> beta * z`.

    `beta` is stored as `log_beta`, so a trainable `beta` stays positive under any gradient step.

    Args:
        beta: the initial positive, finite inverse temperature.
        trainable: whether `log_beta` is learned.

    Example:
        ```python
        logits = keras.layers.Dense(10)(features)
        scaled_logits = tc.layers.InverseTemperature(beta=0.1)(logits)
        ```
    """

    def __init__(self, beta=1.0, trainable=False, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        self.initial_beta = beta_lib.check_beta(beta)

    def build(self, input_shape):
        self.log_beta = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(math.log(self.initial_beta)),
            trainable=self.trainable,
            name="log_beta",
        )

    @property
    def beta(self):
        """The current `beta`, as a tensor."""
        return ops.exp(self.log_beta)

    def call(self, inputs):
        return ops.cast(ops.exp(self.log_beta), inputs.dtype) * inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["beta"] = self.initial_beta
        return config


@keras.saving.register_keras_serializable(package="tc")
class TemperatureSoftmax(keras.layers.Layer):
    """`z -> softmax(beta * z)` along `axis`, computed and returned in float32.

    Args:
        beta: the positive, finite inverse temperature (`1 / T`).
        axis: the class axis.
    """

    def __init__(self, beta=1.0, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.beta = beta_lib.check_beta(beta)
        self.axis = axis

    def call(self, inputs):
        return ops.softmax(self.beta * ops.cast(inputs, "float32"), axis=self.axis)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"beta": self.beta, "axis": self.axis})
        return config


def find_readout(model):
    """The model's readout: the last layer with a `kernel` (the Dense that produces the logits)."""
    for layer in reversed(model.layers):
        if getattr(layer, "kernel", None) is not None:
            return layer
    raise ValueError(f"Model {model.name!r} has no layer with a kernel to use as the readout.")


def mean_logit_norm(model, inputs, beta=1.0):
    """`mean_n ||beta * z0_n||_2` of the model's outputs on `inputs`, in float64."""
    logits = ops.convert_to_numpy(model(inputs, training=False)).astype(np.float64)
    logits = logits.reshape(logits.shape[0], -1)
    return float(np.mean(np.linalg.norm(beta * logits, axis=-1)))


def set_initial_logit_norm(model, inputs, target_norm, beta=1.0, readout=None,
                           rtol=1e-3, max_iterations=5):
    """Rescales the readout so that `mean_n ||beta * z0_n||_2` over `inputs` equals `target_norm`.

    Paper 1 studies `||beta z0||` separately from `beta`: this sets the logit norm at
    initialization without touching `beta`. The readout's kernel and bias are multiplied by
    `target / current`. When the logits are a linear function of the readout (the readout is the
    last layer), one step is exact; otherwise it repeats up to `max_iterations` times.

    Args:
        model: a built Keras model whose outputs are logits.
        inputs: a batch to measure the norm on.
        target_norm: the positive, finite target for the mean `||beta * z0||`.
        beta: the inverse temperature that will scale the logits in the loss.
        readout: the layer (or its name) to rescale; defaults to the last layer with a kernel.
        rtol: the relative tolerance to stop at.
        max_iterations: the most rescaling steps.

    Returns:
        The achieved mean `||beta * z0||`.

    Raises:
        ValueError: for a bad target or beta, or when the logits are all zero (e.g. a zero-
            initialized readout), which no rescaling can move.
    """
    target_norm = beta_lib.check_beta(target_norm, "target_norm")
    beta = beta_lib.check_beta(beta)
    if readout is None:
        readout = find_readout(model)
    elif isinstance(readout, str):
        readout = model.get_layer(readout)
    norm = mean_logit_norm(model, inputs, beta)
    for _ in range(max_iterations):
        if not math.isfinite(norm) or norm == 0.0:
            raise ValueError(
                f"Cannot rescale readout {readout.name!r} to ||beta z0|| = {target_norm}: the "
                f"current mean norm is {norm} (a zero-initialized readout cannot be rescaled)."
            )
        if abs(norm - target_norm) <= rtol * target_norm:
            break
        factor = target_norm / norm
        for weight in readout.weights:
            weight.assign(weight * factor)
        norm = mean_logit_norm(model, inputs, beta)
    return norm
