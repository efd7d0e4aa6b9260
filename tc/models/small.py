"""Small models for quick runs: an MLP, a small ConvNet and LeNet-5."""

import keras

from tc.models import common

__all__ = ["ACTIVATIONS", "cnn", "lenet", "mlp"]

ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid", "elu", "swish", "linear")


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {ACTIVATIONS}; got {activation!r}.")
    return activation


def mlp(input_shape=(8, 8, 1), num_classes=10, depth=2, width=256, activation="relu",
        weight_decay=0.0, readout_init_scale=1.0):
    """`depth` Dense layers of `width` units on the flattened input; the last is `features`."""
    common.check_positive_int("depth", depth)
    common.check_positive_int("width", width)
    _check_activation(activation)
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    for layer in range(depth):
        x = keras.layers.Dense(
            width, activation=activation, name="features" if layer == depth - 1 else f"dense{layer}",
            kernel_regularizer=common.kernel_regularizer(weight_decay))(x)
    logits = common.logits_layer(x, num_classes, weight_decay, readout_init_scale)
    return keras.Model(inputs, logits, name="mlp")


def cnn(input_shape=(32, 32, 3), num_classes=10, widths=(32, 64, 128), dense_units=128,
        weight_decay=0.0, readout_init_scale=1.0):
    """Conv3x3-BN-ReLU-MaxPool blocks, global average pooling, then Dense `features`."""
    widths = tuple(widths)
    if not widths:
        raise ValueError("`widths` must name at least one conv block's width; got ().")
    for width in widths:
        common.check_positive_int("widths", width)
    common.check_positive_int("dense_units", dense_units)
    inputs = keras.Input(input_shape)
    x = inputs
    for index, filters in enumerate(widths):
        x = common.conv(filters, 3, weight_decay, name=f"conv{index}")(x)
        x = keras.layers.ReLU()(common.batch_norm(name=f"bn{index}")(x))
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    features = keras.layers.Dense(dense_units, activation="relu", name="features",
                                  kernel_regularizer=common.kernel_regularizer(weight_decay))(x)
    logits = common.logits_layer(features, num_classes, weight_decay, readout_init_scale)
    return keras.Model(inputs, logits, name="cnn")


def lenet(input_shape=(28, 28, 1), num_classes=10, activation="relu", weight_decay=0.0,
          readout_init_scale=1.0):
    """LeNet-5: conv5x5(6)-pool-conv5x5(16)-pool-Dense(120)-Dense(84, `features`)."""
    _check_activation(activation)
    regularizer = common.kernel_regularizer(weight_decay)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(6, 5, padding="same", activation=activation,
                            kernel_regularizer=regularizer)(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 5, activation=activation, kernel_regularizer=regularizer)(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(120, activation=activation, kernel_regularizer=regularizer)(x)
    features = keras.layers.Dense(84, activation=activation, name="features",
                                  kernel_regularizer=regularizer)(x)
    logits = common.logits_layer(features, num_classes, weight_decay, readout_init_scale)
    return keras.Model(inputs, logits, name="lenet")
