"""tc.data.device_stream: training batches made on the device, against numpy references."""

import numpy as np
import pytest
from keras import ops

from tc import data
from tc.data import base, device_stream, preprocessing


def batches(stream, count):
    iterator = iter(stream)
    return [tuple(ops.convert_to_numpy(part) for part in next(iterator)) for _ in range(count)]


def test_unaugmented_batches_equal_the_numpy_batches_in_epoch_order():
    dataset = data.load("digits")
    steps = dataset.steps_per_epoch(64)
    stream = device_stream.DeviceStream(dataset, 64, seed=3, first_epoch=1, last_epoch=3)
    made = batches(stream, 2 * steps)
    expected = [*dataset.numpy_batches("train", 64, seed=3, epoch=1),
                *dataset.numpy_batches("train", 64, seed=3, epoch=2)]
    assert len(made) == len(expected)
    for (x, y), (want_x, want_y) in zip(made, expected):
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_allclose(x, want_x, rtol=1e-6, atol=1e-6)


def images_dataset(preprocessing, count=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, count).astype(np.int32)
    spec = base.DatasetSpec(name="tiny", num_classes=4, input_shape=(8, 8, 3),
                            split_sizes={"train": count, "validation": 0, "test": count},
                            preprocessing=preprocessing, mean=(0.5,) * 3, std=(0.25,) * 3)
    return base.ArrayDataset(spec, {"train": (images, labels), "test": (images, labels)})


def numpy_translations(image, flips):
    """Every crop of the 4-pixel zero-padded image (and its mirror images, with `flips`)."""
    padded = np.pad(image, [(4, 4), (4, 4), (0, 0)])
    height, width = image.shape[:2]
    crops = [padded[top:top + height, left:left + width]
             for top in range(9) for left in range(9)]
    return crops + [crop[:, ::-1] for crop in crops] if flips else crops


@pytest.mark.parametrize("family,flips", [("cifar", True), ("svhn", False)])
def test_augmented_images_are_translations_of_their_source(family, flips):
    dataset = images_dataset(family)
    raw_x, raw_y = dataset.raw_arrays("train")
    order = base.epoch_order(len(raw_y), 0, 0)
    (x, y), = batches(device_stream.DeviceStream(dataset, 16, 0, 0, 1), 1)
    np.testing.assert_array_equal(y, raw_y[order])
    moved = 0
    for image, source in zip(x, raw_x[order]):
        candidates = [preprocessing.normalize(c, dataset.spec, preprocessing.NUMPY)
                      for c in numpy_translations(source, flips)]
        distances = [np.abs(image - c).max() for c in candidates]
        assert min(distances) < 1e-5
        moved += distances[0] > 1e-5  # candidate 0 is the untranslated crop's top-left corner
    assert moved > 8  # 80 of 81 offsets move the image


def test_augmentation_is_reproducible_and_changes_with_the_epoch():
    dataset = images_dataset("cifar")
    first = batches(device_stream.DeviceStream(dataset, 8, 5, 0, 2), 4)
    again = batches(device_stream.DeviceStream(dataset, 8, 5, 0, 2), 4)
    resumed = batches(device_stream.DeviceStream(dataset, 8, 5, 1, 2), 2)
    for (x, _), (x_again, _) in zip(first, again):
        np.testing.assert_array_equal(x, x_again)
    for (x, _), (x_resumed, _) in zip(first[2:], resumed):
        np.testing.assert_array_equal(x, x_resumed)
    unaugmented = preprocessing.normalize(dataset.raw_arrays("train")[0], dataset.spec,
                                          preprocessing.NUMPY)
    order = base.epoch_order(16, 5, 0)
    assert not np.allclose(first[0][0], unaugmented[order[:8]])


def test_labels_are_repeated_for_each_output():
    dataset = data.load("digits")
    (x, labels), = batches(device_stream.DeviceStream(dataset, 32, 0, 0, 1,
                                                      labels_per_output=3), 1)
    assert len(labels) == 3 and x.shape == (32, *dataset.input_shape)
    for copy in labels:
        np.testing.assert_array_equal(copy, labels[0])


