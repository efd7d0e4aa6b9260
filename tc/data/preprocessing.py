"""One normalization and one augmentation per preprocessing family, for every input path.

The numpy path (`ArrayDataset.arrays`), the device stream (`keras.ops`, on the accelerator) and
`tf.data` call these same functions, each with its own array library (`NUMPY`, `KERAS_OPS`,
`tensorflow_ops()`):

    normalize:  x -> (x / 255 - mean) / std   per channel, with the dataset's own statistics
    augment:    a random translation by up to PAD pixels (zero padding, then a crop back to the
                original size) and, for families that flip, a horizontal flip with probability 1/2

The augmentation's random numbers are drawn once, in numpy, from `(seed, epoch, step)`
(`augmentation_draws`), so every path makes the same images from the same seed, and a resumed
run makes the batches an uninterrupted one would have made. A dataset's `spec.augmentation` says
which: "pad_crop_flip", "pad_crop" or "none"; "default" is its family's, `FAMILY_AUGMENTATION`
(cifar pads, crops and flips; svhn pads and crops, since digits must not be mirrored; others
none). ImageNet's random-resized crop is streamed through `tf.data` only (`tc.data.pipeline`).
"""

import types

import numpy as np

__all__ = ["augmentation", "augmentation_draws", "AUGMENTATIONS", "augments",
           "FAMILY_AUGMENTATION", "keras_ops", "normalize", "NUMPY", "PAD", "pad_crop_flip",
           "tensorflow_ops", "training_batch"]

PAD = 4
AUGMENTATIONS = ("none", "pad_crop", "pad_crop_flip")
FAMILY_AUGMENTATION = {"cifar": "pad_crop_flip", "svhn": "pad_crop"}

NUMPY = types.SimpleNamespace(
    cast=lambda x, dtype: np.asarray(x, dtype), pad=np.pad, arange=np.arange,
    take_along_axis=np.take_along_axis, where=np.where, flip=np.flip)


def keras_ops():
    """The `keras.ops` array library (JAX, PyTorch or TensorFlow tensors)."""
    from keras import ops

    return types.SimpleNamespace(cast=ops.cast, pad=ops.pad, arange=ops.arange,
                                 take_along_axis=ops.take_along_axis, where=ops.where,
                                 flip=ops.flip)


def tensorflow_ops():
    """TensorFlow's array library, for `tf.data` graphs on any Keras backend."""
    import tensorflow as tf

    tnp = tf.experimental.numpy
    return types.SimpleNamespace(cast=tf.cast, pad=tf.pad, arange=tnp.arange,
                                 take_along_axis=tnp.take_along_axis, where=tnp.where,
                                 flip=tnp.flip)


def normalize(x, spec, xp):
    """`x` preprocessed for the model: images `(x / 255 - mean) / std` in float32.

    Without statistics in `spec` (token ids, features), integers stay as they are and floats
    become float32.
    """
    if spec.mean is None:
        return x if "int" in str(x.dtype) else xp.cast(x, "float32")
    x = xp.cast(x, "float32") / 255.0
    return (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)


def augmentation(spec):
    """`spec`'s training augmentation: "none", "pad_crop" or "pad_crop_flip"."""
    if spec.augmentation == "default":
        return FAMILY_AUGMENTATION.get(spec.preprocessing, "none")
    return spec.augmentation


def augments(spec):
    """Whether `spec`'s training batches are augmented."""
    return augmentation(spec) != "none"


def augmentation_draws(batch_size, seed, epoch, step, spec):
    """`(offsets, flips)` of one training step: `(B, 2)` int32 translations in `[0, 2 * PAD]`
    (row, column) and `(B,)` booleans, from `(seed, epoch, step)` alone."""
    rng = np.random.default_rng([int(seed), int(epoch), int(step), 0xA5])
    offsets = rng.integers(0, 2 * PAD + 1, size=(batch_size, 2), dtype=np.int32)
    flips = rng.random(batch_size) < 0.5
    if augmentation(spec) != "pad_crop_flip":
        flips[:] = False
    return offsets, flips


def pad_crop_flip(images, offsets, flips, xp):
    """The batch `images` `(B, H, W, C)` translated by `offsets` and flipped where `flips`."""
    height, width = int(images.shape[1]), int(images.shape[2])
    padded = xp.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    rows = offsets[:, :1] + xp.arange(height, dtype="int32")[None, :]
    columns = offsets[:, 1:] + xp.arange(width, dtype="int32")[None, :]
    cropped = xp.take_along_axis(padded, rows[:, :, None, None], axis=1)
    cropped = xp.take_along_axis(cropped, columns[:, None, :, None], axis=2)
    return xp.where(flips[:, None, None, None], xp.flip(cropped, axis=2), cropped)


def training_batch(images, offsets, flips, spec, xp):
    """A gathered training batch, augmented (when its family is) and normalized."""
    if augments(spec):
        images = pad_crop_flip(images, offsets, flips, xp)
    return normalize(images, spec, xp)
