"""Per-example learning times (`--track_example_learning=N`), for paper 2's curriculum claim.

For a fixed subset of training examples (the first N of the training split, unaugmented), each
epoch end records every member's margin and cross-entropy on each example:

    margin_i = z_{i, y_i} - max_{j != y_i} z_{i, j}        (> 0: classified correctly)
    nll_i    = logsumexp(z_i) - z_{i, y_i}                 (the loss of softmax(z) at beta = 1)

on the raw logits z. An example's learning epoch is the first epoch from which it is classified
correctly at every later epoch of the run, and 0 when it is not classified correctly at the
last. Paper 2 (Zhang & Xie) claims that a small gradient-decay beta learns easy examples
first; `analysis` relates the learning epochs to the difficulty that a reference beta = 1 run
gives the same examples.

Each epoch's arrays go to `example_learning/epoch_<e>.npz` before the epoch is committed, so a
resumed run has every epoch it keeps; the run's end gathers them into `example_learning.npz`
(`indices`, `labels`, `margin` and `nll` of shape epochs x N, `learned_at`).
"""

import os

import keras
import numpy as np

from tc import representation, run_files

FOLDER = "example_learning"
SUMMARY = "example_learning.npz"


def margins_and_losses(logits, labels):
    """`(margin, nll)` per example of `logits` (N, C) with integer `labels` (N,)."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    rows = np.arange(len(labels))
    true = logits[rows, labels]
    others = logits.copy()
    others[rows, labels] = -np.inf
    top = logits.max(axis=1, keepdims=True)
    nll = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0] - true
    return true - others.max(axis=1), nll


def learning_epochs(correct):
    """Per example (columns of the epochs x N boolean `correct`), the first epoch (1-based) from
    which it is correct at every later epoch; 0 if it is wrong at the last epoch."""
    correct = np.asarray(correct, bool)
    epochs = correct.shape[0]
    wrong = ~correct
    # The last wrong epoch (0 when never wrong); learned right after it.
    last_wrong = np.where(wrong.any(axis=0),
                          epochs - np.argmax(wrong[::-1], axis=0), 0)
    return np.where(correct[-1], last_wrong + 1, 0).astype(np.int64)


class ExampleLearning(keras.callbacks.Callback):
    """Writes every member's margins and losses on the tracked examples at each epoch end.

    `directories` are the members' `RunDirectory`s, in the order of `models`; it runs before the
    epoch's commit (see `tc.runner.assembly`).
    """

    def __init__(self, models, directories, examples, labels, batch_size):
        super().__init__()
        source = models[0].inputs[0]
        inputs = keras.Input(shape=source.shape[1:], dtype=source.dtype)
        # A packed copy returns its logits in a list of one.
        self.extractor = keras.Model(inputs, [keras.tree.flatten(model(inputs))[0]
                                              for model in models])
        self.directories = directories
        self.examples, self.labels = examples, np.asarray(labels)
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        outputs = representation.extractor_outputs(self.extractor, self.examples,
                                                    self.batch_size)
        for directory, logits in zip(self.directories, outputs):
            if not directory.writable:
                continue
            margin, nll = margins_and_losses(keras.ops.convert_to_numpy(logits), self.labels)
            os.makedirs(directory.file(FOLDER), exist_ok=True)
            run_files.atomic_write_arrays(
                directory.file(FOLDER, f"epoch_{epoch + 1:04d}.npz"),
                {"margin": margin.astype(np.float32), "nll": nll.astype(np.float32)},
                compress=True)


def summarize(directory, epochs, labels):
    """Gathers epochs 1..`epochs` into `example_learning.npz`; returns its result.json entry."""
    margin, nll = [], []
    for epoch in range(1, epochs + 1):
        with np.load(directory.file(FOLDER, f"epoch_{epoch:04d}.npz")) as arrays:
            margin.append(arrays["margin"])
            nll.append(arrays["nll"])
    margin, nll = np.stack(margin), np.stack(nll)
    learned_at = learning_epochs(margin > 0)
    if directory.writable:
        run_files.atomic_write_arrays(directory.file(SUMMARY), {
            "indices": np.arange(len(labels)), "labels": np.asarray(labels),
            "margin": margin, "nll": nll, "learned_at": learned_at}, compress=True)
    return {"file": SUMMARY, "examples": int(len(labels)),
            "learned": int((learned_at > 0).sum()),
            "median_learning_epoch": (float(np.median(learned_at[learned_at > 0]))
                                      if (learned_at > 0).any() else None)}
