"""Run directories and tuner directories -> tidy pandas DataFrames.

`load(roots)` walks any mix of run directories (`tc.train`) and tuner directories (`tc.tune`,
whose trials are run directories under `trials/`) and returns a `Results` with:

- `runs`: one row per run. Every `tc.train` flag as a typed column (from `flags.txt`), except
  that `learning_rate` is the peak rate the run trained at (with `--lr_scaling`, the flag's value
  is in `eta_tilde`, and `learning_rate` is eta_tilde / beta^2 or / beta), then
  `status`, `epochs_completed`, `wall_seconds`, `examples_per_second`, `backend`,
  `final/<metric>` and `best/<metric>` (the epoch with the best validation accuracy),
  `probe/accuracy` (the linear probe, when one ran), `predictions` (path or None), `run_dir`
  and `experiment` (the first folder under the root it was found in).
- `epochs`: one row per run-epoch, the columns of `metrics.csv` plus the run's `run_dir`,
  `experiment` and the config columns in `CURVE_KEYS`.
- `trials`: the rows of every `trials.csv`, with `experiment`.
- `problems`: one row per directory that was skipped, and why.

A directory is a run when it holds `flags.txt`. A run is checked before it is used: its
status must be one tc writes, every number in its flags, results and metrics finite, and its
`predictions.npz` and `example_learning.npz` whole, with the arrays the analysis reads. A run
that fails any check, or whose files are missing or unreadable for any reason, is reported in
`problems` and left out, so no NaN or infinity reaches a verdict; nothing here raises on a bad
run.
"""

import dataclasses
import json
import math
import os
import stat

import numpy as np
import pandas as pd

from tc import run_files
from tc.models import default_model
from tc.runner import config as config_lib

__all__ = ["CURVE_KEYS", "find_run_directories", "load", "MAX_FILE_BYTES", "NUMERIC_FLAGS",
           "over_seeds", "parse_flagfile", "reason", "REQUIRED_FLAGS", "Results", "RUN_MARKS",
           "STATUSES"]

STATUSES = run_files.STATUSES
NUMERIC_FLAGS = ("beta", "learning_rate", "seed", "epochs", "batch_size")
REQUIRED_FLAGS = ("dataset", "loss", "beta", "learning_rate", "seed")
CURVE_KEYS = ("dataset", "model", "loss", "beta", "beta_schedule", "init_logit_norm",
              "learning_rate", "optimizer", "seed")


@dataclasses.dataclass
class Results:
    runs: pd.DataFrame
    epochs: pd.DataFrame
    trials: pd.DataFrame
    problems: pd.DataFrame


_FIELD_TYPES = {field.name: type(field.default) for field in dataclasses.fields(config_lib.RunConfig)}


def parse_flagfile(text):
    """`{flag: value}` of a tc flagfile, each value cast to its RunConfig field's type."""
    values = {}
    for name, raw in run_files.flag_values(text).items():
        kind = _FIELD_TYPES.get(name, str)
        if kind is bool:
            values[name] = run_files.parse_bool(raw)
        elif kind in (int, float):
            try:
                values[name] = kind(float(raw)) if kind is int else float(raw)
            except (ValueError, OverflowError):
                what = "an integer" if kind is int else "a number"
                raise ValueError(f"flags.txt's --{name}={raw} is not {what}") from None
        else:
            values[name] = raw
    norm = values.get("init_logit_norm", "")
    values["init_logit_norm"] = float(norm) if norm else math.nan
    if "learning_rate" in values and "beta" in values:
        scaling = values.get("lr_scaling", "none")
        values["eta_tilde"] = values["learning_rate"] if scaling != "none" else math.nan
        values["learning_rate"] = config_lib.scaled_learning_rate(
            values["learning_rate"], values["beta"], scaling)
    return values


def _flatten(prefix, row):
    if row is not None and not isinstance(row, dict):
        raise ValueError(f"result.json's {prefix} is {type(row).__name__}, not an object")
    return {f"{prefix}/{key}": value for key, value in (row or {}).items()}


