"""tc.bench: the throughput figures are well formed and the FLOP count is right (no timings)."""

import json

import keras
import numpy as np
import pytest

from tc import bench
from tests.support import run_python


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


def test_help_documents_every_figure():
    for figure in bench.FIGURES:
        assert figure in bench.FLAGS["figures"].help, figure
    for term in ("Loss overhead", "Training throughput", "Training overhead", "Packed sweep",
                 "Scaling", "Search"):
        assert term in bench.__doc__
    assert "betas" in bench.FLAGS["copies"].help


def test_packed_sweep_figure_compares_k_copies_with_one_at_a_time_and_a_wide_bare_fit():
    row = bench.packed_sweep("mlp", [2, 3], 50, 2, 300, (8, 8, 1), "off", 790.0)
    assert row["image_shape"] == [8, 8, 1] and row["batch_per_copy"] == 50
    assert row["one_tc_train"] > 0 and row["one_bare_fit"] > 0
    assert sorted(row["packed"]) == ["2", "3"]
    for count, packed in row["packed"].items():
        assert packed["steady_over_one_bare_fit"] == pytest.approx(
            packed["steady"] / row["one_bare_fit"])
        assert packed["steady_over_wide_bare_fit"] == pytest.approx(
            packed["steady"] / packed["bare_fit_wide"])
        assert packed["whole_run_speedup"] == pytest.approx(
            int(count) * row["one_tc_train_wall_seconds"] / packed["wall_seconds"])
    with pytest.raises(ValueError, match="square"):
        bench.image_options((28, 32, 1), 100)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="steps are fused on JAX only")
def test_packed_sweep_figure_measures_fused_steps_beside_one_step_a_call():
    row = bench.packed_sweep("mlp", [2], 50, 2, 300, (8, 8, 1), "off", 790.0, steps_per_call=3)
    packed = row["packed"]["2"]
    fused = packed["fused"]
    assert fused["steps_per_call"] == 3 and fused["steady"] > 0
    assert fused["steady_over_one_step_per_call"] == pytest.approx(
        fused["steady"] / packed["steady"])
    assert fused["steady_over_one_bare_fit"] == pytest.approx(
        fused["steady"] / row["one_bare_fit"])
    assert fused["whole_run_speedup"] == pytest.approx(
        2 * row["one_tc_train_wall_seconds"] / fused["wall_seconds"])
    assert "fused" not in bench.packed_sweep("mlp", [2], 50, 2, 300, (8, 8, 1), "off",
                                             790.0)["packed"]["2"]


def test_packed_sweep_figure_counts_every_copy_of_a_two_dimensional_grid():
    row = bench.measure("mlp", batch_size=100, epochs=2, samples=400, mixed_precision="off",
                        peak_tflops=790.0, copies=2, learning_rates=("0.02", "0.05"))
    assert row["status"] == "completed" and row["copies"] == 4
    assert row["images_per_second"] > 0 and len(row["epoch_seconds"]) == 2
    # Over the whole run, compilation included, a run is slower than after it.
    assert 0 < row["images_per_second_with_compile"] < row["images_per_second"]
    assert bench.sweep_betas(8).split(",")[0] == "0.01" and bench.sweep_betas(8).endswith(",10")


def test_without_a_gpu_the_default_run_gives_the_cpu_figures_and_says_what_it_skipped(tmp_path):
    if bench.gpu_present():
        pytest.skip("this machine has a GPU: the default run measures the GPU figures too")
    out = tmp_path / "bench.json"
    completed = run_python(["-m", "tc.bench", "--repeats=3", "--loss_shape=256,10",
                            f"--out={out}"])
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "training throughput skipped: no GPU found" in completed.stdout
    ratios = json.loads(out.read_text())["loss_overhead"]["ratio_to_keras"]
    assert set(ratios) == {"temperature_cross_entropy", "gradient_decay_cross_entropy"}
    assert all(ratio > 0 for ratio in ratios.values())


def test_training_overhead_is_the_median_of_per_pair_ratios():
    pairs = [(90.0, 100.0), (120.0, 100.0), (50.0, 100.0), (200.0, 210.0)]
    summary = bench.median_overhead(pairs)
    ratios = [tc_speed / bare_speed for tc_speed, bare_speed in pairs]
    assert summary["ratio"] == pytest.approx(np.median(ratios))  # (0.9 + 0.952...) / 2
    assert summary["tc_train"] == 105.0 and summary["bare_fit"] == 100.0
    assert [pair["ratio"] for pair in summary["pairs"]] == pytest.approx(ratios)
    assert bench.median_overhead([(67000, 70000)])["ratio"] == pytest.approx(67 / 70)


@pytest.mark.two_devices
def test_scaling_figure_trains_on_one_and_on_two_devices_beside_a_bare_fit():
    # The two CPU devices of conftest.py stand for two accelerators.
    row = bench.scaling("mlp", per_device_batch=50, epochs=2, samples=400,
                        mixed_precision="off", peak_tflops=790.0)
    assert row["devices"] == 2
    assert row["tc_train_replicas"] == {"1": 1, "2": 2}
    assert set(row["tc_train"]) == set(row["bare_fit"]) == set(row["tc_over_bare"]) == {"1", "2"}
    assert all(speed > 0 for key in ("tc_train", "bare_fit") for speed in row[key].values())
    assert row["tc_train_speedup"] == pytest.approx(row["tc_train"]["2"] / row["tc_train"]["1"])
    assert row["tc_over_bare"]["2"] == pytest.approx(row["tc_train"]["2"] / row["bare_fit"]["2"])


@pytest.mark.backend_independent  # tc.tune in a subprocess
def test_search_figure_times_a_grid_and_counts_each_trial(tmp_path):
    seconds, trials = bench.search_wall_time("mlp", points=2, epochs=1, batch_size=100,
                                             samples=200, mixed_precision="off",
                                             local_workers=0, scratch=str(tmp_path))
    assert seconds > 0
    assert sorted(trials) == pytest.approx([0.01, 10.0]) and set(trials.values()) == {1}
