"""One training run, from a RunConfig to a complete run directory. Both entry points call `run`.

    config -> placement (strategy) -> dataset -> model -> readout scaled to ||beta z0||
      -> compile(loss with beta in a variable, metrics) -> fit with callbacks
         (beta schedule, divergence guard, epoch recorder, TensorBoard)
      -> run directory: flags.txt, metrics.csv, result.json, predictions.npz, checkpoints/,
         tensorboard/ (and a linear probe on --probe_dataset)

Everything that can fail on bad input (flags, names, batch size, missing data, model options)
fails before the run directory is created. A restarted run resumes from its last committed
epoch; see `tc.run_dir`.
"""

import contextlib
import dataclasses
import platform
import time

import keras
import numpy as np

import tc
from tc import beta as beta_lib
from tc import callbacks as callbacks_lib
from tc import (
    checkpoint,
    distribute,
    layers,
    losses,
    metrics,
    models,
    optimization,
    representation,
    schedules,
)
from tc import data as data_lib
from tc.data import device_stream
from tc.run_dir import RunDirectory

STATUS_EXIT_CODES = {"completed": 0, "failed": 1, "diverged": 3}


class ConfigurationError(ValueError):
    """Bad input found before the run started: nothing was written."""


# Streamed (imagenet) data is augmented by tf.data; in-memory data can be, on the device.
AUGMENTED_ON_HOST = ("imagenet",)


def build_loss(config):
    """The loss of `--loss`, with `--beta` constant or warmed up by `--beta_schedule`."""
    beta = config.beta
    if config.beta_schedule != "constant":
        schedule_class = {"log_linear": schedules.LogLinearWarmup,
                          "cosine": schedules.CosineWarmup}[config.beta_schedule]
        beta = schedule_class(config.beta_start, config.beta, config.beta_warmup,
                              unit=config.beta_warmup_unit)
    loss_class = {"temperature": losses.TemperatureCrossEntropy,
                  "gradient_decay": losses.GradientDecayCrossEntropy}[config.loss]
    return loss_class(beta=beta, label_smoothing=config.label_smoothing)


def build_metrics(loss):
    """Accuracy, NLL, ECE, MCE of the trained predictor; ||z|| and ||beta z||."""
    scored = loss if isinstance(loss, losses.TemperatureCrossEntropy) else None
    return [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        metrics.NegativeLogLikelihood(beta=scored),
        metrics.ExpectedCalibrationError(beta=scored),
        metrics.MaximumCalibrationError(beta=scored),
        metrics.LogitNorm(name="logit_norm"),
        metrics.LogitNorm(beta=loss, name="beta_logit_norm"),
    ]


def load_dataset(config):
    options = {**config.parsed_dataset_options, "seed": config.seed}
    if config.validation_size >= 0:
        options["validation_size"] = config.validation_size
    if config.dataset not in data_lib.IN_MEMORY:
        options["data_dir"] = config.data_dir or None
    return data_lib.load(config.dataset, **options)


def trains_on_device(dataset):
    """In-memory data on JAX/PyTorch: batches are gathered and augmented on the accelerator.

    No TensorFlow is needed; see `tc.data.device_stream`. Other cases use `tf.data`.
    """
    return (keras.backend.backend() != "tensorflow"
            and isinstance(dataset, data_lib.ArrayDataset)
            and dataset.spec.preprocessing not in AUGMENTED_ON_HOST)


def model_inputs(config, dataset, initial_epoch, labels_per_output=1):
    """(train, validation, test, rank-probe inputs) in the form the backend wants.

    `labels_per_output > 1` gives training labels for a model with that many outputs (a packed
    sweep); evaluation data stays `(x, y)`.
    """
    has_validation = dataset.split_sizes["validation"] > 0
    if trains_on_device(dataset):
        train = iter(device_stream.DeviceStream(dataset, config.batch_size, config.seed,
                                                initial_epoch, config.epochs,
                                                labels_per_output=labels_per_output))
        # Evaluation splits stay on the device too: no host-to-device copy every epoch.
        validation = (device_stream.on_device(dataset.arrays("validation")) if has_validation
                      else None)
        test = device_stream.on_device(dataset.arrays("test"))
        probe = test[0][:config.rank_probe_size]
        return train, validation, test, probe
    train = dataset.tf_dataset("train", config.batch_size, seed=config.seed,
                               first_epoch=initial_epoch,
                               num_epochs=max(config.epochs - initial_epoch, 1))
    if labels_per_output > 1:
        train = train.map(lambda x, y: (x, (y,) * labels_per_output))
    validation = (dataset.tf_dataset("validation", config.eval_batch_size)
                  if has_validation else None)
    test = dataset.tf_dataset("test", config.eval_batch_size)
    probe = np.concatenate([x.numpy() for x, _ in test.unbatch().batch(
        config.rank_probe_size).take(1)])
    return train, validation, test, probe


