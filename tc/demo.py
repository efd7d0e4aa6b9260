"""A short demo of tc on the bundled digits data: `python -m tc.demo`.

Trains a small MLP on scikit-learn's bundled UCI digits (8x8 images, 10 classes; no download)
with temperature cross-entropy at inverse temperature `--beta`, optionally warming `beta` up, and
prints test accuracy, calibration and the rank of the learned features. It is the placeholder
main job until `python -m tc.train` lands.
"""

import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("loss", "temperature", ["temperature", "gradient_decay"],
                  "temperature: CE(softmax(beta z)) (paper 1); gradient_decay: paper 2's loss.")
flags.DEFINE_float("beta", 1.0, "Inverse temperature (or gradient-decay factor); > 0.")
flags.DEFINE_float("warmup_from", None,
                   "If set, warm beta up log-linearly from this value over --warmup_epochs.")
flags.DEFINE_integer("warmup_epochs", 5, "Length of the beta warm-up, in epochs.")
flags.DEFINE_integer("epochs", 30, "Training epochs.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 0.05, "SGD-momentum learning rate.")
flags.DEFINE_integer("seed", 0, "Random seed for the split and the initialization.")
flags.DEFINE_integer("verbose", 1, "Keras progress output: 0 silent, 1 progress bar, 2 per epoch.")

flags.register_validator("beta", lambda v: v > 0 and np.isfinite(v),
                         message="--beta must be positive and finite.")
flags.register_validator("warmup_from", lambda v: v is None or (v > 0 and np.isfinite(v)),
                         message="--warmup_from must be positive and finite.")
flags.register_validator("epochs", lambda v: v >= 1, message="--epochs must be >= 1.")
flags.register_validator("batch_size", lambda v: v >= 1, message="--batch_size must be >= 1.")


def run_demo(loss_name="temperature", beta=1.0, warmup_from=None, warmup_epochs=5, epochs=30,
             batch_size=64, learning_rate=0.05, seed=0, verbose=1):
    """Trains the demo model and returns its test metrics as a dict."""
    import keras

    import tc

    keras.utils.set_random_seed(seed)
    digits = tc.data.load("digits", seed=seed)
    (x_train, y_train), (x_test, y_test) = digits.arrays("train"), digits.arrays("test")
    schedule = (tc.schedules.LogLinearWarmup(warmup_from, beta, warmup_epochs)
                if warmup_from is not None else beta)
    loss_class = {"temperature": tc.losses.TemperatureCrossEntropy,
                  "gradient_decay": tc.losses.GradientDecayCrossEntropy}[loss_name]
    loss = loss_class(beta=schedule)
    # The predictor a loss trains: softmax(beta z) for temperature CE, softmax(z) otherwise.
    scored_beta = loss if loss_name == "temperature" else None

    model = tc.models.build("mlp", digits.input_shape, digits.num_classes)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss=loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                 tc.metrics.ExpectedCalibrationError(beta=scored_beta),
                 tc.metrics.NegativeLogLikelihood(beta=scored_beta),
                 tc.metrics.LogitNorm(beta=loss)],
    )
    callbacks = [tc.schedules.BetaScheduler(loss)] if warmup_from is not None else []
    start = time.time()
    model.fit(x_train, y_train, validation_data=digits.arrays("validation"), epochs=epochs,
              batch_size=batch_size, callbacks=callbacks, verbose=verbose)
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    feature_model = keras.Model(model.inputs, model.get_layer("features").output)
    test_features = feature_model.predict(x_test, verbose=0)
    results.update(
        wall_seconds=time.time() - start,
        scored_probabilities=loss.scored_probabilities,
        feature_numerical_rank=tc.representation.numerical_rank(test_features),
        feature_effective_rank=tc.representation.effective_rank(test_features),
        feature_width=test_features.shape[-1],
    )
    return results


def main(argv):
    del argv
    results = run_demo(FLAGS.loss, FLAGS.beta, FLAGS.warmup_from, FLAGS.warmup_epochs,
                       FLAGS.epochs, FLAGS.batch_size, FLAGS.learning_rate, FLAGS.seed,
                       FLAGS.verbose)
    print(f"\ndigits test set ({FLAGS.loss} CE, beta={FLAGS.beta:g}; metrics score "
          f"{results['scored_probabilities']}):")
    print(f"  accuracy           {results['accuracy']:.4f}")
    print(f"  ECE (15 bins)      {results['ece']:.4f}")
    print(f"  NLL                {results['nll']:.4f}")
    print(f"  ||beta z||         {results['logit_norm']:.3f}")
    print(f"  feature rank       {results['feature_numerical_rank']} numerical, "
          f"{results['feature_effective_rank']:.2f} effective "
          f"(of {results['feature_width']} units)")
    print(f"  trained in {results['wall_seconds']:.1f} s")


if __name__ == "__main__":
    app.run(main)
