"""`python -m tc.analysis.report --runs DIR [--out DIR]` (the command `tc-report`): the
reproduction report of a folder of runs.

Loads every run and tuner directory under `--runs` (see `tc.analysis.load`), then writes to
`--out` (default `./tc_report`):

    REPORT.md     each paper's claims with a verdict and the numbers, beside the figures
    SUMMARY.md    the verdicts alone, a table per dataset (what the README shows)
    figures/      the papers' figures (PNG)
    tables/       every table the report quotes, as CSV (runs.csv has one row per run)

It also runs the derivation checks of `tc.analysis.derivations` (about 20 s), and estimates how
long the full-scale flagfiles under `--flagfiles` take on one GPU from the throughput measured
in `--throughput` (a JSON file of images per second per model; left out when it is missing).
A run with missing or corrupt files is listed under "Skipped runs" and does not stop the report.

The report says only what its runs say. Text about how a campaign was run comes from the files
given with `--notes` and `--plan`; this repository's own report is
`python -m tc.analysis.report --flagfile=runs/report.cfg`. Within each study, runs of one model
and dataset that differ in their training budget or recipe (`BUDGET_FLAGS`) are never pooled:
each budget is a scope of its own, named after it (for example `mlp (30 epochs) on digits`).
"""

import dataclasses
import glob
import json
import os

import numpy as np
import pandas as pd
from absl import flags

from tc.analysis import claims as claims_lib
from tc.analysis import confirmatory, confirmatory_values, derivations, figures, load, studies
from tc.analysis.scaling import temperature_scaling_table
from tc.analysis.summary import markdown_table, results_summary
from tc import calibration, run_files
from tc.runner import command_line

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("runs", None, "Run or tuner directories to read (repeat the flag for "
                          "several); required.")
flags.DEFINE_string("out", "tc_report", "Where REPORT.md, figures/ and tables/ go.")
flags.DEFINE_string("notes", "", "A markdown file of notes on these runs (how they were made, "
                    "what they are evidence of) that the report prints after its introduction "
                    "('' = none).")
flags.DEFINE_string("plan", "", "The campaign plan whose changes and chunk log the report lists "
                    "('' = none); its log is LOG.md beside the campaign's results.")
flags.DEFINE_string("flagfiles", "", "Folder of full-scale flagfiles to estimate GPU time for "
                    "('' = skip); its cpu/ subfolder and campaign folders (with a PLAN.md) are "
                    "left out.")
flags.DEFINE_list("throughput", [], "tc.bench JSON files of measured training images/s per "
                  "model on one GPU, for the time estimates (missing files are skipped).")
flags.DEFINE_string("short_budget_claims", "", "The first campaign's claims.csv, whose verdicts "
                    "the confirmatory table shows beside each primary test ('' = none).")
flags.DEFINE_integer("num_bins", 15, "Bins of the reliability diagrams and ECE/MCE.",
                     lower_bound=2)
flags.mark_flag_as_required("runs")

# --- tables ------------------------------------------------------------------------------------


def seed_summary(table):
    """An `over_seeds` table for reading: each value as `mean ± std (n)` in one column."""
    if table.empty:
        return table
    display = pd.DataFrame()
    for column in table.columns:
        if column.endswith("/mean"):
            value = column[:-len("/mean")]
            display[value] = [
                "" if pd.isna(m) else f"{m:.4g} ± {s:.2g} ({int(n)})"
                for m, s, n in zip(table[column], table[f"{value}/std"], table[f"{value}/count"])]
        elif not column.endswith(("/std", "/count")):
            display[column] = table[column]
    return display


