"""A run's checkpoint: the model's weights and its optimizer's state, as arrays in one `.npz`.

`snapshot(model)` copies every variable to host memory in a fixed order (`model_0000`, ... for
`model.weights`, then `optimizer_0000`, ... for `model.optimizer.variables`); `restore` assigns
them back to a model built the same way. Taking the snapshot is the only part on the training
thread: `tc.run_dir.RunDirectory.commit_epoch` writes it in the background while the next epoch
trains. Checkpoints of earlier tc versions (`.weights.h5`) are restored with Keras's
`load_weights`.
"""

import numpy as np
from keras import ops


def _variables(model):
    groups = [("model", model.weights)]
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        groups.append(("optimizer", optimizer.variables))
    return [(f"{group}_{index:04d}", variable)
            for group, variables in groups for index, variable in enumerate(variables)]


def snapshot(model):
    """`{key: numpy array}` of every model and optimizer variable."""
    return {key: np.array(ops.convert_to_numpy(variable)) for key, variable in _variables(model)}


def is_finite(arrays):
    """True when no floating-point array of a snapshot holds a NaN or an infinity."""
    return all(np.all(np.isfinite(array)) for array in arrays.values()
               if np.issubdtype(array.dtype, np.floating))


def restore(model, path):
    """Assigns the checkpoint at `path` to `model` (build its optimizer first to restore it).

    Raises:
        ValueError: the checkpoint was written by a model of another architecture, naming the
            first variable that does not fit.
    """
    if path.endswith(".h5"):
        model.load_weights(path)
        return
    with np.load(path) as stored:
        variables = _variables(model)
        if len(stored.files) != len(variables):
            raise ValueError(f"{path} holds {len(stored.files)} arrays; this model and its "
                             f"optimizer have {len(variables)} variables.")
        for key, variable in variables:
            value = stored[key] if key in stored.files else None
            if value is None or tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{path}: {key} ({variable.path}, shape "
                                 f"{tuple(variable.shape)}) does not match the checkpoint.")
            variable.assign(value)
