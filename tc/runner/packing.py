"""What makes a packed sweep: K copies of one model, each with its own settings, in one program.

`tc.runner.assembly` runs a packed sweep as the same run as a single one, with K members; this
module holds what only packing needs: the copies' configs, the packed model, the optimizer that
gives each copy its own learning rate, and each copy's share of the packed model's logs, labels
and optimizer state.

    python -m tc.train --dataset=fashion_mnist --betas=0.01,0.1,1,10 --learning_rates=0.01,0.1
    python -m tc.train --betas=0.1,1,10 --seeds=0,1,2 --grid=zip

Each copy has its own beta, peak learning rate (the whole `--lr_schedule` scaled), seed
(initialization), `--init_logit_norm` and `readout_init_scale`: the lists `--betas`,
`--learning_rates`, `--seeds`, `--init_logit_norms` and `--readout_init_scales` are the sweep's
axes, combined by `--grid=product` (every combination; a 2-D (beta, learning rate) grid is one
program) or `--grid=zip` (the i-th of each). `--lr_scaling=inverse_beta_squared` trains each copy
at its rate / beta^2.

The packed model feeds each batch to K copies and returns their K logits. Its loss is the sum of
the copies' losses, copy k's with beta_k:

    L(theta_1..theta_K) = sum_k loss(y, f(x; theta_k); beta_k)

The copies share no weight, so dL/dtheta_k = d loss_k / dtheta_k. Every optimizer update is per
variable, and `per_copy_rates` hands copy k's variables the rate eta_k * s(t), where s(t) is the
shared schedule at peak 1 (bit for bit the rate of a separate run: eta_k * s(t) is one rounded
product either way). That is exact for each optimizer because the rate enters nowhere else:
- SGD: w -= eta_k s(t) g;
- momentum: v = m v - eta_k s(t) g, w += v;
- Adam: w -= eta_k s(t) sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), with m and v per
  variable;
- AdamW: Adam, plus the decoupled decay w -= w lambda eta_k s(t), applied in the same update
  step, before the Adam step, as Keras applies it (Keras's own AdamW decays at the shared rate,
  so the packed AdamW is Adam with that decay done per copy).
Gradient scaling would be exact for SGD and momentum only: Adam's step does not change when its
gradient is scaled.

Each copy starts from the initialization of a separate run with its seed. All copies see the same
batches and augmentations, drawn from `--shuffle_seed` (default `--seed`): common random numbers
across the sweep. With `--data_order=per_copy`, each copy draws its own seed's batches, as its
separate run would: one program holds the copies of one seed, and `tc.runner.assembly` runs one
program per seed. Each copy writes an ordinary run directory whose flags.txt is a single run's
flagfile (its `--shuffle_seed` included), so rerunning it alone reproduces the copy, and
`analysis` sees K normal runs. A copy's checkpoints hold its weights and its own share of the
optimizer state, as a single run's do.

A copy whose loss or weights become non-finite is marked diverged at the end of that epoch (in
its state.json too, so a resumed sweep does not train it again) and records nothing more; the
others train on, since its NaNs stay in its own weights and its own loss term.

Differences from K separate runs:
- with `--weight_decay` (not adamw), a copy's `train/loss` is its data term: Keras adds the L2
  penalty to the packed total only (the gradients include it);
- `--mixed_precision=float16` is refused, because its loss scale would be shared by all copies.
"""

import dataclasses
import itertools
import os

import keras
import numpy as np

from tc import compat
from tc.runner import config as config_lib
from tc.runner import optimization

# A setting's short name in a copy's directory name, e.g. beta0.1_lr0.05_seed1.
SHORT_NAMES = {"beta": "beta", "learning_rate": "lr", "seed": "seed", "init_logit_norm": "norm",
               "readout_init_scale": "readout"}
# The list flag of each setting.
LIST_FLAGS = {"beta": "betas", "learning_rate": "learning_rates", "seed": "seeds",
              "init_logit_norm": "init_logit_norms", "readout_init_scale": "readout_init_scales"}


