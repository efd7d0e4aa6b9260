"""`tc.runner.results`: result.json fields, predictions.npz and the linear probe."""

import numpy as np
import pytest

from tc.runner import assembly, results


def test_predictions_and_linear_probe_of_a_completed_run(tmp_path, small_config):
    from tc import calibration

    result = assembly.run_one(small_config(dataset="synthetic", epochs=2, beta=2.0,
                                         probe_dataset="synthetic_shift", probe_size=1000,
                                         probe_layer="features,dense0"))
    probe = result["linear_probe"]
    assert probe["dataset"] == "synthetic_shift" and probe["train_examples"] == 1000
    # Each layer probed alone; the first is the headline (and the OOD feature score's).
    assert probe["layer"] == "features" and set(probe["layers"]) == {"features", "dense0"}
    assert probe["accuracy"] == probe["layers"]["features"]
    assert all(0.0 <= value <= 1.0 for value in probe["layers"].values())
    assert probe["layers"]["features"] != probe["layers"]["dense0"]
    detection = result["ood_detection"]
    assert set(detection) == {"max_softmax_probability", "energy", "principal_subspace"}
    for score in detection.values():
        assert 0.0 <= score["auroc"] <= 1.0 and 0.0 <= score["fpr_at_95_tpr"] <= 1.0
    arrays = np.load(tmp_path / "run" / result["predictions"])
    assert arrays["test_logits"].shape == (2000, 10) and arrays["val_logits"].shape == (1000, 10)
    # The stored logits are beta * z: their softmax reproduces the run's own test ECE/accuracy.
    probabilities = calibration.softmax(arrays["test_logits"])
    ece, _ = calibration.calibration_errors(probabilities, arrays["test_labels"], 15)
    assert ece == pytest.approx(result["final"]["test/ece"], abs=1e-4)
    accuracy = np.mean(probabilities.argmax(1) == arrays["test_labels"])
    assert accuracy == pytest.approx(result["final"]["test/accuracy"], abs=1e-6)


def test_steady_throughput_leaves_out_the_compiling_first_epoch():
    assert results.steady_throughput([10.0, 1.0, 3.0, 2.0], 600) == {
        "epoch_seconds": [10.0, 1.0, 3.0, 2.0], "steady_examples_per_second": 300.0}
    assert results.steady_throughput([10.0], 600)["steady_examples_per_second"] is None
