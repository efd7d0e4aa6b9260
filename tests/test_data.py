"""The dataset registry: TFDS loaders under tfds.testing.mock_data, and the in-memory sets."""

import json
import socket
import time

import keras
import numpy as np
import pytest

import tc
from tc import data
from tc.data import preprocessing, tfds_source
from tests.support import run_python

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

TFDS_NAMES = ("cifar10", "cifar100", "svhn_cropped", "mnist", "fashion_mnist", "imagenet2012",
              "imdb_reviews", "tfds:kmnist")
EXPECTED = {  # name: (input shape, input dtype, classes)
    "cifar10": ((32, 32, 3), "float32", 10), "cifar100": ((32, 32, 3), "float32", 100),
    "svhn_cropped": ((32, 32, 3), "float32", 10), "mnist": ((28, 28, 1), "float32", 10),
    "fashion_mnist": ((28, 28, 1), "float32", 10), "tfds:kmnist": ((28, 28, 1), "float32", 10),
    "imagenet2012": ((224, 224, 3), "float32", 1000), "imdb_reviews": ((16,), "int32", 2),
}


def mock_load(name, tmp_path, num_examples=48, **options):
    options.setdefault("validation_size", 16)
    text = {"vocab_size": 64, "sequence_length": 16}
    options.update({key: value for key, value in text.items() if key in data.options(name)})
    with tfds.testing.mock_data(num_examples=num_examples):
        return data.load(name, data_dir=str(tmp_path), **options)


@pytest.mark.parametrize("name", TFDS_NAMES)
def test_tfds_datasets_yield_well_formed_batches_for_every_split(name, tmp_path):
    with tfds.testing.mock_data(num_examples=48):
        dataset = mock_load(name, tmp_path)
        input_shape, dtype, num_classes = EXPECTED[name]
        assert dataset.input_shape == input_shape and dataset.num_classes == num_classes
        assert dataset.split_sizes["validation"] == 16
        for split in ("train", "validation", "test"):
            batches = list(dataset.tf_dataset(split, batch_size=8, seed=3).take(2))
            assert len(batches) == 2, split
            for x, y in batches:
                assert tuple(x.shape) == (8,) + input_shape, split
                assert x.dtype.name == dtype and y.dtype.name == "int32", split
                labels = y.numpy()
                assert labels.min() >= 0 and labels.max() < num_classes, split
                assert np.all(np.isfinite(x.numpy())), split


def test_in_memory_tfds_split_sizes_add_up(tmp_path):
    dataset = mock_load("cifar10", tmp_path, num_examples=40, validation_size=10)
    assert dataset.split_sizes == {"train": 30, "validation": 10, "test": 40}
    train_x, _ = dataset.raw_arrays("train")
    validation_x, _ = dataset.raw_arrays("validation")
    assert train_x.dtype == np.uint8  # stored raw; normalized in the pipeline


def images_by_position(dataset, split, **kwargs):
    return np.concatenate([x.numpy() for x, _ in dataset.tf_dataset(split, 8, **kwargs)])


def test_augmentation_changes_training_images_only(tmp_path):
    dataset = mock_load("cifar10", tmp_path, num_examples=64, validation_size=16)
    raw_x, _ = dataset.arrays("train")  # normalized, unaugmented
    order = data.epoch_order(len(raw_x), seed=5, epoch=0)
    augmented = images_by_position(dataset, "train", seed=5)
    unaugmented = raw_x[order[:len(augmented)]]
    changed = [not np.allclose(a, u) for a, u in zip(augmented, unaugmented)]
    assert sum(changed) > len(changed) // 2
    for split in ("validation", "test"):
        np.testing.assert_allclose(images_by_position(dataset, split), dataset.arrays(split)[0],
                                   rtol=1e-6, atol=1e-6)


def test_svhn_is_cropped_but_never_flipped(tmp_path):
    dataset = mock_load("svhn_cropped", tmp_path, num_examples=64)
    raw_x, _ = dataset.arrays("train")
    order = data.epoch_order(len(raw_x), seed=0, epoch=0)
    augmented = images_by_position(dataset, "train", seed=0)
    for image, source in zip(augmented, raw_x[order]):
        # The center of every output is a shifted window of its source, never a mirrored one.
        assert any(np.allclose(image[4:28, 4:28], source[4 - dy:28 - dy, 4 - dx:28 - dx],
                               atol=1e-5)
                   for dy in range(-4, 5) for dx in range(-4, 5))


def labels_in_order(dataset, **kwargs):
    return np.concatenate([y.numpy() for _, y in dataset.tf_dataset("train", 4, **kwargs)])


