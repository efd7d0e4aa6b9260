"""`tc.runner.inputs`: the dataset of a config and its splits in the backend's form."""

import keras
import numpy as np

from tc import data
from tc.runner import inputs


def test_in_memory_data_trains_on_the_device_except_on_tensorflow(small_config):
    dataset = inputs.load_dataset(small_config())
    assert isinstance(dataset, data.ArrayDataset)
    assert inputs.trains_on_device(dataset) == (keras.backend.backend() != "tensorflow")


def test_inputs_hold_the_splits_and_the_rank_inputs(small_config):
    config = small_config(batch_size=50, rank_probe_size=100)
    dataset = inputs.load_dataset(config)
    made = inputs.model_inputs(config, dataset, initial_epoch=0, labels_per_output=2)
    x, labels = next(iter(made.train))
    assert tuple(x.shape) == (50, *dataset.input_shape)
    assert len(labels) == 2 and np.array_equal(np.asarray(labels[0]), np.asarray(labels[1]))
    test_x, _ = dataset.arrays("test")
    np.testing.assert_allclose(np.asarray(made.rank_inputs), test_x[:100], rtol=1e-6)
    assert made.validation is not None and made.test is not None

