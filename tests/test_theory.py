"""tc.theory: the five predictions of the papers, each checked on its small model."""

import numpy as np
import pytest
from keras import ops

from tc import losses, theory
from tests.support import softmax, value_and_gradient


@pytest.mark.parametrize("beta", [1e-2, 0.1, 10.0])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_reparametrization_identity_holds_step_for_step(beta, momentum):
    # Paper 1: softmax(beta W h) at rate eta == softmax(W' h), W' = beta W, readout rate eta beta^2.
    assert theory.reparametrization_gap(beta, steps=100, momentum=momentum) < 1e-10


def test_the_identity_fails_without_the_readout_rate_scaling():
    # The same two runs with an unscaled readout rate (beta^0): the check can fail.
    gap = theory.reparametrization_gap(1.0, steps=100)
    assert gap < 1e-12  # beta = 1: trivially the same run
    x, targets = theory.gaussian_mixture()
    hidden, readout = theory._two_layer_init(x.shape[1], 16, targets.shape[1], 1)
    beta, rate = 0.1, 0.1
    a = [hidden.copy(), readout.copy()]
    b = [hidden.copy(), beta * readout]
    for _ in range(20):
        _, gh, gr = theory._two_layer_loss_and_gradients(*a, x, targets, beta)
        a = [a[0] - rate * gh, a[1] - rate * gr]
        _, gh, gr = theory._two_layer_loss_and_gradients(*b, x, targets, 1.0)
        b = [b[0] - rate * gh, b[1] - rate * gr]  # readout rate not scaled by beta^2
    assert np.linalg.norm(beta * a[1] - b[1]) / np.linalg.norm(b[1]) > 1e-3


def test_largest_stable_learning_rate_scales_as_inverse_beta_squared():
    betas = np.geomspace(1e-2, 10.0, 7)
    rates = [theory.max_stable_learning_rate(beta, logit_norm=1e-3) for beta in betas]
    assert theory.log_log_slope(betas, rates) == pytest.approx(-2.0, abs=0.2)


def test_hessian_vector_product_is_the_central_difference_of_the_gradient():
    x, targets = theory.gaussian_mixture()
    rng = np.random.default_rng(3)
    for beta in (0.1, 3.0):
        hidden, readout = theory._two_layer_init(x.shape[1], 16, targets.shape[1], 1)
        readout = readout * 5.0  # away from p = uniform, where the coupling terms vanish
        direction = (rng.standard_normal(hidden.shape), rng.standard_normal(readout.shape))
        step = 1e-5

        def gradient(sign):
            _, grad_hidden, grad_readout = theory._two_layer_loss_and_gradients(
                hidden + sign * step * direction[0], readout + sign * step * direction[1], x,
                targets, beta)
            return grad_hidden, grad_readout

        exact = theory._two_layer_hessian_vector_product(hidden, readout, x, targets,
                                                          beta)(direction)
        for product, plus, minus in zip(exact, gradient(1.0), gradient(-1.0)):
            np.testing.assert_allclose(product, (plus - minus) / (2 * step), rtol=1e-5,
                                       atol=1e-9 * np.abs(product).max())


def test_hessian_power_iteration_matches_the_exact_linear_model_curvature():
    # An independent check of the power iteration: a huge-width net is not needed when the
    # eigenvalue is known. For beta = 1 the readout block's top eigenvalue at p = uniform is
    # lambda_max(E[h h^T]) * lambda_max(diag(p) - p p^T) = lambda_max(E[h h^T]) / C.
    x, targets = theory.gaussian_mixture()
    hidden, readout = theory._initial_point(1.0, 1e-6, x, targets.shape[1], 1024, 1)
    features = np.tanh(x @ hidden)
    gram_top = np.linalg.eigvalsh(features.T @ features / len(x))[-1]
    measured = theory.hessian_top_eigenvalue(1.0, logit_norm=1e-6)
    assert measured == pytest.approx(gram_top / targets.shape[1], rel=1e-2)


def test_steps_to_accuracy_are_flat_below_unit_logit_norm_and_grow_above():
    def mean_steps(norm):
        return np.mean([theory.steps_to_accuracy(norm, seed=seed) for seed in range(3)])

    small = [mean_steps(norm) for norm in (1e-2, 1e-1, 1.0)]
    assert max(small) / min(small) < 1.25  # flat
    large = {norm: mean_steps(norm) for norm in (10.0, 100.0)}
    assert large[10.0] > 2 * max(small)
    # roughly linear growth above 1: the log-log slope from 10 to 100 is near 1
    assert theory.log_log_slope([10.0, 100.0], [large[10.0], large[100.0]]) == pytest.approx(
        1.0, abs=0.25)


@pytest.mark.parametrize("norm", [0.1, 10.0])
def test_time_to_learn_depends_only_on_eta_beta_squared_and_the_logit_norm(norm):
    reference = theory.steps_to_accuracy(norm, learning_rate=0.5, beta=1.0)
    assert theory.steps_to_accuracy(norm, learning_rate=50.0, beta=0.1) == reference
    assert theory.steps_to_accuracy(norm, learning_rate=0.005, beta=10.0) == reference


@pytest.mark.parametrize("beta", [0.05, 0.5, 1.0, 2.0, 20.0])
def test_gradient_decay_g_matches_autodiff_of_the_loss(beta):
    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal((64, 5))).astype("float32")
    labels = rng.integers(0, 5, 64).astype("int32")
    _, gradient = value_and_gradient(
        lambda z: ops.sum(losses.gradient_decay_cross_entropy(labels, z, beta=beta)), logits)
    target_gradient = gradient[np.arange(64), labels]
    p = softmax(logits.astype(np.float64))[np.arange(64), labels]
    np.testing.assert_allclose(-target_gradient, theory.gradient_decay_g(p, beta),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("beta, sign", [(0.1, -1), (0.5, -1), (1.0, 0), (2.0, 1), (10.0, 1)])
def test_gradient_decay_g_is_concave_below_one_and_convex_above(beta, sign):
    p = np.linspace(0.01, 0.99, 99)
    second = theory.gradient_decay_g_second_derivative(p, beta)
    assert np.all(np.sign(second) == sign)
    # the closed form agrees with a central difference of g
    h = 1e-4
    numeric = (theory.gradient_decay_g(p + h, beta) - 2 * theory.gradient_decay_g(p, beta)
               + theory.gradient_decay_g(p - h, beta)) / h ** 2
    np.testing.assert_allclose(second, numeric, rtol=1e-4, atol=1e-5)


def test_softmax_spectrum_ratio_falls_like_inverse_temperature():
    rng = np.random.default_rng(0)
    logits = 3.0 * rng.standard_normal((200, 10))
    temperatures = np.geomspace(10.0, 1000.0, 5)
    ratios = [theory.softmax_spectrum_ratio(logits, t) for t in temperatures]
    assert np.all(np.diff(ratios) < 0)
    assert theory.log_log_slope(temperatures, ratios) == pytest.approx(-1.0, abs=0.05)
    # at T = 1 the probability matrix has full rank: the collapse is the temperature's doing
    assert theory.softmax_spectrum_ratio(logits, 1.0) > 0.2
