"""Far out-of-distribution image sets, shaped to a model's inputs (paper 3's far-OOD detection).

A far-OOD set shares nothing with the training distribution but the image format: it is made
at the in-distribution dataset's `(height, width, channels)` as raw uint8 pixels, so the run
normalizes it with the in-distribution statistics, as it would any test image.

- `digits`: scikit-learn's 1,797 bundled handwritten digits (8 x 8, 16 gray levels), resized
  to the model's size by bilinear interpolation (half-pixel centres, as `tf.image.resize` and
  `jax.image.resize` upsample) and repeated over the channels;
- `uniform_noise`: `NOISE_IMAGES` images whose pixels are drawn uniformly from 0..255 (seed 0).
"""

import numpy as np

__all__ = ["FAR_OOD_SETS", "NOISE_IMAGES", "check_names", "images", "resize_bilinear"]

FAR_OOD_SETS = ("digits", "uniform_noise")
NOISE_IMAGES = 2000


def check_names(names):
    """Returns `names` if each is a far-OOD set; else a ValueError naming the valid ones."""
    unknown = [name for name in names if name not in FAR_OOD_SETS]
    if unknown:
        raise ValueError(f"unknown far-OOD set {unknown[0]!r}; valid sets: "
                         f"{', '.join(FAR_OOD_SETS)}.")
    return tuple(names)


def _linear_weights(source, target):
    """`(lower, upper, weight)` per output coordinate: half-pixel-centre linear interpolation."""
    centres = (np.arange(target) + 0.5) * (source / target) - 0.5
    centres = np.clip(centres, 0.0, source - 1)
    lower = np.floor(centres).astype(int)
    upper = np.minimum(lower + 1, source - 1)
    return lower, upper, centres - lower


def resize_bilinear(images, height, width):
    """Images `(N, h, w, C)` resized to `(N, height, width, C)` by bilinear interpolation:
    output pixel `(i, j)` samples the input at `((i + 1/2) h / height - 1/2, ...)`, clamped to
    the border, weighting its 4 neighbours linearly (float64)."""
    images = np.asarray(images, np.float64)
    if images.ndim != 4 or height < 1 or width < 1:
        raise ValueError(f"resize_bilinear takes images (N, h, w, C) and a positive size; got "
                         f"shape {images.shape} and size {height} x {width}.")
    rows_low, rows_high, row_weight = _linear_weights(images.shape[1], height)
    cols_low, cols_high, col_weight = _linear_weights(images.shape[2], width)
    rows = (images[:, rows_low] * (1 - row_weight)[None, :, None, None]
            + images[:, rows_high] * row_weight[None, :, None, None])
    return (rows[:, :, cols_low] * (1 - col_weight)[None, None, :, None]
            + rows[:, :, cols_high] * col_weight[None, None, :, None])


def images(name, input_shape):
    """The far-OOD set `name` as uint8 images of `input_shape` `(height, width, channels)`."""
    check_names([name])
    if len(input_shape) != 3:
        raise ValueError(f"far-OOD set {name!r} needs image inputs (height, width, channels); "
                         f"the model takes {tuple(input_shape)}.")
    height, width, channels = (int(size) for size in input_shape)
    if name == "uniform_noise":
        return np.random.default_rng(0).integers(0, 256, (NOISE_IMAGES, height, width, channels),
                                                 dtype=np.uint8)
    from sklearn.datasets import load_digits

    gray = load_digits().images[..., None] * (255.0 / 16.0)
    resized = resize_bilinear(gray, height, width)
    return np.repeat(np.clip(np.rint(resized), 0, 255).astype(np.uint8), channels, axis=-1)
