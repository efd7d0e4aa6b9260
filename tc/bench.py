"""`python -m tc.bench`: performance figures of tc, as ratios measured side by side in one run.

1. **Loss overhead** (every device): forward+backward time of `TemperatureCrossEntropy` and
   `GradientDecayCrossEntropy`, each divided by Keras's
   `SparseCategoricalCrossentropy(from_logits=True)`, on the same `(8192, 1000)` float32 logits.
   The three are compiled (`jax.jit` / `tf.function`), timed in rotating order in one process,
   and each ratio is the median over `--repeats` of per-repeat time ratios. 1.00 means no
   overhead.
2. **Training throughput** (when a GPU is present, or with `--figures=throughput`): for each
   `--models` entry, the real `tc.train` path with its defaults (`tc.runner.assembly.run`: its
   beta variable, metrics, divergence guard, per-epoch evaluation and checkpoint, the live
   progress line of a terminal and the TensorBoard scalars) on `synthetic_images`, CIFAR-shaped
   uint8 data held in memory (ImageNet-shaped, 224x224x3 with 1000 classes, for `resnet50`,
   10,240 of them):
   - **img/s**: training examples per second after the first epoch (which includes
     compilation): `steps x batch / median epoch time` over epochs 2 and later, the epoch time
     including all of tc.train's epoch-end work on the training thread: validation and test
     passes, the rank probe's forward pass and the checkpoint snapshot (the SVDs and files are
     written by a background thread; use 4 or more epochs: the second one can still include a
     retrace);
   - **GFLOP/img**: model FLOPs of one training step per example, counted as 3x the forward
     FLOPs (the backward pass costs about twice the forward). The forward FLOPs are XLA's cost
     analysis of the forward pass lowered for the CPU, on the JAX backend, before compilation
     (on a GPU, compiled convolutions become cuDNN calls that the cost analysis skips). For
     the CIFAR ResNet-18 this gives 0.97 GFLOP forward, 2.9 GFLOP per training image;
   - **MFU**: `img/s x GFLOP/img / --peak_tflops` (790 TFLOP/s: the dense bf16 peak measured on
     one H200).

3. **Training overhead** (`--figures=training_overhead`): for each `--models` entry, the img/s
   of item 2 divided by those of a bare `model.fit` of the same model, data, batch and
   precision, with the built-in `SparseCategoricalCrossentropy`, no metrics and no callbacks
   besides an epoch timer, on arrays normalized up front. With `--overhead_repeats=N`, the two
   runs alternate N times and the ratio is the median of the N per-pair ratios (on a shared
   CPU, single pairs swung by 5-10%).

4. **Packed sweep** (`--figures=packed_sweep`): what a campaign runs, for each `--models`
   entry on `--sweep_image_shape` images (Fashion-MNIST's 28x28x1) at `--sweep_batch_size`
   images per copy (the papers' 128): one copy at a time, through `tc.train` and through a bare
   `model.fit` (item 3); then for each K of `--copies` (6 and 12), a packed `tc.train` program
   of K betas (log-spaced over [1e-2, 1e1]) beside a bare fit at batch K x 128 (the packed
   program's images per step). Steady img/s count every copy's images (epochs 2 and later);
   the ratios are over one copy's bare fit and over the wide bare fit. Whole runs, compilation
   included, are apart: K `tc.train` runs one after another (K x one run's wall time) over the
   packed program's wall time. With `--sweep_steps_per_call=N` (N > 1, JAX), each packed
   program is also measured with N steps fused into one call (`tc.train --steps_per_call`),
   beside the one-step-per-call program of the same K.

5. **Scaling** (`--figures=scaling`): for each `--models` entry, the img/s of `tc.train` on one
   device (`--strategy=one_device`, batch `--batch_size`) and on all N local accelerators
   (`--strategy=mirrored`, batch `--batch_size` x N), beside a bare `model.fit` (item 3) on
   one device and under `keras.distribution.DataParallel` over the N (JAX; TensorFlow:
   `MirroredStrategy`) at the same batches: each one's N-device speed-up, and tc.train's
   img/s over the bare fit's at 1 and at N devices.

6. **Search** (`--figures=search`): the wall time of a `--search_points` beta grid of the first
   `--models` entry (`python -m tc.tune --tuner=grid`, `--epochs` each, one trial at a time) on
   one accelerator, and with `--local_workers=--search_workers` (default: one worker per local
   GPU); the ratio, and whether every trial ran exactly once in both.

It prints the figures and writes them to `--out` as JSON (`images_per_second` per model feeds
`tc.analysis.report`'s full-scale time estimates).
"""

