"""TemperatureCrossEntropy and GradientDecayCrossEntropy against independent references."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import tc
from tests.support import log_softmax, softmax, value_and_gradient

NUM_EXAMPLES, NUM_CLASSES = 64, 10


def random_problem(seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = (scale * rng.standard_normal((NUM_EXAMPLES, NUM_CLASSES))).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, NUM_EXAMPLES)
    return logits, labels


def gradient_decay_reference(logits, labels, beta):
    """`log(beta + sum_{i != c} exp(z_i - z_c))` in float64, straight from paper 2's formula."""
    z = np.asarray(logits, dtype=np.float64)
    target = z[np.arange(len(labels)), labels][:, None]
    others = np.exp(z - target)
    others[np.arange(len(labels)), labels] = 0.0
    return np.log(beta + others.sum(axis=1))


@pytest.mark.parametrize("beta", [1e-3, 1e-2, 1.0, 10.0, 1e3])
def test_temperature_ce_equals_keras_ce_on_scaled_logits(beta):
    logits, labels = random_problem()
    ours = tc.losses.TemperatureCrossEntropy(beta=beta)(labels, logits)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        labels, beta * logits
    )
    np.testing.assert_allclose(ops.convert_to_numpy(ours), ops.convert_to_numpy(keras_loss),
                               rtol=1e-6)
    per_example = tc.losses.TemperatureCrossEntropy(beta=beta, reduction=None)(labels, logits)
    reference = -log_softmax(beta * logits.astype(np.float64))[np.arange(NUM_EXAMPLES), labels]
    np.testing.assert_allclose(ops.convert_to_numpy(per_example), reference, rtol=1e-4,
                               atol=1e-5 * max(1.0, beta))


@pytest.mark.parametrize("beta", [1e-3, 1e-2, 1.0, 10.0, 1e3])
def test_temperature_ce_gradient_is_beta_times_softmax_minus_onehot(beta):
    logits, labels = random_problem(seed=1, scale=1.0)
    loss = tc.losses.TemperatureCrossEntropy(beta=beta)
    _, gradient = value_and_gradient(lambda z: loss(labels, z), logits)
    onehot = np.eye(NUM_CLASSES)[labels]
    expected = beta * (softmax(beta * logits.astype(np.float64)) - onehot) / NUM_EXAMPLES
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-7 * max(1.0, beta))


@pytest.mark.parametrize("loss_class", [tc.losses.TemperatureCrossEntropy,
                                        tc.losses.GradientDecayCrossEntropy])
@pytest.mark.parametrize("beta", [1e-3, 1e-2, 0.1, 1.0, 10.0, 1e3])
def test_losses_and_gradients_stay_finite_for_huge_logits(loss_class, beta):
    rng = np.random.default_rng(2)
    logits = (1e4 * rng.uniform(-1, 1, (NUM_EXAMPLES, NUM_CLASSES))).astype("float32")
    logits[0] = [1e4] + [-1e4] * (NUM_CLASSES - 1)
    labels = rng.integers(0, NUM_CLASSES, NUM_EXAMPLES)
    labels[0] = NUM_CLASSES - 1  # maximally wrong
    loss = loss_class(beta=beta)
    value, gradient = value_and_gradient(lambda z: loss(labels, z), logits)
    assert np.isfinite(value)
    assert np.all(np.isfinite(gradient))


@pytest.mark.parametrize("beta", [1e-3, 0.1, 1.0, 10.0, 1e3])
def test_gradient_decay_ce_matches_numpy_formula(beta):
    logits, labels = random_problem(seed=3)
    per_example = tc.losses.GradientDecayCrossEntropy(beta=beta, reduction=None)(labels, logits)
    reference = gradient_decay_reference(logits, labels, beta)
    # Relative 1e-6, with a float32-resolution floor for the few examples whose loss is ~0.
    np.testing.assert_allclose(ops.convert_to_numpy(per_example), reference, rtol=1e-6,
                               atol=1e-6)
    mean = tc.losses.GradientDecayCrossEntropy(beta=beta)(labels, logits)
    np.testing.assert_allclose(float(ops.convert_to_numpy(mean)), reference.mean(), rtol=1e-6)


