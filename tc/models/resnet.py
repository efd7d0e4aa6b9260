"""ResNets (He et al. 2016): CIFAR ResNet-18/34 and ImageNet ResNet-50.

- `resnet18`, `resnet34`: basic blocks [2,2,2,2] / [3,4,6,3] at widths 64-512, with the CIFAR
  stem (one 3x3 conv, stride 1, no max-pool); about 11.2M / 21.3M parameters at 10 classes.
- `resnet50`: bottleneck blocks [3,4,6,3], ImageNet stem (7x7/2 conv + 3x3/2 max-pool). It mirrors
  `keras.applications.ResNet50` layer for layer (convs with biases, BN epsilon 1.001e-5,
  stride on the first 1x1 conv), so its parameter count is the same (25,636,712 at 1000 classes).
"""

import keras

from tc.models import common

__all__ = ["resnet18", "resnet34", "resnet50"]


def _basic_block(x, filters, stride, weight_decay, name):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = common.conv(filters, 1, weight_decay, strides=stride, name=f"{name}_proj")(x)
        shortcut = common.batch_norm(name=f"{name}_proj_bn")(shortcut)
    y = common.conv(filters, 3, weight_decay, strides=stride, name=f"{name}_conv1")(x)
    y = keras.layers.ReLU()(common.batch_norm(name=f"{name}_bn1")(y))
    y = common.conv(filters, 3, weight_decay, name=f"{name}_conv2")(y)
    y = common.batch_norm(name=f"{name}_bn2")(y)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add()([y, shortcut]))


def _bottleneck_block(x, filters, stride, projection, weight_decay, name):
    epsilon = 1.001e-5
    shortcut = x
    if projection:
        shortcut = common.conv(4 * filters, 1, weight_decay, strides=stride, use_bias=True,
                               name=f"{name}_proj")(x)
        shortcut = common.batch_norm(epsilon, name=f"{name}_proj_bn")(shortcut)
    y = common.conv(filters, 1, weight_decay, strides=stride, use_bias=True,
                    name=f"{name}_conv1")(x)
    y = keras.layers.ReLU()(common.batch_norm(epsilon, name=f"{name}_bn1")(y))
    y = common.conv(filters, 3, weight_decay, use_bias=True, name=f"{name}_conv2")(y)
    y = keras.layers.ReLU()(common.batch_norm(epsilon, name=f"{name}_bn2")(y))
    y = common.conv(4 * filters, 1, weight_decay, use_bias=True, name=f"{name}_conv3")(y)
    y = common.batch_norm(epsilon, name=f"{name}_bn3")(y)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add()([y, shortcut]))


def _cifar_resnet(input_shape, num_classes, stage_blocks, weight_decay, readout_init_scale,
                  name):
    inputs = keras.Input(input_shape)
    x = common.conv(64, 3, weight_decay, name="stem_conv")(inputs)
    x = keras.layers.ReLU()(common.batch_norm(name="stem_bn")(x))
    for stage, (filters, blocks) in enumerate(zip((64, 128, 256, 512), stage_blocks)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, stride, weight_decay, f"stage{stage + 1}_block{block + 1}")
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = common.logits_layer(features, num_classes, weight_decay, readout_init_scale)
    return keras.Model(inputs, logits, name=name)


def resnet18(input_shape=(32, 32, 3), num_classes=10, weight_decay=0.0, readout_init_scale=1.0):
    """ResNet-18 with the CIFAR stem."""
    return _cifar_resnet(input_shape, num_classes, (2, 2, 2, 2), weight_decay,
                         readout_init_scale, "resnet18")


def resnet34(input_shape=(32, 32, 3), num_classes=10, weight_decay=0.0, readout_init_scale=1.0):
    """ResNet-34 with the CIFAR stem."""
    return _cifar_resnet(input_shape, num_classes, (3, 4, 6, 3), weight_decay,
                         readout_init_scale, "resnet34")


def resnet50(input_shape=(224, 224, 3), num_classes=1000, weight_decay=0.0,
             readout_init_scale=1.0):
    """ResNet-50 with the ImageNet stem, laid out as `keras.applications.ResNet50`."""
    inputs = keras.Input(input_shape)
    x = keras.layers.ZeroPadding2D(3)(inputs)
    x = common.conv(64, 7, weight_decay, strides=2, padding="valid", use_bias=True,
                    name="stem_conv")(x)
    x = keras.layers.ReLU()(common.batch_norm(1.001e-5, name="stem_bn")(x))
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.MaxPooling2D(3, strides=2)(x)
    for stage, (filters, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _bottleneck_block(x, filters, stride, block == 0, weight_decay,
                                  f"stage{stage + 1}_block{block + 1}")
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = common.logits_layer(features, num_classes, weight_decay, readout_init_scale)
    return keras.Model(inputs, logits, name="resnet50")