def _check_number(value, where, allow_nan=False):
    """Raises ValueError unless `value` is a finite number (or NaN, where allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} is {value!r}, not a number")
    if not math.isfinite(value) and not (allow_nan and math.isnan(value)):
        raise ValueError(f"{where} is {value!r}, not finite")


def _read_arrays(path, names):
    _regular_file(path)
    try:
        with np.load(path) as archive:
            return {name: archive[name] for name in names if name in archive}
    except Exception as error:  # a truncated or garbled archive raises many kinds of error
        raise ValueError(f"{os.path.basename(path)}: unreadable ({type(error).__name__})") from None


def _check_arrays(path, shapes, arrays=None):
    """Raises ValueError unless the .npz file at `path` (or `arrays`, read from it) holds the
    arrays of `shapes` (`{name: number of dimensions}`), numeric, finite and of one length."""
    if arrays is None:
        arrays = _read_arrays(path, shapes)
    arrays = {name: array for name, array in arrays.items() if name in shapes}
    missing = sorted(set(shapes) - set(arrays))
    if missing:
        raise ValueError(f"{os.path.basename(path)} lacks {', '.join(missing)}")
    lengths = set()
    for name, array in arrays.items():
        if array.ndim != shapes[name] or not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{os.path.basename(path)}: {name} is {array.dtype} of shape "
                             f"{array.shape}, not a numeric array of {shapes[name]} dimensions")
        if not np.isfinite(array).all():
            raise ValueError(f"{os.path.basename(path)}: {name} holds NaN or infinity")
        lengths.add(array.shape[-1] if name in ("margin", "nll") else array.shape[0])
    if len(lengths) > 1:
        raise ValueError(f"{os.path.basename(path)}: arrays of different lengths {sorted(lengths)}")


def _check_predictions(path):
    arrays = _read_arrays(path, ("val_logits", "val_labels", "test_logits", "test_labels"))
    for split in ("val", "test"):
        _check_arrays(path, {f"{split}_logits": 2, f"{split}_labels": 1}, arrays)
        labels, classes = arrays[f"{split}_labels"], arrays[f"{split}_logits"].shape[1]
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"predictions.npz: {split} labels outside 0..{classes - 1}")


def _check_run(row, epochs, path):
    """Raises ValueError at the first value of a run that the analysis could not use."""
    missing = [name for name in REQUIRED_FLAGS if name not in row]
    if missing:
        raise ValueError(f"flags.txt has no --{', --'.join(missing)}")
    for name in NUMERIC_FLAGS:
        if name in row:
            _check_number(row[name], f"flags.txt's --{name}")
    _check_number(row.get("init_logit_norm", math.nan), "flags.txt's --init_logit_norm",
                  allow_nan=True)
    _check_number(row["epochs_completed"], "result.json's epochs_completed")
    if row["epochs_completed"] < 0:
        raise ValueError(f"result.json's epochs_completed is {row['epochs_completed']}")
    for key, value in row.items():
        if key.startswith(("final/", "best/", "ood/")) or (
                key.startswith("probe/") and key.endswith("accuracy") and value is not None):
            _check_number(value, f"result.json's {key}")
    for epoch_row in epochs:
        for key, value in epoch_row.items():  # an empty cell (a cut row) is None: refused too
            _check_number(value, f"metrics.csv's {key} (epoch {epoch_row.get('epoch')})")
    if row["predictions"] is not None:
        _check_predictions(row["predictions"])
    learning = os.path.join(path, "example_learning.npz")
    if os.path.lexists(learning):
        _check_arrays(learning, {"learned_at": 1, "margin": 2, "nll": 2})


# The largest file the analysis opens: tc's own files of one run are far smaller (a ResNet's
# predictions.npz is a few MB); anything larger is not what the run wrote.
MAX_FILE_BYTES = 1 << 30


def _regular_file(path):
    """`path`, if it is a regular file of at most MAX_FILE_BYTES; else ValueError. A FIFO or a
    device would block the report on its first read."""
    name = os.path.basename(path)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"no {name}") from None
    if not stat.S_ISREG(status.st_mode):
        kind = "a folder" if stat.S_ISDIR(status.st_mode) else "not a regular file"
        raise ValueError(f"{name} is {kind}")
    if status.st_size > MAX_FILE_BYTES:
        raise ValueError(f"{name} is {status.st_size / 2**30:.1f} GiB, larger than any file "
                         "a run writes")
    return path


def _read_text(path):
    try:
        with open(_regular_file(path), encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise ValueError(f"{os.path.basename(path)} is not text (byte {error.start} is not "
                         "UTF-8)") from None


def reason(error):
    """Why a run was skipped, in words: tc's own checks say it already; an OS error names the
    file and what the system said; anything else keeps its kind."""
    if isinstance(error, json.JSONDecodeError):
        return f"result.json is not valid JSON ({error.msg}, line {error.lineno})"
    if isinstance(error, ValueError):
        return str(error)
    if isinstance(error, OSError):
        where = os.path.basename(error.filename) if error.filename else "a file"
        return f"{where}: {error.strerror or error}"
    return f"{type(error).__name__}: {error}"


def _load_run(path):
    """`(run row, epoch rows)` of one run directory; raises on a missing or corrupt file."""
    row = parse_flagfile(_read_text(os.path.join(path, run_files.FLAGS_FILE)))
    if not row.get("model") and row.get("dataset"):  # flags.txt records the default as ""
        row["model"] = default_model(row["dataset"])
    result_path = os.path.join(path, run_files.RESULT_FILE)
    if not os.path.lexists(result_path):
        raise ValueError("no result.json (the run is unfinished, or was killed)")
    result = run_files.parse_result(_read_text(result_path))
    metrics_path = os.path.join(path, "metrics.csv")
    present = os.path.lexists(metrics_path)
    epochs = run_files.read_csv(_regular_file(metrics_path)) if present else []
    if result["status"] != "failed" and not epochs and result.get("epochs_completed"):
        raise ValueError("result.json reports epochs but metrics.csv "
                         + ("holds no epoch" if present else "is missing"))
    row.update({
        "status": result["status"],
        "epochs_completed": result.get("epochs_completed", len(epochs)),
        "wall_seconds": result.get("wall_seconds"),
        "examples_per_second": result.get("examples_per_second"),
        "backend": result.get("backend"),
        "diverged_epoch": (result.get("diverged_at") or {}).get("epoch"),
        "predictions": (os.path.join(path, result["predictions"])
                        if result.get("predictions") else None),
        "probe/accuracy": (result.get("linear_probe") or {}).get("accuracy"),
        "probe/dataset": (result.get("linear_probe") or {}).get("dataset"),
        "probe/layer": (result.get("linear_probe") or {}).get("layer"),
    })
    for layer, accuracy in ((result.get("linear_probe") or {}).get("layers") or {}).items():
        row[f"probe/{layer}/accuracy"] = accuracy
    for score, values in (result.get("ood_detection") or {}).items():
        for name, value in (values or {}).items():
            row[f"ood/{score}/{name}"] = value
    for far_set, scores in (result.get("far_ood_detection") or {}).items():
        for score, values in (scores or {}).items():
            for name, value in (values or {}).items():
                row[f"far_ood/{far_set}/{score}/{name}"] = value
    row.update(_flatten("final", result.get("final")))
    row.update(_flatten("best", result.get("best_validation")))
    _check_run(row, epochs, path)
    return row, epochs


# Files that only a run directory holds: a directory with one of them but no flags.txt is a run
# that lost its flags (or was copied without them), listed as skipped rather than passed over.
RUN_MARKS = (run_files.RESULT_FILE, "metrics.csv", "predictions.npz")


def find_run_directories(root, without_flags=None):
    """Every directory under `root` (itself included) that holds a flags.txt, sorted. Those
    that hold another run file but no flags.txt are appended to `without_flags`, if given."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories
                                   if d not in ("checkpoints", "tensorboard", "tuner"))
        if run_files.FLAGS_FILE in files:
            found.append(directory)
            subdirectories[:] = []
        elif without_flags is not None and any(name in files for name in RUN_MARKS):
            without_flags.append(directory)
            subdirectories[:] = []
    return sorted(found)


