"""Wide ResNets (Zagoruyko & Komodakis 2016), the CIFAR-10 models of paper 1.

WRN-d-k has `(d - 4) / 6` pre-activation blocks per stage at widths 16k, 32k, 64k, after a
3x3 conv with 16 channels; each block is BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, with a 1x1
projection of the activated input when the width changes. WRN-28-10 has 36.5M parameters.
"""

import keras

from tc.models import common

__all__ = ["wrn"]


def _wide_block(x, filters, stride, dropout, weight_decay, name):
    activated = keras.layers.ReLU()(common.batch_norm(name=f"{name}_bn1")(x))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = common.conv(filters, 1, weight_decay, strides=stride,
                               name=f"{name}_proj")(activated)
    y = common.conv(filters, 3, weight_decay, strides=stride, name=f"{name}_conv1")(activated)
    y = keras.layers.ReLU()(common.batch_norm(name=f"{name}_bn2")(y))
    if dropout:
        y = keras.layers.Dropout(dropout)(y)
    y = common.conv(filters, 3, weight_decay, name=f"{name}_conv2")(y)
    return keras.layers.Add(name=f"{name}_out")([y, shortcut])


def wrn(input_shape=(32, 32, 3), num_classes=10, depth=28, width=10, dropout=0.0,
        weight_decay=0.0, readout_init_scale=1.0):
    """WRN-`depth`-`width`; `depth - 4` must be a multiple of 6 (16, 22, 28, 40, ...)."""
    common.check_positive_int("width", width)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"WRN `depth` must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...); "
                         f"got {depth!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1); got {dropout!r}.")
    blocks = (depth - 4) // 6
    inputs = keras.Input(input_shape)
    x = common.conv(16, 3, weight_decay, name="stem_conv")(inputs)
    for stage, filters in enumerate((16 * width, 32 * width, 64 * width)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _wide_block(x, filters, stride, dropout, weight_decay,
                            f"stage{stage + 1}_block{block + 1}")
    x = keras.layers.ReLU()(common.batch_norm(name="final_bn")(x))
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = common.logits_layer(features, num_classes, weight_decay, readout_init_scale)
    return keras.Model(inputs, logits, name=f"wrn_{depth}_{width}")