def set_determinism(config):
    keras.utils.set_random_seed(config.seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            tf.config.experimental.enable_op_determinism()


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


def run(config, extra_callbacks=()):
    """Trains one run and returns its result dict (also written to result.json).

    Raises:
        ConfigurationError: bad configuration (a ValueError; nothing is written).
        tc.data.DatasetNotPreparedError: the dataset is missing (nothing is written).
        tc.run_dir.RunDirectoryConflict: the output directory holds another run.
    """
    try:
        config.validate()
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    started = time.time()
    with precision_policy(config):
        return _run(config, started, extra_callbacks)


@contextlib.contextmanager
def precision_policy(config):
    """Keras's dtype policy set to `--mixed_precision` inside, restored after."""
    previous_policy = keras.config.dtype_policy()
    if config.mixed_precision != "off":
        keras.config.set_dtype_policy(f"mixed_{config.mixed_precision}")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _prepare(config):
    """Everything that can fail on bad input, before any file is written."""
    placement = distribute.place(config.strategy, config.tpu)  # first: see tc.distribute
    set_determinism(config)
    placement.check_batch_size(config.batch_size)
    dataset = load_dataset(config)
    steps_per_epoch = dataset.steps_per_epoch(config.batch_size)
    if steps_per_epoch < 1:
        raise ValueError(f"--batch_size={config.batch_size} exceeds the "
                         f"{dataset.split_sizes['train']} training examples of {config.dataset}.")
    with placement.scope():
        model = models.build(config.model_name, dataset.input_shape, dataset.num_classes,
                             weight_decay=optimization.model_weight_decay(config),
                             **config.parsed_model_options)
        loss = build_loss(config)
        model.compile(optimizer=optimization.build_optimizer(config, steps_per_epoch),
                      loss=loss, metrics=build_metrics(loss))
    check_layers(model, config)
    probe_data = load_probe_dataset(config, dataset) if config.probe_dataset else None
    return placement, dataset, steps_per_epoch, model, loss, probe_data


def check_layers(model, config):
    probe_layers = (config.probe_layer,) if config.probe_dataset else ()
    for flag, names in (("track_rank_layers", config.rank_layers), ("probe_layer", probe_layers)):
        if not names:
            continue
        try:
            representation.activation_model(model, names)
        except ValueError as error:
            raise ValueError(f"--{flag}: {error}") from None


def load_probe_dataset(config, dataset):
    """The --probe_dataset, checked to be in memory and to fit the model's input."""
    # No validation split: the probe is fit on training data and scored on the test split.
    takes_validation = "validation_size" in data_lib.options(config.probe_dataset)
    probe_config = dataclasses.replace(config, dataset=config.probe_dataset, dataset_options="",
                                       validation_size=0 if takes_validation else -1)
    probe = load_dataset(probe_config)
    if not isinstance(probe, data_lib.ArrayDataset):
        raise ValueError(f"--probe_dataset={config.probe_dataset!r} is streamed; the linear probe "
                         f"needs an in-memory dataset: one of {', '.join(data_lib.IN_MEMORY)} "
                         "or a TFDS dataset other than imagenet2012.")
    if tuple(probe.input_shape) != tuple(dataset.input_shape):
        raise ValueError(f"--probe_dataset={config.probe_dataset!r} has inputs of shape "
                         f"{tuple(probe.input_shape)}, but the model takes "
                         f"{tuple(dataset.input_shape)} ({config.dataset}).")
    return probe


def linear_probe(config, model, probe):
    """Paper 3's transfer probe: test accuracy of a logistic regression on frozen features."""
    x_train, y_train = probe.arrays("train")
    x_test, y_test = probe.arrays("test")
    x_train, y_train = x_train[:config.probe_size], y_train[:config.probe_size]
    layer = config.probe_layer
    extractor = representation.activation_model(model, [layer])
    train, test = (representation.layer_activations(model, [layer], x, config.eval_batch_size,
                                                    extractor=extractor)
                   for x in (x_train, x_test))
    accuracy = representation.linear_probe_accuracy(train[layer], y_train, test[layer], y_test)
    return {"dataset": config.probe_dataset, "layer": layer, "train_examples": len(y_train),
            "accuracy": accuracy}


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


def scale_initial_logits(config, model, loss, probe):
    """Rescales the readout to `--init_logit_norm`, if set: the mean ||beta z0|| on `probe`."""
    if config.initial_logit_norm is None:
        return
    # ||beta z0|| with the temperature the loss starts at; gradient decay has none.
    norm_beta = beta_lib.variable_value(loss.beta) if config.loss == "temperature" else 1.0
    layers.set_initial_logit_norm(model, probe, config.initial_logit_norm, beta=norm_beta)


def _run(config, started, extra_callbacks):
    try:
        placement, dataset, steps_per_epoch, model, loss, probe_data = _prepare(config)
    except ValueError as error:
        if isinstance(error, ConfigurationError):
            raise
        raise ConfigurationError(str(error)) from error
    run_dir = RunDirectory(config.run_dir, writable=placement.is_chief)
    state = run_dir.prepare(config.to_flagfile(), config.overwrite)
    initial_epoch = state["completed_epochs"] if state else 0
    with placement.training_scope():  # device-side data takes the distribution's devices
        train, validation, test, probe = model_inputs(config, dataset, initial_epoch)
    try:
        if state:
            with placement.scope():
                model.optimizer.build(model.trainable_variables)
            checkpoint.restore(model, run_dir.checkpoint_path(state))
        else:
            scale_initial_logits(config, model, loss, probe)
        guard = callbacks_lib.DivergenceGuard()
        rank_tracker = representation.RankTracker(config.rank_layers, probe,
                                                  batch_size=config.eval_batch_size)
        rank_tracker.set_model(model)
        recorder = callbacks_lib.EpochRecorder(
            run_dir, run_dir.metrics_rows(initial_epoch), loss, guard, test, rank_tracker,
            config.eval_batch_size, validation_data=validation)
        callbacks = [guard, recorder, *extra_callbacks]
        if loss.schedule is not None:
            callbacks.insert(0, schedules.BetaScheduler(loss))
        if config.tensorboard and placement.is_chief and _tensorflow_available():
            callbacks.append(keras.callbacks.TensorBoard(
                run_dir.file("tensorboard"), write_graph=False, profile_batch=0))
        fit_started = time.time()
        if initial_epoch < config.epochs:
            with placement.training_scope():
                # Validation runs in the recorder (see tc.callbacks), not in `fit`.
                model.fit(train, epochs=config.epochs, initial_epoch=initial_epoch,
                          steps_per_epoch=steps_per_epoch,
                          callbacks=callbacks_lib.StepQuietCallbackList(
                              callbacks, model, config.verbose, add_history=True,
                              epochs=config.epochs, steps=steps_per_epoch),
                          verbose=config.verbose, shuffle=False)
        run_dir.wait()
        trained_epochs = len(recorder.rows) - initial_epoch
        trained_examples = trained_epochs * steps_per_epoch * config.batch_size
        fit_seconds = time.time() - fit_started
        result = run_result(config, placement, loss, recorder.rows, guard.diverged_at,
                         started, fit_seconds, trained_examples, run_dir.path)
        result.update(steady_throughput(recorder.epoch_seconds,
                                         steps_per_epoch * config.batch_size))
        if result["status"] == "completed":
            result.update(after_training(config, model, loss, run_dir, validation, test,
                                          probe_data))
    except Exception as error:
        run_dir.write_result({"status": "failed", "error": f"{type(error).__name__}: {error}",
                              "seed": config.seed, "run_dir": run_dir.path})
        raise
    run_dir.write_result(result)
    return result


def steady_throughput(epoch_seconds, examples_per_epoch):
    """Per-epoch wall times, and examples/s after the first epoch (which includes compiling)."""
    steady = epoch_seconds[1:]
    return {"epoch_seconds": list(epoch_seconds),
            "steady_examples_per_second": (examples_per_epoch / float(np.median(steady))
                                           if steady else None)}


def after_training(config, model, loss, run_dir, validation, test, probe_data):
    """Extras of a completed run: predictions.npz and the linear probe, as result.json fields."""
    extras = {}
    if config.save_predictions:
        arrays = {}
        for split, data in (("val", validation), ("test", test)):
            if data is not None:
                arrays[f"{split}_logits"], arrays[f"{split}_labels"] = predictions(
                    model, loss, data, config.eval_batch_size)
        run_dir.write_predictions(arrays)
        extras["predictions"] = "predictions.npz"
    if probe_data is not None:
        extras["linear_probe"] = linear_probe(config, model, probe_data)
    return extras


def run_result(config, placement, loss, rows, diverged_at, started, fit_seconds, trained_examples,
            path):
    """The result.json of a run that stopped normally (completed or diverged)."""
    final, best = _summary(rows)
    return {
        "status": "diverged" if diverged_at else "completed",
        "diverged_at": diverged_at,
        "epochs_completed": len(rows),
        "epochs": config.epochs,
        "final": final,
        "best_validation": best,
        "scored_probabilities": loss.scored_probabilities,
        "loss": config.loss,
        "beta": config.beta,
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "wall_seconds": time.time() - started,
        "train_seconds": fit_seconds,
        "examples_per_second": (trained_examples / fit_seconds
                                if fit_seconds > 0 and trained_examples > 0 else None),
        "backend": keras.backend.backend(),
        "strategy": placement.name,
        "replicas": placement.num_replicas,
        "versions": package_versions(),
        "run_dir": path,
    }


def _tensorflow_available():
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True
