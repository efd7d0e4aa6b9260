"""Packed beta sweeps: K copies of one model, each with its own beta, in one compiled program.

    python -m tc.train --dataset=digits --betas=0.01,0.1,1,10

The packed model feeds each batch to K copies of the model and returns their K logits. Its loss
is the sum of the copies' losses, copy k's with beta_k:

    L(theta_1..theta_K) = sum_k loss(y, f(x; theta_k); beta_k)

The copies share no weight, so dL/dtheta_k = d loss_k / dtheta_k, and a per-variable optimizer
(SGD, momentum, Adam, AdamW) moves each copy exactly as a separate run with beta_k would. Each
copy starts from the initialization of a separate run with the same seed, and all copies see the
same batches and augmentations: common random numbers across betas. One program for K models
keeps a GPU busy where one small model alone cannot.

Each copy writes an ordinary run directory (its flags.txt records `--beta=beta_k` and the
`--betas` it was trained with), so `analysis` sees K normal runs. A copy whose loss or weights
become non-finite is marked diverged at the end of that epoch and records nothing more; the
others train on, since its NaNs stay in its own weights and its own loss term.

Differences from K separate runs:
- with `--weight_decay` (not adamw), a copy's `train/loss` is its data term: Keras adds the L2
  penalty to the packed total only (the gradients include it);
- a packed sweep does not resume: restart it with `--overwrite`;
- `--mixed_precision=float16` is refused, because its loss scale would be shared by all copies.
"""

import dataclasses
import os
import shutil
import time

import keras

from tc import beta as beta_lib
from tc import callbacks as callbacks_lib
from tc import (
    distribute,
    experiment,
    models,
    optimization,
    representation,
    schedules,
)
from tc.run_dir import RunDirectory


def copy_configs(config):
    """One RunConfig per beta of `--betas`: the flags of each copy's run directory.

    The copies of `--output_dir=D` go to `D/beta<beta>`; with no `--output_dir`, each copy gets a
    single run's default directory.
    """
    configs = []
    for beta in config.packed_betas:
        output_dir = os.path.join(config.output_dir, f"beta{beta:g}") if config.output_dir else ""
        configs.append(dataclasses.replace(config, beta=beta, output_dir=output_dir))
    return configs


def check(config):
    """Raises ValueError for a configuration that cannot be packed."""
    if len(config.packed_betas) < 2:
        raise ValueError(f"--betas={config.betas!r}: a packed sweep needs at least 2 betas; "
                         "for one, use --beta.")
    if config.mixed_precision == "float16":
        raise ValueError("--mixed_precision=float16 cannot be packed: its loss scale would be "
                         "shared by all copies. Use bfloat16 or off.")


def pack(copies):
    """One model that runs every copy on the same input: outputs `copy_0 ... copy_{K-1}`."""
    source = copies[0].inputs[0]
    inputs = keras.Input(shape=source.shape[1:], dtype=source.dtype)
    named = [keras.Model(copy.inputs, copy.outputs, name=f"copy_{index}")
             for index, copy in enumerate(copies)]
    return keras.Model(inputs, [copy(inputs) for copy in named], name="packed"), named


def copy_logs(logs, index, name):
    """Copy `index`'s entries of the packed model's logs, under a single run's keys.

    Keras logs output `name`'s loss as `{index}/{name}_loss` and its metrics as `{name}_{metric}`
    (`val_` in front for validation).
    """
    picked = {}
    for prefix in ("", "val_"):
        loss_key = f"{prefix}{index}/{name}_loss"
        if loss_key in logs:
            picked[f"{prefix}loss"] = logs[loss_key]
        metric_prefix = f"{prefix}{name}_"
        for key, value in logs.items():
            if key.startswith(metric_prefix):
                picked[prefix + key[len(metric_prefix):]] = value
    return picked


def labels_for_outputs(data, num_outputs):
    """Evaluation data `(x, y)` (arrays or a `tf.data` dataset) with `y` once per output."""
    if data is None:
        return None
    if isinstance(data, tuple):
        x, y = data
        return x, (y,) * num_outputs
    return data.map(lambda x, y: (x, (y,) * num_outputs))


