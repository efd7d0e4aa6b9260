"""The papers' figures from the tidy tables (matplotlib, PNG, written atomically).

Every function takes DataFrames shaped by `analysis.load` / `analysis.studies`, draws one
figure with labelled axes and a legend, writes it to `path` and returns `path`; it returns None
and writes nothing when its table is empty. Beta and temperature axes are logarithmic; error
bars are one standard deviation over seeds, and the seeds themselves are drawn as dots.
"""

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

plt.rcParams["figure.constrained_layout.use"] = True  # panels' labels never overlap
import numpy as np  # noqa: E402

from analysis.load import over_seeds  # noqa: E402


def _save(figure, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".png")
    os.close(descriptor)
    try:
        figure.savefig(temporary, dpi=110, bbox_inches="tight")
        os.replace(temporary, path)
    finally:
        plt.close(figure)
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _spread(axis, runs, x, value, label, marker="o", color=None):
    """Mean +- std over seeds of `value` against `x`, with the seeds as dots."""
    table = over_seeds(runs, [x], [value]).sort_values(x)
    line = axis.errorbar(table[x], table[f"{value}/mean"], yerr=table[f"{value}/std"],
                         marker=marker, capsize=3, label=label, color=color)
    axis.scatter(runs[x], runs[value], s=8, alpha=0.35, color=line[0].get_color())


def _groups(runs):
    return runs.groupby(["dataset", "model"], dropna=False)


def accuracy_vs_beta(best_runs, path):
    """Paper 1: test accuracy against beta (learning rate tuned per beta), per architecture."""
    runs = best_runs[best_runs["status"] == "completed"]
    if runs.empty:
        return None
    figure, axis = plt.subplots(figsize=(6, 4))
    for (dataset, model), group in _groups(runs):
        _spread(axis, group, "beta", "final/test/accuracy", f"{model} on {dataset}")
    axis.axvline(1.0, color="gray", lw=0.8, ls=":", label="beta = 1")
    axis.set(xscale="log", xlabel="inverse temperature beta",
             ylabel="test accuracy (final epoch)",
             title="Paper 1: accuracy vs beta, learning rate tuned per beta")
    axis.legend()
    return _save(figure, path)


def beta_logit_norm_heatmap(grid_runs, path):
    """Paper 1: mean test accuracy over the (beta, ||beta z0||) grid."""
    runs = grid_runs[grid_runs["status"] == "completed"]
    if runs.empty:
        return None
    table = runs.pivot_table(index="init_logit_norm", columns="beta",
                             values="final/test/accuracy", aggfunc="mean")
    figure, axis = plt.subplots(figsize=(6, 4))
    image = axis.imshow(table.values, origin="lower", cmap="viridis", aspect="auto")
    axis.set_xticks(range(len(table.columns)), [f"{b:g}" for b in table.columns])
    axis.set_yticks(range(len(table.index)), [f"{n:g}" for n in table.index])
    for (row, column), value in np.ndenumerate(table.values):
        if np.isfinite(value):
            axis.text(column, row, f"{value:.3f}", ha="center", va="center", color="white",
                      fontsize=8)
    axis.set(xlabel="inverse temperature beta", ylabel="initial logit norm ||beta z0||",
             title="Paper 1: test accuracy over beta and ||beta z0||")
    figure.colorbar(image, ax=axis, label="mean test accuracy over seeds")
    return _save(figure, path)


def training_curves(epochs, runs, path, label_key, metrics, title, label_format="{}"):
    """Curves of `metrics` against epoch for each run in `runs` (one line per run)."""
    if runs.empty or epochs.empty:
        return None
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8))
    axes = np.atleast_1d(axes)
    for _, run in runs.sort_values(label_key).iterrows():
        curve = epochs[epochs["run_dir"] == run["run_dir"]].sort_values("epoch")
        label = label_format.format(run[label_key])
        for axis, metric in zip(axes, metrics):
            if metric in curve:
                axis.plot(curve["epoch"], curve[metric], label=label)
    for axis, metric in zip(axes, metrics):
        axis.set(xlabel="epoch", ylabel=metric)
        if "loss" in metric or "norm" in metric:
            axis.set_yscale("log")
    axes[0].legend(fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)


