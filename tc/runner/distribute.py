"""Choosing how a run is distributed: tf.distribute strategies, or keras.distribution on JAX.

| --strategy | TensorFlow backend | JAX backend |
| --- | --- | --- |
| auto | mirrored over >1 GPU, else TensorFlow's default strategy | DataParallel over >1 GPU or TPU device, else none |
| one_device | OneDeviceStrategy (first GPU, else CPU) | no distribution |
| mirrored | MirroredStrategy over the GPUs (over the logical CPUs when there is no GPU) | DataParallel |
| multi_worker | MultiWorkerMirroredStrategy from `TF_CONFIG` (see `multi_worker_placement`) | DataParallel over every process's devices (see `multi_process_placement`) |
| tpu | TPUStrategy (--tpu address) | DataParallel over the TPU cores |

The global batch is split across replicas; Keras (>= 3.8) scales the loss by 1/replicas itself.

`auto` leaves CPU devices alone on both backends: several CPU "devices" (TensorFlow's logical
CPUs, JAX's `--xla_force_host_platform_device_count`) share the same cores, so splitting the batch
over them gains nothing. On JAX it also avoids a fault of XLA's CPU runtime: a device's
all-reduce waits on a thread of XLA's CPU thread pool, one thread per core unless `NPROC` sets
it, and when the pool is that small the other device's share of the step finds no free thread:
the run deadlocks, and the runtime aborts it after 40 s. Measured with jaxlib 0.10.2 on 2 host
devices of a 2-core machine, a data-parallel MLP fit of 200 steps a round: a pool of 2 threads
aborted in each of 5 runs (after 2 to 23 rounds), a pool of 3 after 4 rounds; pools of 4 (160
rounds over two runs) and 8 (100 rounds) ran without one stalled all-reduce. `mirrored` still
spans host devices, and says on stderr to set `NPROC` to `HOST_POOL_THREADS_PER_DEVICE` threads
a device when the pool is smaller.
"""

import contextlib
import dataclasses
import os
import sys
import traceback

import keras


# Threads of XLA's CPU pool a host device: twice the smallest pool that ran clean above (4 threads
# for 2 devices), for a margin.
HOST_POOL_THREADS_PER_DEVICE = 4


def host_pool_threads():
    """The size of XLA's CPU thread pool: `NPROC` when it is set, else the schedulable cores
    (XLA's `DefaultThreadPoolSize`). It is fixed when JAX first starts its CPU backend."""
    try:
        return int(os.environ["NPROC"])
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0))


def _warn_if_host_pool_deadlocks(devices):
    wanted, threads = HOST_POOL_THREADS_PER_DEVICE * len(devices), host_pool_threads()
    if threads < wanted:
        print(f"tc: warning: {len(devices)} host devices share an XLA CPU pool of "
              f"{threads} threads, and their all-reduce can deadlock (see "
              f"tc.runner.distribute); start the run with NPROC={wanted}", file=sys.stderr,
              flush=True)


@dataclasses.dataclass
class Placement:
    """Where a run executes: its scope, its replica count, and whether this process writes files."""

    name: str
    num_replicas: int
    is_chief: bool = True
    tf_strategy: object = None
    jax_distribution: object = None
    num_processes: int = 1

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

    def barrier(self, name):
        """Returns once every process of a multi-process JAX run has reached `barrier(name)`."""
        if self.num_processes > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(name)

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

    devices = jax.devices()
    on_cpu = all(device.platform == "cpu" for device in devices)
    if strategy == "one_device" or len(devices) == 1 or (strategy == "auto" and on_cpu):
        return Placement("one_device", 1)
    if on_cpu:
        _warn_if_host_pool_deadlocks(devices)
    distribution = keras.distribution.DataParallel(devices=devices)
    return Placement(f"data_parallel[{strategy}]", len(devices),
                     is_chief=jax.process_index() == 0, jax_distribution=distribution,
                     num_processes=jax.process_count())


@dataclasses.dataclass(frozen=True)
class Processes:
    """The processes of a multi-process JAX run (`--coordinator_address`, `--num_processes`,
    `--process_id`); an unset field (empty, 0, -1) comes from the environment."""

    coordinator_address: str = ""
    num_processes: int = 0
    process_id: int = -1

    @property
    def given(self):
        return self != Processes()


def multi_process_placement(processes, seed=None):
    """DataParallel over the devices of every process of a multi-process JAX run.

    Every process runs the same command, but for `--process_id`, and must reach this before
    anything initializes JAX's backends. `keras.distribution.initialize` connects the processes
    (through `jax.distributed.initialize`): the arguments given, else Keras's environment
    variables (`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `..._NUM_PROCESSES`, `..._PROCESS_ID`), else
    what JAX detects of the cluster. Process 0 writes the run directory; every process feeds its
    rows of each global batch and runs every compiled program, as multi-controller JAX requires.
    Keras draws a common random seed across the processes unless one is set: `seed` is set
    first, so the run is seeded as on one process.
    """
    import jax

    from tc import compat

    if seed is not None:
        compat.set_random_seed(seed)
    try:
        keras.distribution.initialize(processes.coordinator_address or None,
                                      processes.num_processes or None,
                                      None if processes.process_id < 0 else processes.process_id)
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"--strategy=multi_worker could not connect the JAX processes ({error}). Give every "
            "process --coordinator_address=host:port of process 0, --num_processes and its own "
            "--process_id (or Keras's KERAS_DISTRIBUTION_* variables).") from error
    distribution = keras.distribution.DataParallel(devices=jax.devices())
    return Placement(f"multi_process[{jax.process_count()} processes]", jax.device_count(),
                     is_chief=jax.process_index() == 0, jax_distribution=distribution,
                     num_processes=jax.process_count())


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


def place(strategy="auto", tpu="", processes=Processes(), seed=None):
    """The Placement for `--strategy` on the active Keras backend; `processes` and `seed` are
    a multi-process JAX run's (see `multi_process_placement`)."""
    backend = keras.backend.backend()
    if processes.given and not (backend == "jax" and strategy == "multi_worker"):
        raise ValueError("--coordinator_address, --num_processes and --process_id configure "
                         "--strategy=multi_worker on JAX; on TensorFlow, TF_CONFIG does.")
    if backend == "tensorflow":
        return _tensorflow_placement(strategy, tpu)
    if backend == "jax":
        if strategy == "multi_worker":
            return multi_process_placement(processes, seed)
        return _jax_placement(strategy)
    if strategy not in ("auto", "one_device"):
        raise ValueError(f"--strategy={strategy!r} needs the TensorFlow or JAX backend; the "
                         f"{backend} backend runs on one device.")
    return Placement("one_device", 1)


def _in_multi_process_jax():
    if "jax" not in sys.modules or keras.backend.backend() != "jax":
        return False
    import jax

    return jax.process_count() > 1


@contextlib.contextmanager
def failing_fast():
    """Around a whole process: when a multi-process JAX run fails, its process exits at once
    (status 1, after printing the traceback). At a normal exit JAX waits up to 5 minutes at a
    shutdown barrier for every process, which a killed one never reaches; the run resumes from
    its last commit when all are started again."""
    try:
        yield
    except BaseException as error:
        if isinstance(error, SystemExit) or not _in_multi_process_jax():
            raise
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
