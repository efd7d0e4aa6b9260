"""The model registry: `tc.models.build(name, input_shape, num_classes, **options)`.

| name | model | canonical data |
| --- | --- | --- |
| `wrn` | Wide ResNet, `depth` (28) x `width` (10) | CIFAR-10 |
| `resnet18`, `resnet34` | ResNet, CIFAR stem | CIFAR-10/100, SVHN |
| `resnet50` | ResNet-50, ImageNet stem (as `keras.applications`) | ImageNet |
| `vgg11`, `vgg16` | VGG with batch norm, CIFAR variant | CIFAR-10/100, SVHN |
| `mlp` | `depth` x `width` Dense layers | digits, synthetic |
| `cnn` | small ConvNet | quick runs |
| `lenet` | LeNet-5 | MNIST |
| `lstm` | embedding + LSTM | IMDB |
| `transformer` | small text transformer | IMDB |
| `vit` | ViT-Tiny widths, patch 4 | CIFAR (32x32) |

Every model outputs logits from a Dense layer `logits`; the penultimate representation is the
output of the layer `features`. All take `weight_decay` and `readout_init_scale`
(see `tc.models.common`).
"""

import inspect

from tc import data
from tc.models import recurrent, resnet, small, transformer, vgg, wrn

__all__ = ["build", "BUILDERS", "DEFAULT_MODEL", "default_model", "names", "options"]

BUILDERS = {
    "wrn": wrn.wrn,
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "vgg11": vgg.vgg11,
    "vgg16": vgg.vgg16,
    "mlp": small.mlp,
    "cnn": small.cnn,
    "lenet": small.lenet,
    "lstm": recurrent.lstm,
    "transformer": transformer.text_transformer,
    "vit": transformer.vit,
}

# The default model of each registered dataset, from its registry entry (`tc.data.REGISTRY`).
DEFAULT_MODEL = {name: entry.default_model for name, entry in data.REGISTRY.items()}


def names():
    """The registered model names."""
    return tuple(BUILDERS)


def options(name):
    """The options `build(name, ...)` takes besides `input_shape` and `num_classes`."""
    parameters = inspect.signature(_builder(name)).parameters
    return tuple(p for p in parameters if p not in ("input_shape", "num_classes"))


def _builder(name):
    if name not in BUILDERS:
        raise ValueError(f"Unknown model {name!r}; valid models: {', '.join(BUILDERS)}.")
    return BUILDERS[name]


def build(name, input_shape, num_classes, **model_options):
    """Builds model `name` for inputs of `input_shape` (no batch axis) and `num_classes` logits.

    Raises:
        ValueError: an unknown model or option (naming the valid ones), or a bad option value.
    """
    builder = _builder(name)
    valid = options(name)
    unknown = sorted(set(model_options) - set(valid))
    if unknown:
        raise ValueError(f"Model {name!r} takes no option(s) {unknown}; valid options: "
                         f"{', '.join(valid)}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
    return builder(input_shape=tuple(input_shape), num_classes=num_classes, **model_options)


def default_model(dataset_name):
    """The model the papers train on `dataset_name` (the registry's default); resnet18 for a
    `tfds:<name>` image dataset."""
    if dataset_name.startswith(data.TFDS_PREFIX):
        return data.TFDS_DEFAULT_MODEL
    if dataset_name not in DEFAULT_MODEL:
        raise ValueError(f"No default model for dataset {dataset_name!r}; known: "
                         f"{', '.join(DEFAULT_MODEL)}.")
    return DEFAULT_MODEL[dataset_name]
