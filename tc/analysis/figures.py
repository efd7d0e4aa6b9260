"""The papers' figures from the tidy tables (matplotlib, PNG with an SVG beside it, written
atomically).

Every function takes DataFrames shaped by `tc.analysis.load` / `tc.analysis.studies`, draws one
figure with axes labelled in words and a legend, writes it to `path` (and `path` with `.svg`)
and returns `path`; it returns None and writes nothing when its table is empty. Beta and
temperature axes are logarithmic; epochs are integers; a log axis is used only for a quantity
that is positive in every point drawn. Error bars are the 95% Student's t interval of the mean
over the seeds (`ERROR_BARS`, the caption line the report prints under each figure), and the
seeds themselves are drawn as dots.
"""

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

plt.rcParams["figure.constrained_layout.use"] = True  # panels' labels never overlap
plt.rcParams["svg.hashsalt"] = "tc"  # the same figure gives the same SVG (no diff noise)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy import stats  # noqa: E402

from tc.analysis.load import over_seeds  # noqa: E402

ERROR_BARS = ("Error bars: 95% confidence interval of the mean over seeds (Student's t, n seeds "
              "per point); dots: the seeds.")
# The figures whose points are means over seeds with ERROR_BARS.
WITH_ERROR_BARS = ("p1_accuracy_vs_beta", "p2_calibration_vs_beta", "p3_rank_vs_temperature",
                   "p3_probe_vs_temperature")
# What the metrics.csv columns mean, for axis labels.
METRIC_LABELS = {"train/loss": "training loss", "train/accuracy": "training accuracy",
                 "train/nll": "training NLL (cross-entropy of softmax)",
                 "val/accuracy": "validation accuracy", "val/loss": "validation loss",
                 "test/accuracy": "test accuracy",
                 "train/logit_norm": "logit norm ||z|| (training batches)",
                 "train/beta_logit_norm": "scaled logit norm ||z / T|| (training batches)"}