def test_gradient_decay_ce_at_beta_one_is_plain_ce():
    logits, labels = random_problem(seed=4)
    ours = tc.losses.GradientDecayCrossEntropy(beta=1.0, reduction=None)(labels, logits)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(
        labels, logits
    )
    np.testing.assert_allclose(ops.convert_to_numpy(ours), ops.convert_to_numpy(keras_ce),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("beta", [1e-3, 0.1, 1.0, 10.0, 1e3])
def test_gradient_decay_target_gradient_magnitude(beta):
    logits, labels = random_problem(seed=5, scale=2.0)
    loss = tc.losses.GradientDecayCrossEntropy(beta=beta, reduction="sum")
    _, gradient = value_and_gradient(lambda z: loss(labels, z), logits)
    p = softmax(logits)[np.arange(NUM_EXAMPLES), labels]
    expected = (1.0 - p) / (1.0 + (beta - 1.0) * p)
    target_gradient = gradient[np.arange(NUM_EXAMPLES), labels]
    assert np.all(target_gradient <= 0.0)
    np.testing.assert_allclose(-target_gradient, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("loss_class", [tc.losses.TemperatureCrossEntropy,
                                        tc.losses.GradientDecayCrossEntropy])
def test_label_layouts_agree(loss_class):
    logits, labels = random_problem(seed=6)
    sparse = loss_class(beta=0.5)(labels, logits)
    column = loss_class(beta=0.5)(labels[:, None], logits)
    onehot = loss_class(beta=0.5, label_mode="categorical")(np.eye(NUM_CLASSES)[labels], logits)
    np.testing.assert_allclose(ops.convert_to_numpy(column), ops.convert_to_numpy(sparse),
                               rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(onehot), ops.convert_to_numpy(sparse),
                               rtol=1e-5)


def test_temperature_ce_label_smoothing_matches_keras_categorical_ce():
    logits, labels = random_problem(seed=7)
    onehot = np.eye(NUM_CLASSES)[labels]
    for beta in (0.1, 3.0):
        ours = tc.losses.TemperatureCrossEntropy(beta=beta, label_smoothing=0.1)(labels, logits)
        keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(
            onehot, beta * logits
        )
        np.testing.assert_allclose(ops.convert_to_numpy(ours), ops.convert_to_numpy(keras_loss),
                                   rtol=1e-6)


@pytest.mark.parametrize("beta", [0.1, 1.0, 10.0])
def test_gradient_decay_soft_labels_are_the_expected_hard_loss(beta):
    logits, _ = random_problem(seed=8)
    rng = np.random.default_rng(8)
    targets = rng.dirichlet(np.ones(NUM_CLASSES), NUM_EXAMPLES).astype("float32")
    ours = tc.losses.GradientDecayCrossEntropy(beta=beta, label_mode="categorical",
                                               reduction=None)(targets, logits)
    per_class = np.stack(
        [gradient_decay_reference(logits, np.full(NUM_EXAMPLES, c), beta)
         for c in range(NUM_CLASSES)], axis=1)
    np.testing.assert_allclose(ops.convert_to_numpy(ours), (targets * per_class).sum(axis=1),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", ["sum", "sum_over_batch_size", "mean",
                                       "mean_with_sample_weight", "none", None])
def test_reductions_and_sample_weights_follow_keras(reduction):
    logits, labels = random_problem(seed=9)
    weights = np.random.default_rng(9).uniform(0, 2, NUM_EXAMPLES).astype("float32")
    beta = 0.3
    ours = tc.losses.TemperatureCrossEntropy(beta=beta, reduction=reduction)(
        labels, logits, sample_weight=weights
    )
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                            reduction=reduction)(
        labels, beta * logits, sample_weight=weights
    )
    np.testing.assert_allclose(ops.convert_to_numpy(ours), ops.convert_to_numpy(keras_loss),
                               rtol=1e-6)
    decay = tc.losses.GradientDecayCrossEntropy(beta=beta, reduction=reduction)(
        labels, logits, sample_weight=weights
    )
    per_example = gradient_decay_reference(logits, labels, beta) * weights
    expected = {
        "sum": per_example.sum(),
        "sum_over_batch_size": per_example.sum() / NUM_EXAMPLES,
        "mean": per_example.sum() / NUM_EXAMPLES,
        "mean_with_sample_weight": per_example.sum() / weights.sum(),
        "none": per_example,
        None: per_example,
    }[reduction]
    np.testing.assert_allclose(ops.convert_to_numpy(decay), expected, rtol=1e-5, atol=1e-6)


def test_beta_variable_is_read_live():
    logits, labels = random_problem(seed=10)
    beta = keras.Variable(1.0, trainable=False, dtype="float32")
    loss = tc.losses.TemperatureCrossEntropy(beta=beta)
    assert loss.beta is beta
    before = float(ops.convert_to_numpy(loss(labels, logits)))
    beta.assign(0.25)
    after = float(ops.convert_to_numpy(loss(labels, logits)))
    expected = float(ops.convert_to_numpy(
        keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, 0.25 * logits)))
    assert before != after
    np.testing.assert_allclose(after, expected, rtol=1e-6)