def calibration_vs_beta(sweep_runs, scaling, path):
    """Paper 2: ECE, MCE and accuracy against gradient-decay beta; temperature scaling's ECE."""
    runs = sweep_runs[sweep_runs["status"] == "completed"]
    if runs.empty:
        return None
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    _spread(axes[0], runs, "beta", "final/test/ece", "trained with beta")
    if scaling is not None and not scaling.empty:
        _spread(axes[0], scaling, "beta", "ece_after", "+ temperature scaling", marker="s")
    _spread(axes[1], runs, "beta", "final/test/mce", "trained with beta")
    if scaling is not None and not scaling.empty:
        _spread(axes[1], scaling, "beta", "mce_after", "+ temperature scaling", marker="s")
    _spread(axes[2], runs, "beta", "final/test/accuracy", "test accuracy")
    for axis, name in zip(axes, ("test ECE (15 bins)", "test MCE (15 bins)", "test accuracy")):
        axis.set(xscale="log", xlabel="gradient-decay beta", ylabel=name)
        axis.axvline(1.0, color="gray", lw=0.8, ls=":")
        axis.legend(fontsize=8)
    figure.suptitle("Paper 2: calibration and accuracy vs gradient-decay beta")
    return _save(figure, path)


def reliability_diagrams(panels, path, num_bins=15):
    """Reliability diagrams: `panels` is a list of `(title, reliability_bins dict)`."""
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for axis, (title, bins) in zip(axes[0], panels):
        centers = 0.5 * (bins["edges"][1:] + bins["edges"][:-1])
        filled = bins["count"] > 0
        axis.bar(centers[filled], bins["accuracy"][filled], width=1.0 / num_bins,
                 edgecolor="black", alpha=0.7, label="accuracy")
        axis.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
        axis.plot(centers[filled], bins["confidence"][filled], "r.", label="mean confidence")
        axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
        axis.legend(fontsize=7, loc="upper left")
    figure.suptitle("Paper 2: reliability diagrams (test set, seed 0)")
    return _save(figure, path)


def rank_vs_temperature(sweep_runs, layers, path):
    """Paper 3: final numerical and effective rank per layer against temperature."""
    runs = sweep_runs[sweep_runs["status"] == "completed"]
    if runs.empty or not layers:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for layer in layers:
        for axis, kind in zip(axes, ("numerical", "effective")):
            column = f"final/rank/{layer}/{kind}"
            if column in runs:
                _spread(axis, runs, "temperature", column, layer)
    for axis, kind in zip(axes, ("numerical", "effective")):
        axis.set(xscale="log", xlabel="temperature T = 1 / beta", ylabel=f"{kind} rank",
                 title=f"{kind} rank of each layer (test probe set)")
        axis.legend(fontsize=8)
    figure.suptitle("Paper 3: rank of the learned representations vs temperature")
    return _save(figure, path)


def probe_vs_temperature(sweep_runs, path):
    """Paper 3: linear-probe accuracy on the other task, and test accuracy, against T."""
    runs = sweep_runs[sweep_runs["status"] == "completed"]
    if runs.empty or runs["probe/accuracy"].isna().all():
        return None
    figure, axis = plt.subplots(figsize=(6, 4))
    probe_name = runs["probe/dataset"].dropna().iloc[0]
    _spread(axis, runs, "temperature", "probe/accuracy", f"linear probe on {probe_name}")
    _spread(axis, runs, "temperature", "final/test/accuracy", "in-distribution test accuracy",
            marker="s")
    axis.set(xscale="log", xlabel="temperature T = 1 / beta", ylabel="accuracy",
             title="Paper 3: transfer of frozen features vs temperature")
    axis.legend(fontsize=8)
    return _save(figure, path)
