"""Optimizers and learning-rate schedules of a tc run.

`WarmupDecay` is the schedule behind `--lr_schedule`: a linear warm-up over `warmup_steps` to the
peak rate, then constant, cosine decay to 0 at `total_steps`, or step decay (multiply by
`factor` at each boundary):

    lr(t) = peak * min(1, (t + 1) / warmup_steps) * decay(t)

Paper 1 tunes the learning rate jointly with `beta`; `--lr_scaling` in `tc.tune` uses it too.
"""

import math

import keras
from keras import ops

DECAYS = ("constant", "cosine", "step")


@keras.saving.register_keras_serializable(package="tc")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then constant / cosine / step decay (see the module docstring)."""

    def __init__(self, peak, total_steps, warmup_steps=0, decay="constant", boundaries=(),
                 factor=0.1):
        if decay not in DECAYS:
            raise ValueError(f"`decay` must be one of {DECAYS}; got {decay!r}.")
        if not (math.isfinite(peak) and peak > 0):
            raise ValueError(f"The peak learning rate must be positive and finite; got {peak!r}.")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.boundaries = tuple(int(b) for b in boundaries)
        self.factor = float(factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        scale = ops.convert_to_tensor(1.0, "float32")
        if self.warmup_steps:
            scale = ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        if self.decay == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            scale = scale * 0.5 * (1.0 + ops.cos(math.pi * progress))
        elif self.decay == "step":
            for boundary in self.boundaries:
                scale = scale * ops.where(step >= boundary, self.factor, 1.0)
        return self.peak * scale

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "decay": self.decay,
                "boundaries": list(self.boundaries), "factor": self.factor}


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
