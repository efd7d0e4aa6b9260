"""Choosing how a run is distributed: tf.distribute strategies, or keras.distribution on JAX.

| --strategy | TensorFlow backend | JAX backend |
| --- | --- | --- |
| auto | mirrored over >1 GPU, else TensorFlow's default strategy | DataParallel over >1 GPU or TPU device, else none |
| one_device | OneDeviceStrategy (first GPU, else CPU) | no distribution |
| mirrored | MirroredStrategy over the GPUs (over the logical CPUs when there is no GPU) | DataParallel |
| multi_worker | MultiWorkerMirroredStrategy from `TF_CONFIG` (see `multi_worker_placement`) | not supported (see MULTI_WORKER_JAX_UNSUPPORTED) |
| tpu | TPUStrategy (--tpu address) | DataParallel over the TPU cores |

The global batch is split across replicas; Keras (>= 3.8) scales the loss by 1/replicas itself.

`auto` leaves CPU devices alone on both backends: several CPU "devices" (TensorFlow's logical
CPUs, JAX's `--xla_force_host_platform_device_count`) share the same cores, so splitting the batch
over them gains nothing. On JAX it also avoids a fault of XLA's CPU runtime: a run that is
data-parallel over host devices deadlocks now and then in the train step's all-reduce (seen with
jaxlib 0.10.2 on 2 host devices: the runtime aborts after 40 s). `mirrored` still spans them.
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

    if strategy == "multi_worker":  # before anything initializes TensorFlow's runtime
        return multi_worker_placement(tf)
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

    if strategy == "multi_worker":
        raise ValueError(MULTI_WORKER_JAX_UNSUPPORTED)
    devices = jax.devices()
    on_cpu = all(device.platform == "cpu" for device in devices)
    if strategy == "one_device" or len(devices) == 1 or (strategy == "auto" and on_cpu):
        return Placement("one_device", 1)
    distribution = keras.distribution.DataParallel(devices=devices)
    return Placement(f"data_parallel[{strategy}]", len(devices),
                     is_chief=jax.process_index() == 0, jax_distribution=distribution)


MULTI_WORKER_JAX_UNSUPPORTED = (
    "--strategy=multi_worker needs the TensorFlow backend (KERAS_BACKEND=tensorflow): it is "
    "TensorFlow's MultiWorkerMirroredStrategy, configured by TF_CONFIG. On JAX use mirrored "
    "(DataParallel over this host's devices).")


def multi_worker_placement(tf):
    """MultiWorkerMirroredStrategy over the cluster in `TF_CONFIG`; the chief writes the files.

    Every worker runs the same command; the chief is the task of type "chief", or worker 0 when
    the cluster has none. Each worker reads its shard of the data (TensorFlow's auto-sharding).
    """
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = resolver.cluster_spec().as_dict()
    if not cluster:
        raise ValueError(
            "--strategy=multi_worker needs TF_CONFIG to describe the cluster, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}; TF_CONFIG is unset or empty.')
    from tc import compat

    compat.apply_multi_worker_fixes()
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    if "chief" in cluster:
        is_chief = resolver.task_type == "chief"
    else:
        is_chief = resolver.task_type == "worker" and resolver.task_id == 0
    return Placement("multi_worker", strategy.num_replicas_in_sync, is_chief=is_chief,
                     tf_strategy=strategy)


def place(strategy="auto", tpu=""):
    """The Placement for `--strategy` on the active Keras backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_placement(strategy, tpu)
    if backend == "jax":
        return _jax_placement(strategy)
    if strategy not in ("auto", "one_device"):
        raise ValueError(f"--strategy={strategy!r} needs the TensorFlow or JAX backend; the "
                         f"{backend} backend runs on one device.")
    return Placement("one_device", 1)
