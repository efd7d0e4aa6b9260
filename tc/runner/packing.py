"""What makes a packed beta sweep: K copies of one model, each with its own beta, in one program.

`tc.runner.assembly` runs a packed sweep as the same run as a single one, with K members; this
module holds what only packing needs: the members' configs, the packed model, and each copy's
share of the packed model's logs and labels.

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

import keras


def copy_configs(config):
    """One RunConfig per beta of `--betas`: the flags of each copy's run directory.

    The copies of `--output_dir=D` go to `D/beta<beta>`; with no `--output_dir`, each copy gets a
    single run's default directory.
    """
    return [dataclasses.replace(config, beta=beta, output_dir=os.path.join(
                config.output_dir, copy_directory_name(beta)) if config.output_dir else "")
            for beta in config.packed_betas]


def copy_directory_name(beta):
    return f"beta{beta:g}"


def check(config):
    """Raises ValueError for a packed configuration that cannot be packed."""
    if len(config.packed_betas) < 2:
        raise ValueError(f"--betas={config.betas!r}: a packed sweep needs at least 2 betas; "
                         "for one, use --beta.")
    names = [copy_directory_name(beta) for beta in config.packed_betas]
    shared = sorted({name for name in names if names.count(name) > 1})
    if shared:
        raise ValueError(f"--betas={config.betas!r}: betas that print alike would share the run "
                         f"directories {shared}; give betas that differ in 6 significant digits.")
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


def copy_logs(logs, index):
    """Copy `index`'s entries of the packed model's logs, under a single run's keys.

    Keras logs the loss of output `copy_{index}` as `{index}/copy_{index}_loss` and its metrics
    as `copy_{index}_{metric}` (`val_` in front for validation).
    """
    name = f"copy_{index}"
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
