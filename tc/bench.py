"""`python -m tc.bench`: training throughput of `tc.train` per model, with model FLOP utilisation.

For each `--models` entry this runs the real `tc.train` path (`tc.experiment.run`: its beta
variable, metrics, divergence guard, per-epoch evaluation and checkpoint) on `synthetic_images`,
CIFAR-shaped uint8 data held in memory (ImageNet-shaped, 224x224x3 with 1000 classes, for
`resnet50`, 10,240 of them), and reports:

- **img/s**: training examples per second after the first epoch (which includes compilation):
  `steps x batch / median epoch time` over epochs 2 and later, the epoch time including
  Keras's validation pass (use 4 or more epochs: the second one can still include a retrace);
- **GFLOP/img**: model FLOPs of one training step per example, counted as 3x the forward
  FLOPs (the backward pass costs about twice the forward). The forward FLOPs are XLA's cost
  analysis of the forward pass lowered for the CPU, on the JAX backend, before compilation
  (on a GPU, compiled convolutions become cuDNN calls that the cost analysis skips). For the CIFAR ResNet-18 this gives 0.97 GFLOP forward,
  2.9 GFLOP per training image;
- **MFU**: `img/s x GFLOP/img / --peak_tflops` (790 TFLOP/s: the dense bf16 peak measured on
  one H200).

It prints one table and writes the figures to `--out` as JSON (`images_per_second` per model,
which `analysis.report` reads for its full-scale time estimates). The loss-overhead and
bare-Keras comparisons of the performance issue are not measured here yet.
"""

import json
import os
import sys
import tempfile

import numpy as np
from absl import app, flags

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

# Dataset options per model; others get CIFAR's shape and `--samples` images.
DATASET_OPTIONS = {"resnet50": "num_classes=1000;image_size=224;samples=10240"}


def forward_flops_per_example(model, input_shape, batch=8):
    """XLA's FLOP count of the compiled forward pass, per example (JAX backend; else None)."""
    import keras

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


def measure(model_name, batch_size, epochs, samples, mixed_precision, peak_tflops):
    """One model's figures, from a `tc.experiment.run` in a scratch directory."""
    import keras

    from tc import config as config_lib
    from tc import data, experiment, models

    dataset_options = DATASET_OPTIONS.get(model_name, f"samples={samples}")
    with tempfile.TemporaryDirectory() as scratch:
        config = config_lib.RunConfig(
            dataset="synthetic_images", dataset_options=dataset_options, model=model_name,
            batch_size=batch_size, epochs=epochs, mixed_precision=mixed_precision,
            tensorboard=False, save_predictions=False, verbose=0,
            output_dir=os.path.join(scratch, model_name))
        result = experiment.run(config)
    shape_options = config_lib.parse_options(dataset_options, "dataset_options")
    shape_options.update(samples=2, test_samples=1, validation_samples=0)
    dataset = data.load("synthetic_images", **shape_options)
    model = models.build(model_name, dataset.input_shape, dataset.num_classes)
    flops = forward_flops_per_example(model, dataset.input_shape)
    keras.backend.clear_session()
    speed = result.get("steady_examples_per_second")
    train_gflop = 3 * flops / 1e9 if flops else None
    return {
        "model": model_name, "input_shape": list(dataset.input_shape),
        "status": result["status"], "images_per_second": speed,
        "train_gflop_per_image": train_gflop,
        "mfu": speed * train_gflop / (peak_tflops * 1e3) if speed and train_gflop else None,
        "epoch_seconds": result.get("epoch_seconds"),
    }


def main(argv):
    del argv
    import keras

    from tc.run_dir import atomic_write_json

    rows = []
    print(f"tc.bench: backend {keras.backend.backend()}, batch {FLAGS.batch_size}, "
          f"{FLAGS.mixed_precision}, {FLAGS.epochs} epochs of {FLAGS.samples} images")
    print(f"{'model':<10} {'img/s':>10} {'GFLOP/img':>10} {'MFU':>7}")
    settings = {"batch_size": FLAGS.batch_size, "epochs": FLAGS.epochs, "samples": FLAGS.samples,
                "mixed_precision": FLAGS.mixed_precision, "peak_tflops": FLAGS.peak_tflops,
                "backend": keras.backend.backend()}
    for name in FLAGS.models:
        row = measure(name, FLAGS.batch_size, FLAGS.epochs, FLAGS.samples,
                      FLAGS.mixed_precision, FLAGS.peak_tflops)
        rows.append(row)
        speed = f"{row['images_per_second']:.0f}" if row["images_per_second"] else "-"
        gflop = f"{row['train_gflop_per_image']:.2f}" if row["train_gflop_per_image"] else "-"
        mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] else "-"
        print(f"{name:<10} {speed:>10} {gflop:>10} {mfu:>7}", flush=True)
        # Written after every model, so a long sweep that is cut off keeps what it measured.
        atomic_write_json(FLAGS.out, {
            "settings": settings,
            "images_per_second": {r["model"]: r["images_per_second"] for r in rows},
            "models": rows})
    print(f"tc.bench: wrote {FLAGS.out}")
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