@pytest.mark.parametrize("family", ["cifar", "svhn"])
def test_stream_batches_equal_the_numpy_path_with_the_same_random_numbers(family):
    # The device stream (one compiled call on JAX) and numpy make the same augmented batch.
    dataset = images_dataset(family, count=32)
    stream = device_stream.DeviceStream(dataset, 16, seed=7, first_epoch=0, last_epoch=2)
    index = base.epoch_order(32, 7, 1)[16:32]
    x, y = (ops.convert_to_numpy(part) for part in stream.batch(1, 1, index))
    raw_x, raw_y = dataset.raw_arrays("train")
    offsets, flips = preprocessing.augmentation_draws(16, 7, 1, 1, dataset.spec)
    assert flips.any() == (family == "cifar")
    expected = preprocessing.training_batch(raw_x[index], offsets, flips, dataset.spec,
                                            preprocessing.NUMPY)
    np.testing.assert_array_equal(y, raw_y[index])
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
    other_x = ops.convert_to_numpy(stream.batch(1, 2, index)[0])
    assert not np.allclose(x, other_x)  # another step, other translations and flips


def test_a_stream_under_a_jax_distribution_lays_batches_out_for_it():
    # Under keras.distribution.DataParallel each device makes its share of the batch; the batch
    # is the one made without a distribution.
    import keras

    if keras.backend.backend() != "jax":  # TensorFlow's tc.train feeds tf.data instead
        from tc.runner import inputs

        assert not inputs.trains_on_device(images_dataset("cifar"))
        return
    import jax

    dataset = images_dataset("cifar", count=32)
    index = base.epoch_order(32, 7, 1)[:16]
    plain = device_stream.DeviceStream(dataset, 16, seed=7, first_epoch=0, last_epoch=2)
    want_x, want_y = (ops.convert_to_numpy(part) for part in plain.batch(1, 0, index))
    distribution = keras.distribution.DataParallel(devices=jax.devices("cpu")[:2])
    with distribution.scope():
        stream = device_stream.DeviceStream(dataset, 16, seed=7, first_epoch=0, last_epoch=2)
        x, y = stream.batch(1, 0, index)
        iterated_x, iterated_y = next(iter(stream))  # from the epoch's plan on the devices
    for part, want in zip((iterated_x, iterated_y), batches(plain, 1)[0]):
        assert part.sharding.is_equivalent_to(
            distribution.get_data_layout(part.shape).backend_layout, part.ndim)
        np.testing.assert_allclose(ops.convert_to_numpy(part), want, rtol=1e-6, atol=1e-6)
    assert len(stream.x.sharding.device_set) == 2 and stream.x.sharding.is_fully_replicated
    assert x.sharding.is_equivalent_to(distribution.get_data_layout(x.shape).backend_layout,
                                       x.ndim)
    np.testing.assert_array_equal(ops.convert_to_numpy(y), want_y)
    np.testing.assert_allclose(ops.convert_to_numpy(x), want_x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("family", ["cifar", "svhn"])
def test_iterated_batches_are_the_numpy_batches_of_each_step_drawn_alone(family):
    # Iterating sends each epoch's plan once; every step must still be the numpy batch of its
    # own (seed, epoch, step) draws and its slice of the epoch order, with the remainder
    # dropped (36 examples, batch 16: two steps an epoch).
    dataset = images_dataset(family, count=36)
    stream = device_stream.DeviceStream(dataset, 16, seed=11, first_epoch=2, last_epoch=4)
    made = batches(stream, 4)
    raw_x, raw_y = dataset.raw_arrays("train")
    position = 0
    for epoch in (2, 3):
        order = base.epoch_order(36, 11, epoch)
        for step in range(2):
            index = order[16 * step:16 * (step + 1)]
            offsets, flips = preprocessing.augmentation_draws(16, 11, epoch, step, dataset.spec)
            expected = preprocessing.training_batch(raw_x[index], offsets, flips, dataset.spec,
                                                    preprocessing.NUMPY)
            x, y = made[position]
            np.testing.assert_array_equal(y, raw_y[index])
            np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
            position += 1
    with pytest.raises(StopIteration):
        iterator = iter(stream)
        for _ in range(5):
            next(iterator)