import contextlib
import os
import sys
import tempfile
import time
import typing

import keras
import numpy as np
from absl import flags

from tc.runner import command_line
from tc.run_files import atomic_write_json

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["resnet18", "resnet34", "vgg16", "wrn", "vit", "mlp"],
                  "Models to measure (tc.models names).")
flags.DEFINE_integer("batch_size", 512, "Global batch size.")
flags.DEFINE_integer("epochs", 5, "Epochs per model; throughput uses epochs 2 and later.")
flags.DEFINE_integer("samples", 50000, "Training examples of synthetic_images.")
flags.DEFINE_enum("mixed_precision", "bfloat16", ["off", "bfloat16", "float16"],
                  "Mixed precision policy.")
flags.DEFINE_float("peak_tflops", 790.0, "Peak dense TFLOP/s of the device, for MFU.")
flags.DEFINE_string("out", "bench.json", "Where the JSON figures go.")
flags.DEFINE_list("figures", ["auto"], "Which figures: loss_overhead, throughput, "
                  "training_overhead, packed_sweep, scaling, search, or auto (the loss overhead, "
                  "and the throughput when a GPU is present).")
flags.DEFINE_list("copies", ["6", "12"], "Packed sweep: the numbers of copies K measured (K "
                  "betas log-spaced over [1e-2, 1e1] in one program).")
flags.DEFINE_integer("sweep_steps_per_call", 1, "Packed sweep: also measure each packed "
                     "program with this many steps fused into one call (tc.train "
                     "--steps_per_call; JAX), when above 1.", lower_bound=1)
flags.DEFINE_integer("sweep_batch_size", 128, "Packed sweep: the batch of each copy (the "
                     "papers'), and of the one-at-a-time runs.")
flags.DEFINE_string("sweep_image_shape", "28,28,1", "Packed sweep: height, width, channels of "
                    "the synthetic images (28,28,1: the shape of Fashion-MNIST, the campaigns' "
                    "data).")
flags.DEFINE_integer("repeats", 30, "Loss overhead: timed repeats per loss.")
flags.DEFINE_integer("overhead_repeats", 1, "Training overhead: tc.train / bare fit pairs, run "
                     "alternately; the figure is the median of their ratios.", lower_bound=1)
flags.DEFINE_list("loss_shape", ["8192", "1000"], "Loss overhead: the logits' shape (N, C).")
flags.DEFINE_integer("search_points", 8, "Search: the betas of the grid.", lower_bound=2)
flags.DEFINE_string("search_workers", "auto", "Search: tc.tune's --local_workers for the "
                    "all-GPU run (auto = one per local GPU).")

BASELINE = "keras_sparse_categorical_crossentropy"
FIGURES = ("auto", "loss_overhead", "throughput", "training_overhead", "packed_sweep", "scaling",
           "search")

# Dataset options per model; others get CIFAR's shape and `--samples` images.
DATASET_OPTIONS = {"resnet50": "num_classes=1000;image_size=224;samples=10240"}


def dataset_options(model_name, samples):
    """The `--dataset_options` of `synthetic_images` that `model_name` is measured on."""
    return DATASET_OPTIONS.get(model_name, f"samples={samples}")


def _losses():

    from tc import losses

    return {BASELINE: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "temperature_cross_entropy": losses.TemperatureCrossEntropy(beta=0.5),
            "gradient_decay_cross_entropy": losses.GradientDecayCrossEntropy(beta=0.5)}


