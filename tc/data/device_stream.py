"""Training batches of an in-memory dataset, gathered and augmented on the accelerator.

On the JAX and PyTorch backends `tc.train` keeps the raw training split (uint8 images, token ids
or features) on the device once, and makes every batch there:

    x = augment(take(x_raw, order[step * B:(step + 1) * B])), normalized as `arrays()` does

The host sends nothing per step: at each epoch's start it sends the epoch's whole plan, every
step's `B` indices and augmentation draws, and each step's compiled call picks its row of the
plan by a step number already on the device. (A step bound by the host, as a ResNet-18 at batch
128 on a GPU is, would otherwise wait on a few transfers and a numpy draw every step.) The
order is `base.epoch_order(n, seed, epoch)`, the same as the TensorFlow pipeline's, so a
resumed run sees the batches an uninterrupted run would have seen. Under a distribution that
spans several processes (multi-process JAX), each process makes only its own rows of the
global batch, on its own devices, and Keras assembles the global batch from the processes'
shares. Augmentation and
normalization are `tc.data.preprocessing`'s, with the random numbers of `(seed, epoch, step)`
that the `tf.data` pipeline uses too.

Everything is `keras.ops`: no TensorFlow is imported.
"""

import functools

import keras
import numpy as np
from keras import ops

from tc.data import base, preprocessing

__all__ = ["DeviceStream", "make_batch", "make_planned_batch", "on_device", "process_rows"]


def on_device(arrays):
    """`(x, y)` numpy arrays as backend tensors: on the default device or, under a Keras JAX
    distribution, copied to each of its devices (see `DeviceStream`)."""
    return tuple(_to_devices(array) for array in arrays)


def _jax_distribution():
    if keras.backend.backend() != "jax":
        return None
    return keras.distribution.distribution()


def _to_devices(array):
    distribution = _jax_distribution()
    if distribution is None:
        return ops.convert_to_tensor(array)
    import jax

    replicated = jax.sharding.NamedSharding(distribution.device_mesh.backend_mesh,
                                            jax.sharding.PartitionSpec())
    return jax.device_put(array, replicated)


def _batch_sharding(distribution, shape):
    return distribution.get_data_layout(tuple(shape)).backend_layout


def process_rows(distribution, batch_size):
    """The rows of a global batch of `batch_size` that this process feeds under a Keras JAX
    `distribution`, as a slice: all of them unless the distribution spans several processes."""
    sharding = _batch_sharding(distribution, (batch_size,))
    if sharding.is_fully_addressable:
        return slice(0, batch_size)
    blocks = sorted({(index[0].start or 0, index[0].stop or batch_size) for index in
                     sharding.addressable_devices_indices_map((batch_size,)).values()})
    rows = slice(blocks[0][0], blocks[-1][1])
    if sum(stop - start for start, stop in blocks) != rows.stop - rows.start:
        raise ValueError(f"this process's devices hold the rows {blocks} of the batch: not one "
                         "contiguous block, which a process's share must be.")
    return rows


def _local_shardings(distribution):
    """`(replicated, batch-sharded)` JAX shardings over this process's devices of the mesh."""
    import jax

    local = [device for device in distribution.device_mesh.backend_mesh.devices.flat
             if device.process_index == jax.process_index()]
    mesh = jax.sharding.Mesh(np.array(local), (distribution.batch_dim_name,))
    return (jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()),
            jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(
                distribution.batch_dim_name)))


def make_batch(x_all, y_all, index, offsets, flips, spec):
    """The examples at `index` of the raw split, augmented with `(offsets, flips)` (see
    `tc.data.preprocessing.augmentation_draws`) and normalized."""
    x = preprocessing.training_batch(ops.take(x_all, index, axis=0), offsets, flips, spec,
                                     preprocessing.keras_ops())
    return x, ops.take(y_all, index, axis=0)


def make_planned_batch(x_all, y_all, plan, step, spec):
    """Step `step`'s batch of an epoch's `plan`, `(index (S, B), offsets (S, B, 2), flips (S, B))`
    (see `DeviceStream.epoch_plan`): `make_batch` of the plan's row `step`."""
    index, offsets, flips = (ops.take(part, step, axis=0) for part in plan)
    return make_batch(x_all, y_all, index, offsets, flips, spec)


def _compiled(function, spec, batch_shardings=None):
    """`function` (`make_batch` or `make_planned_batch`) for `spec` as one compiled call on JAX
    (the host then dispatches one program per step, not a dozen ops), and eager elsewhere.
    `batch_shardings`, `(x, y)` JAX shardings, lay the batch out as the distribution's data
    layout."""
    make = functools.partial(function, spec=spec)
    if keras.backend.backend() != "jax":
        return make
    import jax

    return jax.jit(make, out_shardings=batch_shardings)


