"""In-memory image datasets from arrays: the one builder that the IDX files (`fashion_mnist`,
`mnist`) and TFDS image sets read whole (`tfds:<name>`) share."""

import numpy as np

from tc.data import base, preprocessing

__all__ = ["from_arrays"]


def from_arrays(name, train, test, validation_size, data_seed, classes, augment, num_classes=10,
                statistics=base.channel_statistics):
    """An `ArrayDataset` of `(N, H, W)` or `(N, H, W, C)` uint8 images and integer labels.

    `statistics(train_images)` gives the per-channel `(mean, std)` the images are normalized
    with (by default computed from the training split).
    """
    if augment not in preprocessing.AUGMENTATIONS:
        raise ValueError(f"augment={augment!r} is not valid; valid values: "
                         f"{', '.join(preprocessing.AUGMENTATIONS)}.")
    train, test = ((x[..., None] if x.ndim == 3 else x, np.asarray(y).astype(np.int32))
                   for x, y in (train, test))
    splits, num_classes = base.train_validation_test(train, test, num_classes, name,
                                                     validation_size, data_seed, classes)
    mean, std = statistics(splits["train"][0])
    spec = base.DatasetSpec(
        name=name, num_classes=num_classes, input_shape=tuple(splits["train"][0].shape[1:]),
        split_sizes={split: len(y) for split, (_, y) in splits.items()},
        preprocessing="mnist", mean=mean, std=std, augmentation=augment)
    return base.ArrayDataset(spec, splits)
