"""`tc.data.preprocessing`: one normalization and one augmentation for every input path."""

import keras
import numpy as np
import pytest

from tc.data import base, preprocessing


def spec(family, channels=3):
    return base.DatasetSpec("images", 10, (8, 8, channels), {}, family,
                            mean=(0.5,) * channels, std=(0.25,) * channels)


def test_normalization_is_the_per_channel_closed_form():
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    normalized = preprocessing.normalize(images, spec("mnist"), preprocessing.NUMPY)
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized, (images / 255.0 - 0.5) / 0.25, rtol=1e-6, atol=1e-6)


def test_without_statistics_integers_stay_and_floats_become_float32():
    plain = base.DatasetSpec("text", 2, (5,), {}, "text")
    tokens = np.arange(10, dtype=np.int32).reshape(2, 5)
    assert preprocessing.normalize(tokens, plain, preprocessing.NUMPY) is tokens
    features = np.ones((2, 5), np.float64)
    assert preprocessing.normalize(features, plain, preprocessing.NUMPY).dtype == np.float32


def test_draws_depend_on_seed_epoch_and_step_alone():
    cifar = spec("cifar")
    first = preprocessing.augmentation_draws(64, 3, 2, 5, cifar)
    again = preprocessing.augmentation_draws(64, 3, 2, 5, cifar)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    for other in ((4, 2, 5), (3, 3, 5), (3, 2, 6)):
        assert not np.array_equal(preprocessing.augmentation_draws(64, *other, cifar)[0],
                                  first[0])
    offsets, flips = first
    assert offsets.min() >= 0 and offsets.max() <= 2 * preprocessing.PAD and flips.any()
    assert not preprocessing.augmentation_draws(64, 3, 2, 5, spec("svhn"))[1].any()


def test_pad_crop_flip_is_a_shift_with_zero_fill_and_a_mirror():
    image = np.arange(1, 8 * 8 * 1 + 1, dtype=np.float32).reshape(1, 8, 8, 1)
    offsets = np.array([[4 + 1, 4 - 2]], np.int32)  # down 1 row, left 2 columns... shifted view
    moved = preprocessing.pad_crop_flip(image, offsets, np.array([False]), preprocessing.NUMPY)
    # output[r, c] = padded[r + 5, c + 2] = image[r + 1, c - 2] where inside, else 0
    expected = np.zeros_like(image)
    expected[0, :7, 2:] = image[0, 1:, :6]
    np.testing.assert_array_equal(moved, expected)
    mirrored = preprocessing.pad_crop_flip(image, np.full((1, 2), 4, np.int32),
                                           np.array([True]), preprocessing.NUMPY)
    np.testing.assert_array_equal(mirrored, image[:, :, ::-1])


def test_keras_ops_and_numpy_make_the_same_batch():
    cifar = spec("cifar")
    images = np.random.default_rng(1).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    offsets, flips = preprocessing.augmentation_draws(16, 0, 0, 0, cifar)
    expected = preprocessing.training_batch(images, offsets, flips, cifar, preprocessing.NUMPY)
    got = preprocessing.training_batch(keras.ops.convert_to_tensor(images), offsets, flips,
                                       cifar, preprocessing.keras_ops())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data's library")
def test_tensorflow_ops_make_the_same_batch():
    import tensorflow as tf

    cifar = spec("cifar")
    images = np.random.default_rng(2).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    offsets, flips = preprocessing.augmentation_draws(16, 1, 1, 1, cifar)
    expected = preprocessing.training_batch(images, offsets, flips, cifar, preprocessing.NUMPY)
    got = preprocessing.training_batch(tf.constant(images), tf.constant(offsets),
                                       tf.constant(flips), cifar,
                                       preprocessing.tensorflow_ops())
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)