class DeviceStream:
    """The training stream of an `ArrayDataset`, from epoch `first_epoch` to `last_epoch - 1`.

    Iterating yields `(x, y)` backend tensors of `batch_size` examples (full batches only),
    epoch after epoch; pass it to `fit` with `steps_per_epoch = dataset.steps_per_epoch(B)`.
    `labels_per_output > 1` repeats `y` in a tuple, for a model with that many outputs.

    Made under a Keras JAX distribution (`keras.distribution.DataParallel`), the raw split is
    copied to each of its devices and each device makes its own share of the batch, already laid
    out as the distribution wants it, instead of one device making the whole batch and sending
    the others their shares. When the distribution spans several processes, each process yields
    its rows of the global batch (`process_rows`), made on its own devices: the per-process
    batch that Keras expects under multi-process JAX.
    """

    def __init__(self, dataset, batch_size, seed, first_epoch, last_epoch, labels_per_output=1):
        self.spec = dataset.spec
        raw_x, raw_y = dataset.raw_arrays("train")
        self.num_examples = len(raw_y)
        self.batch_size = batch_size
        self.seed = int(seed)
        self.epochs = range(first_epoch, last_epoch)
        self.labels_per_output = labels_per_output
        self.steps_per_epoch = dataset.steps_per_epoch(batch_size)
        distribution = _jax_distribution()
        self.rows = slice(0, batch_size)
        shardings = None
        if distribution is not None:
            self.rows = process_rows(distribution, batch_size)
        if self.rows.stop - self.rows.start < batch_size:
            import jax

            # Keras would otherwise refuse a stream that is not a tf.data.Dataset it can shard.
            distribution.auto_shard_dataset = False
            replicated, batch_sharding = _local_shardings(distribution)
            self._place = functools.partial(jax.device_put, device=replicated)
            shardings = (batch_sharding, batch_sharding)
        else:
            self._place = _to_devices
            if distribution is not None:
                shardings = (_batch_sharding(distribution, (batch_size, *self.spec.input_shape)),
                             _batch_sharding(distribution, (batch_size,)))
        self.x, self.y = self._place(raw_x), self._place(raw_y)
        self._make_batch = _compiled(make_batch, self.spec, shardings)
        self._make_planned_batch = _compiled(make_planned_batch, self.spec, shardings)
        self._steps = None  # the step numbers on the device, made at the first epoch

    def draws(self, epoch, step):
        """The augmentation's random numbers of a step: `(offsets, flips)` of this process's
        rows of the batch."""
        offsets, flips = preprocessing.augmentation_draws(self.batch_size, self.seed, epoch, step,
                                                          self.spec)
        return offsets[self.rows], flips[self.rows]

    def epoch_plan(self, epoch):
        """Every step of `epoch` at once, on the host: `(index, offsets, flips)`, `(S, b)` int32
        positions in the raw split, `(S, b, 2)` and `(S, b)` draws, for the `S` full batches and
        this process's `b` rows of each."""
        steps, batch = self.steps_per_epoch, self.batch_size
        order = base.epoch_order(self.num_examples, self.seed, epoch)[:steps * batch]
        index = order.reshape(steps, batch)[:, self.rows].astype(np.int32)
        rows = index.shape[1]
        if preprocessing.augments(self.spec):
            draws = [self.draws(epoch, step) for step in range(steps)]
            offsets = np.stack([offset for offset, _ in draws])
            flips = np.stack([flip for _, flip in draws])
        else:  # not read: the batch is not augmented
            offsets, flips = np.zeros((steps, rows, 2), np.int32), np.zeros((steps, rows), bool)
        return index, offsets, flips

    def batch(self, epoch, step, index):
        """The batch of `index` (positions in the raw split), augmented with (epoch, step); this
        process's rows of it."""
        index = ops.convert_to_tensor(index[self.rows].astype(np.int32))
        x, y = self._make_batch(self.x, self.y, index, *self.draws(epoch, step))
        return self._labelled(x, y)

    def _labelled(self, x, y):
        if self.labels_per_output > 1:
            y = (y,) * self.labels_per_output
        return x, y

    def __iter__(self):
        if self._steps is None:
            self._steps = [self._place(np.int32(step)) for step in range(self.steps_per_epoch)]
        for epoch in self.epochs:
            plan = tuple(self._place(part) for part in self.epoch_plan(epoch))
            for step in self._steps:
                yield self._labelled(*self._make_planned_batch(self.x, self.y, plan, step))