def reliability_panels(sweep, scaling, num_bins):
    """Seed-0 reliability diagrams at the smallest beta, beta = 1 and the largest beta, and
    beta = 1 after temperature scaling."""
    sweep = studies.completed(sweep)
    sweep = sweep[sweep["predictions"].notna()]
    if sweep.empty:
        return []
    # The scope with the largest test set: its bins hold the most examples.
    scopes = {cell: group for cell, group in sweep.groupby(studies.GROUP)}
    largest = max(scopes, key=lambda cell: len(np.load(scopes[cell].iloc[0]["predictions"])[
        "test_labels"]))
    sweep = scopes[largest]
    scope = f"{largest[1]} on {largest[0]}"
    first_seed = sweep[sweep["seed"] == sweep["seed"].min()]
    panels = []
    for beta in sorted({first_seed["beta"].min(), 1.0, first_seed["beta"].max()}):
        run = first_seed[np.isclose(first_seed["beta"], beta)]
        if run.empty:
            continue
        arrays = np.load(run.iloc[0]["predictions"])
        labels = arrays["test_labels"]
        panels.append(_panel(f"{scope}, beta = {beta:g}",
                             calibration.softmax(arrays["test_logits"]), labels, num_bins))
        if beta == 1.0 and not scaling.empty:
            fitted = scaling[scaling["run_dir"] == run.iloc[0]["run_dir"]]
            if not fitted.empty:
                temperature = fitted.iloc[0]["temperature"]
                panels.append(_panel(f"{scope}, beta = 1, temperature-scaled "
                                     f"(T = {temperature:.2f})",
                                     calibration.softmax(arrays["test_logits"], temperature),
                                     labels, num_bins))
    return panels


def _panel(title, probabilities, labels, num_bins):
    ece, _ = calibration.calibration_errors(probabilities, labels, num_bins)
    return title, calibration.reliability_bins(probabilities, labels, num_bins), ece


def first_seed_runs(runs, keep=None):
    runs = studies.completed(runs)
    if runs.empty:
        return runs
    runs = runs[runs["seed"] == runs["seed"].min()]
    return runs if keep is None else runs[runs["beta"].isin(keep)]


# --- full-scale time estimates -----------------------------------------------------------------


def measured_throughput(paths):
    """`{model: images/s}` and `{model: MFU}` from `tc.bench` JSON files (later files win)."""
    speeds, utilisation = {}, {}
    for path in paths or ():
        if not path or not os.path.exists(path):
            continue
        with open(path) as handle:
            payload = json.load(handle)
        for row in payload.get("models", []):
            speeds[row["model"]] = row.get("images_per_second")
            utilisation[row["model"]] = row.get("mfu")
    return speeds, utilisation


def full_scale_estimates(flagfile_root, throughput_paths):
    """One row per full-scale flagfile: runs, epochs, examples, and GPU hours when measured."""
    from tc.data import tfds_source

    if not flagfile_root or not os.path.isdir(flagfile_root):
        return pd.DataFrame()
    measured, utilisation = measured_throughput(throughput_paths)
    rows = []
    for path in sorted(glob.glob(os.path.join(flagfile_root, "*", "*.cfg"))):
        folder = os.path.dirname(path)
        if os.path.basename(folder) == "cpu" or os.path.exists(os.path.join(folder, "PLAN.md")):
            continue  # run at CPU scale, or a campaign's, whose PLAN.md states its GPU time
        with open(path) as handle:
            text = handle.read()
        values = run_files.flag_values(text, bare_booleans=True)
        tune = text.startswith("# python -m tc.tune")
        count = 1
        if tune:
            count = int(values.get("grid_points", 7)) * int(values.get("executions_per_trial", 1))
            if run_files.parse_bool(values.get("tune_learning_rate", "false")):
                count *= int(values.get("lr_grid_points", 4))
            norms = [n for n in values.get("init_logit_norms", "").split(",") if n]
            count *= max(len(norms), 1)
        dataset, model = values.get("dataset", ""), values.get("model", "")
        table = tfds_source.TABLES.get(dataset)
        examples = table.sizes["train"] - table.default_validation_size if table else None
        epochs = int(values.get("epochs", 30))
        speed = measured.get(model)
        hours = (count * epochs * examples / speed / 3600) if speed and examples else None
        rows.append({"flagfile": os.path.relpath(path, os.path.dirname(flagfile_root) or "."),
                     "model": model, "dataset": dataset, "runs": count, "epochs": epochs,
                     "train examples": examples, "measured img/s": speed,
                     "MFU": utilisation.get(model), "GPU hours (estimate)": hours})
    return pd.DataFrame(rows)


# --- the report ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Report:
    markdown: str
    figures: dict
    claims: pd.DataFrame
    results: load.Results


