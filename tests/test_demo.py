"""The README's main job, `python -m tc.demo`, trains for real on the bundled digits."""

import pytest

from tc import demo
from tests.support import run_python


def test_demo_learns_digits_and_reports_calibration():
    results = demo.run_demo(verbose=0)  # the default 30 epochs
    assert results["accuracy"] >= 0.95
    assert 0.0 <= results["ece"] < 0.1
    assert results["scored_probabilities"] == "softmax(beta*z)"
    assert 1 <= results["feature_numerical_rank"] <= results["feature_width"] == 256


def test_demo_gradient_decay_with_warmup_runs():
    results = demo.run_demo(loss_name="gradient_decay", beta=1.0, warmup_from=0.1,
                            warmup_epochs=3, epochs=5, verbose=0)
    assert results["beta"] == pytest.approx(1.0)
    assert results["accuracy"] > 0.8
    assert results["scored_probabilities"] == "softmax(z)"


def run_module(*flags):
    return run_python(["-m", "tc.demo", *flags])


def test_demo_command_prints_the_results():
    completed = run_module("--epochs=2", "--verbose=0")
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "accuracy" in completed.stdout and "ECE (15 bins)" in completed.stdout


@pytest.mark.parametrize("flag, message", [("--beta=0", "--beta"), ("--beta=nan", "--beta"),
                                           ("--epochs=0", "--epochs")])
def test_demo_rejects_bad_flags(flag, message):
    completed = run_module(flag)
    assert completed.returncode != 0
    assert message in completed.stderr