def _save(figure, path):
    """Writes `figure` to `path` (PNG) and beside it as SVG, each atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    try:
        for target in (path, os.path.splitext(path)[0] + ".svg"):
            suffix = os.path.splitext(target)[1]
            descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                                                     suffix=suffix)
            os.close(descriptor)
            try:
                figure.savefig(temporary, dpi=110, bbox_inches="tight",
                               metadata={"Date": None} if suffix == ".svg" else None)
                os.replace(temporary, target)
                # The layout of the first format's draw holds for the second: not laid out again.
                figure.set_layout_engine("none")
            finally:
                if os.path.exists(temporary):
                    os.remove(temporary)
    finally:
        plt.close(figure)
    return path


def interval_half_width(std, count, confidence=0.95):
    """Half-width of the Student's t interval of a mean: t_{(1+c)/2, n-1} std / sqrt(n); 0 for
    one seed (no interval; the report says n)."""
    std, count = np.asarray(std, float), np.asarray(count, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        width = stats.t.ppf(0.5 + confidence / 2, count - 1) * std / np.sqrt(count)
    return np.where(count > 1, width, 0.0)


def _spread(axis, runs, x, value, label, marker="o", color=None):
    """Mean over seeds of `value` against `x` with its 95% t interval, the seeds as dots."""
    table = over_seeds(runs, [x], [value]).sort_values(x)
    error = interval_half_width(table[f"{value}/std"], table[f"{value}/count"])
    line = axis.errorbar(table[x], table[f"{value}/mean"], yerr=error,
                         marker=marker, capsize=3, label=label, color=color)
    axis.scatter(runs[x], runs[value], s=8, alpha=0.35, color=line[0].get_color())


def _label(metric):
    return METRIC_LABELS.get(metric, metric.replace("/", " "))


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
    """Paper 1: mean test accuracy over the (beta, ||beta z0||) grid, one panel per model and
    dataset. A cell names how many of its seeds diverged; one where all did is grey."""
    if grid_runs.empty or not (grid_runs["status"] == "completed").any():
        return None
    scopes = list(grid_runs.groupby(["dataset", "model"]))
    figure, axes = plt.subplots(1, len(scopes), figsize=(6.2 * len(scopes), 4.4), squeeze=False)
    for axis, ((dataset, model), runs) in zip(axes[0], scopes):
        completed = runs[runs["status"] == "completed"]
        betas = sorted(runs["beta"].unique())
        norms = sorted(runs["init_logit_norm"].unique())
        table = completed.pivot_table(index="init_logit_norm", columns="beta",
                                      values="final/test/accuracy", aggfunc="mean"
                                      ).reindex(index=norms, columns=betas)
        diverged = (runs["status"] == "diverged").groupby(
            [runs["init_logit_norm"], runs["beta"]]).agg(["sum", "size"])
        axis.set_facecolor("0.85")
        image = axis.imshow(np.ma.masked_invalid(table.values), origin="lower", cmap="viridis",
                            aspect="auto", **heatmap_range(table.values))
        axis.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
        axis.set_yticks(range(len(norms)), [f"{n:g}" for n in norms])
        for (row, column), value in np.ndenumerate(table.values):
            count, total = diverged.loc[(norms[row], betas[column])]
            if not np.isfinite(value):
                axis.text(column, row, "diverged" if count else "no fit run", ha="center",
                          va="center", fontsize=8, color="0.25")
                continue
            text = f"{value:.3f}" + (f"\n{count}/{total} diverged" if count else "")
            axis.text(column, row, text, ha="center", va="center", fontsize=8,
                      color=contrasting_text_colour(image.cmap(image.norm(value))))
        axis.set(xlabel="inverse temperature beta", ylabel="initial logit norm ||beta z0||",
                 title=f"{model} on {dataset}")
        figure.colorbar(image, ax=axis, label="mean test accuracy over seeds")
    figure.suptitle("Paper 1: test accuracy over beta and ||beta z0||")
    return _save(figure, path)


def heatmap_range(values, span=0.10):
    """`vmin` and `vmax` of a heatmap of accuracies: the best cell down to `span` below it, so
    one diverged cell (accuracy 0.1) does not flatten the differences that matter; cells below
    are drawn at the bottom colour and keep their number. The range stays inside [0, 1], and a
    grid whose cells are all equal (one cell) still spans `span`."""
    finite = np.asarray(values, float)[np.isfinite(values)]
    if finite.size == 0:
        return {}
    top = min(float(finite.max()), 1.0)
    bottom = max(float(finite.min()), top - span)
    if bottom >= top:  # every cell equal
        bottom = top - span
    if bottom < 0.0:
        bottom, top = 0.0, max(top, span)
    return {"vmin": bottom, "vmax": top}


def contrasting_text_colour(rgba):
    """Black on a light cell, white on a dark one (relative luminance, ITU-R BT.709)."""
    red, green, blue = rgba[:3]
    return "black" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.5 else "white"


def training_curves(epochs, runs, path, label_key, metrics, title, label_format="{}"):
    """Curves of `metrics` against epoch for each run in `runs` (one line per run), one row of
    panels per model and dataset."""
    if runs.empty or epochs.empty:
        return None
    scopes = list(runs.groupby(["dataset", "model"]))
    figure, axes = plt.subplots(len(scopes), len(metrics),
                                figsize=(5 * len(metrics), 3.6 * len(scopes)), squeeze=False)
    for row, ((dataset, model), group) in zip(axes, scopes):
        for _, run in group.sort_values(label_key).iterrows():
            curve = epochs[epochs["run_dir"] == run["run_dir"]].sort_values("epoch")
            for axis, metric in zip(row, metrics):
                if metric in curve:
                    axis.plot(curve["epoch"], curve[metric],
                              label=label_format.format(run[label_key]))
        for axis, metric in zip(row, metrics):
            axis.set(xlabel="epoch", ylabel=_label(metric), title=f"{model} on {dataset}")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            drawn = np.concatenate([line.get_ydata() for line in axis.get_lines()] or [[]])
            if ("loss" in metric or "norm" in metric or "nll" in metric) and drawn.size and (
                    np.nanmin(drawn) > 0):
                axis.set_yscale("log")
        row[0].legend(fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)


def calibration_vs_beta(sweep_runs, scaling, path):
    """Paper 2: ECE, MCE and accuracy against gradient-decay beta; temperature scaling's ECE."""
    runs = sweep_runs[sweep_runs["status"] == "completed"]
    if runs.empty:
        return None
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for (dataset, model), group in _groups(runs):
        scope = f"{model} on {dataset}"
        fitted = (scaling[scaling["run_dir"].isin(group["run_dir"])]
                  if scaling is not None and not scaling.empty else None)
        for axis, column, scaled in ((axes[0], "final/test/ece", "ece_after"),
                                     (axes[1], "final/test/mce", "mce_after")):
            _spread(axis, group, "beta", column, f"{scope}, trained with beta")
            if fitted is not None and not fitted.empty:
                _spread(axis, fitted, "beta", scaled, f"{scope}, + temperature scaling",
                        marker="s")
        _spread(axes[2], group, "beta", "final/test/accuracy", scope)
    for axis, name in zip(axes, ("test ECE (15 bins)", "test MCE (15 bins)", "test accuracy")):
        axis.set(xscale="log", xlabel="gradient-decay beta", ylabel=name)
        axis.axvline(1.0, color="gray", lw=0.8, ls=":")
        axis.legend(fontsize=8)
    figure.suptitle("Paper 2: calibration and accuracy vs gradient-decay beta")
    return _save(figure, path)


