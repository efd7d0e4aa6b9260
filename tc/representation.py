"""Rank of learned representations (Masarczyk et al., "Unpacking softmax", arXiv 2506.01562).

Paper 3's rank deficit bias: softmax-CE training finds representations of rank far below
`C - 1`, and the rank falls as the temperature `T = 1 / beta` rises. Both measures work on a
feature matrix `F` of shape `(N, D)` (more axes are flattened into `D`), centered over the `N`
examples by default, with singular values `sigma_1 >= sigma_2 >= ...`:

    numerical rank  = #{i : sigma_i > rtol * sigma_1}
    effective rank  = exp(-sum_i q_i log q_i),  q_i = sigma_i / sum_j sigma_j

(Roy & Vetterli, 2007). The SVD runs in float64 numpy: these are analysis measures, computed
outside the train step, and identical on every backend.

Paper 3's tools around them: `layer_activations` (per-layer features on a fixed probe set),
`RankTracker` (a callback recording both ranks of chosen layers each epoch) and
`linear_probe_accuracy` (a logistic-regression probe on frozen features of another dataset).
"""

import weakref

import keras
import numpy as np
import threadpoolctl
from keras import ops

from tc.compat import StepQuietCallbackList

__all__ = ["activation_model", "background_rank_row", "effective_rank", "extractor_outputs",
           "layer_activations", "linear_probe_accuracy", "numerical_rank", "rank_row",
           "RankTracker", "singular_values"]


def _feature_matrix(features, center):
    matrix = np.asarray(ops.convert_to_numpy(features), dtype=np.float64)
    if matrix.ndim < 2:
        raise ValueError(
            f"Features must have shape (N, D) or (N, ...); got shape {matrix.shape}."
        )
    matrix = matrix.reshape(matrix.shape[0], -1)
    if not np.all(np.isfinite(matrix)):
        raise ValueError("Features contain NaN or infinite values; their rank is undefined.")
    if center:
        matrix = matrix - matrix.mean(axis=0, keepdims=True)
    return matrix


def singular_values(features, center=True):
    """The singular values of the (centered) `(N, D)` feature matrix, largest first."""
    return np.linalg.svd(_feature_matrix(features, center), compute_uv=False)


def numerical_rank(features, rtol=1e-3, center=True):
    """The number of singular values above `rtol * sigma_max` (0 for a constant matrix).

    Args:
        features: `(N, D)` or `(N, ...)` array or tensor of activations over N examples.
        rtol: the relative threshold `gamma` (paper 3 uses about 1e-3).
        center: subtract the mean over examples first.
    """
    _check_rtol(rtol)
    return _numerical_rank_of(singular_values(features, center), rtol)


def _check_rtol(rtol):
    if not 0.0 < rtol < 1.0:
        raise ValueError(f"`rtol` must be in (0, 1); got {rtol!r}.")


def _numerical_rank_of(sigma, rtol):
    if sigma.size == 0 or sigma[0] == 0.0:
        return 0
    return int(np.sum(sigma > rtol * sigma[0]))


def effective_rank(features, center=True):
    """`exp` of the entropy of the normalized singular values (0.0 for a constant matrix).

    It equals `r` when the matrix has `r` equal nonzero singular values, and lies between 1
    and the numerical rank otherwise.
    """
    return _effective_rank_of(singular_values(features, center))


def _effective_rank_of(sigma):
    total = sigma.sum()
    if total == 0.0:
        return 0.0
    q = sigma[sigma > 0] / total
    return float(np.exp(-np.sum(q * np.log(q))))


def activation_model(model, layer_names):
    """A model from `model`'s inputs to the outputs of `layer_names`, for feature extraction.

    Raises:
        ValueError: a name is not a layer of `model`; the message lists its layers.
    """
    available = [layer.name for layer in model.layers]
    missing = [name for name in layer_names if name not in available]
    if missing:
        raise ValueError(f"No layer(s) {missing} in model {model.name!r}; its layers: "
                         f"{', '.join(available)}.")
    return keras.Model(model.inputs, [model.get_layer(name).output for name in layer_names])


def layer_activations(model, layer_names, inputs, batch_size=256, extractor=None):
    """`{layer name: (N, ...) float numpy activations}` of `model` on the probe `inputs`.

    `extractor` is a model from `activation_model(model, layer_names)`, to reuse one across calls.
    """
    layer_names = list(layer_names)
    extractor = extractor or activation_model(model, layer_names)
    outputs = extractor_outputs(extractor, inputs, batch_size)
    return {name: np.asarray(output) for name, output in zip(layer_names, outputs)}