def _compiled_value_and_gradient(loss, labels, logits):
    """A zero-argument callable that runs forward+backward once and waits for the result."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        step = jax.jit(jax.value_and_grad(lambda z: loss(labels, z)))
        on_device = jax.device_put(logits)  # timed without the host-to-device copy
        return lambda: jax.block_until_ready(step(on_device))
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def step(z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = loss(labels, z)
            return value, tape.gradient(value, z)

        tensors = tf.constant(logits)
        return lambda: [t.numpy() for t in step(tensors)]
    raise ValueError(f"The loss overhead is measured on the jax and tensorflow backends, not "
                     f"{backend!r}.")


def loss_overhead(shape=(8192, 1000), repeats=30, seed=0):
    """`{loss: median time ratio to Keras's SCCE}` plus the median seconds of each loss."""
    rng = np.random.default_rng(seed)
    logits = (3 * rng.standard_normal(shape)).astype(np.float32)
    labels = rng.integers(0, shape[1], shape[0]).astype(np.int32)
    steps = {name: _compiled_value_and_gradient(loss, labels, logits)
             for name, loss in _losses().items()}
    for step in steps.values():  # compile and warm up outside the timed window
        step()
        step()
    seconds = {name: [] for name in steps}
    names = list(steps)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            started = time.perf_counter()
            steps[name]()
            seconds[name].append(time.perf_counter() - started)
    baseline = np.asarray(seconds[BASELINE])
    return {
        "shape": list(shape), "repeats": repeats,
        "median_seconds": {name: float(np.median(times)) for name, times in seconds.items()},
        "ratio_to_keras": {name: float(np.median(np.asarray(times) / baseline))
                           for name, times in seconds.items() if name != BASELINE},
    }


def gpu_present():

    if keras.backend.backend() == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def forward_flops_per_example(model, input_shape, batch=8):
    """XLA's FLOP count of the forward pass lowered for the CPU, per example (JAX; else None)."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    # Lowered for the CPU whatever the accelerator: the count is the model's, not the device's.
    cpu = jax.devices("cpu")[0]
    trainable = [jax.device_put(v.value, cpu) for v in model.trainable_variables]
    non_trainable = [jax.device_put(v.value, cpu) for v in model.non_trainable_variables]
    inputs = jax.device_put(np.zeros((batch, *input_shape), np.float32), cpu)

    def forward(trainable, non_trainable, inputs):
        return model.stateless_call(trainable, non_trainable, inputs, training=False)[0]

    cost = jax.jit(forward).lower(trainable, non_trainable, inputs).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = (cost or {}).get("flops")
    return float(flops) / batch if flops else None


def sweep_betas(copies):
    """`copies` betas spread log-evenly over the papers' range [1e-2, 1e1]."""
    return ",".join(f"{beta:.4g}" for beta in np.logspace(-2, 1, copies))


def measure(model_name, batch_size, epochs, samples, mixed_precision, peak_tflops, copies=1,
            learning_rates=(), strategy="auto", options=None, steps_per_call=1):
    """One model's figures, from a `tc.train` run in a scratch directory.

    With `copies > 1`, a packed sweep of that many betas (`sweep_betas`), times
    `learning_rates` when given (a 2-D grid): its img/s count the images of every copy
    (model-img/s). `options` overrides the `synthetic_images` options (its shape).
    """
    from tc import data, models
    from tc.runner import assembly
    from tc.runner import config as config_lib

    options = options or dataset_options(model_name, samples)
    with tempfile.TemporaryDirectory() as scratch, _progress_to_a_terminal():
        config = config_lib.RunConfig(
            dataset="synthetic_images", dataset_options=options, model=model_name,
            batch_size=batch_size, epochs=epochs, mixed_precision=mixed_precision,
            save_predictions=False, betas=sweep_betas(copies) if copies > 1 else "",
            learning_rates=",".join(learning_rates) if copies > 1 else "",
            strategy=strategy, steps_per_call=steps_per_call,
            output_dir=os.path.join(scratch, model_name))
        result = assembly.run(config)[0]
    copies = copies * max(len(learning_rates), 1) if copies > 1 else 1
    shape_options = config_lib.parse_options(options, "dataset_options")
    shape_options.update(samples=2, test_samples=1, validation_samples=0)
    dataset = data.load("synthetic_images", **shape_options)
    model = models.build(model_name, dataset.input_shape, dataset.num_classes)
    flops = forward_flops_per_example(model, dataset.input_shape)
    keras.backend.clear_session()
    speed = result.get("steady_examples_per_second")
    speed = speed * copies if speed else None
    with_compile = result.get("examples_per_second")
    with_compile = with_compile * copies if with_compile else None
    train_gflop = 3 * flops / 1e9 if flops else None
    return {
        "model": model_name, "input_shape": list(dataset.input_shape),
        "status": result["status"], "images_per_second": speed,
        "train_gflop_per_image": train_gflop,
        "mfu": speed * train_gflop / (peak_tflops * 1e3) if speed and train_gflop else None,
        "epoch_seconds": result.get("epoch_seconds"), "copies": copies,
        "replicas": result.get("replicas"),
        "images_per_second_with_compile": with_compile,
        "wall_seconds": result.get("wall_seconds"),
    }


