"""The TFDS datasets of the papers: cifar10, cifar100, svhn_cropped, mnist, imagenet2012, imdb_reviews.

The small ones (all but ImageNet) are read once into memory as numpy arrays (`ArrayDataset`),
which makes the fixed-seed validation carve exact and every epoch's order a pure function of
(seed, epoch). ImageNet is streamed (`StreamingDataset`): its files are read in an order fixed by
the seed, the first `validation_size` training examples in that order form the validation split,
and each epoch reshuffles through a buffer seeded from (seed, epoch). ImageNet's own
`validation` split is the test set.

Nothing here touches the network unless `download=True`. A dataset that is not prepared under
`data_dir` (the argument, else `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`) raises
`DatasetNotPreparedError` at once, with the command that prepares it.

TensorFlow and TFDS are imported inside the functions, so `import tc.data` stays TF-free.
"""

import dataclasses
import os

import numpy as np

from tc.data import base

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
SVHN_MEAN, SVHN_STD = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class TfdsTable:
    """How one TFDS dataset is read and preprocessed."""

    num_classes: int
    input_shape: tuple
    preprocessing: str
    sizes: dict  # canonical TFDS split sizes, {"train": n, "test": n}
    test_split: str = "test"
    default_validation_size: int = 5000
    mean: tuple = None
    std: tuple = None


TABLES = {
    "cifar10": TfdsTable(10, (32, 32, 3), "cifar", {"train": 50_000, "test": 10_000},
                         mean=CIFAR10_MEAN, std=CIFAR10_STD),
    "cifar100": TfdsTable(100, (32, 32, 3), "cifar", {"train": 50_000, "test": 10_000},
                          mean=CIFAR100_MEAN, std=CIFAR100_STD),
    "svhn_cropped": TfdsTable(10, (32, 32, 3), "svhn", {"train": 73_257, "test": 26_032},
                              mean=SVHN_MEAN, std=SVHN_STD),
    "mnist": TfdsTable(10, (28, 28, 1), "mnist", {"train": 60_000, "test": 10_000},
                       mean=MNIST_MEAN, std=MNIST_STD),
    "imagenet2012": TfdsTable(1000, (224, 224, 3), "imagenet",
                              {"train": 1_281_167, "test": 50_000}, test_split="validation",
                              default_validation_size=10_000, mean=IMAGENET_MEAN,
                              std=IMAGENET_STD),
    "imdb_reviews": TfdsTable(2, (256,), "text", {"train": 25_000, "test": 25_000},
                              default_validation_size=2_500),
}


class DatasetNotPreparedError(FileNotFoundError):
    """A TFDS dataset is not prepared under the data directory; the message says how to fix it."""


def resolve_data_dir(data_dir):
    if data_dir:
        return os.path.expanduser(data_dir)
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def how_to_prepare(name, data_dir):
    if name == "imagenet2012":
        return (
            f"ImageNet needs a manual download: put ILSVRC2012_img_train.tar and "
            f"ILSVRC2012_img_val.tar into {data_dir}/downloads/manual/, then run "
            f"`tfds build imagenet2012 --data_dir={data_dir}`."
        )
    return (f"Prepare it with `tfds build {name} --data_dir={data_dir}` on a machine with "
            f"internet access (then copy the folder here), or pass download=True.")


def _builder(name, data_dir, download):
    """The TFDS builder, prepared; raises DatasetNotPreparedError instead of reaching the network."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    return builder


def _read(builder, name, data_dir, **as_dataset_kwargs):
    """`builder.as_dataset(...)`, with TFDS's missing-data assertion turned into our error."""
    try:
        return builder.as_dataset(**as_dataset_kwargs)
    except AssertionError as error:
        if "could not find data" not in str(error):
            raise
        raise DatasetNotPreparedError(
            f"Dataset {name!r} is not prepared in {data_dir}. {how_to_prepare(name, data_dir)}"
        ) from None


def _to_numpy(builder, name, data_dir, split, keys):
    """A whole split as numpy arrays, one per key."""
    import tensorflow_datasets as tfds

    dataset = _read(builder, name, data_dir, split=split, shuffle_files=False)
    chunks = {key: [] for key in keys}
    for batch in tfds.as_numpy(dataset.batch(10_000)):
        for key in keys:
            chunks[key].append(batch[key])
    return [np.concatenate(chunks[key]) if chunks[key] else np.zeros((0,)) for key in keys]


