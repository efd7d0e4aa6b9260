"""The papers' theory, executable: each function computes one prediction on a small model.

Everything here is float64 numpy with hand-written gradients, so the checks are exact to
rounding and the same on every Keras backend. The models:

- a 2-layer net `z = W^T tanh(V^T x)` with loss `mean_n CE(softmax(beta z_n), y_n)`;
- a linear model `z = W^T x` with the same loss.

Paper 1 (Agarwala et al., "Temperature check", arXiv 2010.07344):
1. `reparametrization_gap`: SGD on `softmax(beta W h)` at learning rate `eta` equals SGD on
   `softmax(W' h)` from `W' = beta W` with readout learning rate `eta beta^2` (other layers
   unchanged), step for step.
2. `max_stable_learning_rate`: `2 / lambda_max` of the loss Hessian at initialization, by power
   iteration on Hessian-vector products. At small `||beta z0||`, `lambda_max ~ beta^2` (for a
   wide enough net; see `hessian_top_eigenvalue`), so the largest stable SGD step scales as
   `beta^-2`.
3. `steps_to_accuracy`: full-batch gradient descent on the linear model from an initialization
   with mean `||beta z0||` set; the steps to a training accuracy depend only on `eta beta^2` and
   `||beta z0||`, flat for `||beta z0|| <~ 1` and growing above.

Paper 2 (Zhang & Xie, arXiv 2210.17145):
4. `gradient_decay_g`: the target-logit gradient magnitude `g(p) = (1 - p) / (1 + (beta - 1) p)`
   of `log(beta + sum_{i != c} e^{z_i - z_c})`, with `g''(p) = 2 beta (beta - 1) /
   (1 + (beta - 1) p)^3`: concave for beta < 1, linear at 1, convex for beta > 1.

Paper 3 (Masarczyk et al., "Unpacking softmax", arXiv 2506.01562):
5. `softmax_spectrum_ratio`: `sigma_2 / sigma_1` of the `(N, C)` matrix `softmax(Z / T)`; it
   falls like `1 / T` as `T` grows, because `softmax(Z / T) -> 1 1^T / C` (rank 1) with a
   correction of order `1 / T`.
"""

import numpy as np
import threadpoolctl

__all__ = ["gaussian_mixture", "gradient_decay_g", "gradient_decay_g_second_derivative",
           "hessian_top_eigenvalue", "log_log_slope", "max_stable_learning_rate",
           "mean_logit_norm", "reparametrization_gap", "softmax_spectrum_ratio",
           "steps_to_accuracy"]

# --- shared pieces -------------------------------------------------------------------------


