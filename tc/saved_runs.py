"""`tc.load_run(path)`: what a `tc.train` run left in its directory, as Python objects.

    run = tc.load_run("runs/out/digits")
    run.flags["beta"], run.metrics["val/accuracy"].max(), run.result["status"]
    run.model.predict(x)  # the trained model, with its tc loss and metrics

`flags` comes from flags.txt (the flagfile that reproduces the run), with numbers and booleans
as Python values; `metrics` is metrics.csv as a pandas DataFrame indexed by epoch (1, 2, ...);
`result` is result.json; `model` is model.keras, loaded with `keras.models.load_model` (tc's
losses, metrics and layers are registered when `tc` is imported). A run that did not complete
has no model.keras: `model` is None. The checkpoints are the runner's own format, for resuming,
not for loading.
"""

import dataclasses
import os

from tc import run_files

__all__ = ["load_run", "read_flags", "SavedRun"]


@dataclasses.dataclass
class SavedRun:
    path: str
    flags: dict
    metrics: object  # pandas.DataFrame
    result: dict
    model: object  # keras.Model, or None


def read_flags(path):
    """`{name: value}` of a flagfile's `--name=value` lines, each value as it reads
    (`tc.run_files.typed_value`); comments and blank lines skipped, any other line a ValueError."""
    with open(path, encoding="utf-8") as handle:
        return {name: run_files.typed_value(value)
                for name, value in run_files.flag_values(handle.read()).items()}


def load_run(path, load_model=True):
    """The run in directory `path` as a `SavedRun` (see the module docstring).

    Raises:
        FileNotFoundError: `path` holds no flags.txt, so it is not a tc run.
    """
    import pandas as pd

    if not os.path.exists(os.path.join(path, run_files.FLAGS_FILE)):
        raise FileNotFoundError(f"{path} holds no flags.txt: it is not a tc run directory.")
    flags = read_flags(os.path.join(path, run_files.FLAGS_FILE))
    metrics_path = os.path.join(path, "metrics.csv")
    metrics = (pd.read_csv(metrics_path).set_index("epoch") if os.path.exists(metrics_path)
               else pd.DataFrame())
    result_path = os.path.join(path, run_files.RESULT_FILE)
    result = run_files.read_result(result_path) if os.path.exists(result_path) else {}
    model_path = os.path.join(path, "model.keras")
    model = None
    if load_model and os.path.exists(model_path):
        import keras

        model = keras.models.load_model(model_path)
    return SavedRun(path, flags, metrics, result, model)