@pytest.mark.parametrize("loss_class", [tc.losses.TemperatureCrossEntropy,
                                        tc.losses.GradientDecayCrossEntropy])
@pytest.mark.parametrize("bad_beta", [0.0, -1.0, math.nan, math.inf, -math.inf, "1", True])
def test_bad_beta_is_rejected_with_its_value(loss_class, bad_beta):
    with pytest.raises(ValueError, match="beta"):
        loss_class(beta=bad_beta)


def test_bad_beta_variable_is_rejected():
    with pytest.raises(ValueError, match="beta"):
        tc.losses.TemperatureCrossEntropy(beta=keras.Variable(-2.0))
    with pytest.raises(ValueError, match="scalar"):
        tc.losses.TemperatureCrossEntropy(beta=keras.Variable(np.ones(3, "float32")))


def test_functional_core_rejects_bad_beta():
    logits, labels = random_problem()
    with pytest.raises(ValueError, match="nan"):
        tc.losses.gradient_decay_cross_entropy(labels, logits, beta=math.nan)


@pytest.mark.parametrize("loss_class", [tc.losses.TemperatureCrossEntropy,
                                        tc.losses.GradientDecayCrossEntropy])
def test_mismatched_label_shapes_are_rejected(loss_class):
    logits, labels = random_problem()
    with pytest.raises(ValueError, match=r"\(63,\)"):
        loss_class()(labels[:-1], logits)
    with pytest.raises(ValueError, match=r"\(64, 2\)"):
        loss_class()(np.stack([labels, labels], axis=1), logits)
    with pytest.raises(ValueError, match="categorical"):
        loss_class(label_mode="categorical")(labels, logits)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="label_mode"):
        tc.losses.TemperatureCrossEntropy(label_mode="onehot")
    with pytest.raises(ValueError, match="label_smoothing"):
        tc.losses.GradientDecayCrossEntropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        tc.losses.GradientDecayCrossEntropy(reduction="median")


def test_scored_probabilities_are_stated():
    assert tc.losses.TemperatureCrossEntropy().scored_probabilities == "softmax(beta*z)"
    assert tc.losses.GradientDecayCrossEntropy().scored_probabilities == "softmax(z)"


@pytest.mark.parametrize("loss_class", [tc.losses.TemperatureCrossEntropy,
                                        tc.losses.GradientDecayCrossEntropy])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_labels_outside_the_classes_are_an_error_or_nan_never_another_class(
        loss_class, label_smoothing):
    logits, labels = random_problem()
    loss = loss_class(beta=2.0, label_smoothing=label_smoothing, reduction=None)
    for bad in (NUM_CLASSES, -1):  # a negative id once counted as class C-1
        wrong = labels.copy()
        wrong[5] = bad
        with pytest.raises(ValueError, match=rf"\[0, {NUM_CLASSES - 1}\] for {NUM_CLASSES} "
                                             rf"classes; got {bad}\."):
            loss(wrong, logits)
    # Inside a compiled step nothing can raise: the example's loss is NaN, the others exact.
    model = keras.Sequential([keras.Input((NUM_CLASSES,)), keras.layers.Identity()])
    model.compile(loss=loss_class(beta=2.0, label_smoothing=label_smoothing), jit_compile=True)
    wrong = labels.copy()
    wrong[[5, 9]] = (NUM_CLASSES, -1)
    per_example = [model.evaluate(logits[i:i + 1], wrong[i:i + 1], verbose=0)
                   for i in (4, 5, 9)]
    expected = float(loss(labels[4:5], logits[4:5])[0])
    assert per_example[0] == pytest.approx(expected, rel=1e-5)
    assert math.isnan(per_example[1]) and math.isnan(per_example[2])


def test_the_loss_registry_names_each_loss_and_what_its_predictor_scores():
    import keras

    assert tc.losses.names() == ("temperature", "gradient_decay")
    assert tc.losses.get("temperature") is tc.losses.TemperatureCrossEntropy
    with pytest.raises(ValueError, match=r"'focal'; valid losses: temperature, gradient_decay"):
        tc.losses.get("focal")
    logits = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    labels = np.array([0, 1, 2, 3, 0, 1])
    for name in tc.losses.names():
        loss = tc.losses.get(name)(beta=0.5)
        # The flag says which softmax the predictor is: it agrees with the recorded description.
        expected = "softmax(beta*z)" if loss.scores_scaled_logits else "softmax(z)"
        assert loss.scored_probabilities == expected, name
        assert loss.summary and name in tc.losses.describe()
        revived = keras.losses.deserialize(keras.losses.serialize(loss))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(revived(labels, logits)),
                                   keras.ops.convert_to_numpy(loss(labels, logits)), rtol=1e-6)