class _Terminal:
    """A terminal that shows nothing: the progress line draws as it would for a user, and the
    figures stay readable."""

    def __init__(self):
        self._sink = open(os.devnull, "w")

    def isatty(self):
        return True

    def write(self, text):
        return self._sink.write(text)

    def flush(self):
        self._sink.flush()


@contextlib.contextmanager
def _progress_to_a_terminal():
    previous, sys.stdout = sys.stdout, _Terminal()
    try:
        yield
    finally:
        sys.stdout._sink.close()
        sys.stdout = previous


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch; epoch hooks only, so no per-step synchronisation is added."""
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def bare_keras_throughput(model_name, batch_size, epochs, samples, mixed_precision,
                          data_parallel=False, options=None):
    """Images/s of a plain `model.fit` on the same model, data, batch and precision.

    The built-in `SparseCategoricalCrossentropy`, SGD with momentum, no metrics, numpy arrays in
    memory (normalized once, up front), no callbacks besides an epoch timer; median epoch time
    after the first. `data_parallel`: under Keras's own data parallelism over the devices that
    `tc.train --strategy=mirrored` spans (`keras.distribution.DataParallel` on JAX,
    `MirroredStrategy` on TensorFlow, as `tc.runner.distribute.place` makes them),
    `batch_size` being the global batch. `options` overrides the `synthetic_images` options.
    """
    from tc import data, models
    from tc.runner import config as config_lib
    from tc.runner import distribute

    options = config_lib.parse_options(options or dataset_options(model_name, samples),
                                       "dataset_options")
    dataset = data.load("synthetic_images", **options)
    x, y = dataset.arrays("train")
    previous = keras.config.dtype_policy()
    if mixed_precision != "off":
        keras.config.set_dtype_policy(f"mixed_{mixed_precision}")
    try:
        placement = (distribute.place("mirrored") if data_parallel
                     else distribute.Placement("one_device", 1))
        with placement.scope():
            model = models.build(model_name, dataset.input_shape, dataset.num_classes)
            model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            timer = EpochTimer()
            model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[timer])
    finally:
        keras.config.set_dtype_policy(previous)
        keras.backend.clear_session()
    return len(x) / float(np.median(timer.seconds[1:]))


def image_options(shape, samples):
    """`synthetic_images` options of images of `shape` (height, width, channels)."""
    height, width, channels = shape
    if height != width:
        raise ValueError(f"--sweep_image_shape={height},{width},{channels}: synthetic_images are "
                         "square; give equal height and width.")
    return f"image_size={height};channels={channels};samples={samples}"


def packed_sweep(model_name, copies, batch_size, epochs, samples, shape, mixed_precision,
                 peak_tflops, steps_per_call=1):
    """The packed-sweep figure of one model (see the module docstring): one copy at a time
    (`tc.train` and a bare fit at `batch_size`), then for each K of `copies` a packed program of
    K copies at `batch_size` each and a bare fit at K x `batch_size`; steady img/s (all copies'
    images) and whole runs (compilation included) apart."""
    options = image_options(shape, samples)
    settings = (model_name, batch_size, epochs, samples, mixed_precision, peak_tflops)
    one = measure(*settings, options=options)
    bare_one = bare_keras_throughput(model_name, batch_size, epochs, samples, mixed_precision,
                                     options=options)
    row = {"batch_per_copy": batch_size, "image_shape": list(shape), "epochs": epochs,
           "one_tc_train": one["images_per_second"], "one_bare_fit": bare_one,
           "one_tc_train_wall_seconds": one["wall_seconds"], "packed": {}}
    for count in copies:
        packed = measure(*settings, copies=count, options=options)
        bare_wide = bare_keras_throughput(model_name, count * batch_size, epochs, samples,
                                          mixed_precision, options=options)
        row["packed"][str(count)] = {
            **_packed_figures(packed, count, one, bare_one), "bare_fit_wide": bare_wide,
            "steady_over_one_tc_train": packed["images_per_second"] / one["images_per_second"],
            "steady_over_wide_bare_fit": packed["images_per_second"] / bare_wide}
        if steps_per_call > 1:
            fused = measure(*settings, copies=count, options=options,
                            steps_per_call=steps_per_call)
            row["packed"][str(count)]["fused"] = {
                "steps_per_call": steps_per_call, **_packed_figures(fused, count, one, bare_one),
                "steady_over_one_step_per_call": (fused["images_per_second"]
                                                  / packed["images_per_second"])}
    return row


def _packed_figures(packed, count, one, bare_one):
    """A packed program's steady img/s and wall time, over one copy's bare fit (`bare_one`
    img/s), and its whole run over `count` runs of `one` one after another."""
    return {"steady": packed["images_per_second"], "wall_seconds": packed["wall_seconds"],
            "steady_over_one_bare_fit": packed["images_per_second"] / bare_one,
            # K runs one after another, each paying its compilation, against one program.
            "whole_run_speedup": count * one["wall_seconds"] / packed["wall_seconds"]}


def median_overhead(pairs):
    """`{"tc_train", "bare_fit", "ratio", "pairs"}` of `(tc.train img/s, bare fit img/s)` pairs:
    the medians of each column and of the per-pair ratios."""
    pairs = [(float(tc_speed), float(bare_speed)) for tc_speed, bare_speed in pairs]
    return {"tc_train": float(np.median([tc_speed for tc_speed, _ in pairs])),
            "bare_fit": float(np.median([bare_speed for _, bare_speed in pairs])),
            "ratio": float(np.median([tc_speed / bare_speed for tc_speed, bare_speed in pairs])),
            "pairs": [{"tc_train": tc_speed, "bare_fit": bare_speed,
                       "ratio": tc_speed / bare_speed} for tc_speed, bare_speed in pairs]}


def scaling(model_name, per_device_batch, epochs, samples, mixed_precision, peak_tflops):
    """The scaling figure of one model over the N devices that `--strategy=mirrored` spans
    (see the module doc)."""
    from tc.runner import distribute

    devices = distribute.place("mirrored").num_replicas
    settings = (epochs, samples, mixed_precision)
    runs = {1: measure(model_name, per_device_batch, *settings, peak_tflops,
                       strategy="one_device")}
    bare_speed = {1: bare_keras_throughput(model_name, per_device_batch, *settings)}
    if devices > 1:
        runs[devices] = measure(model_name, per_device_batch * devices, *settings, peak_tflops,
                                strategy="mirrored")
        bare_speed[devices] = bare_keras_throughput(model_name, per_device_batch * devices,
                                                    *settings, data_parallel=True)
    tc_speed = {n: run["images_per_second"] for n, run in runs.items()}
    return {"devices": devices, "per_device_batch": per_device_batch,
            "tc_train_replicas": {str(n): run["replicas"] for n, run in runs.items()},
            "tc_train": {str(n): speed for n, speed in tc_speed.items()},
            "bare_fit": {str(n): speed for n, speed in bare_speed.items()},
            "tc_train_speedup": tc_speed[devices] / tc_speed[1],
            "bare_fit_speedup": bare_speed[devices] / bare_speed[1],
            "tc_over_bare": {str(n): tc_speed[n] / bare_speed[n] for n in tc_speed}}


def search_wall_time(model_name, points, epochs, batch_size, samples, mixed_precision,
                     local_workers, scratch):
    """Seconds of a `points`-beta grid search by `python -m tc.tune` with `--local_workers`,
    and how many times each trial ran (from the run directories' result.json files)."""
    import subprocess

    from tc import run_files

    output = os.path.join(scratch, f"search_{local_workers}")
    environment = dict(os.environ)
    if str(local_workers) == "0" and gpu_present():
        environment["CUDA_VISIBLE_DEVICES"] = "0"  # one accelerator (JAX and TensorFlow GPUs)
    command = [sys.executable, "-m", "tc.tune", "--tuner=grid", f"--grid_points={points}",
               "--beta_min=0.01", "--beta_max=10", "--dataset=synthetic_images",
               f"--dataset_options={dataset_options(model_name, samples)}",
               f"--model={model_name}", f"--epochs={epochs}", f"--batch_size={batch_size}",
               f"--mixed_precision={mixed_precision}", "--tensorboard=false",
               "--save_predictions=false", "--verbose=0", f"--local_workers={local_workers}",
               f"--output_dir={output}"]
    started = time.perf_counter()
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"tc.tune --local_workers={local_workers} failed (exit "
                           f"{completed.returncode}): {completed.stderr[-2000:]}")
    trials = {}
    for folder, _, files in os.walk(os.path.join(output, "trials")):
        if run_files.RESULT_FILE in files:
            beta = run_files.read_result(os.path.join(folder, run_files.RESULT_FILE))["beta"]
            trials[beta] = trials.get(beta, 0) + 1
    return seconds, trials