def _softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def gaussian_mixture(examples=64, dimension=8, num_classes=4, separation=3.0, seed=0):
    """`(x, one-hot y)`: `x = separation * u_y + N(0, I)` with random unit class means `u`."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((num_classes, dimension))
    means *= separation / np.linalg.norm(means, axis=1, keepdims=True)
    labels = rng.integers(0, num_classes, examples)
    inputs = means[labels] + rng.standard_normal((examples, dimension))
    return inputs, np.eye(num_classes)[labels]


def _two_layer_forward(hidden_kernel, readout, x, targets, beta):
    """`(h, p, dL/da)` of `L = mean CE(softmax(beta a))`, `a = tanh(x V) W`, `h = tanh(x V)`."""
    hidden = np.tanh(x @ hidden_kernel)
    probabilities = _softmax(beta * (hidden @ readout))
    return hidden, probabilities, beta * (probabilities - targets) / len(x)


def _two_layer_loss_and_gradients(hidden_kernel, readout, x, targets, beta):
    """Loss and `(dL/dV, dL/dW)` of `mean CE(softmax(beta W^T tanh(V^T x)))`."""
    hidden, probabilities, logit_gradient = _two_layer_forward(hidden_kernel, readout, x,
                                                               targets, beta)
    loss = -np.mean(np.sum(targets * np.log(probabilities + 1e-300), axis=1))
    readout_gradient = hidden.T @ logit_gradient
    hidden_gradient = x.T @ ((logit_gradient @ readout.T) * (1.0 - hidden ** 2))
    return loss, hidden_gradient, readout_gradient


def _two_layer_init(dimension, width, num_classes, seed):
    rng = np.random.default_rng(seed)
    hidden_kernel = rng.standard_normal((dimension, width)) / np.sqrt(dimension)
    readout = rng.standard_normal((width, num_classes)) / np.sqrt(width)
    return hidden_kernel, readout


def mean_logit_norm(logits):
    """The mean over examples of `||z||_2`, the Euclidean norm of each row of `logits` (N, K)."""
    return float(np.mean(np.linalg.norm(logits, axis=1)))


# --- 1. reparametrization identity -----------------------------------------------------------


def reparametrization_gap(beta, steps=100, learning_rate=0.1, momentum=0.0, width=16, seed=0):
    """Largest relative gap between the two parametrizations over `steps` SGD steps.

    Run A trains `(V, W)` on `softmax(beta W^T h)` at `learning_rate` (heavy-ball `momentum`).
    Run B trains `(V', W')` on `softmax(W'^T h)` from `V' = V`, `W' = beta W`, with
    `learning_rate` for `V'` and `learning_rate * beta^2` for `W'`. Returns
    `max_t max(|beta W_t - W'_t| / |W'_t|, |V_t - V'_t| / |V'_t|)` (Frobenius norms).
    """
    x, targets = gaussian_mixture(seed=seed)
    hidden_a, readout_a = _two_layer_init(x.shape[1], width, targets.shape[1], seed + 1)
    hidden_b, readout_b = hidden_a.copy(), beta * readout_a
    velocities = [np.zeros_like(w) for w in (hidden_a, readout_a, hidden_b, readout_b)]
    rates = (learning_rate, learning_rate, learning_rate, learning_rate * beta ** 2)
    gap = 0.0
    for _ in range(steps):
        _, grad_hidden_a, grad_readout_a = _two_layer_loss_and_gradients(
            hidden_a, readout_a, x, targets, beta)
        _, grad_hidden_b, grad_readout_b = _two_layer_loss_and_gradients(
            hidden_b, readout_b, x, targets, 1.0)
        weights = [hidden_a, readout_a, hidden_b, readout_b]
        gradients = (grad_hidden_a, grad_readout_a, grad_hidden_b, grad_readout_b)
        for i, (gradient, rate) in enumerate(zip(gradients, rates)):
            velocities[i] = momentum * velocities[i] - rate * gradient
            weights[i] = weights[i] + velocities[i]
        hidden_a, readout_a, hidden_b, readout_b = weights
        gap = max(gap,
                  np.linalg.norm(beta * readout_a - readout_b) / np.linalg.norm(readout_b),
                  np.linalg.norm(hidden_a - hidden_b) / np.linalg.norm(hidden_b))
    return float(gap)


# --- 2. curvature ------------------------------------------------------------------------------


def _initial_point(beta, logit_norm, x, num_classes, width, seed):
    """The 2-layer init with the readout rescaled so that mean ||beta z0|| = logit_norm."""
    hidden_kernel, readout = _two_layer_init(x.shape[1], width, num_classes, seed)
    norm = mean_logit_norm(beta * (np.tanh(x @ hidden_kernel) @ readout))
    return hidden_kernel, readout * (logit_norm / norm)


def _two_layer_hessian_vector_product(hidden_kernel, readout, x, targets, beta):
    """`v -> H v` for `_two_layer_loss_and_gradients`'s loss at `(V, W)`, exactly: Pearlmutter's
    R-operator (the directional derivative of the gradient along `v = (dV, dW)`) pushed through
    `a = tanh(x V) W`, `p = softmax(beta a)` and the backward pass. The forward pass at the
    point is computed once, for every `v`."""
    hidden, probabilities, logit_gradient = _two_layer_forward(hidden_kernel, readout, x,
                                                               targets, beta)
    slope = 1.0 - hidden ** 2
    feature_gradient = logit_gradient @ readout.T

    def product(direction):
        hidden_direction, readout_direction = direction
        hidden_change = slope * (x @ hidden_direction)
        logit_change = beta * (hidden_change @ readout + hidden @ readout_direction)
        probability_change = probabilities * (
            logit_change - np.sum(probabilities * logit_change, axis=1, keepdims=True))
        logit_gradient_change = beta * probability_change / len(x)
        readout_product = hidden_change.T @ logit_gradient + hidden.T @ logit_gradient_change
        feature_gradient_change = (logit_gradient_change @ readout.T
                                   + logit_gradient @ readout_direction.T)
        hidden_product = x.T @ (feature_gradient_change * slope
                                - 2.0 * feature_gradient * hidden * hidden_change)
        return hidden_product, readout_product

    return product


def hessian_top_eigenvalue(beta, logit_norm=1e-3, width=1024, iterations=100, seed=0):
    """The largest-magnitude eigenvalue of the loss Hessian at an init with mean ||beta z0||.

    The readout block of the Hessian is `beta^2` times a Gram matrix of the `width` hidden
    features, so it grows with the width; the residual term `(p - y) d^2(beta z)` couples the
    layers with a block of order `beta` that does not. The `beta^2` law is the wide-network
    regime: at width 1024 it holds over beta in [1e-2, 1e1], while at width 16 the coupling
    dominates below beta ~ 0.3 and `lambda_max` falls only like `beta` there.

    Power iteration on exact Hessian-vector products (`_two_layer_hessian_vector_product`,
    float64).
    """
    x, targets = gaussian_mixture(seed=seed)
    hidden_kernel, readout = _initial_point(beta, logit_norm, x, targets.shape[1], width,
                                            seed + 1)
    hessian_times = _two_layer_hessian_vector_product(hidden_kernel, readout, x, targets, beta)
    split = hidden_kernel.size
    vector = np.random.default_rng(seed + 2).standard_normal(split + readout.size)
    vector /= np.linalg.norm(vector)
    eigenvalue = 0.0
    # One BLAS thread: these products are too small to share (threads made them 2-5x slower).
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        for _ in range(iterations):
            products = hessian_times((vector[:split].reshape(hidden_kernel.shape),
                                      vector[split:].reshape(readout.shape)))
            product = np.concatenate([products[0].ravel(), products[1].ravel()])
            eigenvalue = float(vector @ product)
            vector = product / np.linalg.norm(product)
    return eigenvalue


def max_stable_learning_rate(beta, logit_norm=1e-3, **options):
    """`2 / lambda_max`: the largest SGD step that is stable near the initialization."""
    return 2.0 / abs(hessian_top_eigenvalue(beta, logit_norm, **options))


def log_log_slope(x, y):
    """The least-squares slope of `log y` against `log x`."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# --- 3. time to learn --------------------------------------------------------------------------