def campaign_section(plan_path, run_roots):
    """The campaign's plan, its changes after data (verbatim from the plan) and its chunk log."""
    if not plan_path or not os.path.exists(plan_path):
        return ""
    with open(plan_path) as handle:
        plan = handle.read()
    changes = plan.split("## Changes", 1)[1].strip() if "## Changes" in plan else "None."
    title = plan.splitlines()[0].lstrip("# ").split(":")[0].strip() if plan.strip() else ""
    logs = [os.path.join(root, "LOG.md") for root in run_roots
            if os.path.exists(os.path.join(root, "LOG.md"))]
    log_text = ""
    for path in logs:
        with open(path) as handle:
            log_text += handle.read()
    return "\n".join([
        f"## {title or 'The campaign'}\n",
        f"The plan of these runs is `{plan_path}`. Changes made to it after seeing data, as the "
        "plan records them:\n",
        changes + "\n",
        "Each program of the campaign, as the chunk runner logged it (exit 3: a copy diverged; "
        "124: stopped at the chunk's budget and discarded):\n",
        log_text or "No chunk has run.\n"])


def confirmatory_family(runs, epochs, scaling, short_budget_claims=""):
    """The confirmatory family judged on `runs` (`tc.analysis.confirmatory_values`): its rows,
    one per primary test and architecture (with the first campaign's verdict from the claims.csv
    at `short_budget_claims` beside each), and the runs its fit filter excluded. Both are empty
    when no run belongs to the campaign."""
    if not confirmatory_values.has_campaign(runs):
        return pd.DataFrame(), pd.DataFrame()
    per_seed, excluded = confirmatory_values.per_seed_values(runs, epochs, scaling)
    short_budget = {}
    if short_budget_claims:
        short_budget = confirmatory_values.short_budget_verdicts(
            pd.read_csv(short_budget_claims, keep_default_na=False))
    rows = pd.DataFrame(confirmatory.judge_family(per_seed, excluded))
    rows["short_budget"] = [short_budget.get(key, "-")
                            for key in zip(rows["id"], rows["architecture"])]
    excluded_rows = pd.DataFrame(
        [{"id": test_id, "architecture": architecture, "run_dir": run_dir,
          "train_eval_accuracy": fit}
         for (test_id, architecture), runs_out in excluded.items() for run_dir, fit in runs_out],
        columns=["id", "architecture", "run_dir", "train_eval_accuracy"])
    return rows, excluded_rows


def _confirmatory_section(rows, excluded):
    if rows.empty:
        return ""
    short_budget = dict(zip(zip(rows["id"], rows["architecture"]), rows["short_budget"]))
    records = rows.drop(columns="short_budget").to_dict("records")
    return "\n".join([
        "## The confirmatory family (pre-registered)\n",
        f"The primary tests of `runs/confirmatory/PLAN.md`, one per claim and architecture "
        f"({confirmatory.family_size()} in all), judged by the rules committed before the "
        "campaign's first run (`tc/analysis/confirmatory.py`, `confirmatory_values.py`): each "
        f"p-value one-sided (equivalence: TOST within +-{confirmatory.EQUIVALENCE_MARGIN:g}), "
        f"all adjusted together with Holm's correction at alpha {confirmatory.ALPHA:g}; a test "
        f"with fewer than {confirmatory.MIN_SEEDS} seeds left after the fit filter (un-augmented "
        f"training accuracy at least {confirmatory.FIT_THRESHOLD:g}) is not run and counts as "
        "p = 1. *80% power at*: the smallest true effect the test detects with 80% power at "
        "Holm's strictest level. The last column is the first campaign's exploratory verdict "
        "of the same claim at its short training budget.\n",
        confirmatory.family_table(records, short_budget),
        "Runs the fit filter excluded:\n",
        markdown_table(excluded) if len(excluded) else "None.\n"])


def _study_runs(runs):
    """Each study's runs (`tc.analysis.studies`): the sweeps, grids and warm-ups, and the
    layers whose rank the temperature sweep tracked."""
    p1_sweep, p3_sweep = studies.paper1_beta_sweep(runs), studies.paper3_sweep(runs)
    return {"p1_sweep": p1_sweep, "p1_best": studies.best_learning_rate(p1_sweep),
            "p1_grid": studies.paper1_logit_norm_grid(runs),
            "p2_sweep": studies.paper2_sweep(runs), "p2_warmup": studies.paper2_warmup(runs),
            "p3_sweep": p3_sweep,
            "p3_layers": (claims_lib.rank_layers(studies.completed(p3_sweep))
                          if not p3_sweep.empty else [])}


