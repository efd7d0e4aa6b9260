"""tc.load_run: a run directory read back, with the trained model as model.keras."""

import json

import numpy as np
import pytest

import tc
from tc import data, losses
from tc.runner import assembly, run_dir
from tests.support import run_python


def test_a_packed_copy_loads_back_with_its_flags_metrics_result_and_trained_model(
        tmp_path, small_config):
    results = assembly.run(small_config(dataset="synthetic", epochs=2, betas="0.5,2"))
    assert [result["model_file"] for result in results] == ["model.keras"] * 2
    assert [result["model"] for result in results] == ["mlp"] * 2  # the model's name
    path = tmp_path / "run" / "beta2"
    run = tc.load_run(str(path))
    assert run.flags["beta"] == 2.0 and run.flags["dataset"] == "synthetic"
    assert run.flags["epochs"] == 2 and "betas" not in run.flags  # the copy's own flags
    rows = run_dir.read_csv(str(path / "metrics.csv"))
    assert run.metrics.index.tolist() == [1, 2]
    assert run.metrics["val/accuracy"].tolist() == pytest.approx(
        [row["val/accuracy"] for row in rows])
    assert run.result == json.loads((path / "result.json").read_text())
    # The model is the trained copy: beta * its logits are the stored test logits, and
    # evaluated with its own tc loss and metrics it gives the run's final test accuracy.
    assert isinstance(run.model.loss, losses.TemperatureCrossEntropy)
    x, y = data.load("synthetic").arrays("test")
    stored = np.load(path / "predictions.npz")["test_logits"]
    np.testing.assert_allclose(2.0 * run.model.predict(x, verbose=0), stored, rtol=1e-4,
                               atol=1e-4)
    # In a fresh process with only `import tc`: the run's test accuracy and ECE, exactly.
    evaluated = run_python(f"""
        import json, tc
        from tc import data
        run = tc.load_run({str(path)!r})
        x, y = data.load("synthetic").arrays("test")
        logs = run.model.evaluate(x, y, batch_size=256, return_dict=True, verbose=0)
        print(json.dumps({{"parts": [type(part).__name__ for part in (run.flags, run.metrics,
                                                                       run.result, run.model)],
                           "accuracy": logs["accuracy"], "ece": logs["ece"]}}))
    """)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    reloaded = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert reloaded["parts"] == ["dict", "DataFrame", "dict", "Functional"]
    assert reloaded["accuracy"] == pytest.approx(run.result["final"]["test/accuracy"], abs=1e-6)
    assert reloaded["ece"] == pytest.approx(run.result["final"]["test/ece"], abs=1e-6)


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a tc run"):
        tc.load_run(str(tmp_path))
