"""The dataset registry: `tc.data.load(name, **options)`.

| name | source | classes | input | preprocessing |
| --- | --- | --- | --- | --- |
| `digits` | scikit-learn's bundled UCI digits (no download) | 10 | 8x8x1 | none |
| `synthetic` | Gaussian mixture, numpy | 10 | (32,) | none |
| `synthetic_shift` | the same input space, other classes (OOD task) | 10 | (32,) | none |
| `synthetic_images` | class templates + noise, uint8, CIFAR-shaped (GPU runs, benchmarks) | 10 | 32x32x3 | normalize |
| `cifar10`, `cifar100` | TFDS | 10, 100 | 32x32x3 | pad-crop-flip, normalize |
| `svhn_cropped` | TFDS | 10 | 32x32x3 | pad-crop, normalize |
| `mnist` | TFDS | 10 | 28x28x1 | normalize |
| `imagenet2012` | TFDS (manual download), streamed | 1000 | 224x224x3 | RRC + flip / resize-crop |
| `imdb_reviews` | TFDS, `TextVectorization` on train | 2 | (256,) ids | none |

`digits`, `synthetic`, `synthetic_shift` and `synthetic_images` need no TensorFlow. Every
dataset reports
`num_classes`, `input_shape` and `split_sizes` and builds `tf_dataset(split, batch_size, ...)`;
in-memory ones also give `arrays(split)` and `numpy_batches(...)`.
"""

import inspect

from tc.data import digits, synthetic, tfds_source
from tc.data.base import ArrayDataset, DatasetSpec, epoch_order  # noqa: F401
from tc.data.tfds_source import DatasetNotPreparedError  # noqa: F401


def _tfds_loader(name):
    def load_tfds(data_dir=None, validation_size=None, seed=0, download=False,
                  vocab_size=20_000, sequence_length=256, shuffle_buffer=10_000):
        return tfds_source.load(name, data_dir=data_dir, validation_size=validation_size,
                                seed=seed, download=download, vocab_size=vocab_size,
                                sequence_length=sequence_length, shuffle_buffer=shuffle_buffer)

    load_tfds.__doc__ = tfds_source.load.__doc__
    return load_tfds


LOADERS = {
    "digits": digits.load,
    "synthetic": synthetic.load,
    "synthetic_shift": synthetic.load_shift,
    "synthetic_images": synthetic.load_images,
    **{name: _tfds_loader(name) for name in tfds_source.TABLES},
}
IN_MEMORY = ("digits", "synthetic", "synthetic_shift", "synthetic_images")


def names():
    """The registered dataset names."""
    return tuple(LOADERS)


def options(name):
    """The options `load(name, ...)` accepts."""
    return tuple(inspect.signature(_loader(name)).parameters)


def _loader(name):
    if name not in LOADERS:
        raise ValueError(f"Unknown dataset {name!r}; valid datasets: {', '.join(LOADERS)}.")
    return LOADERS[name]


def load(name, **kwargs):
    """Loads dataset `name` with its options (see each loader; `options(name)` lists them).

    Raises:
        ValueError: an unknown name or option, naming the valid ones.
        DatasetNotPreparedError: a TFDS dataset missing from its data directory.
    """
    loader = _loader(name)
    valid = options(name)
    unknown = sorted(set(kwargs) - set(valid) - {"name"})
    if unknown or "name" in kwargs:
        bad = unknown or ["name"]
        raise ValueError(f"Dataset {name!r} takes no option(s) {bad}; valid options: "
                         f"{', '.join(o for o in valid if o != 'name')}.")
    return loader(**kwargs)