def copy_settings(config):
    """`[{setting: value}]`, one dict per copy, over the sweep's axes (see `--grid`)."""
    axes = config.sweep_axes
    names = list(axes)
    if config.grid == "product":
        return [dict(zip(names, values)) for values in itertools.product(*axes.values())]
    length = max(len(values) for values in axes.values())
    return [{name: values[index if len(values) > 1 else 0] for name, values in axes.items()}
            for index in range(length)]


def copy_directory_name(settings, varying):
    """`beta0.1_lr0.05`: the settings that vary across the sweep, in axis order."""
    parts = [f"{SHORT_NAMES[name]}{settings[name]:g}" for name in SHORT_NAMES if name in varying]
    return "_".join(parts) or "copy"


def varying_settings(all_settings):
    return {name for name in all_settings[0]
            if len({settings[name] for settings in all_settings}) > 1}


def copy_configs(config):
    """One single-run RunConfig per copy: the flags of each copy's run directory.

    The copies of `--output_dir=D` go to `D/<copy name>` (`D/beta0.1` for a beta sweep); with no
    `--output_dir`, each copy gets a single run's default directory.
    """
    all_settings = copy_settings(config)
    varying = varying_settings(all_settings)
    cleared = {flag: "" for flag in LIST_FLAGS.values()}
    configs = []
    for settings in all_settings:
        values = dict(cleared, grid=config_lib.RunConfig.grid,
                      data_order=config_lib.RunConfig.data_order)
        for name, value in settings.items():
            if name == "readout_init_scale":
                values["model_options"] = _with_option(config.model_options,
                                                       "readout_init_scale", value)
            elif name == "init_logit_norm":
                values[name] = str(value)
            else:
                values[name] = value
        seed = values.get("seed", config.seed)
        shared_order = config.data_order == "shared" and config.data_order_seed != seed
        values["shuffle_seed"] = config.data_order_seed if shared_order else -1
        values["output_dir"] = (os.path.join(config.output_dir,
                                             copy_directory_name(settings, varying))
                                if config.output_dir else "")
        configs.append(dataclasses.replace(config, **values))
    return configs


# What the copies of one program may set each for itself; everything else they share.
PER_COPY_FIELDS = ("beta", "learning_rate", "seed", "init_logit_norm", "model_options",
                   "output_dir", "shuffle_seed", *LIST_FLAGS.values(), "grid", "data_order")


def check_members(config, members):
    """Raises ValueError unless `members` can be copies of one program with `config`'s settings."""
    if not members:
        raise ValueError("a packed program needs at least one copy.")
    for member in members:
        member.validate()
        shared = {field.name for field in dataclasses.fields(config)} - set(PER_COPY_FIELDS)
        differing = sorted(name for name in shared
                           if getattr(member, name) != getattr(config, name))
        if differing:
            raise ValueError(f"copy {member.output_dir or member.run_name} differs from the "
                             f"program in {differing}; copies may differ only in "
                             f"{', '.join(PER_COPY_FIELDS[:5])}.")
        if member.is_packed:
            raise ValueError(f"copy {member.output_dir} is itself a packed sweep.")
        if member.data_order_seed != config.data_order_seed:
            raise ValueError(f"copy {member.output_dir} draws its data with seed "
                             f"{member.data_order_seed}, the program with "
                             f"{config.data_order_seed}: one program has one data order.")
    directories = [member.run_dir for member in members]
    if len(set(directories)) != len(directories):
        raise ValueError(f"copies share run directories: {sorted(directories)}.")
    if len(members) > 1:
        _refuse_float16(config)


def _refuse_float16(config):
    if config.mixed_precision == "float16":
        raise ValueError("--mixed_precision=float16 cannot be packed: its loss scale would be "
                         "shared by all copies. Use bfloat16 or off.")


def _with_option(options_text, key, value):
    kept = [item for item in options_text.split(";")
            if item.strip() and item.partition("=")[0].strip() != key]
    return ";".join(kept + [f"{key}={value!r}"])


