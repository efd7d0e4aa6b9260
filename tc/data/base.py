"""What every dataset reports, and the epoch order that makes runs resumable.

A dataset is either in memory (`ArrayDataset`: numpy arrays per split, usable with no TensorFlow
at all) or streamed from TFDS (`tc.data.tfds_source`). Both report `num_classes`, `input_shape`
and `split_sizes`, and both build `tf.data` pipelines with `tf_dataset(...)`.

The training order of epoch `e` is a permutation drawn from `(seed, e)` alone, so a run resumed at
epoch `e` sees exactly the batches an uninterrupted run would have seen.
"""

import dataclasses

import numpy as np

from tc.data import preprocessing
from tc.data.order import epoch_order

__all__ = ["ArrayDataset", "carve_validation", "channel_statistics", "check_labels", "check_split",
           "DatasetSpec", "keep_classes", "SpecBacked", "SPLITS", "train_validation_test"]

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """The facts a model and a training loop need about a dataset.

    Attributes:
        name: the registry name.
        num_classes: the number of classes; labels are integers in `[0, num_classes)`.
        input_shape: the shape of one preprocessed example (no batch axis).
        split_sizes: examples per split, `{"train": ..., "validation": ..., "test": ...}`.
        preprocessing: the preprocessing family (`"cifar"`, `"svhn"`, `"mnist"`,
            `"imagenet"`, `"text"` or `"none"`).
        mean, std: per-channel normalization constants (images), or None.
        augmentation: the training augmentation: "none", "pad_crop", "pad_crop_flip", or
            "default" for the family's own (see `tc.data.preprocessing`).
    """

    name: str
    num_classes: int
    input_shape: tuple
    split_sizes: dict
    preprocessing: str = "none"
    mean: tuple = None
    std: tuple = None
    augmentation: str = "default"


def check_split(split):
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; valid splits: {SPLITS}.")
    return split


