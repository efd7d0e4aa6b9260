"""Optimizers and learning-rate schedules of a tc run.

The schedule behind `--lr_schedule` is `tc.schedules.WarmupDecay`, in the public library: a
trained run's model.keras refers to it, and `import tc` alone must be able to load that file.
Paper 1 tunes the learning rate jointly with `beta`; `--lr_scaling` in `tc.tune` uses it too.
"""

import keras

from tc.schedules import WarmupDecay


def learning_rate_schedule(config, steps_per_epoch, peak=None):
    """The WarmupDecay of a RunConfig (at `peak`, default its rate after --lr_scaling)."""
    return WarmupDecay(
        peak=config.effective_learning_rate if peak is None else peak, total_steps=config.epochs * steps_per_epoch,
        warmup_steps=config.lr_warmup_epochs * steps_per_epoch, decay=config.lr_schedule,
        boundaries=[epoch * steps_per_epoch for epoch in config.decay_epochs],
        factor=config.lr_decay_factor)


def build_optimizer(config, steps_per_epoch, learning_rate=None):
    """The optimizer of `--optimizer`; AdamW carries the (decoupled) weight decay itself."""
    rate = learning_rate_schedule(config, steps_per_epoch) if learning_rate is None else learning_rate
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(rate, momentum=config.momentum)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    return keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)


def model_weight_decay(config):
    """The L2 weight decay the model's kernels carry: none when AdamW decays decoupled."""
    return 0.0 if config.optimizer == "adamw" else config.weight_decay
