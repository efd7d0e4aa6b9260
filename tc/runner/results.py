"""What a run leaves when it stops: result.json's fields, predictions.npz and the linear probe."""

import platform
import time

import keras
import numpy as np

import tc
from tc import beta as beta_lib
from tc import losses, representation


def package_versions():
    versions = {"tc": tc.__version__, "keras": keras.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    backend = keras.backend.backend()
    if backend in ("tensorflow", "jax", "torch"):
        module = __import__(backend)
        versions[backend] = module.__version__
    return versions


def _summary(rows, key="val/accuracy"):
    if not rows:
        return None, None
    final = rows[-1]
    with_key = [row for row in rows if row.get(key) is not None]
    best = max(with_key, key=lambda row: row[key]) if with_key else final
    return final, best


def steady_throughput(epoch_seconds, examples_per_epoch):
    """Per-epoch wall times, and examples/s after the first epoch (which includes compiling)."""
    steady = epoch_seconds[1:]
    return {"epoch_seconds": list(epoch_seconds),
            "steady_examples_per_second": (examples_per_epoch / float(np.median(steady))
                                           if steady else None)}


def stopped_result(config, recorder, timing, placement, examples_per_epoch):
    """The result.json of a run that stopped normally (completed or diverged).

    `recorder` is the run's `tc.runner.callbacks.EpochRecorder`; `timing` holds `started` (the
    run's start) and `fit_seconds`.
    """
    rows, diverged_at = recorder.rows, recorder.guard.diverged_at
    trained_examples = len(recorder.epoch_seconds) * examples_per_epoch
    fit_seconds = timing["fit_seconds"]
    final, best = _summary(rows)
    return {
        "status": "diverged" if diverged_at else "completed",
        "diverged_at": diverged_at,
        "epochs_completed": len(rows),
        "epochs": config.epochs,
        "final": final,
        "best_validation": best,
        "scored_probabilities": recorder.loss.scored_probabilities,
        "loss": config.loss,
        "beta": config.beta,
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "wall_seconds": time.time() - timing["started"],
        "train_seconds": fit_seconds,
        "examples_per_second": (trained_examples / fit_seconds
                                if fit_seconds > 0 and trained_examples > 0 else None),
        "backend": keras.backend.backend(),
        "strategy": placement.name,
        "replicas": placement.num_replicas,
        "versions": package_versions(),
        "run_dir": recorder.run_dir.path,
        **steady_throughput(recorder.epoch_seconds, examples_per_epoch),
    }


def failed_result(config, run_dir, error):
    return {"status": "failed", "error": f"{type(error).__name__}: {error}", "seed": config.seed,
            "run_dir": run_dir.path}


def predictions(model, loss, data, batch_size):
    """`(logits whose softmax the metrics score, labels)` of (x, y) arrays or a dataset.

    For temperature CE these are `beta * z`; for gradient decay, `z`.
    """
    if isinstance(data, tuple):
        x, labels = data
        logits = model.predict(x, batch_size=batch_size, verbose=0)
    else:
        logits = model.predict(data, verbose=0)
        labels = np.concatenate([np.asarray(y) for _, y in data.as_numpy_iterator()])
    logits = np.asarray(logits, dtype=np.float32)
    if isinstance(loss, losses.TemperatureCrossEntropy):
        logits = logits * np.float32(beta_lib.variable_value(loss.beta))
    return logits, np.asarray(labels)


def linear_probe(config, model, probe_dataset):
    """Paper 3's transfer probe: test accuracy of a logistic regression on frozen features."""
    x_train, y_train = probe_dataset.arrays("train")
    x_test, y_test = probe_dataset.arrays("test")
    x_train, y_train = x_train[:config.probe_size], y_train[:config.probe_size]
    layer = config.probe_layer
    extractor = representation.activation_model(model, [layer])
    train, test = (representation.layer_activations(model, [layer], x, config.eval_batch_size,
                                                    extractor=extractor)
                   for x in (x_train, x_test))
    accuracy = representation.linear_probe_accuracy(train[layer], y_train, test[layer], y_test)
    return {"dataset": config.probe_dataset, "layer": layer, "train_examples": len(y_train),
            "accuracy": accuracy}


def after_training(config, model, loss, run_dir, inputs, probe_dataset):
    """Extras of a completed run: predictions.npz and the linear probe, as result.json fields."""
    extras = {}
    if config.save_predictions:
        arrays = {}
        for split, data in (("val", inputs.validation), ("test", inputs.test)):
            if data is not None:
                arrays[f"{split}_logits"], arrays[f"{split}_labels"] = predictions(
                    model, loss, data, config.eval_batch_size)
        run_dir.write_predictions(arrays)
        extras["predictions"] = "predictions.npz"
    if probe_dataset is not None:
        extras["linear_probe"] = linear_probe(config, model, probe_dataset)
    return extras
