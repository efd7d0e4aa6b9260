"""TFDS datasets: the papers' (cifar10, cifar100, svhn_cropped, imagenet2012, imdb_reviews; mnist
and fashion_mnist through `tc.data.mnist_like`), and any image-classification dataset by name
(`tfds:<name>`, `load_any`).

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

from tc.data import base, images

__all__ = ["ANY_PREFIX", "cached_statistics", "DatasetNotPreparedError", "how_to_prepare",
           "IN_MEMORY_BYTES", "load", "load_any", "open_builder", "read_arrays",
           "resolve_data_dir", "STATISTICS_FOLDER", "STREAMED_STATISTICS_EXAMPLES",
           "StreamingDataset", "TABLES", "tfds_numpy", "TfdsTable"]

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
    return (f"Prepare it with `python -m tc.data.prepare {name} --data_dir={data_dir}` (or "
            f"`tfds build {name} --data_dir={data_dir}` where apache_beam is installed) on a "
            "machine with internet access, then copy the folder here; or pass download=True.")


def _tfds(name, data_dir, hint=None):
    """The tensorflow_datasets module; DatasetNotPreparedError when it cannot be imported."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DatasetNotPreparedError(
            f"Dataset {name!r} needs TFDS data, but tensorflow_datasets cannot be imported "
            f"({error}). {hint or how_to_prepare(name, data_dir)}") from None
    return tfds


def open_builder(name, data_dir, download, hint=None):
    """The TFDS builder, prepared; raises DatasetNotPreparedError instead of reaching the network.

    Raises:
        ValueError: TFDS knows no dataset `name`, with how to list the names it knows.
    """
    tfds = _tfds(name, data_dir, hint)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"TFDS has no dataset {name!r}. List the names with "
            "`python -c \"import tensorflow_datasets as tfds; print(tfds.list_builders())\"` "
            "or see https://www.tensorflow.org/datasets/catalog/overview.") from None
    if download:
        builder.download_and_prepare()
    return builder


def _read(builder, name, data_dir, hint=None, **as_dataset_kwargs):
    """`builder.as_dataset(...)`, with TFDS's missing-data assertion turned into our error."""
    try:
        return builder.as_dataset(**as_dataset_kwargs)
    except AssertionError as error:
        if "could not find data" not in str(error):
            raise
        raise DatasetNotPreparedError(
            f"Dataset {name!r} is not prepared in {data_dir}. "
            f"{hint or how_to_prepare(name, data_dir)}") from None


def _to_numpy(builder, name, data_dir, split, keys, hint=None):
    """A whole split as numpy arrays, one per key."""
    import tensorflow_datasets as tfds

    dataset = _read(builder, name, data_dir, hint, split=split, shuffle_files=False)
    chunks = {key: [] for key in keys}
    for batch in tfds.as_numpy(dataset.batch(10_000)):
        for key in keys:
            chunks[key].append(batch[key])
    return [np.concatenate(chunks[key]) if chunks[key] else np.zeros((0,)) for key in keys]


def read_arrays(name, data_dir, keys, download=False, hint=None):
    """`((train_x, train_y), (test_x, test_y))` of a prepared TFDS dataset's `keys` features.

    `hint` replaces the preparation advice of a missing dataset's error.
    """
    builder = open_builder(name, data_dir, download, hint)
    return tuple(tuple(_to_numpy(builder, name, data_dir, split, keys, hint))
                 for split in ("train", _test_split(builder)))


def load(name, data_dir=None, validation_size=None, data_seed=0, classes=None, download=False,
         vocab_size=20_000, sequence_length=256, shuffle_buffer=10_000):
    """Loads a TFDS dataset of the papers.

    Args:
        name: one of `TABLES`.
        data_dir: where TFDS data live (default `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`).
        validation_size: training examples held out for validation (fixed by `data_seed`);
            defaults to 5,000 (10,000 for ImageNet, 2,500 for IMDB).
        data_seed: fixes the validation carve (and ImageNet's file order), whatever the run's
            seed.
        classes: keep only these classes, relabelled 0..k-1 (in-memory datasets).
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
    builder = open_builder(name, data_dir, download)
    if name == "imagenet2012":
        if classes is not None:
            raise ValueError("imagenet2012 is streamed; it takes no classes= subset.")
        return StreamingDataset(name, table, builder, data_dir, validation_size, data_seed,
                                shuffle_buffer)
    keys = ("text", "label") if table.preprocessing == "text" else ("image", "label")
    train_x, train_y = _to_numpy(builder, name, data_dir, "train", keys)
    test_x, test_y = _to_numpy(builder, name, data_dir, table.test_split, keys)
    splits, num_classes = base.train_validation_test(
        (train_x, train_y), (test_x, test_y), table.num_classes, name, validation_size,
        data_seed, classes)
    input_shape = table.input_shape
    if table.preprocessing == "text":
        from tc.data import text

        splits = text.vectorize(splits, vocab_size, sequence_length)
        input_shape = (sequence_length,)
    spec = base.DatasetSpec(
        name=name, num_classes=num_classes, input_shape=input_shape,
        split_sizes={split: len(y) for split, (_, y) in splits.items()},
        preprocessing=table.preprocessing, mean=table.mean, std=table.std,
    )
    return base.ArrayDataset(spec, splits)


ANY_PREFIX = "tfds:"
IN_MEMORY_BYTES = 2 * 1024**3  # larger image datasets are streamed
STATISTICS_FOLDER = "tc_statistics"  # in the TFDS data directory, beside the datasets
STREAMED_STATISTICS_EXAMPLES = 10_000


def _feature_keys(info):
    """`(image key, label key)` of an image-classification builder's features."""
    import tensorflow_datasets as tfds

    features = info.features
    if info.supervised_keys and len(info.supervised_keys) == 2:
        image_key, label_key = info.supervised_keys
    else:
        images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
        labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
        if len(images) != 1 or len(labels) != 1:
            raise ValueError(f"TFDS dataset {info.name!r} is not an image-classification "
                             f"dataset tc can read: features {sorted(features)} (tc needs one "
                             "Image and one ClassLabel).")
        image_key, label_key = images[0], labels[0]
    image, label = features[image_key], features[label_key]
    if not isinstance(label, tfds.features.ClassLabel) or None in tuple(image.shape):
        raise ValueError(f"TFDS dataset {info.name!r}: {image_key!r} must be a fixed-size image "
                         f"and {label_key!r} a class label; got shape {image.shape}.")
    return image_key, label_key


