"""Schedules for `beta`, the callback that drives a loss's `beta` from one, and the learning-rate
schedule of a tc run (`WarmupDecay`).

Paper 2 (Zhang & Xie, arXiv 2210.17145) warms the gradient-decay `beta` up from a small value
(below 1: large margin, fast early progress) to its final value. The exact schedule is not
published, so the start, end, length, unit and shape are all parameters here; the default shape is
log-linear because `beta` is a scale parameter that papers sweep in decades.

Every schedule maps a training time `t` (a step or an epoch, by its `unit`) to a `beta`:

    LogLinearWarmup: beta(t) = exp(log b0 + (log b1 - log b0) * min(t / T, 1))
    CosineWarmup:    beta(t) = exp(log b1 + (log b0 - log b1) * (1 + cos(pi * min(t / T, 1))) / 2)
    ConstantBeta:    beta(t) = b

with `b0 = beta_start`, `b1 = beta_end` and `T = duration`. Both warm-ups hold `b1` after `T`.
"""

import abc
import math

import keras
from keras import ops

from tc import beta as beta_lib
from tc import compat

__all__ = ["BetaSchedule", "BetaScheduler", "ConstantBeta", "CosineWarmup", "get",
           "LogLinearWarmup", "LR_DECAYS", "UNITS", "WarmupDecay"]

UNITS = ("step", "epoch")
LR_DECAYS = ("constant", "cosine", "step")


class BetaSchedule(abc.ABC):
    """Base class: a serializable map from training time to a positive, finite `beta`."""

    unit = "epoch"

    @abc.abstractmethod
    def __call__(self, time):
        """The `beta` at `time` (a step or an epoch, by `self.unit`)."""

    @abc.abstractmethod
    def get_config(self):
        """The constructor arguments, as plain Python values."""

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def initial_value(self):
        return self(0)


def _check_unit(unit):
    if unit not in UNITS:
        raise ValueError(f"`unit` must be one of {UNITS}; got {unit!r}.")
    return unit


def _check_duration(duration):
    if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
        raise ValueError(f"`duration` must be a positive integer; got {duration!r}.")
    return duration


def _check_time(time):
    if time < 0:
        raise ValueError(f"A schedule's time must be >= 0; got {time!r}.")
    return time


@keras.saving.register_keras_serializable(package="tc")
class ConstantBeta(BetaSchedule):
    """`beta(t) = beta` for every `t`."""

    def __init__(self, beta=1.0, unit="epoch"):
        self.beta = beta_lib.check_beta(beta)
        self.unit = _check_unit(unit)

    def __call__(self, time):
        _check_time(time)
        return self.beta

    def get_config(self):
        return {"beta": self.beta, "unit": self.unit}


class _Warmup(BetaSchedule):
    """Interpolates `log beta` from `beta_start` to `beta_end` over `duration` units, then holds."""

    def __init__(self, beta_start, beta_end, duration, unit="epoch"):
        self.beta_start = beta_lib.check_beta(beta_start, "beta_start")
        self.beta_end = beta_lib.check_beta(beta_end, "beta_end")
        self.duration = _check_duration(duration)
        self.unit = _check_unit(unit)

    @abc.abstractmethod
    def _progress(self, fraction):
        """The share of the way from start to end at `fraction` in [0, 1] of the duration."""

    def __call__(self, time):
        fraction = min(_check_time(time) / self.duration, 1.0)
        log_start, log_end = math.log(self.beta_start), math.log(self.beta_end)
        return math.exp(log_start + (log_end - log_start) * self._progress(fraction))

    def get_config(self):
        return {
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "duration": self.duration,
            "unit": self.unit,
        }


@keras.saving.register_keras_serializable(package="tc")
class LogLinearWarmup(_Warmup):
    """`beta` moves geometrically from `beta_start` to `beta_end` over `duration`, then holds.

    Paper 2's warm-up with its default shape. Example: `LogLinearWarmup(0.1, 1.0, duration=5)`
    gives 0.1, 0.158, 0.251, 0.398, 0.631, then 1.0 from epoch 5 on.
    """

    def _progress(self, fraction):
        return fraction


@keras.saving.register_keras_serializable(package="tc")
class CosineWarmup(_Warmup):
    """Like `LogLinearWarmup`, but `log beta` follows a half cosine: slow, fast, then slow."""

    def _progress(self, fraction):
        return (1.0 - math.cos(math.pi * fraction)) / 2.0


def get(identifier):
    """A schedule from a schedule, a number (constant), or a serialized schedule config."""
    if isinstance(identifier, BetaSchedule):
        return identifier
    if isinstance(identifier, dict):
        schedule = keras.saving.deserialize_keras_object(identifier)
        if not isinstance(schedule, BetaSchedule):
            raise ValueError(f"Not a beta schedule config: {identifier!r}.")
        return schedule
    return ConstantBeta(identifier)