def _experiment(root, path):
    relative = os.path.relpath(path, root)
    return os.path.basename(os.path.abspath(root)) if relative == "." else relative.split(os.sep)[0]


def load(roots):
    """The `Results` of every run and tuner directory under `roots` (a path or a list).

    Raises:
        FileNotFoundError: a root is not a directory (a mistyped path would otherwise read as
            a folder without runs).
    """
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    missing = [str(root) for root in roots if not os.path.isdir(root)]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)}: no such directory; give folders that "
                                "hold run or tuner directories.")
    runs, epochs, trials, problems = [], [], [], []
    for root in map(str, roots):
        without_flags = []
        for path in find_run_directories(root, without_flags):
            experiment = _experiment(root, path)
            try:
                row, rows = _load_run(path)
            except Exception as error:  # any damage skips the run, named, and nothing else
                problems.append({"run_dir": path, "problem": reason(error)})
                continue
            row.update(run_dir=path, experiment=experiment)
            runs.append(row)
            keys = {key: row.get(key) for key in CURVE_KEYS}
            epochs.extend({**epoch_row, **keys, "run_dir": path, "experiment": experiment}
                          for epoch_row in rows)
        problems.extend({"run_dir": path, "problem": "no flags.txt: the run's flags are lost, "
                         "so it cannot be placed in a study"} for path in without_flags)
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = [d for d in subdirectories if d not in ("trials", "tuner")]
            if "trials.csv" in files:
                try:
                    frame = pd.read_csv(_regular_file(os.path.join(directory, "trials.csv")),
                                        dtype={"trial_id": str})
                except (OSError, ValueError) as error:
                    problems.append({"run_dir": directory,
                                     "problem": f"trials.csv: {reason(error)}"})
                    continue
                frame.insert(0, "experiment", _experiment(root, directory))
                frame.insert(1, "tuner_dir", directory)
                trials.append(frame)
    return Results(
        runs=pd.DataFrame(runs),
        epochs=pd.DataFrame(epochs),
        trials=pd.concat(trials, ignore_index=True) if trials else pd.DataFrame(),
        problems=pd.DataFrame(problems, columns=["run_dir", "problem"]),
    )


def over_seeds(frame, by, values):
    """Mean, standard deviation and count of `values` over the seeds of each `by` group.

    Returns one row per group with columns `<value>/mean`, `<value>/std` (0 for one seed) and
    `<value>/count` (the non-missing seeds).
    """
    by, values = list(by), list(values)
    grouped = frame.groupby(by, dropna=False)[values]
    mean, std, count = grouped.mean(), grouped.std(ddof=1).fillna(0.0), grouped.count()
    table = pd.concat({"mean": mean, "std": std, "count": count}, axis=1)
    table.columns = [f"{value}/{stat}" for stat, value in table.columns]
    return table.reset_index()