def _loss_overhead_figure(payload, backend, gpu):
    shape = tuple(int(n) for n in FLAGS.loss_shape)
    overhead = payload["loss_overhead"] = loss_overhead(shape, FLAGS.repeats)
    print(f"tc.bench: loss overhead on {backend} ({'GPU' if gpu else 'CPU'}), logits "
          f"{shape}, forward+backward, median of {FLAGS.repeats} side-by-side repeats")
    print(f"  {BASELINE}: {1e3 * overhead['median_seconds'][BASELINE]:.2f} ms (1.00x)")
    for name, ratio in overhead["ratio_to_keras"].items():
        print(f"  {name}: {1e3 * overhead['median_seconds'][name]:.2f} ms ({ratio:.2f}x)")


def _throughput_figure(payload, backend, gpu):
    rows = payload["models"] = []
    print(f"tc.bench: training throughput, batch {FLAGS.batch_size}, "
          f"{FLAGS.mixed_precision}, {FLAGS.epochs} epochs of {FLAGS.samples} images")
    print(f"{'model':<10} {'img/s':>10} {'GFLOP/img':>10} {'MFU':>7}")
    for name in FLAGS.models:
        row = measure(name, FLAGS.batch_size, FLAGS.epochs, FLAGS.samples,
                      FLAGS.mixed_precision, FLAGS.peak_tflops)
        rows.append(row)
        speed = f"{row['images_per_second']:.0f}" if row["images_per_second"] else "-"
        gflop = f"{row['train_gflop_per_image']:.2f}" if row["train_gflop_per_image"] else "-"
        mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] else "-"
        print(f"{name:<10} {speed:>10} {gflop:>10} {mfu:>7}", flush=True)
        # Written after every model, so a long sweep that is cut off keeps what it measured.
        payload["images_per_second"] = {r["model"]: r["images_per_second"] for r in rows}
        atomic_write_json(FLAGS.out, payload)