def _tables(study, scaling, flagfile_root, throughput_paths):
    """The report's tables of numbers, by name (each written to tables/<name>.csv)."""
    def seeds_table(frame, keys, values):
        frame = studies.completed(frame)
        values = [v for v in values if v in frame]
        return (load.over_seeds(frame, studies.GROUP + keys, values)
                if not frame.empty and values else pd.DataFrame())

    p3_sweep, layers = study["p3_sweep"], study["p3_layers"]
    return {
        "p1_beta_sweep": seeds_table(study["p1_best"], ["beta", "learning_rate"],
                                     ["best/val/accuracy", "final/test/accuracy"]),
        "p1_all_learning_rates": seeds_table(study["p1_sweep"], ["beta", "learning_rate"],
                                             ["final/test/accuracy"]),
        "p1_logit_norm_grid": seeds_table(study["p1_grid"], ["beta", "init_logit_norm"],
                                          ["final/test/accuracy"]),
        "p2_sweep": seeds_table(study["p2_sweep"], ["beta"], [
            "final/test/accuracy", "final/test/ece", "final/test/mce", "final/train/accuracy"]),
        "p2_temperature_scaling": (load.over_seeds(scaling, studies.GROUP + ["beta"], [
            "temperature", "ece_before", "ece_after", "mce_before", "mce_after"])
            if not scaling.empty else pd.DataFrame()),
        "p3_sweep": seeds_table(p3_sweep, ["temperature"],
                                ["final/test/accuracy", "probe/accuracy"]
                                + [f"final/rank/{layer}/{kind}" for layer in layers
                                   for kind in ("effective", "numerical")]),
        "full_scale": full_scale_estimates(flagfile_root, throughput_paths),
    }


def _figure_drawers(study, epochs, scaling, num_bins):
    """`{figure name: draw(path)}` of the report's figures, in the report's order."""
    p1_best, p2_sweep, p2_warmup = study["p1_best"], study["p2_sweep"], study["p2_warmup"]
    p3_sweep = study["p3_sweep"]
    small_large = None
    if not p2_sweep.empty:
        small_large = [p2_sweep["beta"].min(), 1.0, p2_sweep["beta"].max()]
    p2_curves = pd.concat([first_seed_runs(p2_sweep, small_large),
                           first_seed_runs(p2_warmup)]) if not p2_sweep.empty else p2_warmup
    if not p2_curves.empty:
        p2_curves = p2_curves.assign(curve=[
            f"warm-up {r.beta_start:g} -> {r.beta:g}" if r.beta_schedule != "constant"
            else f"beta = {r.beta:g}" for r in p2_curves.itertuples()])
    # At most 5 betas in the training curves (every second one of a longer sweep), named.
    p1_betas = sorted(p1_best["beta"].unique()) if not p1_best.empty else []
    p1_curve_betas = p1_betas[::2] if len(p1_betas) > 5 else p1_betas
    p1_curve_title = "Paper 1: training curves, each beta at its best learning rate (seed 0)"
    if len(p1_curve_betas) < len(p1_betas):
        p1_curve_title += ("\nevery second beta of the sweep: "
                           + ", ".join(f"{beta:g}" for beta in p1_curve_betas))
    layers = study["p3_layers"]
    p3_curves = (first_seed_runs(p3_sweep).assign(temperature=lambda f: 1.0 / f["beta"])
                 if not p3_sweep.empty else p3_sweep)
    return {
        "p1_accuracy_vs_beta": lambda path: figures.accuracy_vs_beta(p1_best, path),
        "p1_beta_logit_norm_heatmap": lambda path: figures.beta_logit_norm_heatmap(
            study["p1_grid"], path),
        "p1_training_curves": lambda path: figures.training_curves(
            epochs, first_seed_runs(p1_best, p1_curve_betas), path, "beta",
            ("train/loss", "val/accuracy"), p1_curve_title, "beta = {:g}"),
        "p2_calibration_vs_beta": lambda path: figures.calibration_vs_beta(
            p2_sweep, scaling, path),
        "p2_reliability_diagrams": lambda path: figures.reliability_diagrams(
            reliability_panels(p2_sweep, scaling, num_bins), path, num_bins),
        "p2_training_curves": lambda path: figures.training_curves(
            epochs, p2_curves, path, "curve", ("train/accuracy", "train/nll"),
            "Paper 2: training curves for small and large beta and the warm-up (seed 0; NLL, "
            "not the gradient-decay loss, which differs between betas)"),
        "p3_rank_vs_temperature": lambda path: figures.rank_vs_temperature(
            p3_sweep, layers, path),
        "p3_logit_norm_curves": lambda path: figures.training_curves(
            epochs, p3_curves, path, "temperature",
            ("train/logit_norm", "train/beta_logit_norm"),
            "Paper 3: logit norms ||z|| and ||z / T|| during training (seed 0)", "T = {:g}"),
        "p3_probe_vs_temperature": lambda path: figures.probe_vs_temperature(p3_sweep, path),
    }


