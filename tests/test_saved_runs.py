"""tc.load_run: a run directory read back, with the trained model as model.keras."""

import json

import numpy as np
import pytest

import tc
from tc import data, losses, run_files
from tc.runner import assembly, search
from tests.support import run_python

# Each kind of run whose model.keras a user reloads: the keyword arguments of small_config.
RUN_KINDS = {
    "default": {},
    "gradient_decay_warmup": dict(loss="gradient_decay", beta=2.0, beta_schedule="log_linear",
                                  beta_start=0.2, beta_warmup=2),
    "cosine_with_warmup": dict(lr_schedule="cosine", lr_warmup_epochs=1),
    "step_with_warmup": dict(lr_schedule="step", lr_warmup_epochs=1, lr_decay_epochs="2"),
}


def test_every_kind_of_run_reloads_in_a_fresh_process_with_only_keras_and_tc(
        tmp_path, small_config):
    directories = {}
    for kind, overrides in RUN_KINDS.items():
        (result,) = assembly.run(small_config(name=kind, **overrides))
        assert result["status"] == "completed", kind
        directories[kind] = result["run_dir"]
    assembly.run(small_config(name="packed", betas="0.5,2"))
    directories["packed_copy"] = str(tmp_path / "packed" / "beta2")
    settings = search.SearchConfig(output_dir=str(tmp_path / "search"), tuner="grid",
                                   grid_points=2)
    summary = search.search_beta(small_config(output_dir="", epochs=2), settings,
                                 baseline=False)
    trial = next(row for row in summary["trials"] if row["status"] == "completed")
    directories["search_trial"] = str(tmp_path / "search" / trial["run_dirs"])
    # Only `import keras, tc`: no runner module may be needed to load a run's model.
    evaluated = run_python(f"""
        import json, sys
        import keras, tc
        from tc import data
        x, y = data.load("digits").arrays("test")
        out = {{}}
        for kind, path in {directories!r}.items():
            model = keras.models.load_model(path + "/model.keras")
            logs = model.evaluate(x, y, batch_size=256, return_dict=True, verbose=0)
            out[kind] = {{"accuracy": logs["accuracy"], "ece": logs["ece"]}}
        loaded = tc.load_run({directories["default"]!r})
        out["load_run"] = type(loaded.model).__name__
        out["runner_loaded"] = sorted(m for m in sys.modules if m.startswith("tc.runner"))
        print(json.dumps(out))
    """)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    reloaded = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert reloaded.pop("load_run") == "Functional"
    assert reloaded.pop("runner_loaded") == []
    assert set(reloaded) == set(directories)
    for kind, path in directories.items():
        final = json.loads((tmp_path / path / "result.json").read_text())["final"]
        assert reloaded[kind]["accuracy"] == pytest.approx(final["test/accuracy"], abs=1e-6), kind
        assert reloaded[kind]["ece"] == pytest.approx(final["test/ece"], abs=1e-6), kind


def test_a_packed_copy_loads_back_with_its_flags_metrics_result_and_trained_model(
        tmp_path, small_config):
    results = assembly.run(small_config(dataset="synthetic", epochs=2, betas="0.5,2"))
    assert [result["model_file"] for result in results] == ["model.keras"] * 2
    assert [result["model"] for result in results] == ["mlp"] * 2  # the model's name
    path = tmp_path / "run" / "beta2"
    run = tc.load_run(str(path))
    assert run.flags["beta"] == 2.0 and run.flags["dataset"] == "synthetic"
    assert run.flags["epochs"] == 2 and "betas" not in run.flags  # the copy's own flags
    rows = run_files.read_csv(str(path / "metrics.csv"))
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


def test_train_eval_records_the_fit_of_the_unaugmented_training_examples(small_config, tmp_path):
    # --train_eval_size: the first N training examples, without augmentation, at each epoch end.
    # The last epoch's train_eval/accuracy is the trained model's accuracy on those examples.
    for name, overrides in (("single", {}), ("packed", {"betas": "0.5,2"})):
        results = assembly.run(small_config(name=name, epochs=2, train_eval_size=200,
                                            **overrides))
        x, y = data.load("digits").arrays("train")
        for result in results:
            path = result["run_dir"]
            rows = run_files.read_csv(f"{path}/metrics.csv")
            assert [row["epoch"] for row in rows] == [1, 2]
            model = tc.load_run(path).model
            predicted = np.argmax(model.predict(x[:200], verbose=0), axis=-1)
            assert rows[-1]["train_eval/accuracy"] == pytest.approx(
                np.mean(predicted == y[:200]), abs=1e-6), (name, path)
            assert result["final"]["train_eval/accuracy"] == rows[-1]["train_eval/accuracy"]
            assert "--train_eval_size=200" in (tmp_path / path / "flags.txt").read_text()