class JointRankProbe:
    """The tracked layers' activations of every copy, from one `predict` of all copies.

    `predict()` runs once per epoch; `for_copy(k)` is copy k's rank tracker for its
    `EpochRecorder` (ranks are computed only for copies that are still finite).
    """

    def __init__(self, copies, layer_names, probe_inputs, batch_size, rtol=1e-3):
        self.layer_names = list(layer_names)
        self.probe_inputs = probe_inputs
        self.batch_size = batch_size
        self.rtol = rtol
        self.activations = [{} for _ in copies]
        self.extractor = None
        if self.layer_names:
            source = copies[0].inputs[0]
            inputs = keras.Input(shape=source.shape[1:], dtype=source.dtype)
            outputs = []
            for copy in copies:
                extracted = representation.activation_model(copy, self.layer_names)(inputs)
                outputs.extend(extracted if isinstance(extracted, (list, tuple)) else [extracted])
            self.extractor = keras.Model(inputs, outputs)

    def predict(self):
        if self.extractor is None:
            return
        outputs = representation.extractor_outputs(self.extractor, self.probe_inputs,
                                                    self.batch_size)
        count = len(self.layer_names)
        self.activations = [dict(zip(self.layer_names, outputs[start:start + count]))
                            for start in range(0, len(outputs), count)]

    def for_copy(self, index):
        return CopyRanks(self, index)


class CopyRanks:
    """Copy `index`'s rank tracker: its share of a `JointRankProbe`'s last prediction."""

    def __init__(self, probe, index):
        self.probe = probe
        self.index = index

    def measure_later(self):
        if not self.probe.layer_names:
            return None
        activations = self.probe.activations[self.index]
        return lambda: representation.background_rank_row(activations, self.probe.rtol)