# The columns of an empty runs table, so that a report on no runs draws its empty sections.
_EMPTY_RUNS = ["status", "loss", "beta", "init_logit_norm", "probe_dataset", "beta_schedule",
               "seed", "dataset", "model", "learning_rate", "run_dir", "predictions",
               "probe/accuracy", "probe/dataset"]


def build(run_roots, out, flagfile_root="", throughput_paths=(), num_bins=15, plan_path="",
          notes_path="", short_budget_claims=""):
    """Writes the report, figures and tables under `out`; returns the `Report`.

    Raises:
        FileNotFoundError: a folder of `run_roots`, or `notes_path`, does not exist.
    """
    results = load.load(run_roots)
    notes = ""
    if notes_path:
        with open(notes_path) as handle:
            notes = handle.read().strip() + "\n"
    epochs = results.epochs
    runs = results.runs if not results.runs.empty else pd.DataFrame(columns=_EMPTY_RUNS)
    tables_dir, figures_dir = os.path.join(out, "tables"), os.path.join(out, "figures")
    os.makedirs(tables_dir, exist_ok=True)
    checks = derivations.run_all()
    study = _study_runs(runs)
    scaling = temperature_scaling_table(study["p2_sweep"], num_bins)
    tables = _tables(study, scaling, flagfile_root, throughput_paths)
    made = {name: draw(os.path.join(figures_dir, f"{name}.png"))
            for name, draw in _figure_drawers(study, epochs, scaling, num_bins).items()}
    claim_rows = (claims_lib.paper1(runs, checks) + claims_lib.paper2(runs, epochs, scaling)
                  + claims_lib.paper3(runs))
    claim_table = pd.DataFrame([dataclasses.asdict(c) for c in claim_rows])
    tables["claims"] = claim_table
    tables["derivations"] = claims_lib.derivations(checks)
    tables["confirmatory"], tables["confirmatory_excluded"] = confirmatory_family(
        runs, epochs, scaling, short_budget_claims)
    for name, frame in tables.items():
        if not frame.empty:
            run_files.atomic_write_text(os.path.join(tables_dir, f"{name}.csv"),
                                        frame.to_csv(index=False))
    if not results.runs.empty:
        run_files.atomic_write_text(os.path.join(tables_dir, "runs.csv"),
                                    results.runs.to_csv(index=False))
    confirmatory_text = _confirmatory_section(tables["confirmatory"],
                                              tables["confirmatory_excluded"])
    markdown = _markdown(run_roots, out, results, tables, made, claim_table, study,
                         confirmatory_text + campaign_section(plan_path, run_roots), notes)
    run_files.atomic_write_text(os.path.join(out, "REPORT.md"), markdown)
    run_files.atomic_write_text(os.path.join(out, "SUMMARY.md"),
                                confirmatory_text + results_summary(claim_table))
    return Report(markdown, made, claim_table, results)


def _figure(made, name, out):
    path = made.get(name)
    if not path:
        return f"*(no runs for `{name}`)*\n"
    caption = f"\n{figures.ERROR_BARS}\n" if name in figures.WITH_ERROR_BARS else ""
    return (f"![{name}]({os.path.relpath(path, out)}) "
            f"([SVG]({os.path.relpath(os.path.splitext(path)[0] + '.svg', out)}))\n{caption}")


def _claims_section(claim_table, paper):
    rows = claim_table[claim_table["paper"] == paper]
    return markdown_table(rows[["claim", "scope", "verdict", "effect", "note", "rule"]])


