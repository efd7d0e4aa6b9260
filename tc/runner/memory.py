"""How many packed copies fit in one program: accelerator memory against one copy's estimate.

A packed sweep of K copies (`tc.runner.packing`) holds K models, their gradients and optimizer
state, and K copies' activations of one batch. When they do not fit, `tc.runner.assembly` runs
the sweep as several programs of at most `copies_per_program` copies, one after another; each
copy trains exactly as it would in one program (the copies share nothing but the data order).

One copy's training memory is estimated from the built model, before anything is compiled:

    bytes = 4 P (2 + S)  +  3 B A c

P: the model's parameters (float32 variables, each with a gradient and S optimizer slots: 0 for
SGD, 1 for momentum, 2 for Adam and AdamW); B: the batch size; A: the activations per example,
summed over the outputs of the model's layers; c: bytes per activation (2 under mixed precision,
else 4). The factor 3 covers the forward activations kept for the backward pass, their gradients,
and the compiler's temporaries. A program gets `MEMORY_FRACTION` of the device's memory; the rest
is left to the data held on the device and the evaluation passes.
"""

import math
import shutil
import subprocess

import keras

MEMORY_FRACTION = 0.8
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
ACTIVATION_FACTOR = 3


def activations_per_example(model):
    """Elements of every layer output of `model` for one example (nested models counted whole)."""
    total = 0
    for layer in model.layers:
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # a layer called more than once, or never
            continue
        for output in outputs:
            total += math.prod(dim for dim in output.shape[1:] if dim is not None)
    return total


def copy_bytes(model, batch_size, optimizer, mixed_precision):
    """Estimated training memory of one copy of `model` (see the module docstring)."""
    parameters = sum(math.prod(weight.shape) for weight in model.weights)
    activation_bytes = 2 if mixed_precision in ("bfloat16", "float16") else 4
    return (4 * parameters * (2 + OPTIMIZER_SLOTS[optimizer])
            + ACTIVATION_FACTOR * batch_size * activations_per_example(model) * activation_bytes)


def device_memory_bytes():
    """Memory of the first accelerator in bytes, or None on a CPU (where no limit is applied)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "cpu":
            return None
        stats = device.memory_stats() or {}
        return stats.get("bytes_limit")
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return None
        return _nvidia_smi_total_bytes()  # TensorFlow reports memory in use, not its total
    return None


def _nvidia_smi_total_bytes():
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        text = subprocess.run(["nvidia-smi", "--query-gpu=memory.total",
                               "--format=csv,noheader,nounits"], capture_output=True,
                              text=True, timeout=20, check=True).stdout
        return int(text.split()[0]) * 2 ** 20
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def copies_per_program(copies, one_copy_bytes, available_bytes, requested=0):
    """How many of `copies` copies one program holds.

    `requested` (--max_copies_per_program) wins when set; otherwise as many as fit in
    `MEMORY_FRACTION` of `available_bytes` (all of them when that is None: a CPU), at least one.
    """
    if requested:
        return min(requested, copies)
    if available_bytes is None:
        return copies
    fitting = int(MEMORY_FRACTION * available_bytes // max(one_copy_bytes, 1))
    return max(1, min(copies, fitting))
