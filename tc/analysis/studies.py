"""Which runs belong to which paper's experiment.

A run that records its study (`--study`, set in every flagfile of runs/) belongs to that study.
A run that records none (runs of older versions, or typed by hand) is placed by its flags:

| study | `--study` | runs without one |
| --- | --- | --- |
| paper 1, beta sweep | p1_beta_sweep | temperature CE, no `--init_logit_norm`, no `--probe_dataset` |
| paper 1, (beta, `||beta z0||`) grid | p1_logit_norm_grid | temperature CE with `--init_logit_norm` |
| paper 2, gradient-decay sweep | p2_decay_sweep | gradient-decay CE with a constant beta |
| paper 2, warm-up | p2_warmup | gradient-decay CE with a beta schedule |
| paper 3, temperature sweep | p3_temperature_sweep | temperature CE with `--probe_dataset` |
| paper 3, learning-rate control | p3_lr_control | (recorded study only) |
| a campaign's pilot (its epoch count) | confirmatory_pilot | (recorded study only; no claim) |

Each selection keeps runs of any status; `completed` filters to finished ones. Within a study,
runs of one model and dataset that differ in a flag of `BUDGET_FLAGS` (their training budget or
recipe) are never pooled: each such model gets the budget in its name, `mlp (30 epochs)`, so
every table, figure and claim treats the budgets as separate scopes. Where the
learning rate was searched too, `best_learning_rate` keeps, for each beta, the learning rate
with the best mean validation accuracy over seeds (paper 1 tunes it jointly with beta).
"""

import pandas as pd

# The --study each study's flagfiles record (runs/*/*.cfg).
P1_BETA_SWEEP = "p1_beta_sweep"
P1_LOGIT_NORM_GRID = "p1_logit_norm_grid"
P2_DECAY_SWEEP = "p2_decay_sweep"
P2_WARMUP = "p2_warmup"
P3_TEMPERATURE_SWEEP = "p3_temperature_sweep"
P3_LR_CONTROL = "p3_lr_control"
CONFIRMATORY_PILOT = "confirmatory_pilot"
STUDIES = (P1_BETA_SWEEP, P1_LOGIT_NORM_GRID, P2_DECAY_SWEEP, P2_WARMUP, P3_TEMPERATURE_SWEEP,
           P3_LR_CONTROL, CONFIRMATORY_PILOT)
GROUP = ["dataset", "model"]
# Flags that change what a run's numbers mean (how long and how it trained): runs that differ in
# one are not pooled into one curve or one claim.
BUDGET_FLAGS = ("epochs", "optimizer", "batch_size", "lr_schedule", "weight_decay")
SCORE = "best/val/accuracy"


def completed(frame):
    return frame[frame["status"] == "completed"] if len(frame) else frame


def _temperature(runs):
    if runs.empty:
        return runs
    return runs[runs["loss"] == "temperature"]


def _of_study(runs, name, by_flags):
    """The runs that record study `name`, and those recording none that `by_flags` selects."""
    if runs.empty:
        return runs
    recorded = runs["study"].fillna("") if "study" in runs else pd.Series("", index=runs.index)
    chosen = by_flags(runs[recorded == ""])
    keep = (recorded == name) | runs.index.isin(chosen.index)
    return split_budgets(runs[keep])


def split_budgets(runs):
    """`runs` with each model that trained under several `BUDGET_FLAGS` settings on one dataset
    renamed per setting, e.g. `mlp (3 epochs)` and `mlp (30 epochs)`; others unchanged."""
    flags = [flag for flag in BUDGET_FLAGS if flag in runs]
    if runs.empty or not flags or not set(GROUP) <= set(runs):
        return runs
    renamed = runs["model"].copy()
    for _, group in runs.groupby(GROUP, dropna=False):
        varying = [flag for flag in flags if group[flag].nunique(dropna=False) > 1]
        if not varying:
            continue
        for index, run in group.iterrows():
            setting = ", ".join(_budget_text(flag, run[flag]) for flag in varying)
            renamed.loc[index] = f"{run['model']} ({setting})"
    return runs.assign(model=renamed)


def _budget_text(flag, value):
    if flag == "epochs":
        return f"{int(value)} epochs"
    if flag == "batch_size":
        return f"batch {int(value)}"
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"


def _p1_beta_by_flags(runs):
    selected = _temperature(runs)
    if selected.empty:
        return selected
    return selected[selected["init_logit_norm"].isna() & (selected["probe_dataset"] == "")]


def _p1_norm_by_flags(runs):
    selected = _temperature(runs)
    if selected.empty:
        return selected
    return selected[selected["init_logit_norm"].notna() & (selected["probe_dataset"] == "")]


def _p2_sweep_by_flags(runs):
    if runs.empty:
        return runs
    return runs[(runs["loss"] == "gradient_decay") & (runs["beta_schedule"] == "constant")]


def _p2_warmup_by_flags(runs):
    if runs.empty:
        return runs
    return runs[(runs["loss"] == "gradient_decay") & (runs["beta_schedule"] != "constant")]


def _p3_by_flags(runs):
    selected = _temperature(runs)
    if selected.empty:
        return selected
    return selected[selected["probe_dataset"] != ""]


def paper1_beta_sweep(runs):
    return _of_study(runs, P1_BETA_SWEEP, _p1_beta_by_flags)


def paper1_logit_norm_grid(runs):
    return _of_study(runs, P1_LOGIT_NORM_GRID, _p1_norm_by_flags)


def paper2_sweep(runs):
    return _of_study(runs, P2_DECAY_SWEEP, _p2_sweep_by_flags)


def paper2_warmup(runs):
    return _of_study(runs, P2_WARMUP, _p2_warmup_by_flags)


def paper3_sweep(runs):
    selected = _of_study(runs, P3_TEMPERATURE_SWEEP, _p3_by_flags).copy()
    if not selected.empty:
        selected["temperature"] = 1.0 / selected["beta"]
    return selected


def paper3_lr_control(runs):
    """Paper 3's control: the temperature sweep with the learning rate moving as T^2."""
    selected = _of_study(runs, P3_LR_CONTROL, lambda unrecorded: unrecorded.iloc[0:0]).copy()
    if not selected.empty:
        selected["temperature"] = 1.0 / selected["beta"]
    return selected


def best_learning_rate(runs, keys=("beta",), score=SCORE):
    """The runs at, for each `GROUP + keys` cell, the learning rate of best mean `score`.

    A diverged or failed run scores 0 for this choice, so a learning rate that diverges for
    some seeds is penalised rather than judged on its survivors. `learning_rate` is the rate a
    run trained at, so runs of several rate grids (`--lr_scaling`) pool per beta; a setting
    that two grids both trained counts once per seed (the first found).
    """
    if runs.empty:
        return runs
    keys = GROUP + list(keys)
    if "seed" in runs:
        runs = runs.drop_duplicates(subset=keys + ["learning_rate", "seed"])
    scored = runs.assign(_score=runs[score].where(runs["status"] == "completed", 0.0).fillna(0.0))
    means = scored.groupby(keys + ["learning_rate"], dropna=False)["_score"].mean().reset_index()
    best = means.loc[means.groupby(keys, dropna=False)["_score"].idxmax(),
                     keys + ["learning_rate"]]
    return runs.merge(best, on=keys + ["learning_rate"])