def describe(runs, extra=None):
    """One line on a study's runs: how many, what, and the values their flags take."""
    if runs.empty:
        return "no runs"

    def values(column):
        found = sorted(runs[column].dropna().unique())
        texts = [f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v) for v in found]
        return ", ".join(dict.fromkeys(texts))  # float noise (eta_tilde / beta^2) merges

    what = "; ".join(sorted({f"{r.model} on {r.dataset}" for r in runs.itertuples()}))
    parts = [f"{len(runs)} runs of {what}", f"beta {{{values('beta')}}}",
             f"{runs['optimizer'].iloc[0]} at learning rate {{{values('learning_rate')}}}",
             f"{values('epochs')} epochs", f"seeds {{{values('seed')}}}"]
    if extra:
        parts.insert(2, f"{extra} {{{values(extra)}}}")
    return ", ".join(parts)


def _full_scale_section(table):
    """The GPU-time estimates of the `--flagfiles`, when the report was given some."""
    if table.empty:
        return ""
    return "\n".join([
        "## Full scale: what to run with data and GPUs\n",
        "Each flagfile is one command (its first line). GPU hours are estimated, not measured: "
        "runs x epochs x training examples / the training throughput that `python -m tc.bench` "
        "measured for the model (the `--throughput` files), on synthetic data of the dataset's "
        "shape, after compilation and with the per-epoch validation pass. A blank estimate "
        "means the model's throughput was not measured.\n",
        markdown_table(table, digits=3)])


def _fit_thresholds(runs):
    """The fit thresholds of the datasets in `runs`, in words."""
    datasets = sorted(runs["dataset"].dropna().unique()) if len(runs) else []
    special = [f"{claims_lib.fit_threshold(name):g} on {name}" for name in datasets
               if claims_lib.fit_threshold(name) != claims_lib.FIT_THRESHOLD]
    return ", ".join([f"{claims_lib.FIT_THRESHOLD:g}"] + special)


def _markdown(run_roots, out, results, tables, made, claim_table, study_runs, campaign="",
              notes=""):
    """REPORT.md: the header and how claims are judged, all claims, the pre-registered
    `campaign` section, each paper's section, the derivation checks, the full-scale plan and
    the skipped runs."""
    derivation_table = tables["derivations"]
    text = [
        _header(run_roots, out, results, claim_table, notes),
        "## All empirical claims\n",
        markdown_table(claim_table[["paper", "claim", "scope", "verdict", "effect"]]),
        campaign,
        _paper_sections(out, tables, made, claim_table, study_runs),
        "## Checks of our derivations (not reproductions)\n",
        "Formulas we derived from the papers and check numerically with `tc.theory` "
        "(`tc/analysis/derivations.py`). They test our reading of the papers and our code, not "
        "the papers' empirical claims.\n",
        markdown_table(derivation_table) if not derivation_table.empty else "None.\n",
        _full_scale_section(tables["full_scale"]),
        "## Skipped runs\n",
        markdown_table(results.problems) if len(results.problems) else "None.\n",
    ]
    return "\n".join(text)


def _header(run_roots, out, results, claim_table, notes):
    """The report's title, where its numbers come from, how claims are judged, and the tally of
    verdicts per dataset."""
    runs = results.runs
    count = len(runs)
    status = runs["status"].value_counts().to_dict() if count else {}
    roots = " ".join(f"--runs={root}" for root in run_roots)
    return "\n".join([
        "# tc reproduction report\n",
        f"Generated by `python -m tc.analysis.report {roots} --out={out}` from {count} runs "
        f"({', '.join(f'{v} {k}' for k, v in sorted(status.items()))}); "
        f"{len(results.problems)} directories skipped (listed at the end). Every number below "
        "comes from the run directories under the `--runs` folders or from the derivation "
        "checks run by the report itself, and every table is also in `tables/` as CSV.\n",
        "**How claims are judged** (`tc/analysis/claims.py`, `tc/analysis/statistics.py`): "
        "each empirical claim measures one effect per model and dataset, either paired by seed "
        "with a 95% interval (Student's t below 30 seeds, where the bootstrap under-covers; BCa "
        "bootstrap with 10,000 resamples from 30 on) or as a Spearman trend over all runs with "
        "a permutation p-value. *Reproduced*: the interval excludes zero in the claimed "
        "direction (a trend: p < "
        f"{claims_lib.TREND_ALPHA} with the claimed sign); *contradicted*: the same in the "
        "other direction; *inconclusive*: neither, with the smallest effect the data could "
        f"have detected; *not judged*: fewer than {claims_lib.MIN_SEEDS} seeds, a tuned "
        "learning rate on the edge of its grid, or runs that did not fit their training set "
        f"(final train accuracy below {_fit_thresholds(runs)}). With few seeds the t interval "
        "is wide: only large effects can be seen, and each inconclusive row says how large. "
        "The checks of our own derivations are a separate table at the end and are not "
        "counted as reproductions.\n",
        notes,
        "**Verdicts of the empirical claims, per dataset** (a claim counted once per model; "
        "one judged in parts, per layer or per OOD score, counts as its parts' verdict where "
        "they agree and as mixed where they differ; no correction for multiplicity): "
        + "; ".join(f"{dataset}: " + ", ".join(f"{count} {verdict}" for verdict, count in
                                               counts.items())
                    for dataset, counts in claims_lib.tally(claim_table).items())
        + ".\n",
    ])