def _training_overhead_figure(payload, backend, gpu):
    overhead = payload["training_overhead"] = {}
    print(f"tc.bench: training overhead, tc.train img/s / bare model.fit img/s, batch "
          f"{FLAGS.batch_size}, {FLAGS.mixed_precision}")
    measured = payload.get("images_per_second", {})  # from the throughput figure, if run
    for name in FLAGS.models:
        pairs = []
        for repeat in range(FLAGS.overhead_repeats):
            tc_speed = (measured.get(name) if repeat == 0 else None) or measure(
                name, FLAGS.batch_size, FLAGS.epochs, FLAGS.samples, FLAGS.mixed_precision,
                FLAGS.peak_tflops)["images_per_second"]
            bare_speed = bare_keras_throughput(name, FLAGS.batch_size, FLAGS.epochs,
                                               FLAGS.samples, FLAGS.mixed_precision)
            pairs.append((tc_speed, bare_speed))
            print(f"  {name}: tc.train {tc_speed:.0f} img/s, bare fit {bare_speed:.0f} "
                  f"img/s ({tc_speed / bare_speed:.2f}x)", flush=True)
        overhead[name] = median_overhead(pairs)
        if len(pairs) > 1:
            print(f"  {name}: median of {len(pairs)} pairs {overhead[name]['ratio']:.2f}x",
                  flush=True)
        atomic_write_json(FLAGS.out, payload)