def extractor_outputs(extractor, inputs, batch_size):
    """`extractor`'s inference outputs on `inputs`, as a list with one array per output.

    On JAX, one compiled stateless call per batch: no `predict` bookkeeping at every epoch end,
    the model's variables are only read (`predict` reassigns them all from its program's
    outputs), and the arrays stay on the device until they are read, e.g. by the thread that
    computes ranks. Other backends, and inputs that are not one array, use `predict`.
    """
    if keras.backend.backend() != "jax" or not hasattr(inputs, "shape"):
        outputs = extractor.predict(inputs, batch_size=batch_size, verbose=0,
                                    callbacks=StepQuietCallbackList(model=extractor))
        return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    forward = _compiled_forward(extractor)
    trainable = [variable.value for variable in extractor.trainable_variables]
    non_trainable = [variable.value for variable in extractor.non_trainable_variables]
    batches = []
    for start in range(0, len(inputs), batch_size):
        outputs = forward(trainable, non_trainable, inputs[start:start + batch_size])
        batches.append(list(outputs) if isinstance(outputs, (list, tuple)) else [outputs])
    if len(batches) == 1:
        return batches[0]
    return [ops.concatenate(parts, axis=0) for parts in zip(*batches)]


_FORWARDS = weakref.WeakKeyDictionary()


def _compiled_forward(extractor):
    forward = _FORWARDS.get(extractor)
    if forward is None:
        import jax

        model = weakref.ref(extractor)  # the cache must not keep the extractor alive

        def call(trainable, non_trainable, inputs):
            return model().stateless_call(trainable, non_trainable, inputs, training=False)[0]

        forward = _FORWARDS[extractor] = jax.jit(call)
    return forward


def rank_row(activations, rtol=1e-3):
    """`{"rank/<layer>/numerical": int, "rank/<layer>/effective": float}` for each layer."""
    _check_rtol(rtol)
    row = {}
    for name, features in activations.items():
        sigma = singular_values(features)  # one SVD for both measures
        row[f"rank/{name}/numerical"] = _numerical_rank_of(sigma, rtol)
        row[f"rank/{name}/effective"] = _effective_rank_of(sigma)
    return row


def background_rank_row(activations, rtol=1e-3):
    """`rank_row` with the BLAS library on one thread, for a thread that runs beside training.

    The SVDs of the rank probe run on the commit thread while the training thread dispatches
    steps. With OpenBLAS's default of one thread per core, their threads took the cores from
    the training thread: on a 16-core host with an H100, steps waited 50-90 ms in each epoch of a
    CIFAR ResNet-18, about 10% of it. On one thread the same SVDs delayed no step.
    """
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        return rank_row(activations, rtol)


class RankTracker(keras.callbacks.Callback):
    """Records the numerical and effective rank of chosen layers at the end of every epoch.

    The activations are those of the fixed `probe_inputs`, so epochs are comparable. Each epoch
    adds `rank/<layer>/numerical` and `rank/<layer>/effective` to the epoch's logs (and so to
    `History` and any later callback) and appends the row to `self.history`.

    Args:
        layer_names: layers of the trained model to measure.
        probe_inputs: a fixed batch of inputs, e.g. 512 test examples.
        rtol: the numerical rank's threshold `gamma` (paper 3: about 1e-3).
        batch_size: prediction batch size.
    """

    def __init__(self, layer_names, probe_inputs, rtol=1e-3, batch_size=256):
        super().__init__()
        self.layer_names = tuple(layer_names)
        self.probe_inputs = probe_inputs
        self.rtol = rtol
        self.batch_size = batch_size
        self.history = []
        self._extractor = None

    def set_model(self, model):
        super().set_model(model)
        self._extractor = activation_model(model, self.layer_names) if self.layer_names else None

    def _activations(self):
        outputs = extractor_outputs(self._extractor, self.probe_inputs, self.batch_size)
        return dict(zip(self.layer_names, outputs))  # read from the device when ranked

    def measure(self):
        """The rank row of the model as it is now."""
        return rank_row(self._activations(), self.rtol) if self._extractor is not None else {}

    def measure_later(self):
        """`measure`, split in two: the activations are taken now, and the returned callable
        computes their ranks (the SVDs) when called on another thread, with
        `background_rank_row`; None when no layer is tracked."""
        if self._extractor is None:
            return None
        activations = self._activations()
        return lambda: background_rank_row(activations, self.rtol)

    def on_epoch_end(self, epoch, logs=None):
        row = self.measure()
        self.history.append({"epoch": epoch + 1, **row})
        if logs is not None:
            logs.update(row)


def linear_probe_accuracy(train_features, train_labels, test_features, test_labels,
                          regularization=1.0, max_iter=1000):
    """Test accuracy of a multinomial logistic-regression probe fit on frozen features.

    Paper 3's transfer measure: features of a trained network on another dataset, standardized
    with the training features' mean and deviation, then an L2-regularized (inverse strength
    `regularization`, scikit-learn's `C`) logistic regression fit by L-BFGS.
    """
    from sklearn.linear_model import LogisticRegression

    classes = np.unique(np.asarray(train_labels))
    if len(classes) < 2:
        raise ValueError(f"A linear probe needs at least 2 classes among its "
                         f"{len(train_labels)} training examples; got {classes.tolist()}.")
    train = _feature_matrix(train_features, center=False)
    test = _feature_matrix(test_features, center=False)
    mean, scale = train.mean(axis=0), train.std(axis=0)
    scale[scale == 0] = 1.0
    probe = LogisticRegression(C=regularization, max_iter=max_iter)
    probe.fit((train - mean) / scale, np.asarray(train_labels))
    return float(np.mean(probe.predict((test - mean) / scale) == np.asarray(test_labels)))
