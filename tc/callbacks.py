"""The callbacks of a tc run: divergence guard, per-epoch record (metrics + checkpoint), rank.

A run's epoch ends in this order: Keras validation, then `EpochRecorder`: test evaluation,
ranks of the tracked layers, a finiteness check, then the atomic commit of checkpoint,
metrics.csv and resume state. A non-finite loss or weight stops the run as diverged and
commits nothing, so the last checkpoint on disk is always a good one.
"""

import math

import keras
import numpy as np
from keras import ops

from tc import beta as beta_lib
from tc import representation


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite training loss and remembers where it happened."""

    def __init__(self):
        super().__init__()
        self.diverged_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.mark(self._epoch, batch, f"training loss became {float(loss)}")

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


def weights_are_finite(model):
    return all(np.all(np.isfinite(ops.convert_to_numpy(w))) for w in model.weights
               if "float" in str(w.dtype))


class RankProbe:
    """Numerical and effective rank of chosen layers' outputs on a fixed probe batch (paper 3)."""

    def __init__(self, model, layer_names, probe_inputs, batch_size=256):
        available = [layer.name for layer in model.layers]
        missing = [name for name in layer_names if name not in available]
        if missing:
            raise ValueError(f"--track_rank_layers: no layer(s) {missing} in model "
                             f"{model.name!r}; its layers: {', '.join(available)}.")
        self.layer_names = tuple(layer_names)
        outputs = [model.get_layer(name).output for name in layer_names]
        self.extractor = keras.Model(model.inputs, outputs) if layer_names else None
        self.probe_inputs = probe_inputs
        self.batch_size = batch_size

    def measure(self):
        if self.extractor is None:
            return {}
        activations = self.extractor.predict(self.probe_inputs, batch_size=self.batch_size,
                                             verbose=0)
        if len(self.layer_names) == 1:
            activations = [activations]
        row = {}
        for name, features in zip(self.layer_names, activations):
            row[f"rank/{name}/numerical"] = representation.numerical_rank(features)
            row[f"rank/{name}/effective"] = representation.effective_rank(features)
        return row


class EpochRecorder(keras.callbacks.Callback):
    """Records one metrics row per epoch and commits it with a checkpoint (see module doc)."""

    def __init__(self, run_dir, rows, loss, guard, test_data=None, rank_probe=None,
                 eval_batch_size=512):
        super().__init__()
        self.run_dir = run_dir
        self.rows = list(rows)
        self.loss = loss
        self.guard = guard
        self.test_data = test_data
        self.rank_probe = rank_probe
        self.eval_batch_size = eval_batch_size

    def _learning_rate(self):
        return float(ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.diverged_at is not None:
            return
        row = {"epoch": epoch + 1, "learning_rate": self._learning_rate(),
               "beta": beta_lib.variable_value(self.loss.beta)}
        row.update(split_logs(logs or {}))
        if self.test_data is not None:
            # (x, y) arrays, or a dataset of (x, y) batches.
            inputs = self.test_data if isinstance(self.test_data, tuple) else (self.test_data,)
            test_logs = self.model.evaluate(*inputs, batch_size=self.eval_batch_size, verbose=0,
                                            return_dict=True)
            row.update(_renamed(test_logs, "test"))
        if not math.isfinite(row.get("train/loss", 0.0)) or not weights_are_finite(self.model):
            self.guard.mark(epoch, "end", "non-finite loss or weights at the end of the epoch")
            return
        if self.rank_probe is not None:
            row.update(self.rank_probe.measure())
        self.rows.append(row)
        self.run_dir.commit_epoch(self.model, self.rows, epoch + 1)
