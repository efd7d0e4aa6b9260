"""One assembly of a run, from a RunConfig to complete run directories; every entry point uses it.

    config -> placement (strategy) -> dataset -> members' models (one, or K packed copies)
      -> readouts scaled to ||beta z0|| -> compile(losses with beta in a variable, metrics)
      -> fit with callbacks (beta schedules, `EpochEnd`, the progress line)
      -> one run directory per member: flags.txt, metrics.csv, result.json, predictions.npz,
         checkpoints/, tensorboard/ (and a linear probe on --probe_dataset)

A member is what one run directory records. A single run has one member, whose model is the
trained model. A packed sweep (`--betas`, `--learning_rates`, `--seeds`, ...; see
`tc.runner.packing`) has one member per copy inside the packed model. Everything else is the
same code. A sweep whose copies do not fit in the accelerator's memory together, or draw
different data orders (`--data_order=per_copy`), runs as several programs, one after another,
on the same placement and data.

Everything that can fail on bad input (flags, names, batch size, missing data, model options)
fails before a run directory is created. A restarted run resumes from the last epoch every
member committed (see `tc.runner.run_dir`); a diverged member stays diverged.
"""

import contextlib
import dataclasses
import gc
import sys
import time

import keras
from keras import ops

from tc import beta as beta_lib
from tc import compat, data, layers, losses, metrics, models, representation, schedules
from tc.runner import (
    callbacks,
    checkpoint,
    distribute,
    epoch_scalars,
    example_learning,
    inputs as inputs_lib,
    interruption,
    memory,
    optimization,
    packing,
    progress,
    results,
)
from tc.runner.run_dir import RunDirectory

STATUS_EXIT_CODES = {"completed": 0, "failed": 1, "diverged": 3, "interrupted": 4}


class ConfigurationError(ValueError):
    """Bad input found before the run started: nothing was written."""


@dataclasses.dataclass
class Member:
    """One run directory's share of a run: its flags, model, loss and (once open) its record."""

    config: object
    model: keras.Model
    loss: keras.losses.Loss  # a registered tc loss (tc.losses.get)
    # The rate it trains at now, and its share of the optimizer state (None: all of it).
    learning_rate: object = None
    optimizer_variables: object = None
    directory: RunDirectory = None
    recorder: callbacks.EpochRecorder = None
    resume_from: str = None  # the checkpoint it restarts from, if any


@dataclasses.dataclass
class Prepared:
    """Everything a run needs that can fail on bad input, made before any file is written."""

    placement: distribute.Placement
    dataset: object
    steps_per_epoch: int
    model: keras.Model  # the model `fit` trains: the member's own, or the packed one
    members: list
    probe_dataset: object = None
    # Where this program's members sit in their sweep (several programs when K do not fit, or
    # draw different data orders).
    copy_indices: list = dataclasses.field(default_factory=lambda: [0])
    sweep_size: int = 1
    tracked_examples: tuple = None  # (x, y) of --track_example_learning

    @property
    def packed(self):
        return self.model is not self.members[0].model

    @property
    def in_sweep(self):
        return self.sweep_size > 1


def build_loss(config):
    """The loss of `--loss`, with `--beta` constant or warmed up by `--beta_schedule`."""
    beta = config.beta
    if config.beta_schedule != "constant":
        schedule_class = {"log_linear": schedules.LogLinearWarmup,
                          "cosine": schedules.CosineWarmup}[config.beta_schedule]
        beta = schedule_class(config.beta_start, config.beta, config.beta_warmup,
                              unit=config.beta_warmup_unit)
    return losses.get(config.loss)(beta=beta, label_smoothing=config.label_smoothing)


