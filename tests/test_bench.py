"""tc.bench: the throughput figures are well formed and the FLOP count is right (no timings)."""

import keras
import pytest

from tc import bench


def test_forward_flops_count_a_dense_layer_exactly():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32)])
    flops = bench.forward_flops_per_example(model, (64,))
    if keras.backend.backend() != "jax":
        assert flops is None  # XLA's cost analysis is read through JAX only
    else:
        # a (1, 64) x (64, 32) product is 2 * 64 * 32 multiply-adds, plus 32 bias adds
        assert flops == pytest.approx(2 * 64 * 32 + 32, rel=0.02)


def test_measure_runs_the_training_path_and_reports_throughput():
    row = bench.measure("mlp", batch_size=100, epochs=2, samples=400, mixed_precision="off",
                        peak_tflops=790.0)
    assert row["status"] == "completed" and row["input_shape"] == [32, 32, 3]
    assert row["images_per_second"] > 0 and len(row["epoch_seconds"]) == 2
    if keras.backend.backend() == "jax":
        assert row["train_gflop_per_image"] > 0 and 0 < row["mfu"] < 1