def check(config):
    """Raises ValueError for a packed configuration that cannot be packed."""
    axes = config.sweep_axes
    if config.grid == "zip":
        lengths = {len(values) for values in axes.values() if len(values) > 1}
        if len(lengths) > 1:
            given = ", ".join(f"--{LIST_FLAGS[name]} has {len(values)}"
                              for name, values in axes.items())
            raise ValueError(f"--grid=zip pairs the i-th values of each list, so the lists must "
                             f"have one length (or one value); {given}.")
    all_settings = copy_settings(config)
    if len(all_settings) < 2:
        raise ValueError(f"--{', --'.join(LIST_FLAGS[name] for name in axes)}: a packed sweep "
                         "needs at least 2 copies; for one, use --beta, --learning_rate, --seed, "
                         "--init_logit_norm.")
    varying = varying_settings(all_settings)
    names = [copy_directory_name(settings, varying) for settings in all_settings]
    shared = sorted({name for name in names if names.count(name) > 1})
    if shared:
        raise ValueError(f"{', '.join(f'--{LIST_FLAGS[n]}={getattr(config, LIST_FLAGS[n])}' for n in axes)}: "
                         f"settings that print alike would share the run directories {shared}; "
                         "give values that differ in 6 significant digits.")
    _refuse_float16(config)
    directories = [copy.run_dir for copy in copy_configs(config)]
    if len(set(directories)) != len(directories):
        raise ValueError("the copies' default run directories (named by dataset, model, loss, "
                         "beta and seed) would coincide; give --output_dir, under which each "
                         f"copy gets its own folder ({', '.join(names[:2])}, ...).")


def per_copy_optimizer(config, steps_per_epoch, copy_variables, copy_rates):
    """The sweep's optimizer, giving copy k's variables the peak rate `copy_rates[k]`.

    `copy_variables[k]` are copy k's trainable variables. The shared schedule runs at peak 1 and
    `update_step` multiplies it by the copy's rate (see the module docstring for why that is
    exact). `optimizer.copy_variables(k)` lists copy k's share of the optimizer state: the shared
    step counter and the slots of its variables, in the order of a single run's optimizer.
    """
    schedule = optimization.learning_rate_schedule(config, steps_per_epoch, peak=1.0)
    if config.optimizer in ("sgd", "momentum"):
        base = keras.optimizers.SGD
        options = {"momentum": config.momentum if config.optimizer == "momentum" else 0.0}
    else:
        base = keras.optimizers.Adam
        options = {}
    decoupled_decay = config.weight_decay if config.optimizer == "adamw" else 0.0
    copy_of = {id(variable): index for index, variables in enumerate(copy_variables)
               for variable in variables}

    class PerCopyRates(base):
        def build(self, variables):
            self.rate_by_index = [float(copy_rates[copy_of[id(v)]]) for v in variables]
            self.slot_copy = {}
            super().build(variables)

        def add_variable_from_reference(self, reference_variable, name=None,
                                        initializer="zeros"):
            slot = super().add_variable_from_reference(reference_variable, name, initializer)
            self.slot_copy[id(slot)] = copy_of[id(reference_variable)]
            return slot

        def update_step(self, gradient, variable, learning_rate):
            rate = learning_rate * self.rate_by_index[
                compat.optimizer_variable_index(self, variable)]
            if decoupled_decay:
                decay = keras.ops.cast(decoupled_decay, variable.dtype)
                self.assign(variable, variable - variable * decay
                            * keras.ops.cast(rate, variable.dtype))
            super().update_step(gradient, variable, rate)

        def copy_variables(self, index):
            return [variable for variable in self.variables
                    if self.slot_copy.get(id(variable), index) == index]

    return PerCopyRates(schedule, **options)


def copy_learning_rate(optimizer, rate):
    """The learning rate a copy trained at this step: the shared schedule times its peak."""
    return float(np.float32(keras.ops.convert_to_numpy(optimizer.learning_rate))
                 * np.float32(rate))


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
