"""Backend-neutral test helpers: gradients, small models, subprocesses, and worker groups."""

import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops


def value_and_gradient(function, x):
    """`(function(x), d function / dx)` as numpy arrays, on the active Keras backend."""
    backend = keras.backend.backend()
    x = ops.convert_to_tensor(x)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            value = function(x)
        gradient = tape.gradient(value, x)
    elif backend == "jax":
        import jax

        value, gradient = jax.value_and_grad(function)(x)
    elif backend == "torch":
        import torch

        x = x.detach().requires_grad_(True)
        value = function(x)
        (gradient,) = torch.autograd.grad(value, x)
    else:
        raise ValueError(f"No gradient helper for backend {backend!r}.")
    return ops.convert_to_numpy(value), ops.convert_to_numpy(gradient)


def softmax(x, axis=-1):
    """Float64 numpy softmax, the independent reference."""
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """Float64 numpy log-softmax, exact for very large logits."""
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def dense_model(input_dim, num_classes, hidden=16, seed=0, name=None):
    """A small MLP that outputs logits, built and seeded."""
    inputs = keras.Input((input_dim,))
    hidden_layer = keras.layers.Dense(
        hidden, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
    )(inputs)
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed + 1),
        name="readout",
    )(hidden_layer)
    return keras.Model(inputs, logits, name=name)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BLOCK_TENSORFLOW = textwrap.dedent("""
    import sys

    class BlockTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
                raise ImportError(f"blocked import of {name}")
            return None

    sys.meta_path.insert(0, BlockTensorFlow())
""")


def model_group(name):
    """The mark that runs a test on the pytest worker of network `name`'s other builds
    (`xdist_group`): under JAX a build compiles an initializer per weight shape, which the
    network's next build in the same process reuses."""
    return pytest.mark.xdist_group(f"model-{name}")


def free_ports(count):
    """`count` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def start_python(arguments, **env):
    """Starts `python arguments...` in the repo root with extra environment variables."""
    return subprocess.Popen([sys.executable, *arguments], cwd=ROOT, env=dict(os.environ, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_python(arguments, backend=None, block_tensorflow=False, timeout=300):
    """Runs `python arguments...` (or `python -c script` for a str) in the repo root.

    `block_tensorflow` makes any import of tensorflow or tensorflow_datasets fail first.
    Returns the CompletedProcess, with text stdout and stderr.
    """
    if isinstance(arguments, str):
        script = (BLOCK_TENSORFLOW if block_tensorflow else "") + textwrap.dedent(arguments)
        arguments = ["-c", script]
    elif block_tensorflow:
        raise ValueError("block_tensorflow needs a script, not a command line.")
    env = dict(os.environ)
    if backend:
        env["KERAS_BACKEND"] = backend
    return subprocess.run([sys.executable, *arguments], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


METRICS = ("accuracy", "beta_logit_norm", "ece", "logit_norm", "loss", "mce", "nll")


def write_synthetic_run(path, epochs=2, rank_layers=("features",), probe_dataset=None,
                        status="completed", classes=10, examples=200, values=None,
                        probe_accuracy=None, **flags):
    """Writes a complete run directory as `tc.train` would, with made-up numbers, and returns
    its path: flags.txt of `RunConfig(**flags)`, metrics.csv, result.json, predictions.npz.

    The numbers are drawn from a generator seeded by the flags, so the analysis tests get
    varied, reproducible runs without training any. `values` fixes metrics.csv columns in
    every epoch (e.g. `{"test/ece": 0.1}`), `probe_accuracy` the linear probe's accuracy.
    """
    import json
    import zlib

    from tc import run_files
    from tc.runner import config as config_lib

    config = config_lib.RunConfig(output_dir=str(path), probe_dataset=probe_dataset or "",
                                  track_rank_layers=",".join(rank_layers), epochs=epochs,
                                  **flags)
    rng = np.random.default_rng(zlib.crc32(config.to_flagfile().encode()))
    os.makedirs(path, exist_ok=True)
    run_files.atomic_write_text(os.path.join(path, "flags.txt"), config.to_flagfile())
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "learning_rate": config.learning_rate, "beta": config.beta}
        for split in ("train", "val", "test"):
            for metric in METRICS:
                value = rng.uniform(0.5, 1.0) if metric == "accuracy" else rng.uniform(0.01, 3)
                row[f"{split}/{metric}"] = float(value)
        for layer in rank_layers:
            row[f"rank/{layer}/numerical"] = int(rng.integers(1, 64))
            row[f"rank/{layer}/effective"] = float(rng.uniform(1, 64))
        row.update({key: float(value) for key, value in (values or {}).items()})
        rows.append(row)
    run_files.atomic_write_text(os.path.join(path, "metrics.csv"), run_files.rows_to_csv(rows))
    arrays = {}
    for split in ("val", "test"):
        labels = rng.integers(0, classes, examples)
        logits = rng.normal(size=(examples, classes)) * 2
        logits[np.arange(examples), labels] += rng.uniform(0, 4, examples)
        arrays[f"{split}_logits"], arrays[f"{split}_labels"] = logits.astype(np.float32), labels
    run_files.atomic_write_arrays(os.path.join(path, "predictions.npz"), arrays)
    best = max(rows, key=lambda row: row["val/accuracy"])
    result = {"status": status, "epochs_completed": epochs, "epochs": epochs, "final": rows[-1],
              "best_validation": best, "beta": config.beta, "seed": config.seed,
              "loss": config.loss, "learning_rate": config.learning_rate, "backend": "numpy",
              "wall_seconds": 1.0, "examples_per_second": 1000.0, "diverged_at": None,
              "predictions": "predictions.npz", "run_dir": str(path)}
    if probe_dataset:
        result["ood_detection"] = {
            score: {"auroc": float(rng.uniform(0.5, 1)), "fpr_at_95_tpr": float(rng.uniform())}
            for score in ("max_softmax_probability", "energy", "principal_subspace")}
        result["linear_probe"] = {"dataset": probe_dataset, "layer": "features",
                                  "train_examples": 500,
                                  "accuracy": float(rng.uniform(0.3, 1)
                                                    if probe_accuracy is None else probe_accuracy)}
    # The schema the runner writes by (tc.run_files.RESULT_SCHEMA): a made-up run is one too.
    with open(os.path.join(path, "result.json"), "w") as handle:
        json.dump(run_files.check_result(result), handle)
    return path
