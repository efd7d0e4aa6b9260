"""Running a search: the tuner over the trials, the best trial, and the beta = 1 baseline."""

import os

import numpy as np

from tc import compat, console, run_files
from tc.runner import assembly
from tc.runner.search import settings
from tc.runner.search.trials import execution_configs, mean_finals, trial_table

def is_worker():
    """True in a keras-tuner worker process (distributed mode, not the chief)."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    return tuner_id is not None and not tuner_id.startswith("chief")


def search_beta(base, search, baseline=True):
    """Runs (or resumes) the search; returns `{"trials": rows, "best": row, "baseline": ...}`.

    With `baseline`, a beta = 1 run with the same settings is trained (or found among the trials)
    so the best beta's score can be compared with the untuned default.
    """
    base.validate()
    search.validate()
    # keras-tuner (the `tensorflow` extra) is imported once a search runs, not with `tc.tune`.
    from tc.runner.search import tuner as tuner_lib

    tuner = tuner_lib.make_tuner(base, search)
    if not is_worker():  # the chief or a lone process owns the oracle
        compat.retry_trials(tuner.oracle, [row["trial_id"] for row in trial_table(search)
                                           if row["status"] != "completed"
                                           and not row["diverged"]])
    with console.expected_retracing():
        tuner.search()
    if is_worker():  # the chief exports once every worker is done
        return {"trials": None, "best": None, "baseline": None, "worker": True}
    rows = trial_table(search)
    completed = [row for row in rows if row["status"] == "completed" and row["score"] is not None]
    # A trial that did not finish for a reason outside training (its runs raised, or never
    # ran) could have been the best: with one missing, no best is named.
    incomplete = [row["trial_id"] for row in rows
                  if row["status"] != "completed" and not row["diverged"]]
    contenders, passed_over = accurate_enough(search, completed)
    best = _best(search, contenders) if contenders and not incomplete else None
    summary = {"trials": rows, "best": best, "baseline": None, "incomplete": incomplete,
               "passed_over": passed_over}
    if baseline:
        baseline_row = _baseline(base, search, completed)
        if baseline_row is not None:
            summary["baseline"] = baseline_row["score"]
            if baseline_row["trial_id"] == BASELINE_ID:
                rows.append(baseline_row)
    run_files.atomic_write_text(os.path.join(search.output_dir, "trials.csv"),
                                run_files.rows_to_csv(rows) if rows else "")
    run_files.atomic_write_json(os.path.join(search.output_dir, "summary.json"), summary)
    return summary


# A model that predicts one class for everything can be perfectly calibrated: under a
# calibration objective (val_ece, val_nll), only trials whose mean validation accuracy is within
# this of the most accurate trial's can be named best.
ACCURACY_MARGIN = 0.02
BASELINE_ID = "baseline"


def accurate_enough(search, rows):
    """`(rows that can be named best, ids of those passed over for their accuracy)`."""
    if search.objective == "val_accuracy" or not rows:
        return rows, []
    floor = max(row.get("val/accuracy", -1.0) for row in rows) - ACCURACY_MARGIN
    kept = [row for row in rows if row.get("val/accuracy", -1.0) >= floor]
    return kept, [row["trial_id"] for row in rows if row not in kept]


def _best(search, rows):
    sign = 1 if search.direction == "max" else -1
    return max(rows, key=lambda row: sign * row["score"])


def _baseline(base, search, completed):
    """beta = 1 scored as a trial is: its best over the searched learning rates (logit norms),
    each the mean over the trial's seeds. From the trials when the search had beta = 1, else
    trained under `baseline_beta1/`, and returned as a trials.csv row (`trial_id` "baseline")."""
    at_one = [row for row in completed if row["beta"] == 1.0]
    if at_one:
        return _best(search, at_one)
    candidates = []
    for index, values in enumerate(settings.grid_values(search, betas=[1.0])):
        configs = list(execution_configs(base, search, f"point{index}", values,
                                         root="baseline_beta1"))
        results = [assembly.run_one(config) for config in configs]
        if any(result["status"] != "completed" for result in results):
            continue
        row = {"trial_id": BASELINE_ID, "status": "completed", "beta": 1.0,
               **{name: value for name, value in values.items() if name != "beta"},
               "score": float(np.mean([result["final"][search.objective_metric]
                                       for result in results])),
               "run_dirs": ";".join(os.path.relpath(config.output_dir, search.output_dir)
                                    for config in configs),
               "seeds": ";".join(str(result.get("seed")) for result in results),
               "learning_rate": results[0].get("learning_rate"), **mean_finals(results)}
        candidates.append(row)
    return _best(search, candidates) if candidates else None
