"""`tc.data.far_ood` (paper 3's far-OOD sets) and `--far_ood` end to end.

The resize against a closed form (bilinear interpolation of a linear ramp is exact) and
`jax.image.resize`; the run's AUROCs against scikit-learn on the reloaded model's logits.
"""

import json
import os

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from tc.data import far_ood


def _sample_coordinates(source, target):
    return np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0, source - 1)


@pytest.mark.backend_independent
@pytest.mark.parametrize("size", [(28, 28), (5, 11), (8, 8), (32, 3)])
def test_the_resize_of_a_linear_ramp_is_the_ramp_at_the_sampled_coordinates(size):
    height, width = size
    rows, cols = np.meshgrid(np.arange(8.0), np.arange(6.0), indexing="ij")
    ramp = (3.0 * rows - 2.0 * cols + 1.0)[None, :, :, None]
    expected_rows = _sample_coordinates(8, height)[:, None]
    expected_cols = _sample_coordinates(6, width)[None, :]
    expected = 3.0 * expected_rows - 2.0 * expected_cols + 1.0
    np.testing.assert_allclose(far_ood.resize_bilinear(ramp, height, width)[0, :, :, 0],
                               expected, atol=1e-12)


@pytest.mark.backend_independent
def test_the_resize_upsamples_as_jax_image_resize():
    import jax

    images = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 2))
    ours = far_ood.resize_bilinear(images, 28, 28)
    theirs = np.asarray(jax.image.resize(images.astype(np.float32), (3, 28, 28, 2), "linear"))
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
    np.testing.assert_array_equal(far_ood.resize_bilinear(images, 8, 8), images)


@pytest.mark.backend_independent
def test_the_sets_are_uint8_images_of_the_asked_shape():
    from sklearn.datasets import load_digits

    digits = far_ood.images("digits", (28, 28, 3))
    assert digits.shape == (1797, 28, 28, 3) and digits.dtype == np.uint8
    np.testing.assert_array_equal(digits[..., 0], digits[..., 2])
    # At the source size the set is the digits themselves, on the 0..255 scale.
    native = far_ood.images("digits", (8, 8, 1))[..., 0]
    np.testing.assert_array_equal(native, np.rint(load_digits().images * 255 / 16))
    noise = far_ood.images("uniform_noise", (28, 28, 1))
    assert noise.shape == (far_ood.NOISE_IMAGES, 28, 28, 1) and noise.dtype == np.uint8
    counts = np.bincount(noise.ravel(), minlength=256)
    # Uniform over 0..255: every level about 1/256 of 1.57M pixels (6,125), within 6 sd.
    assert counts.min() > 6125 - 6 * 78 and counts.max() < 6125 + 6 * 78
    np.testing.assert_array_equal(noise, far_ood.images("uniform_noise", (28, 28, 1)))


@pytest.mark.backend_independent
def test_unknown_sets_and_non_image_shapes_are_refused_by_name():
    with pytest.raises(ValueError, match=r"'mnist'.*valid sets: digits, uniform_noise"):
        far_ood.check_names(["digits", "mnist"])
    with pytest.raises(ValueError, match=r"needs image inputs.*\(64,\)"):
        far_ood.images("digits", (64,))


def test_a_run_scores_each_far_set_as_scikit_learn_does_on_its_reloaded_model(
        tmp_path, small_config):
    import keras

    import tc
    from tc import data
    from tc.analysis import load
    from tc.runner import assembly

    config = small_config(dataset="synthetic_images", model="mlp", epochs=2, batch_size=50,
                          dataset_options="image_size=8;channels=1;samples=400;"
                                          "test_samples=300;validation_samples=100",
                          far_ood="digits,uniform_noise", probe_size=200, rank_probe_size=64)
    result = assembly.run_one(config)
    assert result["status"] == "completed"
    assert sorted(result["far_ood_detection"]) == ["digits", "uniform_noise"]
    dataset = data.load("synthetic_images", image_size=8, channels=1, samples=400,
                        test_samples=300, validation_samples=100)
    model = tc.load_run(config.output_dir).model
    x_in, _ = dataset.arrays("test")
    logits_in = np.asarray(model.predict(x_in, verbose=0))
    for name in ("digits", "uniform_noise"):
        raw = far_ood.images(name, (8, 8, 1)).astype(np.float64) / 255.0
        x_out = ((raw - 0.5) / 0.25).astype(np.float32)  # synthetic_images' mean and std
        logits_out = np.asarray(model.predict(x_out, verbose=0))
        scores = np.r_[keras.ops.convert_to_numpy(keras.ops.softmax(logits_in)).max(axis=1),
                       keras.ops.convert_to_numpy(keras.ops.softmax(logits_out)).max(axis=1)]
        labels = np.r_[np.ones(len(logits_in)), np.zeros(len(logits_out))]
        expected = sk_metrics.roc_auc_score(labels, scores)
        recorded = result["far_ood_detection"][name]
        assert recorded["max_softmax_probability"]["auroc"] == pytest.approx(expected, abs=1e-6)
        assert set(recorded) == {"max_softmax_probability", "energy", "principal_subspace"}
    with open(os.path.join(config.output_dir, "result.json")) as handle:
        assert "far_ood_detection" in json.load(handle)
    assert "--far_ood=digits,uniform_noise" in (tmp_path / "run" / "flags.txt").read_text()
    runs = load.load(str(tmp_path)).runs
    auroc = "far_ood/uniform_noise/max_softmax_probability/auroc"
    assert runs[auroc].iloc[0] == pytest.approx(
        result["far_ood_detection"]["uniform_noise"]["max_softmax_probability"]["auroc"])


def test_far_ood_is_refused_before_training_for_inputs_that_are_not_uint8_images(
        tmp_path, small_config):
    from tc.runner import assembly

    with pytest.raises(ValueError, match=r"--far_ood='digits'.*uint8 images.*digits"):
        assembly.run_one(small_config(far_ood="digits"))
    assert not (tmp_path / "run" / "result.json").exists()
