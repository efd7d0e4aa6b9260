"""Every use of Keras internals in tc, with the reason for each and where it is tracked upstream.

The rest of tc uses Keras's public API only. What is here relies on behaviour that Keras does not
promise, so this module checks the installed Keras against the versions it was tested with and
refuses others with a message naming both (set `TC_ALLOW_UNTESTED_KERAS=1` to try anyway).

| helper | internal it touches | why |
| --- | --- | --- |
| `StepQuietCallbackList` | `keras.src.utils.is_default`, `CallbackList._async_*` | skip per-step log conversion nobody reads |
| `apply_multi_worker_fixes` | `TensorFlowTrainer._maybe_symbolic_build`, `reduce_per_replica` | Keras's TF trainer fails under MultiWorkerMirroredStrategy |
| `stateless_test_step` | the JAX trainer's `test_step(state, batch)` signature | one compiled evaluation program |
| `sync_jax_state` | the JAX trainer's `jax_state_sync` | assign a variable mid-epoch on JAX |
| `untracked_step_state` | `Operation._setattr_hook`; the JAX trainer's `model._jax_state` | the tracker walked every step's state, about 1,100 arrays for 6 packed ResNet-18s |
| `attach_metric` | `Layer.__setattr__` filing a metric under a model's metrics | keep `beta` in a jitted step's state |
| `optimizer_variable_index` | `BaseOptimizer._get_variable_index` | a packed copy's own learning rate in `update_step` |
| `concrete_values` | JAX's `Tracer` type; TensorFlow's eager mode | a check that can raise only where values exist |
| `retry_trials` | keras-tuner's `Oracle._retry_queue` and `_run_times` (keras-tuner 1.4) | a rerun retries trials that failed for a reason outside training |
| `oracle_files`, `running_trials`, `keep_waiting_for`, `hand_back_trial` | keras-tuner's `Oracle._get_oracle_fname`, `_get_trial_dir`, `ongoing_trials`, `tuner_ids`, `_retry_queue` (keras-tuner 1.4) | write the oracle's state atomically; give a dead worker's trial to another |
| `set_random_seed` | Keras's global seed attributes (`rng_utils`, `seed_generator`) | seed a JAX run without importing TensorFlow |
"""

import os

import keras

__all__ = ["ALLOW_UNTESTED_ENV", "apply_multi_worker_fixes", "attach_metric", "calls_per_epoch",
           "check_keras_version", "concrete_values", "fused_train_steps", "hand_back_trial",
           "keep_waiting_for", "keras_version", "optimizer_variable_index", "oracle_files",
           "retry_trials", "running_trials", "save_model", "set_random_seed",
           "stateless_test_step", "StepQuietCallbackList", "sync_jax_state", "TESTED_KERAS",
           "UnsupportedKerasVersion", "untracked_step_state"]

# Keras versions tc was tested with: [first, last] inclusive, as (major, minor).
TESTED_KERAS = ((3, 15), (3, 15))
ALLOW_UNTESTED_ENV = "TC_ALLOW_UNTESTED_KERAS"


class UnsupportedKerasVersion(RuntimeError):
    """The installed Keras is outside the range whose internals tc was tested against."""


def keras_version(text=None):
    """`(major, minor)` of a Keras version string (the installed one by default)."""
    text = keras.__version__ if text is None else text
    major, minor = text.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def check_keras_version(text=None):
    """Raises UnsupportedKerasVersion when Keras `text` (default: installed) is untested."""
    text = keras.__version__ if text is None else text
    first, last = TESTED_KERAS
    if first <= keras_version(text) <= last or os.environ.get(ALLOW_UNTESTED_ENV) == "1":
        return
    raise UnsupportedKerasVersion(
        f"tc uses Keras internals tested with Keras {first[0]}.{first[1]} to {last[0]}.{last[1]}.x; "
        f"Keras {text} is installed. Install a tested version (requirements.txt pins one), or "
        f"set {ALLOW_UNTESTED_ENV}=1 to try this one.")


check_keras_version()


# --- per-step log conversion -----------------------------------------------------------------
# Keras converts every step's logs to floats before its batch-end hooks, on the calling thread
# (the host then waits for the device every step) or, when every callback is async-safe, on a
# worker thread, which on JAX crashed reading arrays of a step already handed to the next.
# Whether a callback overrides a hook is only known through `keras.src.utils.is_default`.

