"""The search's trials on disk: their names, their runs' configs and directories, their rows
and the table of trials.csv."""

import dataclasses
import json
import os

import numpy as np

from tc import run_files
from tc.runner.search import settings

def trial_name(trial_id):
    """A trial as the console names it: keras-tuner's own number (`Trial #1` is trial id 0),
    with its directory under trials/, e.g. `#1 (trials/0)`."""
    try:
        return f"#{int(trial_id) + 1} (trials/{trial_id})"
    except ValueError:
        return f"{trial_id} (trials/{trial_id})"


def execution_configs(base, search, trial_id, values, root="trials"):
    """The run of each seed of a trial, in `<search>/<root>/<trial_id>/seed<k>`."""
    # Hyperband gives each trial its bracket's epoch budget (trained from scratch).
    epochs = values.get("tuner/epochs", base.epochs)
    for execution in range(search.executions_per_trial):
        yield dataclasses.replace(
            base, beta=float(values["beta"]),
            learning_rate=float(settings.trial_learning_rate(base, search, values)),
            init_logit_norm=(repr(float(values["init_logit_norm"]))
                             if "init_logit_norm" in values else base.init_logit_norm),
            lr_scaling="none", init_logit_norms="",  # searched here, not by the run
            seed=base.seed + execution, epochs=int(epochs), verbose=0, overwrite=False,
            output_dir=os.path.join(search.output_dir, root, trial_id, f"seed{execution}"))


def trial_rows(search):
    """One row per trial and seed directory on disk: hyperparameters, status and metrics."""
    trials_dir = os.path.join(search.output_dir, "tuner")
    rows = []
    if not os.path.isdir(trials_dir):
        return rows
    for name in sorted(os.listdir(trials_dir)):
        trial_file = os.path.join(trials_dir, name, "trial.json")
        if not (name.startswith("trial_") and os.path.exists(trial_file)):
            continue
        with open(trial_file) as handle:
            trial = json.load(handle)
        values = trial["hyperparameters"]["values"]
        row = {"trial_id": trial["trial_id"], "status": trial["status"].lower(),
               "beta": values["beta"], "score": trial.get("score")}
        for name in (search.learning_rate_name, "init_logit_norm"):
            if name in values:
                row[name] = values[name]
        rows.append(row)
    return rows


def _run_results(search, trial_id):
    """`(relative run directories, their result.json contents)` of a trial's executions."""
    root = os.path.join(search.output_dir, "trials", trial_id)
    directories, results = [], []
    for seed_dir in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, seed_dir, run_files.RESULT_FILE)
        if os.path.exists(path):
            results.append(run_files.read_result(path))
            directories.append(os.path.join("trials", trial_id, seed_dir))
    return directories, results


def trial_table(search):
    """The rows of `trials.csv`: each trial's hyperparameters, status, runs and mean metrics."""
    rows = []
    for trial in trial_rows(search):
        directories, results = _run_results(search, trial["trial_id"])
        row = dict(trial)
        row["run_dirs"] = ";".join(directories)
        row["seeds"] = ";".join(str(r.get("seed")) for r in results)
        row["learning_rate"] = results[0].get("learning_rate") if results else None
        failed = [r for r in results if r.get("status") != "completed"]
        row["reason"] = ("; ".join(json.dumps(r.get("diverged_at") or r.get("error"))
                                   for r in failed) if failed else "")
        # Diverged: a result of the trial's beta, not a failure to get one.
        row["diverged"] = bool(failed) and all(r.get("status") == "diverged" for r in failed)
        row.update(mean_finals(results))
        rows.append(row)
    return rows


def mean_finals(results):
    """The mean over `results` of each final val/ and test/ metric."""
    finals = [r["final"] for r in results if r.get("final")]
    return {key: float(np.mean([final[key] for final in finals if key in final]))
            for key in sorted({k for final in finals for k in final
                               if k.startswith(("val/", "test/"))})}