class BetaScheduler(keras.callbacks.Callback):
    """Drives a `tc` loss's `beta` from a schedule during `fit` (paper 2's warm-up).

    The new value is written into the loss's beta variable, so the compiled step uses it with no
    retracing. An `"epoch"` schedule is applied at the start of each epoch with the epoch index
    (0-based); a `"step"` schedule before each batch with the optimizer's global step, so a
    resumed run continues where it stopped.

    Args:
        source: the loss (or anything with a `.beta` variable, or the variable itself).
        schedule: the schedule to follow; defaults to the loss's own `schedule`.
        verbose: 1 prints beta whenever an epoch starts with a new value.

    Example:
        ```python
        loss = tc.losses.GradientDecayCrossEntropy(
            beta=tc.schedules.LogLinearWarmup(0.1, 1.0, duration=5))
        model.compile("sgd", loss)
        model.fit(x, y, epochs=10, callbacks=[tc.schedules.BetaScheduler(loss)])
        ```
    """

    def __init__(self, source, schedule=None, verbose=0):
        super().__init__()
        self.beta_variable = beta_lib.beta_variable_of(source)
        if self.beta_variable is None:
            raise ValueError(
                f"BetaScheduler needs a beta variable to drive; {source!r} has none."
            )
        schedule = schedule if schedule is not None else getattr(source, "schedule", None)
        if schedule is None:
            raise ValueError(
                "BetaScheduler needs a schedule: pass `schedule=` or give the loss a "
                "`tc.schedules` schedule as its `beta`."
            )
        self.schedule = get(schedule)
        self.verbose = verbose
        self._epoch_start_step = 0
        # The value last written. On JAX the variable itself can't be read mid-epoch: the trainer
        # holds the state and leaves the variables empty until it syncs.
        self._current_beta = None

    def set_model(self, model):
        super().set_model(model)
        beta_lib.track_beta(model, self.beta_variable)

    def _set_beta(self, value):
        if value == self._current_beta:
            return False
        # On JAX, mid-epoch state lives outside the variables; flush it first, so the next step
        # re-reads every variable, this one included.
        compat.sync_jax_state(self.model)
        self.beta_variable.assign(value)
        self._current_beta = value
        return True

    def on_epoch_begin(self, epoch, logs=None):
        # The trainer has synced its state into the variables at this point, on every backend.
        self._current_beta = beta_lib.variable_value(self.beta_variable)
        self._epoch_start_step = int(
            keras.ops.convert_to_numpy(self.model.optimizer.iterations.value)
        )
        if self.schedule.unit == "epoch":
            changed = self._set_beta(self.schedule(epoch))
            if changed and self.verbose:
                print(f"\nEpoch {epoch + 1}: beta = {self.schedule(epoch):.6g}")

    def on_train_batch_begin(self, batch, logs=None):
        if self.schedule.unit == "step":
            self._set_beta(self.schedule(self._epoch_start_step + batch))


@keras.saving.register_keras_serializable(package="tc")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A learning-rate schedule: linear warm-up, then constant, cosine or step decay.

    The schedule behind `tc.train --lr_schedule`, usable in any Keras optimizer:

        lr(t) = peak * min(1, (t + 1) / warmup_steps) * decay(t)

    with `decay(t)` = 1 (constant); `(1 + cos(pi * clip((t - warmup_steps) / (total_steps -
    warmup_steps), 0, 1))) / 2` (cosine, to 0 at `total_steps`); or `factor ** #{b in boundaries:
    t >= b}` (step). Paper 1 (Agarwala et al., arXiv 2010.07344) tunes the peak rate jointly
    with `beta`.

    Args:
        peak: the peak learning rate, positive and finite.
        total_steps: the training length in optimizer steps (the cosine's end).
        warmup_steps: steps of the linear warm-up (0 = none).
        decay: "constant", "cosine" or "step".
        boundaries: the steps at which a step decay multiplies the rate by `factor`.
        factor: the step decay's multiplier.

    Example:
        ```python
        optimizer = keras.optimizers.SGD(tc.schedules.WarmupDecay(
            0.1, total_steps=10_000, warmup_steps=500, decay="cosine"), momentum=0.9)
        ```
    """

    def __init__(self, peak, total_steps, warmup_steps=0, decay="constant", boundaries=(),
                 factor=0.1):
        if decay not in LR_DECAYS:
            raise ValueError(f"`decay` must be one of {LR_DECAYS}; got {decay!r}.")
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