def steps_to_accuracy(logit_norm, learning_rate=0.5, beta=1.0, target_accuracy=0.9,
                      max_steps=20000, seed=0):
    """Full-batch GD steps until the linear model `softmax(beta W^T x)` reaches the accuracy.

    `W0` is a random Gaussian matrix scaled so that mean `||beta W0^T x|| = logit_norm`. The
    inputs are a 4-class Gaussian mixture in 16 dimensions, each dimension (signal and noise)
    scaled by `geomspace(1, 0.1, 16)`: an ill-conditioned input, like real data, so learning from
    a small initialization takes tens of steps. (With isotropic inputs the first step already
    points `W` at the class means, and accuracy, being scale-free, is reached at once.) Returns
    `max_steps + 1` if the target is not reached.
    """
    x, targets = gaussian_mixture(examples=256, dimension=16, num_classes=4, seed=seed)
    x = x * np.geomspace(1.0, 0.1, x.shape[1])
    labels = targets.argmax(axis=1)
    rng = np.random.default_rng(seed + 1)
    kernel = rng.standard_normal((x.shape[1], targets.shape[1]))
    kernel *= logit_norm / mean_logit_norm(beta * (x @ kernel))
    for step in range(max_steps + 1):
        logits = beta * (x @ kernel)
        if np.mean(logits.argmax(axis=1) == labels) >= target_accuracy:
            return step
        kernel -= learning_rate * x.T @ (beta * (_softmax(logits) - targets) / len(x))
    return max_steps + 1


# --- 4. paper 2's gradient decay ---------------------------------------------------------------


def gradient_decay_g(p, beta):
    """`g(p) = (1 - p) / (1 + (beta - 1) p)`, the magnitude of dJ/dz_c at target probability p."""
    p = np.asarray(p, dtype=np.float64)
    return (1.0 - p) / (1.0 + (beta - 1.0) * p)


def gradient_decay_g_second_derivative(p, beta):
    """`g''(p) = 2 beta (beta - 1) / (1 + (beta - 1) p)^3`: its sign is that of `beta - 1`."""
    p = np.asarray(p, dtype=np.float64)
    return 2.0 * beta * (beta - 1.0) / (1.0 + (beta - 1.0) * p) ** 3


# --- 5. paper 3's spectrum collapse ------------------------------------------------------------


def softmax_spectrum_ratio(logits, temperature):
    """`sigma_2 / sigma_1` of the probability matrix `softmax(logits / temperature)`."""
    probabilities = _softmax(np.asarray(logits, dtype=np.float64) / temperature)
    sigma = np.linalg.svd(probabilities, compute_uv=False)
    return float(sigma[1] / sigma[0])