def test_epoch_order_is_a_function_of_seed_and_epoch(tmp_path):
    dataset = data.load("digits")
    first = labels_in_order(dataset, seed=1, num_epochs=2)
    again = labels_in_order(dataset, seed=1, num_epochs=2)
    np.testing.assert_array_equal(first, again)
    per_epoch = len(first) // 2
    assert not np.array_equal(first[:per_epoch], first[per_epoch:])
    assert not np.array_equal(first, labels_in_order(dataset, seed=2, num_epochs=2))
    resumed = labels_in_order(dataset, seed=1, first_epoch=1, num_epochs=1)
    np.testing.assert_array_equal(resumed, first[per_epoch:])
    numpy_path = np.concatenate([y for _, y in dataset.numpy_batches("train", 4, seed=1,
                                                                      epoch=1)])
    np.testing.assert_array_equal(numpy_path, first[per_epoch:])


def test_augmented_streams_are_reproducible(tmp_path):
    dataset = mock_load("cifar10", tmp_path, num_examples=32)
    np.testing.assert_array_equal(images_by_position(dataset, "train", seed=4),
                                  images_by_position(dataset, "train", seed=4))


def test_imagenet_order_is_reproducible_and_resumable(tmp_path):
    with tfds.testing.mock_data(num_examples=24):
        dataset = data.load("imagenet2012", data_dir=str(tmp_path), validation_size=4,
                            shuffle_buffer=8)
        two_epochs = np.concatenate(
            [x.numpy() for x, _ in dataset.tf_dataset("train", 4, seed=2, num_epochs=2)])
        again = np.concatenate(
            [x.numpy() for x, _ in dataset.tf_dataset("train", 4, seed=2, num_epochs=2)])
        second = np.concatenate(
            [x.numpy() for x, _ in dataset.tf_dataset("train", 4, seed=2, first_epoch=1)])
    np.testing.assert_array_equal(two_epochs, again)
    np.testing.assert_array_equal(second, two_epochs[len(second):])
    assert not np.array_equal(two_epochs[:len(second)], second)


class NetworkBlocked(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise NetworkBlocked("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name", [name for name in TFDS_NAMES if ":" not in name])
def test_missing_dataset_fails_fast_with_the_prepare_command(name, tmp_path, no_network):
    start = time.monotonic()
    with pytest.raises(data.DatasetNotPreparedError) as error:
        data.load(name, data_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert name in message and str(tmp_path) in message
    assert f"tfds build {name} --data_dir={tmp_path}" in message
    if name == "imagenet2012":
        assert "ILSVRC2012_img_train.tar" in message


def test_data_dir_comes_from_tfds_data_dir(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "from_env"))
    with pytest.raises(data.DatasetNotPreparedError, match="from_env"):
        data.load("mnist")


def test_out_of_range_labels_are_caught_at_load_time(tmp_path):
    def bad_labels(self, split, **kwargs):
        del self, split, kwargs
        return tf.data.Dataset.from_tensor_slices({
            "image": np.zeros((12, 32, 32, 3), np.uint8),
            "label": np.array([0, 1, 12] * 4, np.int64),
            "id": np.array([b"x"] * 12),
        })

    with tfds.testing.mock_data(as_dataset_fn=bad_labels):
        with pytest.raises(ValueError, match=r"outside \[0, 10\).*12"):
            data.load("cifar10", data_dir=str(tmp_path), validation_size=2)
    spec = data.DatasetSpec("toy", 3, (2,), {})
    with pytest.raises(ValueError, match=r"'toy'.*'test'.*\[-1\]"):
        data.ArrayDataset(spec, {"test": (np.zeros((2, 2), np.float32), np.array([0, -1]))})


def test_imdb_vocabulary_is_fitted_on_train_only(tmp_path):
    texts = {"train": [b"good movie", b"bad movie", b"great film"] * 4,
             "test": [b"unseenword good"] * 4}

    def reviews(self, split, **kwargs):
        del self, kwargs
        split_texts = texts[str(split)]
        return tf.data.Dataset.from_tensor_slices({
            "text": np.array(split_texts), "label": np.arange(len(split_texts)) % 2})

    with tfds.testing.mock_data(as_dataset_fn=reviews):
        dataset = data.load("imdb_reviews", data_dir=str(tmp_path), validation_size=0,
                            vocab_size=100, sequence_length=4)
    test_tokens, _ = dataset.arrays("test")
    train_tokens, _ = dataset.arrays("train")
    assert test_tokens[0, 0] == 1  # "unseenword" is out of vocabulary
    assert test_tokens[0, 1] in train_tokens  # "good" was learned from train
    assert test_tokens[0, 2] == 0  # padded to sequence_length


def test_in_memory_sets_report_their_shapes():
    digits = data.load("digits")
    assert (digits.num_classes, digits.input_shape) == (10, (8, 8, 1))
    assert sum(digits.split_sizes.values()) == 1797
    x, y = digits.arrays("train")
    assert x.shape == (digits.split_sizes["train"], 8, 8, 1) and x.max() <= 1.0
    _, test_y = digits.arrays("test")
    np.testing.assert_allclose(np.bincount(y) / len(y), np.bincount(test_y) / len(test_y),
                               atol=0.01)  # stratified splits
    synthetic = data.load("synthetic", num_classes=4, dimension=6, samples=100)
    assert synthetic.input_shape == (6,) and synthetic.split_sizes["train"] == 100


def test_synthetic_options_do_what_they_say():
    clean = data.load("synthetic", label_noise=0.0, data_seed=3)
    noisy = data.load("synthetic", label_noise=0.3, data_seed=3)
    _, clean_y = clean.arrays("train")
    _, noisy_y = noisy.arrays("train")
    assert 0.25 < np.mean(clean_y != noisy_y) < 0.35
    np.testing.assert_array_equal(clean.arrays("test")[1], noisy.arrays("test")[1])
    shift = data.load("synthetic_shift")
    assert shift.input_shape == clean.input_shape
    assert not np.allclose(shift.arrays("train")[0].mean(0), clean.arrays("train")[0].mean(0))
    far = data.load("synthetic", separation=8.0)
    x, y = far.arrays("train")
    means = np.stack([x[y == c].mean(0) for c in range(10)])
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 8.0, rtol=0.1)


