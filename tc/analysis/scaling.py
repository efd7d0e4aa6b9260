"""Post-hoc temperature scaling of runs (Guo et al. 2017): T fit on each run's validation
logits, scored on its test logits (`tc.calibration`). Paper 2 compares it with a large decay
beta; the report and the confirmatory family read this table."""

import os

import numpy as np
import pandas as pd

from tc import calibration
from tc.analysis import studies

__all__ = ["temperature_scaling_table"]


def temperature_scaling_table(runs, num_bins):
    """Post-hoc temperature scaling of every completed run with predictions.npz."""
    rows = []
    for _, run in studies.completed(runs).iterrows():
        path = run.get("predictions")
        if not isinstance(path, str) or not os.path.exists(path):
            continue
        arrays = np.load(path)
        if "val_logits" not in arrays:
            continue
        report = calibration.temperature_scaling_report(
            arrays["val_logits"], arrays["val_labels"], arrays["test_logits"],
            arrays["test_labels"], num_bins)
        rows.append({"dataset": run["dataset"], "model": run["model"], "beta": run["beta"],
                     "seed": run["seed"], "run_dir": run["run_dir"], **report})
    return pd.DataFrame(rows)
