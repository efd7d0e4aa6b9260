"""Pieces every model shares: weight decay on kernels, the readout, and option checks.

Conventions of the zoo: every model outputs logits (no softmax) from a Dense layer named
`logits`, whose input, the penultimate representation, is the output of a layer named
`features` (paper 3's rank tools read it).

`weight_decay` is the coefficient `lambda` of the PyTorch-style SGD weight decay: it adds
`lambda / 2 * ||W||^2` per kernel to the loss, so the gradient gains `lambda * W`. Biases, norm
parameters and embeddings are not decayed.

`readout_init_scale` multiplies the standard deviation of the readout's Glorot-uniform
initialization (paper 1's knob on `||beta z0||`); 0 gives a zero readout.
"""

import keras

__all__ = ["batch_norm", "check_positive_int", "conv", "kernel_regularizer", "logits_layer",
           "readout_initializer"]


def kernel_regularizer(weight_decay):
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0; got {weight_decay!r}.")
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None


def readout_initializer(readout_init_scale):
    if not readout_init_scale >= 0:
        raise ValueError(f"readout_init_scale must be >= 0; got {readout_init_scale!r}.")
    if readout_init_scale == 0:
        return "zeros"
    # GlorotUniform is VarianceScaling(1, fan_avg, uniform); scale multiplies the variance.
    return keras.initializers.VarianceScaling(
        scale=readout_init_scale**2, mode="fan_avg", distribution="uniform")


def logits_layer(features, num_classes, weight_decay, readout_init_scale):
    """The readout: `Dense(num_classes)` named `logits` on the `features` output."""
    return keras.layers.Dense(
        num_classes, name="logits", kernel_initializer=readout_initializer(readout_init_scale),
        kernel_regularizer=kernel_regularizer(weight_decay))(features)


def conv(filters, kernel_size, weight_decay, strides=1, padding="same", use_bias=False,
         name=None):
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
        kernel_initializer="he_normal", kernel_regularizer=kernel_regularizer(weight_decay),
        name=name)


def batch_norm(epsilon=1e-5, name=None):
    # momentum 0.9 is PyTorch's 0.1 running-average rate, the setting the papers' models use.
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=epsilon, name=name)


def check_positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return value
