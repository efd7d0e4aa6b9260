"""The callbacks of a tc run: divergence guard and per-epoch record (metrics, ranks, checkpoint).

A run's epoch ends in this order, in `EpochRecorder`: validation and test evaluation (their
`val_` logs join the epoch's logs for the callbacks after it, `History` and the progress bar),
a snapshot of the variables and its finiteness check, the activations of the tracked layers,
then the atomic commit (on a background thread) of their ranks, checkpoint, metrics.csv and
resume state. A non-finite loss or weight stops the run as diverged and
commits nothing, so the last checkpoint on disk is always a good one.
"""

import math
import time

import keras
from keras import ops
from keras.src import utils

from tc import beta as beta_lib
from tc import checkpoint, evaluation


class DivergenceGuard(keras.callbacks.Callback):
    """Remembers where a run diverged, and stops it.

    Divergence is detected at the end of each epoch (by `EpochRecorder`): the epoch's mean
    training loss is non-finite as soon as one step's loss was, and the weights are checked too.
    The guard reads nothing per step: reading the loss after every step makes the host wait for
    the device each time, which cost 13% of the throughput of a CIFAR ResNet-18 on an H100.
    """

    def __init__(self):
        super().__init__()
        self.diverged_at = None

    def mark(self, epoch, step, reason):
        if self.diverged_at is None:
            self.diverged_at = {"epoch": epoch + 1, "step": step, "reason": reason}
        self.model.stop_training = True


def _renamed(logs, prefix, skip=("beta",)):
    return {f"{prefix}/{key}": float(value) for key, value in logs.items() if key not in skip}


def split_logs(logs):
    """Keras's `loss`, `val_loss`, ... as `train/loss`, `val/loss`, ..."""
    train = {k: v for k, v in logs.items() if not k.startswith("val_")}
    validation = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
    return {**_renamed(train, "train"), **_renamed(validation, "val")}


class StepQuietCallbackList(keras.callbacks.CallbackList):
    """Keras's CallbackList, minus the per-step log conversion when no callback reads it.

    Before its batch-end hooks, Keras converts every step's logs to Python floats: on the
    calling thread (the host then waits for the device every step) or, when every callback is
    async-safe, on a worker thread, which on JAX crashed the process reading arrays of a step
    already handed to the next. tc's callbacks read nothing per step, so this list skips the
    batch-end hooks of training, evaluation and prediction, and their conversion, unless a
    callback (a progress bar, a user's) defines one.
    """

    def __init__(self, callbacks=(), model=None, verbose=0, add_history=False, **params):
        super().__init__(list(callbacks), add_history=add_history, add_progbar=verbose != 0,
                         verbose=verbose, model=model, **params)
        self._async_train = self._async_test = self._async_predict = False

        def read(*hooks):
            return any(not utils.is_default(getattr(callback, hook))
                       for callback in self.callbacks for hook in hooks)

        self._reads_train_steps = read("on_train_batch_end", "on_batch_end")
        self._reads_test_steps = read("on_test_batch_end")
        self._reads_predict_steps = read("on_predict_batch_end")

    def on_train_batch_end(self, batch, logs=None):
        if self._reads_train_steps:
            super().on_train_batch_end(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if self._reads_test_steps:
            super().on_test_batch_end(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        if self._reads_predict_steps:
            super().on_predict_batch_end(batch, logs)


def evaluate(model, data, batch_size):
    """`model.evaluate`'s logs on `data`: (x, y) arrays or a dataset of batches; None for None."""
    return evaluate_splits(model, [data], batch_size)[0]


def evaluate_splits(model, splits, batch_size):
    """`evaluate` of each split in `splits`, as a list.

    In-memory splits on the device are evaluated by `tc.evaluation` on JAX: every split's
    program is dispatched first, and the host waits once for all of them.
    """
    pending = [evaluation.start(model, *data, batch_size)
               if evaluation.supported(model, data) else None for data in splits]
    return [evaluation.read(started) if started is not None
            else _keras_evaluate(model, data, batch_size) if data is not None else None
            for data, started in zip(splits, pending)]


def _keras_evaluate(model, data, batch_size):
    inputs = data if isinstance(data, tuple) else (data,)
    return model.evaluate(*inputs, batch_size=batch_size, verbose=0, return_dict=True,
                          callbacks=StepQuietCallbackList(model=model))


def evaluate_with_validation(model, logs, validation_data, test_data, batch_size):
    """Evaluates both splits; adds the validation logs to the epoch's `logs` as `fit` would
    (`val_loss`, ...) and returns the test logs."""
    validation_logs, test_logs = evaluate_splits(model, [validation_data, test_data],
                                                 batch_size)
    logs.update({f"val_{key}": value for key, value in (validation_logs or {}).items()})
    return test_logs


class EpochRecorder(keras.callbacks.Callback):
    """Records one metrics row per epoch and commits it with a checkpoint (see module doc).

    `validation_data` and `test_data` are evaluated at each epoch end, like `fit`'s
    `validation_data` (pass it here instead). `optimizer` is the one whose learning rate the
    rows log: the model's own by default (a copy in a packed sweep has none of its own).
    """

    def __init__(self, run_dir, rows, loss, guard, test_data=None, rank_tracker=None,
                 eval_batch_size=512, optimizer=None, validation_data=None):
        super().__init__()
        self.run_dir = run_dir
        self.rows = list(rows)
        self.loss = loss
        self.guard = guard
        self.test_data = test_data
        self.validation_data = validation_data
        self.rank_tracker = rank_tracker
        self.epoch_seconds = []
        self.eval_batch_size = eval_batch_size
        self.optimizer = optimizer

    def _learning_rate(self):
        optimizer = self.optimizer or self.model.optimizer
        return float(ops.convert_to_numpy(optimizer.learning_rate))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.diverged_at is not None:
            return
        logs = {} if logs is None else logs
        test_logs = evaluate_with_validation(self.model, logs, self.validation_data,
                                             self.test_data, self.eval_batch_size)
        self.record(epoch, logs, test_logs)

    def record(self, epoch, logs, test_logs=None):
        """Checks, measures and commits epoch `epoch` from its Keras and test logs."""
        if self.guard.diverged_at is not None:
            return
        row = {"epoch": epoch + 1, "learning_rate": self._learning_rate(),
               "beta": beta_lib.variable_value(self.loss.beta)}
        row.update(split_logs(logs))
        if test_logs:
            row.update(_renamed(test_logs, "test"))
        snapshot = checkpoint.snapshot(self.model)
        if not math.isfinite(row.get("train/loss", 0.0)) or not snapshot.finite:
            self.guard.mark(epoch, "end", "non-finite loss or weights at the end of the epoch")
            return
        ranks = self.rank_tracker.measure_later() if self.rank_tracker is not None else None
        self.rows.append(row)
        self.run_dir.commit_epoch(snapshot, self.rows, epoch + 1, finish_row=ranks)
        # Everything the epoch cost on the training thread: training, validation, test, the
        # snapshot and the rank activations (the first epoch includes compilation; the SVDs
        # and the files run in the background). Kept out of metrics.csv, which must be identical
        # between identical runs.
        self.epoch_seconds.append(time.perf_counter() - self._epoch_started)
