"""`synthetic` and `synthetic_shift`: Gaussian-mixture classification, in memory, numpy only.

Task `k` has `num_classes` class means `mu_c = separation * u_c`, with `u_c` random unit vectors
in `R^dimension` drawn from `task_seed`; an example of class `c` is `x = mu_c + N(0, I)`. So
`separation` is the distance of each mean from the origin, in units of the noise scale.
A fraction `label_noise` of training and validation labels is replaced by a different random
class; test labels stay clean.

`synthetic_shift` is the same input space with a different class structure (another
`task_seed`, hence other means): the out-of-distribution task for paper 3's linear probes.
"""

import numpy as np

from tc.data import base

__all__ = ["class_means", "load", "load_images", "load_shift"]


def class_means(num_classes, dimension, separation, task_seed):
    directions = np.random.default_rng([int(task_seed), 0]).standard_normal((num_classes, dimension))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return separation * directions


def _check(name, value, low, integer=True):
    kind = int if integer else float
    if (integer and (isinstance(value, bool) or not isinstance(value, (int, np.integer)))) or (
        not np.isfinite(value) or value < low):
        raise ValueError(f"synthetic: `{name}` must be a {kind.__name__} >= {low}; got {value!r}.")


def load(num_classes=10, dimension=32, samples=5000, validation_samples=1000,
         test_samples=2000, separation=3.0, label_noise=0.0, task_seed=0, data_seed=0,
         name="synthetic"):
    """Samples a Gaussian-mixture task as an `ArrayDataset`.

    Args:
        num_classes: classes (>= 2).
        dimension: input dimension.
        samples, validation_samples, test_samples: examples per split.
        separation: norm of each class mean, in noise standard deviations.
        label_noise: in [0, 1): the share of train/validation labels flipped to another class.
        task_seed: fixes the class means (the task).
        data_seed: fixes the examples drawn from the task and the label flips.
        name: the registry name reported in the spec.
    """
    _check("num_classes", num_classes, 2)
    _check("dimension", dimension, 1)
    _check("samples", samples, 1)
    _check("validation_samples", validation_samples, 0)
    _check("test_samples", test_samples, 1)
    _check("separation", separation, 0.0, integer=False)
    if not 0.0 <= label_noise < 1.0:
        raise ValueError(f"synthetic: `label_noise` must be in [0, 1); got {label_noise!r}.")
    means = class_means(num_classes, dimension, separation, task_seed)

    def draw(count, stream, noisy):
        # Independent streams per split (and for the noise), so options never shift other splits.
        rng = np.random.default_rng([int(task_seed), int(data_seed), stream])
        labels = rng.integers(0, num_classes, count).astype(np.int32)
        inputs = (means[labels] + rng.standard_normal((count, dimension))).astype(np.float32)
        if noisy and label_noise > 0:
            noise_rng = np.random.default_rng([int(task_seed), int(data_seed), stream, 1])
            flip = noise_rng.random(count) < label_noise
            shift = noise_rng.integers(1, num_classes, count)
            labels = np.where(flip, (labels + shift) % num_classes, labels).astype(np.int32)
        return inputs, labels

    splits = {"train": draw(samples, 1, True), "validation": draw(validation_samples, 2, True),
              "test": draw(test_samples, 3, False)}
    spec = base.DatasetSpec(
        name=name, num_classes=num_classes, input_shape=(dimension,),
        split_sizes={split: len(y) for split, (_, y) in splits.items()},
    )
    return base.ArrayDataset(spec, splits)


def load_shift(num_classes=10, dimension=32, samples=5000, validation_samples=1000,
               test_samples=2000, separation=3.0, label_noise=0.0, task_seed=1, data_seed=0):
    """The OOD counterpart of `synthetic`: same input space, other class means (`task_seed=1`).

    Takes the options of `load`, with the same defaults except `task_seed`.
    """
    return load(num_classes, dimension, samples, validation_samples, test_samples, separation,
                label_noise, task_seed, data_seed, name="synthetic_shift")


def load_images(num_classes=10, image_size=32, channels=3, samples=50000, validation_samples=1000,
                test_samples=1000, noise=48.0, data_seed=0):
    """CIFAR-shaped synthetic images, held in memory as uint8: GPU runs and benchmarks offline.

    Class `c` has a random template image; an example is its class template plus Gaussian pixel
    noise of standard deviation `noise` (in 0..255 units), rounded and clipped to uint8. The
    defaults match CIFAR-10's shapes and training-set size (50,000 32x32x3 images, 10 classes).
    Images are normalized to mean 0.5, std 0.25 per channel and not augmented.
    """
    _check("num_classes", num_classes, 2)
    _check("image_size", image_size, 1)
    _check("channels", channels, 1)
    _check("samples", samples, 1)
    _check("validation_samples", validation_samples, 0)
    _check("test_samples", test_samples, 1)
    _check("noise", noise, 0.0, integer=False)
    shape = (image_size, image_size, channels)
    templates = np.random.default_rng([7, num_classes]).integers(32, 224, (num_classes, *shape))

    def draw(count, stream):
        rng = np.random.default_rng([int(data_seed), stream])
        labels = rng.integers(0, num_classes, count).astype(np.int32)
        images = np.empty((count, *shape), np.uint8)
        for start in range(0, count, 4096):  # in chunks: float noise for 50k images is 1.2 GB
            chunk = labels[start:start + 4096]
            pixels = templates[chunk] + noise * rng.standard_normal((len(chunk), *shape))
            images[start:start + 4096] = np.clip(np.rint(pixels), 0, 255)
        return images, labels

    splits = {"train": draw(samples, 1), "validation": draw(validation_samples, 2),
              "test": draw(test_samples, 3)}
    spec = base.DatasetSpec(
        name="synthetic_images", num_classes=num_classes, input_shape=shape,
        split_sizes={split: len(y) for split, (_, y) in splits.items()},
        mean=(0.5,) * channels, std=(0.25,) * channels,
    )
    return base.ArrayDataset(spec, splits)