def _paper_sections(out, tables, made, claim_table, study_runs):
    """Each paper's section: what was run, its claims, its figures and tables."""
    return "\n".join([
        "## Paper 1: Temperature check\n",
        f"Beta sweep: {describe(study_runs['p1_sweep'])}. Each beta is shown at the learning rate "
        "with the best mean validation accuracy over seeds.\n",
        f"(beta, ||beta z0||) grid: {describe(study_runs['p1_grid'], 'init_logit_norm')}.\n",
        _claims_section(claim_table, claims_lib.P1),
        _figure(made, "p1_accuracy_vs_beta", out),
        markdown_table(seed_summary(tables["p1_beta_sweep"])),
        _figure(made, "p1_beta_logit_norm_heatmap", out),
        _figure(made, "p1_training_curves", out),
        "## Paper 2: Gradient decay\n",
        f"Gradient-decay sweep: {describe(study_runs['p2_sweep'])}. Warm-up: "
        f"{describe(study_runs['p2_warmup'], 'beta_start')}. Temperature scaling fits T on each "
        "run's validation logits (`tc.calibration`) and is scored on its test logits.\n",
        _claims_section(claim_table, claims_lib.P2),
        _figure(made, "p2_calibration_vs_beta", out),
        markdown_table(seed_summary(tables["p2_sweep"])),
        "Post-hoc temperature scaling, per beta (mean over seeds):\n",
        markdown_table(seed_summary(tables["p2_temperature_scaling"])),
        _figure(made, "p2_reliability_diagrams", out),
        _figure(made, "p2_training_curves", out),
        "## Paper 3: Unpacking softmax\n",
        f"Temperature sweep (T = 1 / beta): {describe(study_runs['p3_sweep'], 'probe_dataset')}; "
        "ranks on the run's fixed probe set of test inputs, and a linear probe of the frozen "
        "features on the probe dataset.\n",
        _claims_section(claim_table, claims_lib.P3),
        _figure(made, "p3_rank_vs_temperature", out),
        markdown_table(seed_summary(tables["p3_sweep"])),
        _figure(made, "p3_logit_norm_curves", out),
        _figure(made, "p3_probe_vs_temperature", out),
    ])


def main(argv):
    del argv
    missing = [root for root in FLAGS.runs if not os.path.isdir(root)]
    if missing:
        raise command_line.CommandLineError(
            f"--runs={','.join(missing)}: no such directory; give folders that hold run or "
            "tuner directories.")
    for flag in ("notes", "plan", "short_budget_claims"):
        if FLAGS[flag].value and not os.path.isfile(FLAGS[flag].value):
            raise command_line.CommandLineError(f"--{flag}={FLAGS[flag].value}: no such file.")
    report = build(FLAGS.runs, FLAGS.out, FLAGS.flagfiles, FLAGS.throughput, FLAGS.num_bins,
                   FLAGS.plan, FLAGS.notes, FLAGS.short_budget_claims)
    written = [path for path in report.figures.values() if path]
    print(f"tc.analysis.report: {len(report.results.runs)} runs, "
          f"{len(report.results.problems)} skipped; {len(written)} figures; "
          f"report: {os.path.join(FLAGS.out, 'REPORT.md')}")
    for row in report.claims.itertuples():
        print(f"  [{row.verdict}] paper {row.paper}: {row.claim} ({row.scope})")
    return 0


def help_groups(module_name):
    """The flag groups of `--help` and of this command's CLI reference page."""
    return command_line.module_groups("report", module_name)


def run():
    """The console command (`tc-report`), the same as `python -m tc.analysis.report`."""
    command_line.run(main, __name__, help_groups(__name__))


if __name__ == "__main__":
    run()
