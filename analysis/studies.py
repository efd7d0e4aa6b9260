"""Which runs belong to which paper's experiment, decided from their flags alone.

| study | runs |
| --- | --- |
| paper 1, beta sweep | temperature CE, no `--init_logit_norm`, no `--probe_dataset` |
| paper 1, (beta, `||beta z0||`) grid | temperature CE with `--init_logit_norm` |
| paper 2, gradient-decay sweep | gradient-decay CE with a constant beta |
| paper 2, warm-up | gradient-decay CE with a beta schedule |
| paper 3, temperature sweep | temperature CE with `--probe_dataset` (the transfer probe) |

Each selection keeps runs of any status; `completed` filters to finished ones. Where the
learning rate was searched too, `best_learning_rate` keeps, for each beta, the learning rate
with the best mean validation accuracy over seeds (paper 1 tunes it jointly with beta).
"""


GROUP = ["dataset", "model"]
SCORE = "best/val/accuracy"


def completed(frame):
    return frame[frame["status"] == "completed"] if len(frame) else frame


def _temperature(runs):
    if runs.empty:
        return runs
    return runs[runs["loss"] == "temperature"]


def paper1_beta_sweep(runs):
    selected = _temperature(runs)
    if selected.empty:
        return selected
    return selected[selected["init_logit_norm"].isna() & (selected["probe_dataset"] == "")]


def paper1_logit_norm_grid(runs):
    selected = _temperature(runs)
    if selected.empty:
        return selected
    return selected[selected["init_logit_norm"].notna() & (selected["probe_dataset"] == "")]


def paper2_sweep(runs):
    if runs.empty:
        return runs
    return runs[(runs["loss"] == "gradient_decay") & (runs["beta_schedule"] == "constant")]


def paper2_warmup(runs):
    if runs.empty:
        return runs
    return runs[(runs["loss"] == "gradient_decay") & (runs["beta_schedule"] != "constant")]


def paper3_sweep(runs):
    selected = _temperature(runs)
    if selected.empty:
        return selected
    selected = selected[selected["probe_dataset"] != ""].copy()
    selected["temperature"] = 1.0 / selected["beta"]
    return selected


def best_learning_rate(runs, keys=("beta",), score=SCORE):
    """The runs at, for each `GROUP + keys` cell, the learning rate of best mean `score`.

    A diverged or failed run scores 0 for this choice, so a learning rate that diverges for
    some seeds is penalised rather than judged on its survivors.
    """
    if runs.empty:
        return runs
    keys = GROUP + list(keys)
    scored = runs.assign(_score=runs[score].where(runs["status"] == "completed", 0.0).fillna(0.0))
    means = scored.groupby(keys + ["learning_rate"], dropna=False)["_score"].mean().reset_index()
    best = means.loc[means.groupby(keys, dropna=False)["_score"].idxmax(),
                     keys + ["learning_rate"]]
    return runs.merge(best, on=keys + ["learning_rate"])
