"""Backend-neutral test helpers: gradients and small models."""

import keras
import numpy as np
from keras import ops


def value_and_gradient(function, x):
    """`(function(x), d function / dx)` as numpy arrays, on the active Keras backend."""
    backend = keras.backend.backend()
    x = ops.convert_to_tensor(x)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            value = function(x)
        gradient = tape.gradient(value, x)
    elif backend == "jax":
        import jax

        value, gradient = jax.value_and_grad(function)(x)
    elif backend == "torch":
        import torch

        x = x.detach().requires_grad_(True)
        value = function(x)
        (gradient,) = torch.autograd.grad(value, x)
    else:
        raise ValueError(f"No gradient helper for backend {backend!r}.")
    return ops.convert_to_numpy(value), ops.convert_to_numpy(gradient)


def softmax(x, axis=-1):
    """Float64 numpy softmax, the independent reference."""
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """Float64 numpy log-softmax, exact for very large logits."""
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def dense_model(input_dim, num_classes, hidden=16, seed=0, name=None):
    """A small MLP that outputs logits, built and seeded."""
    inputs = keras.Input((input_dim,))
    hidden_layer = keras.layers.Dense(
        hidden, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
    )(inputs)
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed + 1),
        name="readout",
    )(hidden_layer)
    return keras.Model(inputs, logits, name=name)
