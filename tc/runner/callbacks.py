"""The epoch end of a run, one owner per duty.

`EpochEnd` is the one Keras callback tc adds to `fit`. At each epoch end, in this order:
1. evaluation of the validation and test splits (`tc.runner.evaluation`); the `val_` logs join
   the epoch's logs for the callbacks after it, `History` and the progress bar;
2. the activations of the tracked layers of every member (`RankActivations`);
3. each member's `EpochRecorder` builds its metrics row and takes a snapshot of its variables
   (`tc.runner.checkpoint`); its `DivergenceGuard` judges both; a finite epoch is committed with
   its ranks, computed on the commit thread (`tc.runner.run_dir`).

A member is one run directory: a single run has one, a packed sweep one per copy. A non-finite
loss or weight marks a member diverged and commits nothing, so the last checkpoint on disk is
always a good one; training stops when every member has diverged. An epoch cut short by SIGTERM
or SIGINT (`tc.runner.interruption`) is not evaluated and commits nothing.
"""

import math
import time

import keras

from tc import beta as beta_lib
from tc import representation
from tc.runner import checkpoint, evaluation, interruption


# Beyond this, a logged value is taken as divergence: no loss, norm or rate of a healthy run comes
# near it, while a run whose loss reached 1e18 can still be finite.
ABSURD_METRIC = 1e12


class DivergenceGuard:
    """Decides whether a member diverged, and remembers where.

    Divergence is judged at the end of each epoch: the epoch's mean training loss is non-finite
    as soon as one step's loss was, and the weights are checked too; so is every value the epoch
    logged (train, validation and test losses and metrics, logit norms), each of which must be
    finite with |value| <= ABSURD_METRIC (1e12). Nothing is read per step:
    reading the loss after every step makes the host wait for the device each time, which cost
    13% of the throughput of a CIFAR ResNet-18 on an H100.
    """

    def __init__(self):
        self.diverged_at = None

    def check(self, epoch, row, snapshot):
        """True (and remembered) when epoch `epoch`'s row or snapshot is not finite."""
        if self.diverged_at is not None:
            return True
        if not math.isfinite(row.get("train/loss", 0.0)) or not snapshot.finite:
            reason = "non-finite loss or weights at the end of the epoch"
        else:
            absurd = [(key, value) for key, value in row.items()
                      if isinstance(value, float) and not abs(value) <= ABSURD_METRIC]
            if not absurd:
                return False
            reason = (", ".join(f"{key} = {value:g}" for key, value in absurd)
                      + f" at the end of the epoch (not finite, or beyond {ABSURD_METRIC:g})")
        self.diverged_at = {"epoch": epoch + 1, "step": "end", "reason": reason}
        return True


def _renamed(logs, prefix, skip=("beta",)):
    return {f"{prefix}/{key}": float(value) for key, value in logs.items() if key not in skip}


def split_logs(logs):
    """Keras's `loss`, `val_loss`, ... as `train/loss`, `val/loss`, ..."""
    train = {k: v for k, v in logs.items() if not k.startswith("val_")}
    validation = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
    return {**_renamed(train, "train"), **_renamed(validation, "val")}


class RankActivations:
    """The tracked layers' activations of every member's model, from one inference call.

    `take()` runs once per epoch; `ranks_later(k)` returns what computes member k's rank columns
    from them on the commit thread (None when no layer is tracked).
    """

    def __init__(self, models, layer_names, rank_inputs, batch_size, rtol=1e-3):
        self.layer_names = list(layer_names)
        self.rank_inputs = rank_inputs
        self.batch_size = batch_size
        self.rtol = rtol
        self.activations = [{} for _ in models]
        self.extractor = None
        if self.layer_names:
            source = models[0].inputs[0]
            inputs = keras.Input(shape=source.shape[1:], dtype=source.dtype)
            outputs = []
            for model in models:
                extracted = representation.activation_model(model, self.layer_names)(inputs)
                outputs.extend(extracted if isinstance(extracted, (list, tuple)) else [extracted])
            self.extractor = keras.Model(inputs, outputs)

    def take(self):
        if self.extractor is None:
            return
        outputs = representation.extractor_outputs(self.extractor, self.rank_inputs,
                                                    self.batch_size)
        count = len(self.layer_names)
        self.activations = [dict(zip(self.layer_names, outputs[start:start + count]))
                            for start in range(0, len(outputs), count)]

    def ranks_later(self, index):
        if not self.layer_names:
            return None
        activations = self.activations[index]
        return lambda: representation.background_rank_row(activations, self.rtol)