def test_synthetic_images_are_cifar_shaped_uint8_and_learnable():
    images = data.load("synthetic_images", samples=600, validation_samples=0, test_samples=200)
    raw, labels = images.raw_arrays("train")
    assert raw.dtype == np.uint8 and raw.shape == (600, 32, 32, 3)
    assert images.split_sizes == {"train": 600, "validation": 0, "test": 200}
    x, _ = images.arrays("train")  # normalized with mean 0.5, std 0.25
    np.testing.assert_allclose(x, (raw / 255.0 - 0.5) / 0.25, rtol=1e-5, atol=1e-5)
    # Nearest class mean of the training images classifies test images: the classes are real.
    means = np.stack([x[labels == c].mean(0) for c in range(10)])
    test_x, test_y = images.arrays("test")
    distances = ((test_x[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4))
    assert np.mean(distances.argmin(1) == test_y) > 0.9
    large = data.load("synthetic_images", num_classes=1000, image_size=224, samples=4,
                      validation_samples=0, test_samples=1)
    assert large.input_shape == (224, 224, 3) and large.num_classes == 1000


@pytest.mark.parametrize("call, match", [
    (lambda: data.load("cifar11"), "valid datasets: digits"),
    (lambda: data.load("synthetic_images", image_size=0), "image_size"),
    (lambda: data.load("digits", batch=3), r"\['batch'\].*valid options"),
    (lambda: data.load("synthetic", label_noise=1.0), "label_noise"),
    (lambda: data.load("synthetic", num_classes=1), "num_classes"),
    (lambda: data.load("digits", validation_size=5000), "validation_size"),
    (lambda: data.load("digits").tf_dataset("train", 0), "batch_size"),
    (lambda: data.load("digits").tf_dataset("dev", 8), "valid splits"),
])
def test_bad_options_are_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_in_memory_sets_load_with_tensorflow_blocked():
    completed = run_python("""
        from tc import data
        for name, options in (("digits", {}), ("synthetic", {}), ("synthetic_shift", {}),
                              ("synthetic_images", {"samples": 64})):
            dataset = data.load(name, **options)
            x, y = next(dataset.numpy_batches("train", 32))
            print(name, dataset.input_shape, x.shape, int(y.max()) < dataset.num_classes)
    """, backend="jax", block_tensorflow=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "digits (8, 8, 1) (32, 8, 8, 1) True" in completed.stdout
    assert "synthetic (32,) (32, 32) True" in completed.stdout
    assert "synthetic_shift (32,) (32, 32) True" in completed.stdout
    assert "synthetic_images (32, 32, 3) (32, 32, 32, 3) True" in completed.stdout


def test_mlp_on_digits_reaches_95_percent_within_30_epochs():
    digits = data.load("digits")
    keras.utils.set_random_seed(0)
    model = tc.models.build("mlp", digits.input_shape, digits.num_classes)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=tc.losses.TemperatureCrossEntropy(beta=1.0), metrics=["accuracy"])
    model.fit(digits.tf_dataset("train", 64, seed=0, num_epochs=30), epochs=30,
              steps_per_epoch=digits.steps_per_epoch(64), shuffle=False, verbose=0)
    _, accuracy = model.evaluate(digits.tf_dataset("test", 256), verbose=0)
    assert accuracy >= 0.95


@pytest.mark.parametrize("name", ["digits", "synthetic_images", "mnist", "cifar10"])
def test_tf_data_batches_equal_the_numpy_path_in_epoch_order(tmp_path, name):
    if name in ("mnist", "cifar10"):
        dataset = mock_load(name, tmp_path, num_examples=40, validation_size=8)
    else:
        dataset = data.load(name, **({"samples": 40} if name == "synthetic_images" else {}))
    raw_x, y = dataset.raw_arrays("train")
    order = data.epoch_order(len(y), seed=3, epoch=1)[:len(y) - len(y) % 8]
    batches = list(dataset.tf_dataset("train", 8, seed=3, first_epoch=1))
    # numpy, with the random numbers of the same (seed, epoch, step): cifar10 is augmented
    expected = [preprocessing.training_batch(
        raw_x[order[step * 8:(step + 1) * 8]],
        *preprocessing.augmentation_draws(8, 3, 1, step, dataset.spec), dataset.spec,
        preprocessing.NUMPY) for step in range(len(order) // 8)]
    np.testing.assert_allclose(np.concatenate([b.numpy() for b, _ in batches]),
                               np.concatenate(expected), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([l.numpy() for _, l in batches]), y[order])
    assert preprocessing.augments(dataset.spec) == (name == "cifar10")
    test_x, test_y = dataset.arrays("test")
    batches = list(dataset.tf_dataset("test", 8))
    assert [len(l) for _, l in batches][:-1] == [8] * (len(batches) - 1)
    np.testing.assert_allclose(np.concatenate([b.numpy() for b, _ in batches]), test_x,
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([l.numpy() for _, l in batches]), test_y)


def test_a_missing_tfds_name_is_prepared_by_its_own_name(tmp_path, no_network):
    with pytest.raises(data.DatasetNotPreparedError, match=f"tfds build kmnist --data_dir={tmp_path}"):
        data.load("tfds:kmnist", data_dir=str(tmp_path))


def test_an_unknown_tfds_name_says_how_to_list_the_names(tmp_path, no_network):
    with pytest.raises(ValueError, match="no dataset 'no_such_set'.*list_builders"):
        data.load("tfds:no_such_set", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="tfds:<name>"):
        data.load("tfds:")


def test_tfds_any_normalizes_with_cached_training_statistics(tmp_path):
    dataset = mock_load("tfds:kmnist", tmp_path, num_examples=40, validation_size=8)
    raw, _ = dataset.raw_arrays("train")
    mean, std = raw.mean() / 255, raw.std() / 255
    assert dataset.spec.mean == pytest.approx((mean,)) and dataset.spec.std == pytest.approx((std,))
    normalized, _ = dataset.arrays("train")
    assert float(normalized.mean()) == pytest.approx(0.0, abs=1e-4)
    cached = list((tmp_path / tfds_source.STATISTICS_FOLDER).glob("kmnist-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["mean"] == pytest.approx([mean])


def test_class_subsets_relabel_and_a_probe_of_one_subset_on_the_other_runs(tmp_path):
    full = mock_load("cifar10", tmp_path, num_examples=200, validation_size=0)
    first = mock_load("cifar10", tmp_path, num_examples=200, validation_size=0,
                      classes=(3, 1, 7))
    _, labels = full.raw_arrays("train")
    kept = np.isin(labels, (3, 1, 7))
    assert first.num_classes == 3 and first.split_sizes["train"] == int(kept.sum())
    relabelled = np.array([{3: 0, 1: 1, 7: 2}[label] for label in labels[kept]])
    np.testing.assert_array_equal(first.raw_arrays("train")[1], relabelled)
    np.testing.assert_array_equal(first.raw_arrays("train")[0], full.raw_arrays("train")[0][kept])
    with pytest.raises(ValueError, match="classes=.*distinct integers in \\[0, 10\\)"):
        mock_load("cifar10", tmp_path, classes=(1, 1))


def test_the_prepare_command_reaches_the_download_with_every_import_in_place(tmp_path,
                                                                             monkeypatch):
    from tc.data import prepare

    class ReachedTheNetwork(Exception):
        pass

    def stop(*args, **kwargs):
        raise ReachedTheNetwork

    for method in ("download", "download_and_extract"):
        monkeypatch.setattr(tfds.download.DownloadManager, method, stop)
    with pytest.raises(ReachedTheNetwork):
        prepare.main(["fashion_mnist", f"--data_dir={tmp_path}"])
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(["tfds:no_such_set", f"--data_dir={tmp_path}"])
    assert exit_info.value.code == 1
