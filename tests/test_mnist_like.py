"""`fashion_mnist` and `mnist` from IDX files: the real Fashion-MNIST of Debian's
`dataset-fashion-mnist` (which CI installs), and hand-made MNIST-format folders."""

import gzip

import numpy as np
import pytest

from tc import data
from tc.data import idx, mnist_like
from tests.support import run_python
from tests.test_idx import raw_idx

# Real data, never skipped: .ci/run installs Debian's dataset-fashion-mnist.
FASHION = mnist_like.PACKAGED_DIRECTORIES["fashion_mnist"]


def tiny_idx_folder(folder, per_class=(30, 10), size=6, seed=0):
    """A folder of the four files: `per_class` train/test images of each of 10 classes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "test"), per_class):
        labels = np.repeat(np.arange(10, dtype=np.uint8), count)
        images = rng.integers(0, 256, (len(labels), size, size), dtype=np.uint8)
        images_stem, labels_stem = idx.SPLIT_FILES[split]
        (folder / f"{images_stem}.gz").write_bytes(gzip.compress(raw_idx(images)))
        (folder / f"{labels_stem}.gz").write_bytes(gzip.compress(raw_idx(labels)))
    return folder


@pytest.mark.backend_independent  # its subprocess runs under JAX whatever the leg
def test_fashion_mnist_loads_from_the_debian_files_with_tensorflow_blocked():
    completed = run_python(f"""
        import numpy as np
        from tc import data
        dataset = data.load("fashion_mnist", data_dir={FASHION!r})
        sizes = dataset.split_sizes
        _, test_labels = dataset.raw_arrays("test")
        x, _ = dataset.arrays("validation")
        print(sum(sizes.values()), sizes["validation"], dataset.input_shape,
              dataset.num_classes, sorted(set(np.bincount(test_labels).tolist())),
              dataset.raw_arrays("train")[0].dtype, abs(float(x.mean())) < 0.05)
        default = data.load("fashion_mnist")  # the packaged folder is the default
        print(default.split_sizes == sizes)
    """, backend="jax", block_tensorflow=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.split("\n")
    assert lines[0] == "70000 5000 (28, 28, 1) 10 [1000] uint8 True", lines
    assert lines[1] == "True"


def test_validation_sets_do_not_depend_on_the_run_seed(small_config):
    from tc.runner import inputs

    first, second = (inputs.load_dataset(small_config(dataset="fashion_mnist", seed=seed))
                     for seed in (0, 1))
    for split in ("train", "validation"):
        np.testing.assert_array_equal(first.raw_arrays(split)[1], second.raw_arrays(split)[1])
    np.testing.assert_array_equal(first.raw_arrays("validation")[0],
                                  second.raw_arrays("validation")[0])
    other = inputs.load_dataset(small_config(dataset="fashion_mnist",
                                             dataset_options="data_seed=1"))
    assert not np.array_equal(other.raw_arrays("validation")[1],
                              first.raw_arrays("validation")[1])


def test_idx_folder_splits_classes_and_statistics(tmp_path):
    folder = tiny_idx_folder(tmp_path / "mnist")
    dataset = data.load("mnist", data_dir=str(folder), validation_size=50)
    assert dataset.split_sizes == {"train": 250, "validation": 50, "test": 100}
    raw, _ = dataset.raw_arrays("train")
    assert dataset.spec.mean == pytest.approx((raw.mean() / 255,))
    assert dataset.spec.std == pytest.approx((raw.std() / 255,))
    assert dataset.spec.augmentation == "none"
    held_in = data.load("mnist", data_dir=str(folder), validation_size=0, classes=(0, 1, 2, 3, 4))
    held_out = data.load("mnist", data_dir=str(folder), validation_size=0,
                         classes=(5, 6, 7, 8, 9))
    for subset, first in ((held_in, 0), (held_out, 5)):
        assert subset.num_classes == 5 and subset.split_sizes["test"] == 50
        _, labels = subset.raw_arrays("test")
        assert sorted(set(labels.tolist())) == [0, 1, 2, 3, 4]
        full_test = dataset.raw_arrays("test")
        np.testing.assert_array_equal(subset.raw_arrays("test")[0],
                                      full_test[0][np.isin(full_test[1], range(first, first + 5))])


def test_augment_option_sets_the_training_augmentation(tmp_path):
    folder = tiny_idx_folder(tmp_path / "mnist")
    dataset = data.load("mnist", data_dir=str(folder), validation_size=0,
                        augment="pad_crop_flip")
    assert dataset.spec.augmentation == "pad_crop_flip"
    with pytest.raises(ValueError, match="augment='mirror'.*none, pad_crop, pad_crop_flip"):
        data.load("mnist", data_dir=str(folder), augment="mirror")


def test_a_missing_dataset_fails_fast_naming_both_ways(tmp_path):
    completed = run_python(f"""
        import time
        start = time.monotonic()
        from tc import data
        try:
            data.load("fashion_mnist", data_dir={str(tmp_path)!r})
        except data.DatasetNotPreparedError as error:
            print("seconds", time.monotonic() - start)
            print(error)
    """, backend="jax", block_tensorflow=True, timeout=60)
    assert completed.returncode == 0, completed.stderr[-3000:]
    seconds = float(completed.stdout.split("\n")[0].split()[1])
    assert seconds < 10
    message = completed.stdout
    assert "apt-get install dataset-fashion-mnist" in message
    assert f"tfds build fashion_mnist --data_dir={tmp_path}" in message
    assert str(tmp_path) in message


def test_a_probe_of_one_subset_on_the_other_runs(tmp_path, small_config):
    from tc.runner import assembly

    folder = tiny_idx_folder(tmp_path / "mnist", per_class=(40, 10), size=8)
    result = assembly.run_one(small_config(
        dataset="mnist", data_dir=str(folder), model="mlp", epochs=1, batch_size=20,
        validation_size=20, dataset_options="classes=0,1,2,3,4", rank_probe_size=32,
        probe_dataset="mnist", probe_dataset_options="classes=5,6,7,8,9", probe_size=100))
    assert result["status"] == "completed"
    probe = result["linear_probe"]
    assert probe["dataset"] == "mnist" and probe["train_examples"] == 100
    assert 0.0 <= probe["accuracy"] <= 1.0
    flags = (tmp_path / "run" / "flags.txt").read_text()
    assert "--probe_dataset_options=classes=5,6,7,8,9" in flags