def reliability_diagrams(panels, path, num_bins=15):
    """Reliability diagrams: `panels` is a list of `(title, tc.calibration.reliability_bins
    dict, ECE)`; each bar carries its count, each title its ECE."""
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for axis, (title, bins, ece) in zip(axes[0], panels):
        centers = 0.5 * (bins["edges"][1:] + bins["edges"][:-1])
        filled = bins["count"] > 0
        bars = axis.bar(centers[filled], bins["accuracy"][filled], width=1.0 / num_bins,
                        edgecolor="black", alpha=0.7, label="accuracy in the bin")
        axis.bar_label(bars, labels=[f"{int(n)}" for n in bins["count"][filled]], fontsize=6,
                       padding=1)
        axis.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
        axis.plot(centers[filled], bins["confidence"][filled], "r.", label="mean confidence")
        axis.set(xlim=(0, 1), ylim=(0, 1.08), xlabel="confidence (max softmax probability)",
                 ylabel="accuracy", title=f"{title}\nECE = {ece:.4f}")
        axis.legend(fontsize=7, loc="upper left")
    figure.suptitle("Paper 2: reliability diagrams (test set, seed 0; the number over a bar "
                    "counts its examples)")
    return _save(figure, path)


def rank_vs_temperature(sweep_runs, layers, path):
    """Paper 3: final numerical and effective rank per layer against temperature; one row of
    panels per model and dataset, its layers in the network's order (`--track_rank_layers`)."""
    runs = sweep_runs[sweep_runs["status"] == "completed"]
    if runs.empty or not layers:
        return None
    scopes = [(cell, group) for cell, group in _groups(runs)
              if any(group[f"final/rank/{layer}/numerical"].notna().any()
                     for layer in layers if f"final/rank/{layer}/numerical" in group)]
    if not scopes:
        return None
    figure, axes = plt.subplots(len(scopes), 2, figsize=(11, 4 * len(scopes)), squeeze=False)
    for row, ((dataset, model), group) in zip(axes, scopes):
        for layer in _network_order(group, layers):
            for axis, kind in zip(row, ("numerical", "effective")):
                column = f"final/rank/{layer}/{kind}"
                if column in group and group[column].notna().any():
                    _spread(axis, group[group[column].notna()], "temperature", column, layer)
        for axis, kind in zip(row, ("numerical", "effective")):
            axis.set(xscale="log", xlabel="temperature T = 1 / beta", ylabel=f"{kind} rank",
                     title=f"{model} on {dataset}\n{kind} rank of each layer (test inputs)")
            axis.legend(fontsize=8, title="layer (input to output)")
    figure.suptitle("Paper 3: rank of the learned representations vs temperature")
    return _save(figure, path)


def _network_order(runs, layers):
    """`layers` in the order the runs tracked them (`--track_rank_layers`), others after."""
    tracked = []
    if "track_rank_layers" in runs:
        for value in runs["track_rank_layers"].dropna().astype(str):
            tracked += [name for name in value.split(",") if name and name not in tracked]
    return [name for name in tracked if name in layers] + [
        name for name in layers if name not in tracked]


def probe_vs_temperature(sweep_runs, path):
    """Paper 3: linear-probe accuracy on the other task, and test accuracy, against T."""
    runs = sweep_runs[sweep_runs["status"] == "completed"]
    if runs.empty or runs["probe/accuracy"].isna().all():
        return None
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for (dataset, model), group in _groups(runs):
        if group["probe/accuracy"].isna().all():
            continue
        probe_name = group["probe/dataset"].dropna().iloc[0]
        line = axis.get_lines()
        _spread(axis, group, "temperature", "probe/accuracy",
                f"{model} on {dataset}: linear probe on {probe_name}")
        colour = axis.get_lines()[len(line)].get_color()
        _spread(axis, group, "temperature", "final/test/accuracy",
                f"{model} on {dataset}: test accuracy", marker="s", color=colour)
    axis.set(xscale="log", xlabel="temperature T = 1 / beta", ylabel="accuracy",
             title="Paper 3: transfer of frozen features vs temperature")
    axis.legend(fontsize=8)
    return _save(figure, path)