def _packed_sweep_figure(payload, backend, gpu):
    sweep = payload["packed_sweep"] = {}
    shape = tuple(int(n) for n in FLAGS.sweep_image_shape.split(","))
    copies = [int(n) for n in FLAGS.copies]
    print(f"tc.bench: packed sweep, {FLAGS.sweep_batch_size} images per copy per step, "
          f"{FLAGS.sweep_image_shape} images, {FLAGS.epochs} epochs: steady img/s of all "
          "copies, and whole runs (compilation included) against one copy at a time")
    for name in FLAGS.models:
        row = sweep[name] = packed_sweep(name, copies, FLAGS.sweep_batch_size, FLAGS.epochs,
                                         FLAGS.samples, shape, FLAGS.mixed_precision,
                                         FLAGS.peak_tflops, FLAGS.sweep_steps_per_call)
        print(f"  {name} one at a time: tc.train {row['one_tc_train']:.0f}, bare fit "
              f"{row['one_bare_fit']:.0f} img/s", flush=True)
        for count, packed in row["packed"].items():
            print(f"  {name} K={count}: {packed['steady']:.0f} img/s "
                  f"({packed['steady_over_one_bare_fit']:.2f}x a bare fit of one copy, "
                  f"{packed['steady_over_wide_bare_fit']:.2f}x a bare fit at batch "
                  f"{int(count) * FLAGS.sweep_batch_size}); whole run "
                  f"{packed['whole_run_speedup']:.2f}x {count} tc.train runs one after "
                  "another", flush=True)
            if "fused" in packed:
                fused = packed["fused"]
                print(f"  {name} K={count}, {fused['steps_per_call']} steps a call: "
                      f"{fused['steady']:.0f} img/s ({fused['steady_over_one_bare_fit']:.2f}x a "
                      f"bare fit of one copy, {fused['steady_over_one_step_per_call']:.2f}x one "
                      f"step a call); whole run {fused['whole_run_speedup']:.2f}x", flush=True)
        atomic_write_json(FLAGS.out, payload)


def _scaling_figure(payload, backend, gpu):
    table = payload["scaling"] = {}
    print(f"tc.bench: scaling, {FLAGS.batch_size} images per device, "
          f"{FLAGS.mixed_precision}: img/s on 1 device and on all that --strategy=mirrored "
          "spans")
    for name in FLAGS.models:
        row = table[name] = scaling(name, FLAGS.batch_size, FLAGS.epochs, FLAGS.samples,
                                    FLAGS.mixed_precision, FLAGS.peak_tflops)
        for label, key in (("tc.train", "tc_train"), ("bare fit", "bare_fit")):
            speeds = ", ".join(f"{n}: {speed:.0f}" for n, speed in row[key].items())
            print(f"  {name} {label}: {speeds} ({row[key + '_speedup']:.2f}x)", flush=True)
        ratios = ", ".join(f"{n}: {ratio:.2f}x" for n, ratio in row["tc_over_bare"].items())
        print(f"  {name} tc.train / bare fit: {ratios}", flush=True)
        atomic_write_json(FLAGS.out, payload)