def load(name, data_dir=None, validation_size=None, seed=0, download=False, vocab_size=20_000,
         sequence_length=256, shuffle_buffer=10_000):
    """Loads a TFDS dataset of the papers.

    Args:
        name: one of `TABLES`.
        data_dir: where TFDS data live (default `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`).
        validation_size: training examples held out for validation (fixed by `seed`); defaults
            to 5,000 (10,000 for ImageNet, 2,500 for IMDB).
        seed: fixes the validation carve.
        download: allow TFDS to download and prepare the data (network).
        vocab_size, sequence_length: IMDB's `TextVectorization` (fitted on train only).
        shuffle_buffer: ImageNet's per-epoch shuffle buffer.

    Raises:
        DatasetNotPreparedError: the data are not under `data_dir`; the message says how to
            prepare them.
    """
    table = TABLES[name]
    data_dir = resolve_data_dir(data_dir)
    validation_size = (table.default_validation_size if validation_size is None
                       else int(validation_size))
    builder = _builder(name, data_dir, download)
    if name == "imagenet2012":
        return StreamingDataset(name, table, builder, data_dir, validation_size, seed,
                                shuffle_buffer)
    keys = ("text", "label") if table.preprocessing == "text" else ("image", "label")
    train_x, train_y = _to_numpy(builder, name, data_dir, "train", keys)
    test_x, test_y = _to_numpy(builder, name, data_dir, table.test_split, keys)
    base.check_labels(train_y, table.num_classes, name, "train")
    base.check_labels(test_y, table.num_classes, name, "test")
    train_index, validation_index = base.carve_validation(len(train_y), validation_size, seed)
    splits = {"train": (train_x[train_index], train_y[train_index]),
              "validation": (train_x[validation_index], train_y[validation_index]),
              "test": (test_x, test_y)}
    input_shape = table.input_shape
    if table.preprocessing == "text":
        from tc.data import text

        splits = text.vectorize(splits, vocab_size, sequence_length)
        input_shape = (sequence_length,)
    spec = base.DatasetSpec(
        name=name, num_classes=table.num_classes, input_shape=input_shape,
        split_sizes={split: len(y) for split, (_, y) in splits.items()},
        preprocessing=table.preprocessing, mean=table.mean, std=table.std,
    )
    return base.ArrayDataset(spec, splits)


class StreamingDataset(base.SpecBacked):
    """ImageNet, streamed from TFDS files; `tf_dataset` builds the pipelines."""

    def __init__(self, name, table, builder, data_dir, validation_size, seed, shuffle_buffer):
        self._builder, self._data_dir = builder, data_dir
        self._validation_size, self._seed = validation_size, seed
        self.shuffle_buffer = shuffle_buffer
        train_size = table.sizes["train"]
        info_splits = builder.info.splits
        if "train" in info_splits and info_splits["train"].num_examples:
            train_size = info_splits["train"].num_examples
        self.spec = base.DatasetSpec(
            name=name, num_classes=table.num_classes, input_shape=table.input_shape,
            split_sizes={"train": train_size - validation_size, "validation": validation_size,
                         "test": table.sizes["test"]},
            preprocessing=table.preprocessing, mean=table.mean, std=table.std,
        )
        self._test_split = table.test_split
        self.source("test")  # fail now, not at the first batch, if the data are missing

    def source(self, split):
        """Decoded `(image, label)` examples of a split, in their fixed file order."""
        import tensorflow_datasets as tfds

        base.check_split(split)
        if split == "test":
            dataset = _read(self._builder, self.name, self._data_dir, split=self._test_split,
                            shuffle_files=False)
        else:
            read_config = tfds.ReadConfig(shuffle_seed=self._seed,
                                          shuffle_reshuffle_each_iteration=False)
            dataset = _read(self._builder, self.name, self._data_dir, split="train",
                            shuffle_files=True, read_config=read_config)
            dataset = (dataset.skip(self._validation_size) if split == "train"
                       else dataset.take(self._validation_size))
        return dataset.map(lambda example: (example["image"], example["label"]))

    def tf_dataset(self, split, batch_size, seed=0, first_epoch=0, num_epochs=1, training=None):
        from tc.data import pipeline

        return pipeline.streaming_pipeline(self, split, batch_size, seed=seed,
                                           first_epoch=first_epoch, num_epochs=num_epochs,
                                           training=training)
