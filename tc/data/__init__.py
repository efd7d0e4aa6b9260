"""The dataset registry: `tc.data.load(name, **options)`.

| name | source | classes | input | preprocessing |
| --- | --- | --- | --- | --- |
| `digits` | scikit-learn's bundled UCI digits (no download) | 10 | 8x8x1 | none |
| `synthetic` | Gaussian mixture, numpy | 10 | (32,) | none |
| `synthetic_shift` | the same input space, other classes (OOD task) | 10 | (32,) | none |
| `synthetic_images` | class templates + noise, uint8, CIFAR-shaped (GPU runs, benchmarks) | 10 | 32x32x3 | normalize |
| `fashion_mnist`, `mnist` | IDX files (numpy only; Debian's `dataset-fashion-mnist`) or TFDS | 10 | 28x28x1 | normalize (own statistics); `augment=` optional |
| `cifar10`, `cifar100` | TFDS | 10, 100 | 32x32x3 | pad-crop-flip, normalize |
| `svhn_cropped` | TFDS | 10 | 32x32x3 | pad-crop, normalize |
| `imagenet2012` | TFDS (manual download), streamed | 1000 | 224x224x3 | RRC + flip / resize-crop |
| `imdb_reviews` | TFDS, `TextVectorization` on train | 2 | (256,) ids | none |
| `tfds:<name>` | any TFDS image-classification dataset, e.g. `tfds:kmnist` | from its info | from its info | normalize (own statistics) |

`digits`, `synthetic`, `synthetic_shift`, `synthetic_images`, and `fashion_mnist` / `mnist` from
IDX files need no TensorFlow. Every dataset reports `num_classes`, `input_shape` and
`split_sizes` and builds `tf_dataset(split, batch_size, ...)`; in-memory ones also give
`arrays(split)` and `numpy_batches(...)`.

Splits do not depend on the run's seed: the validation split is carved with the `data_seed`
option (0 by default), so runs that differ only in `--seed` share their data. `classes=0,1,2`
keeps those classes, relabelled 0..k-1 (an in-distribution task and its held-out classes).
"""

import dataclasses
import functools
import inspect

from tc.data import digits, mnist_like, synthetic, tfds_source
from tc.data.base import ArrayDataset, DatasetSpec, epoch_order  # noqa: F401
from tc.data.tfds_source import DatasetNotPreparedError  # noqa: F401

__all__ = ["ArrayDataset", "BUNDLED", "check_name", "DatasetNotPreparedError", "DatasetSpec",
           "Entry", "epoch_order", "load", "LOADERS", "names", "options", "REGISTRY",
           "TFDS_DEFAULT_MODEL", "TFDS_PREFIX"]

TFDS_PREFIX = tfds_source.ANY_PREFIX


def _tfds_loader(name):
    def load_tfds(data_dir=None, validation_size=None, data_seed=0, classes=None,
                  download=False, vocab_size=20_000, sequence_length=256, shuffle_buffer=10_000):
        return tfds_source.load(name, data_dir=data_dir, validation_size=validation_size,
                                data_seed=data_seed, classes=classes, download=download,
                                vocab_size=vocab_size, sequence_length=sequence_length,
                                shuffle_buffer=shuffle_buffer)

    load_tfds.__doc__ = tfds_source.load.__doc__
    return load_tfds


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered dataset: how it loads, and the facts about it that need no loading.

    `default_model`: the model the papers train on it (`tc.models.default_model`);
    `num_classes` and `input_shape`: what it loads with its default options (`classes=`, and
    the synthetic sets' size options, change them);
    `bundled`: generated in memory, with no data directory;
    `needs_tensorflow`: whether loading it imports TensorFlow (TFDS); the others are what runs
    on a machine without TensorFlow (a JAX-only GPU).
    """

    loader: object
    default_model: str
    num_classes: int
    input_shape: tuple
    bundled: bool = False
    needs_tensorflow: bool = False


def _tfds_entry(name, default_model, num_classes, input_shape):
    return Entry(_tfds_loader(name), default_model, num_classes, input_shape,
                 needs_tensorflow=True)


_IMAGES_32 = (32, 32, 3)


REGISTRY = {
    "digits": Entry(digits.load, "mlp", 10, (8, 8, 1), bundled=True),
    "synthetic": Entry(synthetic.load, "mlp", 10, (32,), bundled=True),
    "synthetic_shift": Entry(synthetic.load_shift, "mlp", 10, (32,), bundled=True),
    "synthetic_images": Entry(synthetic.load_images, "resnet18", 10, _IMAGES_32, bundled=True),
    # IDX files with numpy alone; TFDS data only where no IDX files are found.
    "fashion_mnist": Entry(functools.partial(mnist_like.load, "fashion_mnist"), "lenet", 10,
                           (28, 28, 1)),
    "mnist": Entry(functools.partial(mnist_like.load, "mnist"), "lenet", 10, (28, 28, 1)),
    "cifar10": _tfds_entry("cifar10", "wrn", 10, _IMAGES_32),
    "cifar100": _tfds_entry("cifar100", "resnet18", 100, _IMAGES_32),
    "svhn_cropped": _tfds_entry("svhn_cropped", "resnet18", 10, _IMAGES_32),
    "imagenet2012": _tfds_entry("imagenet2012", "resnet50", 1000, (224, 224, 3)),
    "imdb_reviews": _tfds_entry("imdb_reviews", "lstm", 2, (256,)),
}
# A `tfds:<name>` image dataset's model.
TFDS_DEFAULT_MODEL = "resnet18"
LOADERS = {name: entry.loader for name, entry in REGISTRY.items()}
BUNDLED = tuple(name for name, entry in REGISTRY.items() if entry.bundled)


def names():
    """The registered dataset names; any TFDS image-classification dataset is also available
    as `tfds:<name>` (e.g. `tfds:kmnist`)."""
    return tuple(LOADERS)


def check_name(name):
    """Returns `name` if it is a registered name or `tfds:<name>`; else a ValueError naming the
    valid ones."""
    if name in LOADERS or (isinstance(name, str) and name.startswith(TFDS_PREFIX)
                           and len(name) > len(TFDS_PREFIX)):
        return name
    raise ValueError(f"Unknown dataset {name!r}; valid datasets: {', '.join(LOADERS)}, or "
                     f"{TFDS_PREFIX}<name> for any TFDS image-classification dataset.")


def options(name):
    """The options `load(name, ...)` accepts."""
    return tuple(inspect.signature(_loader(name)).parameters)


def _loader(name):
    check_name(name)
    if name.startswith(TFDS_PREFIX):
        return functools.partial(tfds_source.load_any, name[len(TFDS_PREFIX):])
    return LOADERS[name]


def load(name, **kwargs):
    """Loads dataset `name` with its options (see each loader; `options(name)` lists them).

    Raises:
        ValueError: an unknown name or option, naming the valid ones.
        DatasetNotPreparedError: a dataset missing from its data directory; the message says
            how to prepare it.
    """
    loader = _loader(name)
    valid = options(name)
    unknown = sorted(set(kwargs) - set(valid) - {"name"})
    if unknown or "name" in kwargs:
        bad = unknown or ["name"]
        raise ValueError(f"Dataset {name!r} takes no option(s) {bad}; valid options: "
                         f"{', '.join(o for o in valid if o != 'name')}.")
    return loader(**kwargs)
