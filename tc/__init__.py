"""tc: the softmax temperature as a training hyperparameter, in Keras 3.

Losses, layers, schedules and metrics for three papers:
1. Agarwala et al., "Temperature check: theory and practice for training models with softmax-
   cross-entropy losses" (arXiv 2010.07344): `tc.losses.TemperatureCrossEntropy`,
   `tc.layers.set_initial_logit_norm`.
2. Zhang & Xie, "Probability-dependent gradient decay in large margin softmax"
   (arXiv 2210.17145): `tc.losses.GradientDecayCrossEntropy`, `tc.schedules`,
   `tc.metrics.ExpectedCalibrationError`.
3. Masarczyk et al., "Unpacking softmax: how temperature drives representation collapse,
   compression and generalization" (arXiv 2506.01562): `tc.representation`, `tc.ood`.

`tc.calibration` (temperature scaling, reliability bins) and `tc.theory` (the papers'
predictions on small models) serve the analysis; `tc.load_run(path)` reads a run directory of
`python -m tc.train` back (flags, metrics, result and the trained model).
"""

from tc import console as _console

_console.quiet_tensorflow()  # before Keras imports its backend

try:
    import keras as _keras  # noqa: F401  (loads the backend that KERAS_BACKEND names)
except ModuleNotFoundError as _error:
    _backend = (_error.name or "").split(".")[0]
    if _backend not in ("tensorflow", "jax", "torch"):
        raise
    raise ImportError(
        f"tc needs a Keras backend, and Keras's backend {_backend!r} is not installed: "
        "pip install 'tc-temperature[tensorflow]' (or install jax and set KERAS_BACKEND=jax)."
    ) from None

from tc import (  # noqa: E402
                beta,
                calibration,
                console,
                data,
                layers,
                losses,
                metrics,
                models,
                ood,
                representation,
                run_files,
                saved_runs,
                schedules,
                theory,
)
from tc.saved_runs import load_run

__version__ = "0.1.0"

__all__ = ["beta", "calibration", "console", "data", "layers", "load_run", "losses", "metrics", "models",
           "ood", "representation", "run_files", "saved_runs", "schedules", "theory"]
