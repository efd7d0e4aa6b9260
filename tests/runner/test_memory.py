"""`tc.runner.memory`: one copy's training memory, counted by hand, and how many copies fit."""

import keras
import pytest

from tc.runner import memory


def two_layer_model():
    inputs = keras.Input((8,))
    return keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(16)(inputs)))


def test_one_copy_is_its_parameters_gradients_slots_and_activations():
    model = two_layer_model()
    parameters = 8 * 16 + 16 + 16 * 4 + 4
    activations = 8 + 16 + 4  # the input is kept for the backward pass too
    assert memory.activations_per_example(model) == activations
    assert memory.copy_bytes(model, 32, "sgd", "off") == (4 * parameters * 2
                                                          + 3 * 32 * activations * 4)
    assert memory.copy_bytes(model, 32, "adamw", "bfloat16") == (4 * parameters * 4
                                                                 + 3 * 32 * activations * 2)


@pytest.mark.parametrize("copies, one_copy, available, requested, expected", [
    (64, 10, 1000, 0, 64),  # 80 fit: all 64 in one program
    (64, 10, 500, 0, 40),  # 0.8 x 500 / 10
    (64, 10**6, 1000, 0, 1),  # not even one fits: one at a time, not zero
    (64, 10, None, 0, 64),  # a CPU: no limit
    (64, 10, 1000, 16, 16),  # --max_copies_per_program wins
    (3, 10, 1000, 16, 3),
])
def test_copies_per_program(copies, one_copy, available, requested, expected):
    assert memory.copies_per_program(copies, one_copy, available, requested) == expected


def test_a_cpu_sets_no_limit():
    assert memory.device_memory_bytes() is None
