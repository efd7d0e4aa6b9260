"""The training order of an epoch: one permutation per (seed, epoch), the same on every backend
and input path (in-memory arrays, tf.data, the device stream), so a resumed run and a packed
copy see exactly the batches of their separate, uninterrupted run."""

import numpy as np

__all__ = ["epoch_order"]


def epoch_order(num_examples, seed, epoch):
    """The training order of epoch `epoch`: a permutation of `range(num_examples)` from (seed, epoch)."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(num_examples))
