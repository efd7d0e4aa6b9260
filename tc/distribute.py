"""Choosing how a run is distributed: tf.distribute strategies, or keras.distribution on JAX.

| --strategy | TensorFlow backend | JAX backend |
| --- | --- | --- |
| auto | mirrored over >1 GPU, else TensorFlow's default strategy | DataParallel over all devices (one device: none) |
| one_device | OneDeviceStrategy (first GPU, else CPU) | no distribution |
| mirrored | MirroredStrategy over the GPUs (over the logical CPUs when there is no GPU) | DataParallel |
| multi_worker | not supported yet (see MULTI_WORKER_UNSUPPORTED) | not supported yet |
| tpu | TPUStrategy (--tpu address) | DataParallel over the TPU cores |

The global batch is split across replicas; Keras (>= 3.8) scales the loss by 1/replicas itself.
"""

import contextlib
import dataclasses

import keras


@dataclasses.dataclass
class Placement:
    """Where a run executes: its scope, its replica count, and whether this process writes files."""

    name: str
    num_replicas: int
    is_chief: bool = True
    tf_strategy: object = None
    jax_distribution: object = None

    @contextlib.contextmanager
    def scope(self):
        """Around building and compiling: the TensorFlow strategy's scope, else training_scope."""
        if self.tf_strategy is not None:
            with self.tf_strategy.scope():
                yield
        else:
            with self.training_scope():
                yield

    @contextlib.contextmanager
    def training_scope(self):
        """Around `fit`: JAX shards data only inside its distribution's scope; a TensorFlow model
        remembers the strategy it was built under, and needs no scope."""
        if self.jax_distribution is not None:
            with self.jax_distribution.scope():
                yield
        else:
            yield

    def check_batch_size(self, batch_size):
        if batch_size % self.num_replicas:
            raise ValueError(
                f"--batch_size={batch_size} does not divide over the {self.num_replicas} replicas "
                f"of the {self.name} strategy; use a multiple of {self.num_replicas}.")


def _tensorflow_placement(strategy, tpu):
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if strategy == "auto":
        if len(gpus) <= 1:
            return Placement("default", 1)  # TensorFlow's default strategy: no wrapping at all
        strategy = "mirrored"
    if strategy == "one_device":
        device = gpus[0].name if gpus else "/cpu:0"
        return Placement("one_device", 1, tf_strategy=tf.distribute.OneDeviceStrategy(device))
    if strategy == "mirrored":
        if gpus:
            mirrored = tf.distribute.MirroredStrategy([d.name for d in gpus])
        else:
            # CPU replicas reduce through one device: CPU collectives gain nothing, and their
            # instance keys clash when a process creates a second strategy.
            mirrored = tf.distribute.MirroredStrategy(
                [d.name for d in tf.config.list_logical_devices("CPU")],
                cross_device_ops=tf.distribute.ReductionToOneDevice())
        return Placement("mirrored", mirrored.num_replicas_in_sync, tf_strategy=mirrored)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    tpu_strategy = tf.distribute.TPUStrategy(resolver)
    return Placement("tpu", tpu_strategy.num_replicas_in_sync, tf_strategy=tpu_strategy)


def _jax_placement(strategy):
    import jax

    devices = jax.devices()
    if strategy == "one_device" or len(devices) == 1:
        return Placement("one_device", 1)
    distribution = keras.distribution.DataParallel(devices=devices)
    return Placement(f"data_parallel[{strategy}]", len(devices),
                     is_chief=jax.process_index() == 0, jax_distribution=distribution)


MULTI_WORKER_UNSUPPORTED = (
    "--strategy=multi_worker is not supported yet: Keras 3's fit fails under TensorFlow's "
    "MultiWorkerMirroredStrategy (it all-reduces scalar logs along axis 0; "
    "keras-team/keras#20585), and tc's multi-process JAX path is unfinished. Use mirrored "
    "(one host, many GPUs) or tpu.")


def place(strategy="auto", tpu=""):
    """The Placement for `--strategy` on the active Keras backend."""
    if strategy == "multi_worker":
        raise ValueError(MULTI_WORKER_UNSUPPORTED)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_placement(strategy, tpu)
    if backend == "jax":
        return _jax_placement(strategy)
    if strategy not in ("auto", "one_device"):
        raise ValueError(f"--strategy={strategy!r} needs the TensorFlow or JAX backend; the "
                         f"{backend} backend runs on one device.")
    return Placement("one_device", 1)