def _search_figure(payload, backend, gpu):
    name = FLAGS.models[0]
    with tempfile.TemporaryDirectory() as scratch:
        settings = (name, FLAGS.search_points, FLAGS.epochs, FLAGS.batch_size,
                    FLAGS.samples, FLAGS.mixed_precision)
        one, one_trials = search_wall_time(*settings, 0, scratch)
        every, every_trials = search_wall_time(*settings, FLAGS.search_workers, scratch)
    payload["search"] = {
        "model": name, "points": FLAGS.search_points, "epochs": FLAGS.epochs,
        "local_workers": FLAGS.search_workers, "one_device_seconds": one,
        "local_workers_seconds": every, "ratio": every / one,
        "every_trial_once": all(sorted(trials.values()) == [1] * FLAGS.search_points
                                for trials in (one_trials, every_trials))}
    print(f"tc.bench: search, {FLAGS.search_points}-point beta grid of {name}, "
          f"{FLAGS.epochs} epochs each: one device {one:.0f} s, --local_workers="
          f"{FLAGS.search_workers} {every:.0f} s ({every / one:.2f}x); every trial once: "
          f"{payload['search']['every_trial_once']}", flush=True)


class Figure(typing.NamedTuple):
    """One figure of --figures: its function `(payload, backend, gpu)`, whether --figures=auto
    runs it (given whether a GPU is present), whether it trains models (and so records the
    training settings), and its name in words."""

    measure: object
    in_auto: object
    trains: bool
    title: str


# Each figure of --figures (FIGURES, less "auto"), in the order they run.
FIGURE_RUNS = {
    "loss_overhead": Figure(_loss_overhead_figure, lambda gpu: True, False, "loss overhead"),
    "throughput": Figure(_throughput_figure, lambda gpu: gpu, True, "training throughput"),
    "training_overhead": Figure(_training_overhead_figure, lambda gpu: False, True,
                                "training overhead"),
    "packed_sweep": Figure(_packed_sweep_figure, lambda gpu: False, True, "packed sweep"),
    "scaling": Figure(_scaling_figure, lambda gpu: False, True, "scaling"),
    "search": Figure(_search_figure, lambda gpu: False, True, "search wall time"),
}


def main(argv):
    del argv
    backend = keras.backend.backend()
    figures = set(FLAGS.figures)
    unknown = figures - set(FIGURES)
    if unknown:
        raise command_line.CommandLineError(
            f"--figures={','.join(FLAGS.figures)}: unknown {sorted(unknown)}; valid: "
            f"{', '.join(FIGURES)}.")
    gpu = gpu_present()
    payload = {"settings": {"backend": backend, "gpu": gpu}}
    chosen = [name for name, figure in FIGURE_RUNS.items()
              if name in figures or ("auto" in figures and figure.in_auto(gpu))]
    if any(FIGURE_RUNS[name].trains for name in chosen):
        payload["settings"].update(
            batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, samples=FLAGS.samples,
            mixed_precision=FLAGS.mixed_precision, peak_tflops=FLAGS.peak_tflops)
    for name in chosen:
        FIGURE_RUNS[name].measure(payload, backend, gpu)
        atomic_write_json(FLAGS.out, payload)
    for name, figure in FIGURE_RUNS.items():
        if "auto" in figures and name not in chosen and figure.in_auto(True):
            print(f"tc.bench: {figure.title} skipped: no GPU found (--figures={name} "
                  "forces it).")
    atomic_write_json(FLAGS.out, payload)
    print(f"tc.bench: wrote {FLAGS.out}")
    return 0


def help_groups(module_name):
    """The flag groups of `--help` and of this command's CLI reference page."""
    return command_line.module_groups("benchmark", module_name)


def run():
    """The console command (`tc-bench`), the same as `python -m tc.bench`."""
    command_line.run(main, __name__, help_groups(__name__))


if __name__ == "__main__":
    run()