class EpochRecorder:
    """One member's record: its metrics rows, its divergence guard and its commits.

    `learning_rate()` is the rate the member trains at this step (a packed copy has no optimizer
    of its own); `optimizer_variables()` its share of the optimizer state, None for all the
    variables of `model.optimizer`. `diverged_at`, from the run directory's state, makes a
    resumed member stay diverged.
    """

    def __init__(self, run_dir, rows, loss, model, learning_rate, optimizer_variables=None,
                 diverged_at=None):
        self.run_dir = run_dir
        self.rows = list(rows)
        self.loss = loss
        self.model = model
        self.learning_rate = learning_rate
        self.optimizer_variables = optimizer_variables or (lambda: None)
        self.guard = DivergenceGuard()
        self.guard.diverged_at = diverged_at
        self.epoch_seconds = []
        self._epoch_started = None

    def start_epoch(self):
        self._epoch_started = time.perf_counter()

    def record(self, epoch, logs, test_logs=None, ranks_later=None, train_eval_logs=None):
        """Judges and commits epoch `epoch` from its Keras logs, test logs and the logs of the
        un-augmented training examples (`--train_eval_size`, as `train_eval/`)."""
        if self.guard.diverged_at is not None:
            return
        row = {"epoch": epoch + 1, "learning_rate": self.learning_rate(),
               "beta": beta_lib.variable_value(self.loss.beta)}
        row.update(split_logs(logs))
        if test_logs:
            row.update(_renamed(test_logs, "test"))
        if train_eval_logs:
            row.update(_renamed(train_eval_logs, "train_eval"))
        snapshot = checkpoint.snapshot(self.model, self.optimizer_variables())
        if self.guard.check(epoch, row, snapshot):
            self.run_dir.commit_divergence(self.guard.diverged_at)
            return
        self.rows.append(row)
        self.run_dir.commit_epoch(snapshot, self.rows, epoch + 1, finish_row=ranks_later)
        # Everything the epoch cost on the training thread: training, validation, test, the
        # snapshot and the rank activations (the first epoch includes compilation; the SVDs
        # and the files run in the background). Kept out of metrics.csv, which must be identical
        # between identical runs.
        self.epoch_seconds.append(time.perf_counter() - self._epoch_started)


def same_logs(logs, index):
    """The logs of a model with one output, as they are."""
    return logs


class EpochEnd(keras.callbacks.Callback):
    """Evaluates the trained model once per epoch and hands each member its share.

    `logs_of(logs, index)` picks member `index`'s entries of the trained model's logs under a
    single run's keys (`same_logs` for a single run). Validation runs here, not in `fit`.
    """

    def __init__(self, recorders, rank_activations, validation_data, test_data, train_eval_data,
                 eval_batch_size, logs_of=same_logs):
        super().__init__()
        self.recorders = recorders
        self.rank_activations = rank_activations
        self.validation_data = validation_data
        self.test_data = test_data
        self.train_eval_data = train_eval_data
        self.eval_batch_size = eval_batch_size
        self.logs_of = logs_of

    def on_epoch_begin(self, epoch, logs=None):
        for recorder in self.recorders:
            recorder.start_epoch()

    def on_epoch_end(self, epoch, logs=None):
        if interruption.requested():
            return  # the epoch did not run to its end: the last commit stays the resume point
        logs = {} if logs is None else logs
        test_logs, train_eval_logs = evaluation.evaluate_with_validation(
            self.model, logs, self.validation_data, self.test_data, self.eval_batch_size,
            self.train_eval_data)
        self.rank_activations.take()
        for index, recorder in enumerate(self.recorders):
            recorder.record(epoch, self.logs_of(logs, index), self.logs_of(test_logs or {}, index),
                            self.rank_activations.ranks_later(index),
                            self.logs_of(train_eval_logs or {}, index))
        if all(recorder.guard.diverged_at for recorder in self.recorders):
            self.model.stop_training = True