def check_labels(labels, num_classes, dataset_name, split):
    """Raises ValueError when a label is outside `[0, num_classes)`, naming the bad values."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise ValueError(
            f"Dataset {dataset_name!r}, split {split!r}: {bad.size} label(s) outside "
            f"[0, {num_classes}), e.g. {sorted(set(bad.tolist()))[:5]}."
        )
    return labels


def keep_classes(splits, classes, num_classes, dataset_name):
    """`splits` (a list of `(x, y)`) with only the examples of `classes`, relabelled 0..k-1 in
    the order of `classes`; returns `(splits, k)`.

    Raises:
        ValueError: `classes` is empty, repeats a class, or names one outside [0, num_classes).
    """
    classes = (classes,) if isinstance(classes, (int, np.integer)) else tuple(classes)
    if not classes or len(set(classes)) != len(classes) or any(
            isinstance(c, bool) or not isinstance(c, (int, np.integer))
            or not 0 <= c < num_classes for c in classes):
        raise ValueError(f"Dataset {dataset_name!r}: classes={classes!r} must be distinct "
                         f"integers in [0, {num_classes}), e.g. classes=0,1,2,3,4.")
    relabel = np.full(num_classes, -1, np.int32)
    relabel[list(classes)] = np.arange(len(classes), dtype=np.int32)
    kept = []
    for x, y in splits:
        mask = np.isin(y, classes)
        kept.append((x[mask], relabel[y[mask]]))
    return kept, len(classes)


def train_validation_test(train, test, num_classes, dataset_name, validation_size, data_seed,
                          classes=None):
    """`(splits, num_classes)` of a dataset's `(x, y)` train and test arrays: labels checked,
    only `classes` kept (see `keep_classes`), and `validation_size` training examples carved
    with `data_seed` (see `carve_validation`)."""
    (train_x, train_y), (test_x, test_y) = train, test
    check_labels(train_y, num_classes, dataset_name, "train")
    check_labels(test_y, num_classes, dataset_name, "test")
    if classes is not None:
        ((train_x, train_y), (test_x, test_y)), num_classes = keep_classes(
            [(train_x, train_y), (test_x, test_y)], classes, num_classes, dataset_name)
    train_index, validation_index = carve_validation(len(train_y), int(validation_size),
                                                     data_seed)
    return {"train": (train_x[train_index], train_y[train_index]),
            "validation": (train_x[validation_index], train_y[validation_index]),
            "test": (test_x, test_y)}, num_classes


def channel_statistics(images):
    """Per-channel `(mean, std)` of uint8 images `(N, ..., C)`, on the [0, 1] scale."""
    values = np.asarray(images, np.float64).reshape(-1, images.shape[-1]) / 255.0
    return (tuple(float(v) for v in values.mean(axis=0)),
            tuple(float(v) for v in values.std(axis=0)))


def carve_validation(num_examples, validation_size, seed):
    """`(train_indices, validation_indices)`: a fixed-seed random split of `range(num_examples)`."""
    if not 0 <= validation_size < num_examples:
        raise ValueError(
            f"validation_size must be in [0, {num_examples}) for {num_examples} training "
            f"examples; got {validation_size}."
        )
    order = np.random.default_rng([int(seed), 2**31 - 1]).permutation(num_examples)
    return np.sort(order[validation_size:]), np.sort(order[:validation_size])


class SpecBacked:
    """The facts every dataset exposes, read from its `spec`."""

    spec: DatasetSpec

    @property
    def name(self):
        return self.spec.name

    @property
    def num_classes(self):
        return self.spec.num_classes

    @property
    def input_shape(self):
        return self.spec.input_shape

    @property
    def split_sizes(self):
        return self.spec.split_sizes

    def steps_per_epoch(self, batch_size):
        """Training steps per epoch (full batches only)."""
        return self.split_sizes["train"] // batch_size


class ArrayDataset(SpecBacked):
    """A dataset held in memory as numpy arrays, one `(x, y)` pair per split.

    `x` is stored raw (uint8 images, int32 token ids or float32 features); `arrays()` returns it
    preprocessed for evaluation (float32, normalized). No TensorFlow is needed except for
    `tf_dataset`.
    """

    def __init__(self, spec, splits):
        self.spec = spec
        self._splits = {}
        for split in SPLITS:
            x, y = splits.get(split, (None, None))
            if x is None:
                x = np.zeros((0,) + tuple(spec.input_shape), dtype=np.float32)
                y = np.zeros((0,), dtype=np.int32)
            if len(x) != len(y):
                raise ValueError(
                    f"Dataset {spec.name!r}, split {split!r}: {len(x)} inputs but {len(y)} labels."
                )
            y = check_labels(y, spec.num_classes, spec.name, split).astype(np.int32)
            self._splits[split] = (x, y)

    def raw_arrays(self, split):
        """`(x, y)` exactly as stored."""
        return self._splits[check_split(split)]

    def arrays(self, split):
        """`(x, y)` preprocessed for evaluation: float32 inputs (normalized images), int32 labels."""
        x, y = self.raw_arrays(split)
        return preprocessing.normalize(x, self.spec, preprocessing.NUMPY), y

    def numpy_batches(self, split, batch_size, seed=0, epoch=0, training=None):
        """Yields `(x, y)` numpy batches, in `epoch_order` when training (the default for train).

        Training batches are full (the remainder is dropped); evaluation batches cover every
        example in order. No augmentation: this path needs no TensorFlow.
        """
        training = (split == "train") if training is None else training
        x, y = self.arrays(split)
        if training:
            order = epoch_order(len(y), seed, epoch)
            stop = len(order) - len(order) % batch_size
            for start in range(0, stop, batch_size):
                index = order[start:start + batch_size]
                yield x[index], y[index]
        else:
            for start in range(0, len(y), batch_size):
                yield x[start:start + batch_size], y[start:start + batch_size]

    def tf_dataset(self, split, batch_size, seed=0, first_epoch=0, num_epochs=1, training=None):
        """A `tf.data.Dataset`; see `tc.data.pipeline.array_pipeline`."""
        from tc.data import pipeline

        return pipeline.array_pipeline(self, split, batch_size, seed=seed,
                                       first_epoch=first_epoch, num_epochs=num_epochs,
                                       training=training)