def _overrides(callback, hook):
    from keras.src.utils import is_default

    return not is_default(getattr(callback, hook))


class StepQuietCallbackList(keras.callbacks.CallbackList):
    """Keras's CallbackList, minus the per-step log conversion when no callback reads it.

    tc's callbacks read nothing per step, so this list skips the batch-end hooks of training,
    evaluation and prediction, and their conversion, unless a callback (a progress bar, a
    user's) defines one. Keras's own progress bar is not added: it reads every step's logs.
    `after_step` callables are called with each training step's index and no logs (tc's
    progress line, `tc.runner.progress`); `stop_requested`, a callable asked after every
    training step (it reads no logs either), stops training when it returns True: how a signal
    stops a run (`tc.runner.interruption`).
    """

    def __init__(self, callbacks=(), model=None, add_history=False, stop_requested=None,
                 after_step=(), **params):
        super().__init__(list(callbacks), add_history=add_history, add_progbar=False,
                         model=model, **params)
        self._async_train = self._async_test = self._async_predict = False
        self._stop_requested = stop_requested
        self._after_step = list(after_step)

        def read(*hooks):
            return any(_overrides(callback, hook) for callback in self.callbacks for hook in hooks)

        self._reads_train_steps = read("on_train_batch_end", "on_batch_end")
        self._reads_test_steps = read("on_test_batch_end")
        self._reads_predict_steps = read("on_predict_batch_end")

    def on_train_batch_end(self, batch, logs=None):
        if self._reads_train_steps:
            super().on_train_batch_end(batch, logs)
        for hook in self._after_step:
            hook(batch)
        if self._stop_requested is not None and self._stop_requested():
            self.model.stop_training = True

    def on_test_batch_end(self, batch, logs=None):
        if self._reads_test_steps:
            super().on_test_batch_end(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        if self._reads_predict_steps:
            super().on_predict_batch_end(batch, logs)


# --- MultiWorkerMirroredStrategy on the TensorFlow trainer -------------------------------------
# 1. Building the model: before training, `fit` builds the model symbolically from one batch,
#    averaged over the replicas with `strategy.reduce("MEAN", batch, axis=None)`; across workers
#    that reduce fails on the nested (x, y) batch. The fix builds from the dataset's element spec.
# 2. Logging: Keras reduces each per-step log with `strategy.reduce("MEAN", value, axis=0)`
#    across workers, which fails on scalar losses and metrics (keras-team/keras#20585). A scalar
#    is reduced with `axis=None`: the mean over replicas, what a one-host run logs.
# Both act only when the strategy is multi-worker.

_FIXED_MARK = "_tc_fixed"


def _build_from_element_spec(original, tf_trainer):
    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if (iterator is not None and data_batch is None
                and tf_trainer._collective_all_reduce_multi_worker(self.distribute_strategy)):
            data_batch = iterator.data_adapter.get_tf_dataset().element_spec
            iterator = None
        return original(self, iterator=iterator, data_batch=data_batch)

    return maybe_symbolic_build


def _reduce_scalars_without_axis(original, tf_trainer):
    def reduce_per_replica(values, strategy, reduction):
        if (reduction not in ("auto", "mean")
                or not tf_trainer._collective_all_reduce_multi_worker(strategy)):
            return original(values, strategy, reduction)

        def reduce_one(value):
            if value.shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return keras.tree.map_structure(reduce_one, values)

    return reduce_per_replica


def apply_multi_worker_fixes():
    """Installs both fixes into Keras's TensorFlow trainer; calling it again does nothing."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    trainer_class = tf_trainer.TensorFlowTrainer
    if not getattr(trainer_class._maybe_symbolic_build, _FIXED_MARK, False):
        fixed = _build_from_element_spec(trainer_class._maybe_symbolic_build, tf_trainer)
        setattr(fixed, _FIXED_MARK, True)
        trainer_class._maybe_symbolic_build = fixed
    if not getattr(tf_trainer.reduce_per_replica, _FIXED_MARK, False):
        fixed = _reduce_scalars_without_axis(tf_trainer.reduce_per_replica, tf_trainer)
        setattr(fixed, _FIXED_MARK, True)
        tf_trainer.reduce_per_replica = fixed


# --- the JAX trainer's state ------------------------------------------------------------------

def stateless_test_step(model, trainable, non_trainable, metrics, batch):
    """One evaluation step of a compiled JAX model on explicit state: `(logs, metrics)`.

    The JAX trainer's `test_step` takes `(trainable, non_trainable, metrics)` values and returns
    the new ones, with no side effect: what a `lax.scan` over batches needs. This signature is
    the JAX trainer's own, not a promise of Keras's API.
    """
    logs, (_, _, metrics) = model.test_step((trainable, non_trainable, metrics), batch)
    return logs, metrics


def sync_jax_state(model):
    """On JAX, writes the trainer's mid-epoch state back into the variables (no-op elsewhere).

    During `fit` the JAX trainer holds the state outside the variables; a variable assigned
    mid-epoch (a beta warmed up per step) is only seen by the next step if the trainer syncs
    first and then re-reads every variable.
    """
    sync_state = getattr(model, "jax_state_sync", None)
    if sync_state is not None:
        sync_state()


def untracked_step_state(model):
    """Keeps Keras's attribute tracker off the state the JAX trainer stores after every step.

    After each train, test and predict step the JAX trainer sets `model._jax_state` to a dict
    of the step's variable values (so a callback can sync them back), and `Layer.__setattr__`
    wraps that dict and its lists for tracking, visiting every array: about 1,100 of them for
    6 packed ResNet-18s, some 5 ms of host time a step on an H100 whose step takes 18 ms, and
    it grows with the copies. Stored as a read-only mapping, which the tracker passes over,
    the state is the same to `jax_state_sync` (it reads it with `.get`). A no-op elsewhere.
    """
    if keras.backend.backend() != "jax":
        return model
    import types

    hook = model._setattr_hook

    def read_only_step_state(name, value):
        name, value = hook(name, value)
        if name == "_jax_state" and isinstance(value, dict):
            value = types.MappingProxyType(value)
        return name, value

    object.__setattr__(model, "_setattr_hook", read_only_step_state)
    return model


def fused_train_steps(model, steps_per_call, steps_per_epoch):
    """Makes each training call of a compiled JAX `model` run `steps_per_call` steps.

    The JAX trainer's train function takes the state and the batch iterator and runs one step:
    one dispatch of the whole state (every variable, optimizer slot and metric value) from the
    host per step, some milliseconds for a packed sweep's thousand arrays. This one takes the
    next `steps_per_call` batches, stacked, and runs the trainer's own `train_step` over them in
    one compiled `lax.scan`; the last call of an epoch of `steps_per_epoch` steps takes the
    steps left (one more compilation when they differ). `fit` must then count calls, not steps:
    `ceil(steps_per_epoch / steps_per_call)` of them an epoch (see `calls_per_epoch`). Returns
    the model; a no-op for one step a call. The trainer's `train_step(state, batch) -> (logs,
    state)` is its own signature, not a promise of Keras's API.
    """
    if steps_per_call <= 1:
        return model
    import jax

    train_step = model.train_step

    def steps(state, batches):
        def one(carried, batch):
            logs, carried = train_step(carried, batch)
            return carried, logs

        state, logs = jax.lax.scan(one, state, batches)  # each step's logs, stacked
        return jax.tree.map(lambda values: values[-1], logs), state

    compiled = jax.jit(steps, donate_argnums=0)
    taken = [0]

    def train_function(state, iterator):
        count = min(steps_per_call, steps_per_epoch - taken[0] % steps_per_epoch)
        batches = [next(iterator) for _ in range(count)]
        taken[0] += count
        return compiled(state, jax.tree.map(lambda *parts: jax.numpy.stack(parts), *batches))

    model.train_function = train_function
    return model


def calls_per_epoch(steps_per_call, steps_per_epoch):
    """How many training calls an epoch of `steps_per_epoch` steps takes (`fused_train_steps`)."""
    return -(-steps_per_epoch // max(steps_per_call, 1))


def attach_metric(model, attribute, metric):
    """Makes `model` track `metric` (and its variables) as its own, under `attribute`.

    `Layer.__setattr__` files a Metric attribute under the model's metrics, whose variables are
    part of the state every backend's train step receives; Keras has no public call for it.
    """
    setattr(model, attribute, metric)
    return metric


def optimizer_variable_index(optimizer, variable):
    """The position of `variable` in the list `optimizer` was built on.

    `update_step(gradient, variable, learning_rate)` is Keras's public hook for a custom
    optimizer, but it receives the variable as the backend passes it (on TensorFlow, possibly a
    replica's component), so its identity is only known through the index Keras's own Adam and
    SGD look their slots up by.
    """
    return optimizer._get_variable_index(variable)


# --- seeding without TensorFlow ---------------------------------------------------------------
# `keras.utils.set_random_seed` also seeds TensorFlow whenever it is installed, importing it
# (3.3 s on a 2-core CPU) into a JAX run that never uses it. tc's tf.data pipelines draw from
# explicit seeds, so a run whose process has not loaded TensorFlow skips that step.

def set_random_seed(seed):
    """`keras.utils.set_random_seed(seed)`: Python's, NumPy's and Keras's global seeds, and
    TensorFlow's only when the backend is TensorFlow or TensorFlow is already loaded."""
    import sys

    if keras.backend.backend() != "jax" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    if not isinstance(seed, int):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed!r}")
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


# --- saving without TensorFlow ----------------------------------------------------------------
# Keras's serializer asks whether TensorFlow is installed (to recognise its shapes and dtypes)
# and imports it to find out: 3 s added to every JAX run's model.keras on a machine that has it.
# No object can be a TensorFlow one while TensorFlow is not loaded, so the question is answered.

def save_model(model, path):
    """`model.save(path, overwrite=True)`, without loading TensorFlow into a process that has not
    loaded it (Keras 3: `keras.src.utils.module_utils.tensorflow`, a lazy module)."""
    import sys

    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow
    if "tensorflow" in sys.modules or lazy._available is not None:
        model.save(path, overwrite=True)
        return
    lazy._available = False
    try:
        model.save(path, overwrite=True)
    finally:
        lazy._available = None


# --- keras-tuner's retry queue ----------------------------------------------------------------

def retry_trials(oracle, trial_ids):
    """Sends finished trials back to keras-tuner's `oracle` to run again, each with a fresh count
    of retries. keras-tuner retries a trial only within the search that ran it, and offers no
    public call for it: its oracle keeps the queue and the counts private (keras-tuner 1.4)."""
    for trial_id in trial_ids:
        if trial_id in oracle.trials and trial_id not in oracle._retry_queue:
            oracle._run_times[trial_id] = 0
            oracle._retry_queue.append(trial_id)
    oracle.save()


def oracle_files(oracle, trial_id=None):
    """Where keras-tuner's `oracle` keeps its state (oracle.json), or a trial's (trial.json).
    keras-tuner writes both in place, so a kill while writing leaves an empty file that stops
    the search from resuming; tc writes them atomically at these paths."""
    if trial_id is None:
        return oracle._get_oracle_fname()
    return os.path.join(oracle._get_trial_dir(trial_id), "trial.json")


def running_trials(oracle):
    """`{tuner id: trial id}` of the trials the chief's `oracle` has handed out, and the ids of
    the tuners it is waiting for (it exits when both are empty)."""
    return ({tuner_id: trial.trial_id for tuner_id, trial in oracle.ongoing_trials.items()},
            set(oracle.tuner_ids))


def keep_waiting_for(oracle, tuner_id):
    """Makes the chief's `oracle` wait for `tuner_id` again: keras-tuner forgets a tuner once it
    has told it to stop."""
    oracle.tuner_ids.add(tuner_id)


def hand_back_trial(oracle, tuner_id):
    """Takes `tuner_id`'s running trial (if any) back into the retry queue, for the next worker
    that asks, and stops waiting for that tuner. Call under the oracle's lock."""
    trial = oracle.ongoing_trials.pop(tuner_id, None)
    oracle.tuner_ids.discard(tuner_id)
    if trial is not None and trial.trial_id not in oracle._retry_queue:
        oracle._run_times[trial.trial_id] = 0
        oracle._retry_queue.append(trial.trial_id)
    oracle.save()
    return trial.trial_id if trial is not None else None


def concrete_values(tensor):
    """The numpy values of `tensor` when it holds them now (an eager TensorFlow tensor, a JAX
    array, numpy), or None inside a traced function (a `tf.function` graph, `jax.jit`) or for a
    symbolic tensor: a value check that raises can run only on the former."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        if isinstance(tensor, jax.core.Tracer):
            return None
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.is_tensor(tensor) and not tf.executing_eagerly():
            return None
    if isinstance(tensor, keras.KerasTensor):
        return None
    try:
        return keras.ops.convert_to_numpy(tensor)
    except Exception:  # a backend's symbolic tensor this function does not know by type
        return None