class PackedRecorder(keras.callbacks.Callback):
    """Evaluates the packed model once per epoch and hands each copy's logs to its recorder."""

    def __init__(self, recorders, names, test_data, eval_batch_size, rank_probe,
                 validation_data=None):
        super().__init__()
        self.recorders = recorders
        self.names = names
        self.test_data = test_data
        self.validation_data = validation_data
        self.eval_batch_size = eval_batch_size
        self.rank_probe = rank_probe

    def on_epoch_begin(self, epoch, logs=None):
        for recorder in self.recorders:
            recorder.on_epoch_begin(epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        test_logs = callbacks_lib.evaluate_with_validation(
            self.model, logs, self.validation_data, self.test_data, self.eval_batch_size)
        self.rank_probe.predict()
        for index, (recorder, name) in enumerate(zip(self.recorders, self.names)):
            recorder.record(epoch, copy_logs(logs, index, name),
                            copy_logs(test_logs or {}, index, name))
        if all(recorder.guard.diverged_at for recorder in self.recorders):
            self.model.stop_training = True


def run(config):
    """Trains the copies of `--betas` together; returns their result dicts, in beta order.

    Raises what `tc.experiment.run` raises, before anything is written.
    """
    try:
        config.validate()
        check(config)
    except ValueError as error:
        raise experiment.ConfigurationError(str(error)) from None
    started = time.time()
    with experiment.precision_policy(config):
        return _run(config, copy_configs(config), started)


def _prepare(config, configs):
    placement = distribute.place(config.strategy, config.tpu)  # first: see tc.distribute
    experiment.set_determinism(config)
    placement.check_batch_size(config.batch_size)
    dataset = experiment.load_dataset(config)
    steps_per_epoch = dataset.steps_per_epoch(config.batch_size)
    if steps_per_epoch < 1:
        raise ValueError(f"--batch_size={config.batch_size} exceeds the "
                         f"{dataset.split_sizes['train']} training examples of {config.dataset}.")
    with placement.scope():
        copies = []
        for _ in configs:
            # The initialization a separate run with this seed gets.
            keras.utils.set_random_seed(config.seed)
            copies.append(models.build(config.model_name, dataset.input_shape,
                                       dataset.num_classes,
                                       weight_decay=optimization.model_weight_decay(config),
                                       **config.parsed_model_options))
        packed, copies = pack(copies)
        copy_losses = [experiment.build_loss(copy_config) for copy_config in configs]
        for index, loss in enumerate(copy_losses):
            if loss.schedule is not None:
                beta_lib.track_beta(packed, loss, name=f"beta_{index}")
        packed.compile(optimizer=optimization.build_optimizer(config, steps_per_epoch),
                       loss=copy_losses,
                       metrics=[experiment.build_metrics(loss) for loss in copy_losses])
    for copy in copies:
        experiment.check_layers(copy, config)
    probe_data = experiment.load_probe_dataset(config, dataset) if config.probe_dataset else None
    keras.utils.set_random_seed(config.seed)
    return placement, dataset, steps_per_epoch, packed, copies, copy_losses, probe_data


def _run_directories(configs, writable):
    """The copies' run directories, prepared; refuses to resume a sweep."""
    directories = [RunDirectory(copy_config.run_dir, writable=writable) for copy_config in configs]
    for directory, copy_config in zip(directories, configs):
        same_run = directory.recorded_flags() == copy_config.to_flagfile()
        if same_run and directory.resume_state() is not None:
            if not copy_config.overwrite:
                raise experiment.ConfigurationError(
                    f"{directory.path} holds epochs of this sweep already; a packed sweep does "
                    "not resume. Pass --overwrite to train it again.")
            if writable:
                shutil.rmtree(directory.path)
    for directory, copy_config in zip(directories, configs):
        directory.prepare(copy_config.to_flagfile(), copy_config.overwrite)
    return directories


def _run(config, configs, started):
    try:
        placement, dataset, steps_per_epoch, packed, copies, copy_losses, probe_data = (
            _prepare(config, configs))
    except ValueError as error:
        if isinstance(error, experiment.ConfigurationError):
            raise
        raise experiment.ConfigurationError(str(error)) from error
    directories = _run_directories(configs, placement.is_chief)
    num_copies = len(copies)
    with placement.training_scope():  # device-side data takes the distribution's devices
        train, validation, test, probe = experiment.model_inputs(config, dataset, 0,
                                                                 labels_per_output=num_copies)
    try:
        recorders = []
        rank_probe = JointRankProbe(copies, config.rank_layers, probe, config.eval_batch_size)
        for index, (copy, loss, directory) in enumerate(zip(copies, copy_losses, directories)):
            experiment.scale_initial_logits(config, copy, loss, probe)
            guard = callbacks_lib.DivergenceGuard()
            guard.set_model(copy)
            recorder = callbacks_lib.EpochRecorder(directory, [], loss, guard,
                                                   rank_tracker=rank_probe.for_copy(index),
                                                   optimizer=packed.optimizer)
            recorder.set_model(copy)
            recorders.append(recorder)
        callbacks = [schedules.BetaScheduler(loss) for loss in copy_losses
                     if loss.schedule is not None]
        callbacks.append(PackedRecorder(recorders, [copy.name for copy in copies],
                                        labels_for_outputs(test, num_copies),
                                        config.eval_batch_size, rank_probe,
                                        labels_for_outputs(validation, num_copies)))
        fit_started = time.time()
        with placement.training_scope():
            packed.fit(train, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                       callbacks=callbacks_lib.StepQuietCallbackList(
                           callbacks, packed, config.verbose, add_history=True,
                           epochs=config.epochs, steps=steps_per_epoch),
                       verbose=config.verbose, shuffle=False)
        for directory in directories:
            directory.wait()
        fit_seconds = time.time() - fit_started
        examples_per_epoch = steps_per_epoch * config.batch_size
        results = []
        for index, (copy, loss, copy_config, directory, recorder) in enumerate(
                zip(copies, copy_losses, configs, directories, recorders)):
            trained = len(recorder.rows) * examples_per_epoch
            result = experiment.run_result(copy_config, placement, loss, recorder.rows,
                                           recorder.guard.diverged_at, started, fit_seconds,
                                           trained, directory.path)
            result.update(experiment.steady_throughput(recorder.epoch_seconds,
                                                       examples_per_epoch))
            result["packed"] = {"betas": list(config.packed_betas), "copy": index,
                                "copies": num_copies}
            if result["status"] == "completed":
                result.update(experiment.after_training(copy_config, copy, loss, directory,
                                                        validation, test, probe_data))
            results.append(result)
    except Exception as error:
        for directory in directories:
            directory.write_result({"status": "failed", "seed": config.seed,
                                    "error": f"{type(error).__name__}: {error}",
                                    "run_dir": directory.path})
        raise
    for directory, result in zip(directories, results):
        directory.write_result(result)
    return results
