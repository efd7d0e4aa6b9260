"""`--track_example_learning`: per-example margins, losses and learning epochs (paper 2)."""

import os

import keras
import numpy as np
import pytest
from scipy import special

from tc import data, models
from tc.runner import assembly, checkpoint, example_learning, optimization, run_dir


def test_learning_epochs_are_the_first_epoch_correct_from_then_on():
    correct = np.array([[0, 1, 1, 0, 1],
                        [1, 1, 0, 1, 1],
                        [1, 1, 1, 1, 0]], bool)  # epochs x examples
    np.testing.assert_array_equal(example_learning.learning_epochs(correct), [2, 1, 3, 2, 0])


def test_margins_and_losses_match_scipy():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(50, 7)) * 5, rng.integers(0, 7, 50)
    margin, nll = example_learning.margins_and_losses(logits, labels)
    np.testing.assert_allclose(nll, -special.log_softmax(logits, axis=1)[np.arange(50), labels],
                               rtol=1e-9, atol=1e-12)
    rivals = np.where(np.eye(7, dtype=bool)[labels], -np.inf, logits).max(axis=1)
    np.testing.assert_allclose(margin, logits[np.arange(50), labels] - rivals, rtol=1e-12)
    assert ((margin > 0) == (logits.argmax(axis=1) == labels)).all()


def test_a_run_records_each_examples_margin_and_the_epoch_it_was_learned(small_config):
    config = small_config("run", epochs=2, track_example_learning=64)
    result = assembly.run_one(config)
    directory = run_dir.RunDirectory(result["run_dir"])
    with np.load(directory.file("example_learning.npz")) as arrays:
        stored = {key: arrays[key] for key in arrays}
    x, y = data.load("digits").arrays("train")
    np.testing.assert_array_equal(stored["labels"], y[:64])
    assert stored["margin"].shape == stored["nll"].shape == (2, 64)
    np.testing.assert_array_equal(stored["learned_at"],
                                  example_learning.learning_epochs(stored["margin"] > 0))
    assert result["example_learning"]["learned"] == int((stored["learned_at"] > 0).sum())
    # The last epoch's margins are those of the final checkpoint's model, recomputed here.
    model = models.build(config.model_name, x.shape[1:], 10, **config.parsed_model_options)
    model.compile(optimizer=optimization.build_optimizer(config, 1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    checkpoint.restore(model, directory.checkpoint_path(directory.resume_state()))
    margin, nll = example_learning.margins_and_losses(
        keras.ops.convert_to_numpy(model(x[:64])), y[:64])
    np.testing.assert_allclose(stored["margin"][-1], margin, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stored["nll"][-1], nll, rtol=1e-4, atol=1e-4)


def test_every_copy_of_a_packed_run_records_its_own_examples(small_config):
    results = assembly.run(small_config("sweep", epochs=1, betas="0.5,2",
                                        track_example_learning=32))
    margins = []
    for result in results:
        with np.load(os.path.join(result["run_dir"], "example_learning.npz")) as arrays:
            assert arrays["margin"].shape == (1, 32)
            margins.append(arrays["margin"])
    assert not np.allclose(margins[0], margins[1])  # two betas, two models


def test_a_streamed_dataset_is_refused_before_anything_is_written(small_config, tmp_path):
    pytest.importorskip("tensorflow_datasets")
    config = small_config("never", dataset="cifar10", track_example_learning=8,
                          data_dir=str(tmp_path / "none"))
    with pytest.raises((assembly.ConfigurationError, data.DatasetNotPreparedError)):
        assembly.run(config)
    assert not os.path.exists(config.run_dir)
