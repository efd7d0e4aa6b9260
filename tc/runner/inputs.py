"""A run's data: the dataset of its flags, and its splits in the form the backend trains on.

In-memory data on JAX and PyTorch is gathered, augmented and normalized on the accelerator
(`tc.data.device_stream`, no TensorFlow); everything else goes through `tf.data`.
"""

import dataclasses

import keras
import numpy as np

from tc import data as data_lib
from tc.data import device_stream

# Streamed (imagenet) data is augmented by tf.data; in-memory data can be, on the device.
AUGMENTED_ON_HOST = ("imagenet",)


@dataclasses.dataclass
class Inputs:
    """What `fit` and the epoch end read: the training stream, the evaluation splits as `(x, y)`
    arrays or `tf.data` datasets (validation None when the dataset has none), the fixed
    test inputs whose activations the ranks are measured on, and the un-augmented training
    examples of `--train_eval_size` (None when it is 0)."""

    train: object
    validation: object
    test: object
    rank_inputs: object
    train_eval: object = None


def load_dataset(config):
    """The dataset of `--dataset` with its options; its splits do not depend on `--seed`."""
    options = dict(config.parsed_dataset_options)
    if config.validation_size >= 0:
        options["validation_size"] = config.validation_size
    if "data_dir" in data_lib.options(config.dataset):
        options["data_dir"] = config.data_dir or None
    return data_lib.load(config.dataset, **options)


def trains_on_device(dataset):
    """In-memory data on JAX/PyTorch: batches are gathered and augmented on the accelerator."""
    return (keras.backend.backend() != "tensorflow"
            and isinstance(dataset, data_lib.ArrayDataset)
            and dataset.spec.preprocessing not in AUGMENTED_ON_HOST)


def model_inputs(config, dataset, initial_epoch, labels_per_output=1):
    """The `Inputs` of a run that starts at `initial_epoch`.

    `labels_per_output > 1` gives training labels for a model with that many outputs (a packed
    sweep); evaluation data stays `(x, y)`.
    """
    has_validation = dataset.split_sizes["validation"] > 0
    if trains_on_device(dataset):
        train = iter(device_stream.DeviceStream(dataset, config.batch_size,
                                                config.data_order_seed, initial_epoch,
                                                config.epochs,
                                                labels_per_output=labels_per_output))
        # Evaluation splits stay on the device too: no host-to-device copy every epoch.
        validation = (device_stream.on_device(dataset.arrays("validation")) if has_validation
                      else None)
        test = device_stream.on_device(dataset.arrays("test"))
        train_eval = None
        if config.train_eval_size:
            x, y = dataset.arrays("train")
            train_eval = device_stream.on_device((x[:config.train_eval_size],
                                                  y[:config.train_eval_size]))
        return Inputs(train, validation, test, test[0][:config.rank_probe_size], train_eval)
    train = dataset.tf_dataset("train", config.batch_size, seed=config.data_order_seed,
                               first_epoch=initial_epoch,
                               num_epochs=max(config.epochs - initial_epoch, 1))
    if labels_per_output > 1:
        train = train.map(lambda x, y: (x, (y,) * labels_per_output))
    validation = (dataset.tf_dataset("validation", config.eval_batch_size)
                  if has_validation else None)
    test = dataset.tf_dataset("test", config.eval_batch_size)
    rank_inputs = np.concatenate([x.numpy() for x, _ in test.unbatch().batch(
        config.rank_probe_size).take(1)])
    train_eval = None
    if config.train_eval_size:  # in the split's order, without augmentation
        train_eval = dataset.tf_dataset("train", config.eval_batch_size, training=False
                                        ).unbatch().take(config.train_eval_size).batch(
                                            config.eval_batch_size)
    return Inputs(train, validation, test, rank_inputs, train_eval)


def check_far_ood(config, dataset):
    """Raises ValueError before training unless the --far_ood sets can be made for `dataset`:
    in memory, with uint8 images (the far-OOD sets are raw pixels, normalized as its own)."""
    if not config.far_ood_sets:
        return
    if not isinstance(dataset, data_lib.ArrayDataset) or dataset.spec.mean is None:
        raise ValueError(f"--far_ood={config.far_ood!r} needs an in-memory dataset of uint8 "
                         f"images, such as fashion_mnist or synthetic_images; {config.dataset} "
                         "is streamed or holds other inputs.")
    if len(dataset.input_shape) != 3:
        raise ValueError(f"--far_ood={config.far_ood!r} needs image inputs (height, width, "
                         f"channels); {config.dataset} has {tuple(dataset.input_shape)}.")


def load_probe_dataset(config, dataset):
    """The --probe_dataset of the linear probe, checked to be in memory and to fit the model."""
    # No validation split: the probe is fit on training data and scored on the test split.
    takes_validation = "validation_size" in data_lib.options(config.probe_dataset)
    probe_config = dataclasses.replace(config, dataset=config.probe_dataset,
                                       dataset_options=config.probe_dataset_options,
                                       validation_size=0 if takes_validation else -1)
    probe = load_dataset(probe_config)
    if not isinstance(probe, data_lib.ArrayDataset):
        raise ValueError(f"--probe_dataset={config.probe_dataset!r} is streamed; the linear probe "
                         "needs an in-memory dataset (any but imagenet2012 and large "
                         "tfds:<name> sets).")
    if tuple(probe.input_shape) != tuple(dataset.input_shape):
        raise ValueError(f"--probe_dataset={config.probe_dataset!r} has inputs of shape "
                         f"{tuple(probe.input_shape)}, but the model takes "
                         f"{tuple(dataset.input_shape)} ({config.dataset}).")
    return probe
