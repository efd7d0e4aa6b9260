"""`fashion_mnist` and `mnist`: 28x28 grayscale images in 10 classes, from IDX files or TFDS.

One name, two sources, tried in this order:
1. `data_dir` holding the four standard IDX files (`train-images-idx3-ubyte`,
   `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each gzipped
   or not): read with numpy alone (`tc.data.idx`), no TensorFlow;
2. `data_dir` (or `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`) holding TFDS's prepared
   dataset: read through `tc.data.tfds_source`;
3. with no `data_dir`, the directory Debian's package installs (`apt-get install
   dataset-fashion-mnist`: `/usr/share/datasets/fashion-mnist`) before TFDS's default.

A dataset found nowhere fails at once, naming both ways to prepare it. Either way the dataset is
held in memory as uint8 (trained through the device stream on JAX), normalized with the mean and
standard deviation of its own training split, and not augmented unless `augment` says so.
"""

import os

from tc.data import idx, images, tfds_source

__all__ = ["DEBIAN_PACKAGES", "how_to_prepare", "idx_directory", "load", "PACKAGED_DIRECTORIES"]

PACKAGED_DIRECTORIES = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
DEBIAN_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}


def idx_directory(name, data_dir):
    """The directory whose IDX files `load` reads, or None when it reads TFDS (see module)."""
    if data_dir:
        return os.path.expanduser(data_dir) if idx.holds_dataset(os.path.expanduser(data_dir)) \
            else None
    packaged = PACKAGED_DIRECTORIES.get(name)
    if packaged and idx.holds_dataset(packaged):
        return packaged
    return None


def how_to_prepare(name, data_dir):
    ways = []
    if name in DEBIAN_PACKAGES:
        ways.append(f"`apt-get install {DEBIAN_PACKAGES[name]}` (Debian/Ubuntu: IDX files in "
                    f"{PACKAGED_DIRECTORIES[name]}, read without TensorFlow)")
    ways.append("the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a folder passed as "
                "--data_dir")
    ways.append(f"`python -m tc.data.prepare {name} --data_dir={data_dir}` (TFDS's download; "
                f"or `tfds build {name} --data_dir={data_dir}` where apache_beam is installed) "
                "on a machine with internet access")
    return "Get it with " + "; or ".join(ways) + "."


def load(name, data_dir=None, validation_size=5000, data_seed=0, classes=None, augment="none",
         download=False):
    """Loads `name` (fashion_mnist or mnist) as an in-memory dataset.

    Args:
        name: "fashion_mnist" or "mnist".
        data_dir: a folder of IDX files or a TFDS data directory (see the module for the order).
        validation_size: training examples held out for validation, carved with `data_seed`.
        data_seed: fixes the validation carve, whatever the run's seed.
        classes: keep only these classes, relabelled 0..k-1 in the order given (e.g.
            `(0, 1, 2, 3, 4)`), for in-distribution / held-out-classes studies.
        augment: training augmentation: "none", "pad_crop" or "pad_crop_flip".
        download: let TFDS download the data (network).

    Raises:
        tc.data.DatasetNotPreparedError: found nowhere; the message names how to prepare it.
        ValueError: a bad option or a bad file, naming it.
    """
    directory = idx_directory(name, data_dir)
    if directory is not None:
        train = idx.read_split(directory, "train")
        test = idx.read_split(directory, "test")
    else:
        tfds_dir = tfds_source.resolve_data_dir(data_dir)
        where = (f"{data_dir} holds no IDX files, and" if data_dir else
                 f"{PACKAGED_DIRECTORIES.get(name, 'No packaged folder')} holds no IDX files, and")
        train, test = tfds_source.read_arrays(
            name, tfds_dir, ("image", "label"), download,
            hint=f"({where} TFDS found none in {tfds_dir}.) {how_to_prepare(name, tfds_dir)}")
    return images.from_arrays(name, train, test, validation_size, data_seed, classes, augment)
