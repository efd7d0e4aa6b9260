"""VGG-11 and VGG-16 with batch norm, CIFAR variants (Simonyan & Zisserman 2015).

3x3 conv-BN-ReLU stacks with 2x2 max-pools ('same' padding, so 28x28 inputs work too), global
average pooling (a 1x1 map on 32x32 inputs) as `features`, and one linear readout.
"""

import keras

from tc.models import common

__all__ = ["CONFIGS", "vgg11", "vgg16"]

CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
}


def _vgg(config_name, input_shape, num_classes, weight_decay, readout_init_scale):
    inputs = keras.Input(input_shape)
    x = inputs
    for index, item in enumerate(CONFIGS[config_name]):
        if item == "M":
            x = keras.layers.MaxPooling2D(2, padding="same")(x)
        else:
            x = common.conv(item, 3, weight_decay, name=f"conv{index}")(x)
            x = keras.layers.ReLU()(common.batch_norm(name=f"bn{index}")(x))
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = common.logits_layer(features, num_classes, weight_decay, readout_init_scale)
    return keras.Model(inputs, logits, name=config_name)


def vgg11(input_shape=(32, 32, 3), num_classes=10, weight_decay=0.0, readout_init_scale=1.0):
    """VGG-11 with batch norm."""
    return _vgg("vgg11", input_shape, num_classes, weight_decay, readout_init_scale)


def vgg16(input_shape=(32, 32, 3), num_classes=10, weight_decay=0.0, readout_init_scale=1.0):
    """VGG-16 with batch norm."""
    return _vgg("vgg16", input_shape, num_classes, weight_decay, readout_init_scale)