def build_metrics(loss):
    """Accuracy, NLL, ECE, MCE of the trained predictor; ||z|| and ||beta z||."""
    scored = loss if loss.scores_scaled_logits else None
    return [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        metrics.NegativeLogLikelihood(beta=scored),
        metrics.ExpectedCalibrationError(beta=scored),
        metrics.MaximumCalibrationError(beta=scored),
        metrics.LogitNorm(name="logit_norm"),
        metrics.LogitNorm(beta=loss, name="beta_logit_norm"),
    ]


def set_determinism(config):
    compat.set_random_seed(config.seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            tf.config.experimental.enable_op_determinism()


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


def check_layers(model, config):
    probe_layers = config.probe_layers if config.probe_dataset or config.far_ood else ()
    for flag, names in (("track_rank_layers", config.rank_layers), ("probe_layer", probe_layers)):
        if not names:
            continue
        try:
            representation.activation_model(model, names)
        except ValueError as error:
            raise ValueError(f"--{flag}: {error}") from None


def scale_initial_logits(config, model, loss, rank_inputs):
    """Rescales the readout to `--init_logit_norm`, if set: the mean ||beta z0|| on the inputs.

    Returns what result.json records of it, `{"target", "before", "after", "examples"}` (the
    mean ||beta z0|| measured before and after the rescaling), or None without the flag.
    """
    if config.initial_logit_norm is None:
        return None
    # ||beta z0|| with the temperature the loss starts at; gradient decay has none.
    norm_beta = beta_lib.variable_value(loss.beta) if config.loss == "temperature" else 1.0
    before = layers.mean_logit_norm(model, rank_inputs, norm_beta)
    after = layers.set_initial_logit_norm(model, rank_inputs, config.initial_logit_norm,
                                          beta=norm_beta)
    return {"target": config.initial_logit_norm, "before": before, "after": after,
            "examples": int(len(rank_inputs))}


def member_configs(config):
    """The flags of each member's run directory: the config itself, or one per packed copy."""
    return packing.copy_configs(config) if config.is_packed else [config]


def run(config, extra_callbacks=(), members=None):
    """Trains the run of `config` (a packed sweep with `--betas`, `--learning_rates`, ...);
    returns one result dict per run directory (written to its result.json), in copy order.

    `members`, if given, are the single-run configs of the copies to pack (each with its own
    output directory; they may differ from `config` only in `packing.PER_COPY_FIELDS`): how
    `tc.tune --packed` trains several trials in one program. A sweep whose copies do not fit in
    one program (`--max_copies_per_program`, `tc.runner.memory`) runs as several, one after
    another, each from the same data order.

    Raises:
        ConfigurationError: bad configuration (a ValueError; nothing is written).
        tc.data.DatasetNotPreparedError: the dataset is missing (nothing is written).
        tc.runner.run_dir.RunDirectoryConflict: an output directory holds another run.
        tc.runner.resume.DamagedRunError: a run to resume has no epoch that checks out.
    """
    try:
        config.validate()
        if members is not None:
            packing.check_members(config, members)
        elif config.is_packed:
            packing.check(config)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    configs = list(members) if members is not None else member_configs(config)
    # A completed run is returned as it is, never trained or written again.
    outcomes = [RunDirectory(member_config.run_dir, writable=False).completed_result(
        member_config.to_flagfile()) for member_config in configs]
    for member_config, outcome in zip(configs, outcomes):
        if outcome and config.verbose:
            print(f"tc: {member_config.run_dir} already completed; nothing trained, nothing "
                  "written (its result.json follows)", flush=True)
    if all(outcomes):
        return outcomes
    with precision_policy(config):
        with _configuration_errors():
            setup = prepare_data(config)
        for waiting in _by_data_order(configs, skip=[bool(outcome) for outcome in outcomes]):
            while waiting and not interruption.requested():
                timing = {"started": time.time()}
                with _configuration_errors():
                    prepared = prepare(config, configs, waiting, setup)
                # The program draws its copies' data order (--data_order=per_copy: one seed's).
                program = dataclasses.replace(
                    config, shuffle_seed=prepared.members[0].config.data_order_seed)
                for index, result in zip(prepared.copy_indices,
                                         _train(program, prepared, timing, extra_callbacks)):
                    outcomes[index] = result
                waiting = waiting[len(prepared.members):]
                # The next program is built only once this one's models and optimizer state
                # are freed: two programs at once would not fit where one is all that fits.
                prepared = program = None
                gc.collect()
    # Copies whose program a signal kept from starting: nothing of theirs was written.
    return [outcome if outcome is not None else results.not_started_result(member_config)
            for outcome, member_config in zip(outcomes, configs)]


def _by_data_order(configs, skip):
    """The copies' indices, but those `skip` marks, grouped by the data order they draw, in
    order of first appearance."""
    groups = {}
    for index, member_config in enumerate(configs):
        if not skip[index]:
            groups.setdefault(member_config.data_order_seed, []).append(index)
    return list(groups.values())


@contextlib.contextmanager
def _configuration_errors():
    """Bad input found while preparing, raised as a ConfigurationError."""
    try:
        yield
    except ConfigurationError:
        raise
    except ValueError as error:
        raise ConfigurationError(str(error)) from error


def run_one(config, extra_callbacks=()):
    """`run` of a single run (no sweep lists): its result dict."""
    if config.is_packed:
        raise ConfigurationError("the flags give a packed sweep (--betas, --learning_rates, "
                                 "--seeds, ...); use `run`.")
    return run(config, extra_callbacks)[0]


@dataclasses.dataclass
class DataSetup:
    """What every program of a run shares: the placement, the dataset and the probe dataset."""

    placement: distribute.Placement
    dataset: object
    steps_per_epoch: int
    probe_dataset: object = None
    tracked_examples: tuple = None  # (x, y) of --track_example_learning


def prepare_data(config):
    """The placement and data of a run; everything here can fail on bad input, before any file
    is written."""
    # First: see tc.runner.distribute.
    placement = distribute.place(config.strategy, config.tpu, distribute.Processes(
        config.coordinator_address, config.num_processes, config.process_id), seed=config.seed)
    set_determinism(config)
    placement.check_batch_size(config.batch_size)
    if config.steps_per_call > 1 and placement.num_replicas > 1:
        raise ValueError(f"--steps_per_call={config.steps_per_call} fuses the steps of one "
                         f"device; the {placement.name} strategy spans {placement.num_replicas} "
                         "replicas. Use --steps_per_call=1 there.")
    dataset = inputs_lib.load_dataset(config)
    steps_per_epoch = dataset.steps_per_epoch(config.batch_size)
    if steps_per_epoch < 1:
        raise ValueError(f"--batch_size={config.batch_size} exceeds the "
                         f"{dataset.split_sizes['train']} training examples of {config.dataset}.")
    probe_dataset = (inputs_lib.load_probe_dataset(config, dataset) if config.probe_dataset
                     else None)
    inputs_lib.check_far_ood(config, dataset)
    tracked = None
    if config.track_example_learning:
        if not isinstance(dataset, data.ArrayDataset):
            raise ValueError(f"--track_example_learning needs an in-memory dataset; "
                             f"{config.dataset} is streamed.")
        # The first training examples, unaugmented, and their labels.
        x, y = dataset.arrays("train")
        tracked = x[:config.track_example_learning], y[:config.track_example_learning]
    return DataSetup(placement, dataset, steps_per_epoch, probe_dataset, tracked)


def prepare(config, configs, indices, setup):
    """The next program of the run: the first of `configs[i] for i in indices` that fit in one
    (`tc.runner.memory`), built and compiled before any of their files is written."""
    placement, dataset = setup.placement, setup.dataset
    with placement.scope():
        members = []
        limit = len(indices)
        for member_config in (configs[index] for index in indices):
            compat.set_random_seed(member_config.seed)  # each starts as a separate run
            try:
                model = models.build(config.model_name, dataset.input_shape,
                                     dataset.num_classes,
                                     weight_decay=optimization.model_weight_decay(config),
                                     **member_config.parsed_model_options)
            except ValueError as error:  # an option's value: name the flags that set it
                raise ConfigurationError(
                    f"--model={config.model_name} --model_options="
                    f"{member_config.model_options!r}: {error}") from None
            members.append(Member(member_config, model, build_loss(member_config)))
            if len(members) == 1 and len(configs) > 1:
                limit = memory.copies_per_program(
                    limit, memory.copy_bytes(model, config.batch_size, config.optimizer,
                                             config.mixed_precision),
                    memory.device_memory_bytes(), config.max_copies_per_program)
            if len(members) == limit:
                break
        trained = _compile(config, members, setup.steps_per_epoch)
    for member in members:
        check_layers(member.model, config)
    compat.set_random_seed(members[0].config.data_order_seed)
    return Prepared(placement, dataset, setup.steps_per_epoch, trained, members,
                    setup.probe_dataset, list(indices[:len(members)]), len(configs),
                    setup.tracked_examples)


def _compile(config, members, steps_per_epoch):
    """Compiles the model `fit` trains: the member's own, or the members packed in one."""
    member_losses = [member.loss for member in members]
    if len(members) == 1:
        trained = members[0].model
        # The member's own flags: a sweep's copy alone in its program keeps its rate.
        optimizer = optimization.build_optimizer(members[0].config, steps_per_epoch)
        trained.compile(optimizer=optimizer, loss=member_losses[0],
                        metrics=build_metrics(member_losses[0]))
        members[0].learning_rate = lambda: float(ops.convert_to_numpy(optimizer.learning_rate))
        members[0].optimizer_variables = lambda: None
        return trained
    optimizer = packing.per_copy_optimizer(
        config, steps_per_epoch, [member.model.trainable_variables for member in members],
        [member.config.effective_learning_rate for member in members])
    trained, copies = packing.pack([member.model for member in members])
    for index, (member, copy) in enumerate(zip(members, copies)):
        member.model = copy
        rate = member.config.effective_learning_rate
        member.learning_rate = lambda rate=rate: packing.copy_learning_rate(optimizer, rate)
        member.optimizer_variables = lambda index=index: optimizer.copy_variables(index)
        if member.loss.schedule is not None:
            beta_lib.track_beta(trained, member.loss, name=f"beta_{index}")
    trained.compile(optimizer=optimizer, loss=member_losses,
                    metrics=[build_metrics(loss) for loss in member_losses])
    return trained


def open_directories(prepared):
    """Opens every member's run directory; returns the epochs already trained.

    A run restarts from the last epoch every live member committed: a single run from its last
    commit, a packed sweep from the earlier of its copies' last two (each copy keeps two
    checkpoints, and a kill can fall between two copies' commits of one epoch). A member that
    diverged stays diverged, with its own rows.
    """
    writable = prepared.placement.is_chief
    for member in prepared.members:
        member.directory = RunDirectory(member.config.run_dir, writable=writable)
    # The chief prepares the directories (and may roll a damaged commit back) before the other
    # processes of a multi-process run read where to resume.
    states = [_prepare_directory(member) if writable else None for member in prepared.members]
    prepared.placement.barrier("tc: run directories prepared")
    if not writable:
        states = [_prepare_directory(member) for member in prepared.members]
    diverged = [bool(state and state.get("diverged_at")) for state in states]
    live = [state["completed_epochs"] if state else 0
            for state, gone in zip(states, diverged) if not gone]
    completed = min(live) if live else max(state["completed_epochs"] for state in states)
    for member, state, gone in zip(prepared.members, states, diverged):
        own = state["completed_epochs"] if gone else completed
        member.resume_from = member.directory.checkpoint_at(own) if completed else None
        if completed and not gone and member.resume_from is None:
            raise RuntimeError(f"{member.directory.path}: the checkpoint of epoch {completed} "
                               "is missing; rerun with --overwrite to train from scratch.")
        if (member.config.tensorboard and member.directory.writable
                and epoch_scalars.available()):
            member.directory.scalars = epoch_scalars.EpochScalars(
                member.directory.file("tensorboard"), already_written=own)
        member.recorder = callbacks.EpochRecorder(
            member.directory, member.directory.metrics_rows(own), member.loss, member.model,
            member.learning_rate, member.optimizer_variables,
            diverged_at=state["diverged_at"] if gone else None)
    return completed


def _prepare_directory(member):
    state = member.directory.prepare(member.config.to_flagfile(), member.config.overwrite)
    rolled_back = member.directory.rolled_back
    if rolled_back and member.directory.writable:
        print(f"tc: {member.directory.path}: resuming from epoch {rolled_back['to_epoch']}, "
              f"not {rolled_back['from_epoch']}: {rolled_back['reason']}", file=sys.stderr,
              flush=True)
    return state


def _start(config, prepared, completed, rank_inputs):
    """Builds the optimizer; restores a resumed run's checkpoints, or scales fresh readouts to
    `--init_logit_norm`."""
    # Built before `fit`: on TensorFlow without a strategy, Keras would build it inside the first
    # traced step, and a tf.function that creates variables is traced twice (about 28 s more
    # before a ViT's first step on a CPU).
    with prepared.placement.scope():
        prepared.model.optimizer.build(prepared.model.trainable_variables)
    if completed:
        for member in prepared.members:
            if member.resume_from:
                checkpoint.restore(member.model, member.resume_from, member.optimizer_variables())
        return
    for member in prepared.members:
        member.directory.initial_logit_norm = scale_initial_logits(
            member.config, member.model, member.loss, rank_inputs)


def _callbacks(config, prepared, inputs, extra_callbacks):
    members = prepared.members
    num_outputs = len(members) if prepared.packed else 1
    evaluation_data = [packing.labels_for_outputs(data, num_outputs) if prepared.packed else data
                       for data in (inputs.validation, inputs.test, inputs.train_eval)]
    rank_activations = callbacks.RankActivations([member.model for member in members],
                                                 config.rank_layers, inputs.rank_inputs,
                                                 config.eval_batch_size)
    epoch_end = callbacks.EpochEnd([member.recorder for member in members], rank_activations,
                                   *evaluation_data, config.eval_batch_size,
                                   logs_of=packing.copy_logs if prepared.packed
                                   else callbacks.same_logs)
    chain = [schedules.BetaScheduler(member.loss) for member in members
             if member.loss.schedule is not None]
    if prepared.tracked_examples:  # written before epoch_end commits the epoch
        chain.append(example_learning.ExampleLearning(
            [member.model for member in members], [member.directory for member in members],
            *prepared.tracked_examples, config.eval_batch_size))
    chain += [epoch_end, *extra_callbacks]
    after_step = []
    if config.verbose and prepared.placement.is_chief:
        line = progress.ProgressLine(config.epochs, prepared.steps_per_epoch, config.batch_size,
                                     config.verbose, members=num_outputs,
                                     logs_of=epoch_end.logs_of)
        chain.append(line)  # after epoch_end, whose evaluation adds the val_ logs it shows
        after_step.append(_steps_done(line.tick, config.steps_per_call,
                                      prepared.steps_per_epoch))
    return compat.StepQuietCallbackList(chain, prepared.model, add_history=True,
                                        stop_requested=interruption.requested,
                                        after_step=after_step, epochs=config.epochs,
                                        steps=prepared.steps_per_epoch)


def _steps_done(tick, steps_per_call, steps_per_epoch):
    """`tick(step)` of the last step a training call ran, given the call's index in the epoch
    (`compat.fused_train_steps`)."""
    if steps_per_call <= 1:
        return tick
    return lambda call: tick(min((call + 1) * steps_per_call, steps_per_epoch) - 1)


def _train(config, prepared, timing, extra_callbacks):
    """Trains one program; each member's run directory is locked from its opening to here."""
    try:
        return _train_members(config, prepared, timing, extra_callbacks)
    finally:
        for member in prepared.members:
            if member.directory is not None:
                member.directory.close_scalars()
                member.directory.unlock()


def _train_members(config, prepared, timing, extra_callbacks):
    initial_epoch = open_directories(prepared)
    members = prepared.members
    with prepared.placement.training_scope():  # device-side data takes the distribution's devices
        inputs = inputs_lib.model_inputs(config, prepared.dataset, initial_epoch,
                                         labels_per_output=len(members) if prepared.packed
                                         else 1)
    try:
        _start(config, prepared, initial_epoch, inputs.rank_inputs)
        fit_started = time.time()
        if initial_epoch < config.epochs and not all(member.recorder.guard.diverged_at
                                                     for member in members):
            chain = _callbacks(config, prepared, inputs, extra_callbacks)
            compat.untracked_step_state(prepared.model)
            compat.fused_train_steps(prepared.model, config.steps_per_call,
                                     prepared.steps_per_epoch)
            with prepared.placement.training_scope():
                prepared.model.fit(inputs.train, epochs=config.epochs,
                                   initial_epoch=initial_epoch,
                                   steps_per_epoch=compat.calls_per_epoch(
                                       config.steps_per_call, prepared.steps_per_epoch),
                                   callbacks=chain, verbose=config.verbose, shuffle=False)
        for member in members:
            member.directory.wait()
        timing["fit_seconds"] = time.time() - fit_started
        # A run whose epochs were all done before this process (its result.json was lost)
        # keeps the model.keras it wrote: only the files after it are written again.
        outcomes = [_member_result(config, prepared, member, timing, inputs,
                                   keep_model=initial_epoch >= config.epochs)
                    for member in members]
    except OSError:
        # The disk or the file system refused a write (full, read-only, a path under a file):
        # nothing about the run failed. Its last commit stands as it was, and the same command
        # resumes it once the path is writable; a "failed" result.json would only overwrite
        # what it recorded (an interrupted run's status).
        raise
    except Exception as error:
        for member in members:
            member.directory.write_result(results.failed_result(config, member.directory, error))
        raise
    for member, result in zip(members, outcomes):
        member.directory.write_result(result)
    return outcomes


def _member_result(config, prepared, member, timing, inputs, keep_model=False):
    result = results.stopped_result(member.config, member.recorder, timing, prepared.placement,
                                    prepared.steps_per_epoch * config.batch_size,
                                    interrupted_by=interruption.signal_name())
    if prepared.in_sweep:
        result["packed"] = {"copy": prepared.copy_indices[prepared.members.index(member)],
                            "copies": prepared.sweep_size,
                            "sweep": {flag: getattr(config, flag)
                                      for flag in (*packing.LIST_FLAGS.values(), "grid")
                                      if getattr(config, flag) and config.is_packed}}
    if member.directory.rolled_back:
        result["rolled_back"] = member.directory.rolled_back
    if member.directory.initial_logit_norm is not None:
        result["initial_logit_norm"] = member.directory.initial_logit_norm
    if result["status"] == "completed" and prepared.tracked_examples:
        result["example_learning"] = example_learning.summarize(
            member.directory, config.epochs, prepared.tracked_examples[1])
    if result["status"] == "completed":
        if not member.model.compiled:  # a packed copy: a view into the packed model
            member.model.compile(optimizer="sgd", loss=member.loss,
                                 metrics=build_metrics(member.loss))
        result.update(results.after_training(member.config, member.model, member.loss,
                                             member.directory, inputs, prepared.probe_dataset,
                                             prepared.dataset, keep_model=keep_model))
    return result


