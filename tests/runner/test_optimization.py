"""`tc.runner.optimization` and `tc.schedules.WarmupDecay`: optimizers and the warm-up / decay
schedule, against closed forms."""

import math

import keras
import numpy as np
import pytest

from tc import schedules
from tc.runner import optimization


def rates(schedule, steps):
    return np.array([float(keras.ops.convert_to_numpy(schedule(step))) for step in steps])


def test_warmup_then_cosine_matches_the_closed_form():
    schedule = schedules.WarmupDecay(0.2, total_steps=100, warmup_steps=10, decay="cosine")
    steps = np.arange(100)
    expected = [0.2 * min(1, (t + 1) / 10) * 0.5 * (1 + math.cos(math.pi * min(max(
        (t - 10) / 90, 0), 1))) for t in steps]
    np.testing.assert_allclose(rates(schedule, steps), expected, rtol=1e-5, atol=1e-7)


def test_step_decay_multiplies_at_each_boundary():
    schedule = schedules.WarmupDecay(1.0, 100, decay="step", boundaries=(10, 20), factor=0.5)
    np.testing.assert_allclose(rates(schedule, [0, 9, 10, 19, 20, 99]),
                               [1, 1, 0.5, 0.5, 0.25, 0.25], rtol=1e-6)


def test_the_schedule_round_trips_through_its_config():
    schedule = schedules.WarmupDecay(0.1, 50, 5, "step", (10,), 0.3)
    again = schedules.WarmupDecay(**schedule.get_config())
    np.testing.assert_allclose(rates(again, range(50)), rates(schedule, range(50)))


@pytest.mark.parametrize("name, kind, momentum", [
    ("sgd", keras.optimizers.SGD, 0.0), ("momentum", keras.optimizers.SGD, 0.9),
    ("adam", keras.optimizers.Adam, None), ("adamw", keras.optimizers.AdamW, None)])
def test_each_optimizer_flag_builds_its_optimizer(small_config, name, kind, momentum):
    config = small_config(optimizer=name, weight_decay=1e-4)
    optimizer = optimization.build_optimizer(config, steps_per_epoch=10)
    assert type(optimizer) is kind
    if momentum is not None:
        assert optimizer.momentum == momentum
    decoupled = name == "adamw"
    assert optimization.model_weight_decay(config) == (0.0 if decoupled else 1e-4)
    if decoupled:
        assert optimizer.weight_decay == pytest.approx(1e-4)


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="`decay` must be one of"):
        schedules.WarmupDecay(0.1, 10, decay="linear")
    with pytest.raises(ValueError, match="positive and finite"):
        schedules.WarmupDecay(float("nan"), 10)