def cached_statistics(builder, data_dir, compute):
    """Per-channel `(mean, std)` of the training images, cached next to the data in
    `<data_dir>/tc_statistics/<name>-<version>.json` (computed again if it cannot be written)."""
    import json

    folder = os.path.join(data_dir, STATISTICS_FOLDER)
    path = os.path.join(folder, f"{builder.info.name}-{builder.info.version}.json")
    if os.path.exists(path):
        with open(path) as handle:
            stored = json.load(handle)
        return tuple(stored["mean"]), tuple(stored["std"])
    mean, std = compute()
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(temporary, "w") as handle:
            json.dump({"mean": list(mean), "std": list(std)}, handle)
        os.replace(temporary, path)
    except OSError:  # a read-only data directory: computed again next time
        if os.path.exists(temporary):
            os.remove(temporary)
    return mean, std


def load_any(name, data_dir=None, validation_size=5000, data_seed=0, classes=None,
             augment="none", download=False, shuffle_buffer=10_000):
    """Loads any TFDS image-classification dataset (`--dataset=tfds:<name>`).

    The image and label features come from the builder's info; images are normalized with the
    per-channel statistics of the training split (cached next to the data). A dataset whose
    images fit in IN_MEMORY_BYTES is held in memory; a larger one is streamed.

    Args:
        name: the TFDS name, e.g. "kmnist" or "cifar10_1" (without the "tfds:" prefix).
        validation_size, data_seed, classes, augment, download: as for `tc.data.mnist_like.load`.
        shuffle_buffer: a streamed dataset's per-epoch shuffle buffer.
    """
    data_dir = resolve_data_dir(data_dir)
    builder = open_builder(name, data_dir, download)
    image_key, label_key = _feature_keys(builder.info)
    num_classes = builder.info.features[label_key].num_classes
    input_shape = tuple(builder.info.features[image_key].shape)
    splits = builder.info.splits  # empty until prepared: reading then says how to prepare it
    train_size = splits["train"].num_examples if "train" in splits else 0
    if train_size * int(np.prod(input_shape)) > IN_MEMORY_BYTES:
        if classes is not None or augment != "none":
            raise ValueError(f"tfds:{name} is streamed; it takes no classes= or augment=.")

        def sample_statistics():
            images = _read(builder, name, data_dir, split="train", shuffle_files=False).take(
                STREAMED_STATISTICS_EXAMPLES).map(lambda example: example[image_key])
            return base.channel_statistics(np.stack(list(tfds_numpy(images))))

        mean, std = cached_statistics(builder, data_dir, sample_statistics)
        table = TfdsTable(num_classes, input_shape, "none", {
            "train": train_size, "test": builder.info.splits[_test_split(builder)].num_examples},
            test_split=_test_split(builder), mean=mean, std=std)
        return StreamingDataset(f"{ANY_PREFIX}{name}", table, builder, data_dir,
                                validation_size, data_seed, shuffle_buffer,
                                keys=(image_key, label_key))
    train = _to_numpy(builder, name, data_dir, "train", (image_key, label_key))
    test = _to_numpy(builder, name, data_dir, _test_split(builder), (image_key, label_key))
    return images.from_arrays(f"{ANY_PREFIX}{name}", train, test, validation_size,
                              data_seed, classes, augment, num_classes=num_classes,
                              statistics=lambda x: cached_statistics(
                                  builder, data_dir, lambda: base.channel_statistics(x)))


def tfds_numpy(dataset):
    import tensorflow_datasets as tfds

    return tfds.as_numpy(dataset)


def _test_split(builder):
    splits = builder.info.splits
    return "validation" if splits and "test" not in splits else "test"


class StreamingDataset(base.SpecBacked):
    """ImageNet, streamed from TFDS files; `tf_dataset` builds the pipelines."""

    def __init__(self, name, table, builder, data_dir, validation_size, seed, shuffle_buffer,
                 keys=("image", "label")):
        self._builder, self._data_dir = builder, data_dir
        self._keys = keys
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
        image_key, label_key = self._keys
        return dataset.map(lambda example: (example[image_key], example[label_key]))

    def tf_dataset(self, split, batch_size, seed=0, first_epoch=0, num_epochs=1, training=None):
        from tc.data import pipeline

        return pipeline.streaming_pipeline(self, split, batch_size, seed=seed,
                                           first_epoch=first_epoch, num_epochs=num_epochs,
                                           training=training)
