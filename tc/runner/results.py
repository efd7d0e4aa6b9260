"""What a run leaves when it stops: result.json's fields, predictions.npz and the linear probe."""

import os
import platform
import time

import keras
import numpy as np

import tc
from tc import beta as beta_lib
from tc import ood, representation
from tc.data import far_ood, preprocessing
from tc.runner import run_dir as run_dir_lib


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


def stopped_result(config, recorder, timing, placement, examples_per_epoch,
                   interrupted_by=None):
    """The result.json of a run that stopped without an error: completed, diverged, or
    interrupted (by the signal `interrupted_by` before its last epoch; resumable).

    `recorder` is the run's `tc.runner.callbacks.EpochRecorder`; `timing` holds `started` (the
    run's start) and `fit_seconds`.
    """
    rows, diverged_at = recorder.rows, recorder.guard.diverged_at
    status = "completed"
    if diverged_at:
        status = "diverged"
    elif interrupted_by and len(rows) < config.epochs:
        status = "interrupted"
    trained_examples = len(recorder.epoch_seconds) * examples_per_epoch
    fit_seconds = timing["fit_seconds"]
    final, best = _summary(rows)
    return {
        "status": status,
        "dataset": config.dataset,
        "model": config.model_name,
        "diverged_at": diverged_at,
        "interrupted_by": interrupted_by if status == "interrupted" else None,
        "epochs_completed": len(rows),
        "epochs": config.epochs,
        "final": final,
        "best_validation": best,
        "scored_probabilities": recorder.loss.scored_probabilities,
        "loss": config.loss,
        "beta": config.beta,
        "learning_rate": config.learning_rate,
        "trained_learning_rate": config.effective_learning_rate,
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


def not_started_result(config):
    """What `run` returns for a copy whose program a signal kept from starting (not written)."""
    return {"status": "interrupted", "interrupted_by": None, "diverged_at": None, "final": None,
            "epochs_completed": 0, "epochs": config.epochs, "beta": config.beta,
            "seed": config.seed, "run_dir": config.run_dir}


def failed_result(config, run_dir, error):
    return {"status": "failed", "error": f"{type(error).__name__}: {error}", "seed": config.seed,
            "run_dir": run_dir.path}


def predictions(model, loss, data, batch_size):
    """`(logits whose softmax the metrics score, labels)` of (x, y) arrays or a dataset.

    For temperature CE these are `beta * z`; for gradient decay, `z`.
    """
    if isinstance(data, tuple):
        x, labels = data
        # Not `predict`: on JAX, arrays on the device (those of a multi-process run span every
        # process, which `predict` would take for this process's share) go through one
        # compiled inference call per batch.
        logits, = representation.extractor_outputs(model, x, batch_size)
    else:
        logits = model.predict(data, verbose=0)
        labels = np.concatenate([np.asarray(y) for _, y in data.as_numpy_iterator()])
    logits = np.asarray(logits, dtype=np.float32)
    if loss.scores_scaled_logits:
        logits = logits * np.float32(beta_lib.variable_value(loss.beta))
    return logits, np.asarray(labels)


def linear_probe(config, model, probe_dataset):
    """Paper 3's transfer probe: test accuracy of a logistic regression on the frozen
    activations of each `--probe_layer`; `layer` and `accuracy` are the first one's, `layers`
    has every layer's accuracy."""
    x_train, y_train = probe_dataset.arrays("train")
    x_test, y_test = probe_dataset.arrays("test")
    x_train, y_train = x_train[:config.probe_size], y_train[:config.probe_size]
    layers = list(config.probe_layers)
    extractor = representation.activation_model(model, layers)
    train, test = (representation.layer_activations(model, layers, x, config.eval_batch_size,
                                                    extractor=extractor)
                   for x in (x_train, x_test))
    accuracies = {layer: representation.linear_probe_accuracy(train[layer], y_train,
                                                              test[layer], y_test)
                  for layer in layers}
    return {"dataset": config.probe_dataset, "layer": layers[0], "train_examples": len(y_train),
            "accuracy": accuracies[layers[0]], "layers": accuracies}


def ood_detection(config, model, loss, dataset, outsides):
    """Paper 3's OOD detection: the run's test inputs against each set of inputs in `outsides`
    (`{name: x}`, normalized as the model's inputs), scored by the maximum softmax probability
    and the energy of the logits the metrics score (`beta z` for temperature CE), and by the
    principal-subspace share of the features of the first --probe_layer (fit on up to
    --probe_size training inputs, with as many directions as classes). The in-distribution
    logits, features and subspace are computed once for all the sets.
    Returns `{name: {score: {"auroc": ..., "fpr_at_95_tpr": ...}}}`."""
    x_train, _ = dataset.arrays("train")
    x_in, y_in = dataset.arrays("test")
    logits_in, _ = predictions(model, loss, (x_in, y_in), config.eval_batch_size)
    layer = config.probe_layers[0]
    extractor = representation.activation_model(model, [layer])

    def features(x):
        return representation.layer_activations(model, [layer], x, config.eval_batch_size,
                                                extractor=extractor)[layer]

    train_features, in_features = features(x_train[:config.probe_size]), features(x_in)
    width = int(np.prod(np.shape(train_features)[1:]))
    subspace = ood.PrincipalSubspaceScore(train_features, min(dataset.num_classes, width - 1))
    inside = {"max_softmax_probability": ood.max_softmax_probability(logits_in),
              "energy": ood.energy(logits_in), "principal_subspace": subspace(in_features)}
    detected = {}
    for name, x_out in outsides.items():
        logits_out, _ = predictions(model, loss, (x_out, np.zeros(len(x_out), np.int32)),
                                    config.eval_batch_size)
        outside = {"max_softmax_probability": ood.max_softmax_probability(logits_out),
                   "energy": ood.energy(logits_out),
                   "principal_subspace": subspace(features(x_out))}
        detected[name] = {score: {"auroc": ood.auroc(inside[score], outside[score]),
                                  "fpr_at_95_tpr": ood.fpr_at_tpr(inside[score], outside[score],
                                                                  0.95)}
                          for score in inside}
    return detected


def far_ood_sets(config, dataset):
    """`{set: inputs}` of each --far_ood set, made at the model's input shape and normalized
    with the in-distribution dataset's statistics."""
    return {name: preprocessing.normalize(far_ood.images(name, dataset.input_shape),
                                          dataset.spec, preprocessing.NUMPY)
            for name in config.far_ood_sets}


def after_training(config, model, loss, run_dir, inputs, probe_dataset, dataset=None,
                   keep_model=False):
    """Extras of a completed run: model.keras (`model`, compiled with its loss and metrics),
    predictions.npz, the linear probe and OOD detection on --probe_dataset, as result.json
    fields. With `keep_model`, a model.keras already on disk is kept as it is."""
    extras = {}
    if not (keep_model and os.path.isfile(run_dir.file(run_dir_lib.MODEL))):
        run_dir.write_model(model)
    extras["model_file"] = "model.keras"
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
    if dataset is not None and hasattr(dataset, "arrays"):
        # The near set (--probe_dataset) under a name no far-OOD set has.
        outsides = {None: probe_dataset.arrays("test")[0]} if probe_dataset is not None else {}
        outsides.update(far_ood_sets(config, dataset))
        if outsides:
            detected = ood_detection(config, model, loss, dataset, outsides)
            if probe_dataset is not None:
                extras["ood_detection"] = detected.pop(None)
            if detected:
                extras["far_ood_detection"] = detected
    return extras
