"""The report on damaged run directories: each is skipped and listed, none crashes the report or
reaches a verdict, and no NaN or infinity gets into one."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from tc.analysis import load
from tests.support import run_python, write_synthetic_run

# This module tests code that never calls Keras (numpy, pandas, files): CI runs it in one
# backend's leg only (.ci/run).
pytestmark = pytest.mark.backend_independent


def _rewrite_json(name, change):
    def damage(path):
        with open(os.path.join(path, name)) as handle:
            value = json.load(handle)
        change(value)
        with open(os.path.join(path, name), "w") as handle:
            json.dump(value, handle)  # NaN and Infinity as Python's json writes them
    return damage


def _write(name, content, mode="w"):
    def damage(path):
        target = os.path.join(path, name)
        if os.path.isdir(target):
            shutil.rmtree(target)
        elif os.path.exists(target):
            os.remove(target)
        with open(target, mode) as handle:
            handle.write(content)
    return damage


def _truncate(name, keep=0.5):
    def damage(path):
        target = os.path.join(path, name)
        with open(target, "rb") as handle:
            data = handle.read()
        with open(target, "wb") as handle:
            handle.write(data[:int(len(data) * keep)])
    return damage


def _remove(name):
    return lambda path: os.remove(os.path.join(path, name))


def _replace_directory(name):
    def damage(path):
        os.remove(os.path.join(path, name))
        os.makedirs(os.path.join(path, name))
    return damage


def _metrics_cell(value):
    def damage(path):
        target = os.path.join(path, "metrics.csv")
        with open(target) as handle:
            lines = handle.read().splitlines()
        cells = lines[1].split(",")
        cells[2] = value
        lines[1] = ",".join(cells)
        with open(target, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    return damage


def _flag(line):
    def damage(path):
        target = os.path.join(path, "flags.txt")
        with open(target) as handle:
            text = handle.read()
        name = line.split("=")[0]
        kept = [row for row in text.splitlines() if not row.startswith(name + "=")]
        with open(target, "w") as handle:
            handle.write("\n".join(kept + [line]) + "\n")
    return damage


def _arrays(change):
    def damage(path):
        target = os.path.join(path, "predictions.npz")
        with np.load(target) as archive:
            arrays = dict(archive)
        change(arrays)
        np.savez(target, **arrays)
    return damage


def _set(key, value, inner=None):
    def change(result):
        if inner is None:
            result[key] = value
        else:
            result[key][inner] = value
    return _rewrite_json("result.json", change)


DAMAGE = {
    "no_result": _remove("result.json"),
    "empty_result": _write("result.json", ""),
    "truncated_result": _truncate("result.json"),
    "binary_result": _write("result.json", bytes(range(256)) * 4, "wb"),
    "result_is_a_list": _write("result.json", "[1, 2]"),
    "result_is_a_directory": _replace_directory("result.json"),
    "unknown_status": _set("status", "almost"),
    "numeric_status": _set("status", 42),
    "final_is_a_string": _set("final", "great"),
    "final_accuracy_is_a_string": _set("final", "high", "test/accuracy"),
    "final_accuracy_is_nan": _set("final", float("nan"), "test/accuracy"),
    "final_accuracy_is_inf": _set("final", float("inf"), "test/accuracy"),
    "best_accuracy_is_minus_inf": _set("best_validation", float("-inf"), "val/accuracy"),
    "final_accuracy_is_true": _set("final", True, "test/accuracy"),
    "negative_epochs": _set("epochs_completed", -3),
    "epochs_as_words": _set("epochs_completed", "three"),
    "no_metrics": _remove("metrics.csv"),
    "header_only_metrics": _truncate("metrics.csv", keep=0.02),
    "cut_metrics_row": _truncate("metrics.csv", keep=0.8),
    "word_in_metrics": _metrics_cell("oops"),
    "nan_in_metrics": _metrics_cell("nan"),
    "inf_in_metrics": _metrics_cell("inf"),
    "huge_metrics_field": _metrics_cell("9" * 200_000),
    "non_utf8_metrics": _write("metrics.csv", b"epoch,x\n1,\xff\xfe\n", "wb"),
    "binary_flags": _write("flags.txt", bytes(range(256)) * 4, "wb"),
    "empty_flags": _write("flags.txt", ""),
    "beta_inf": _flag("--beta=inf"),
    "beta_nan": _flag("--beta=nan"),
    "beta_word": _flag("--beta=abc"),
    "seed_overflow": _flag("--seed=1e400"),
    "no_predictions": _remove("predictions.npz"),
    "truncated_predictions": _truncate("predictions.npz"),
    "text_predictions": _write("predictions.npz", "not an archive"),
    "predictions_without_test_logits": _arrays(lambda arrays: arrays.pop("test_logits")),
    "nan_logits": _arrays(lambda arrays: arrays["test_logits"].__setitem__((0, 0), np.nan)),
    "labels_out_of_range": _arrays(lambda arrays: arrays["val_labels"].__setitem__(0, 99)),
    "one_dimensional_logits": _arrays(lambda arrays: arrays.__setitem__(
        "test_logits", arrays["test_logits"][:, 0])),
    "labels_of_another_length": _arrays(lambda arrays: arrays.__setitem__(
        "test_labels", arrays["test_labels"][:-1])),
    "garbled_example_learning": _write("example_learning.npz", b"PK\x03\x04garbage", "wb"),
    "no_flags": _remove("flags.txt"),
    "empty_metrics": _write("metrics.csv", ""),
    "fifo_metrics": lambda path: (os.remove(os.path.join(path, "metrics.csv")),
                                  os.mkfifo(os.path.join(path, "metrics.csv"))),
    "fifo_result": lambda path: (os.remove(os.path.join(path, "result.json")),
                                 os.mkfifo(os.path.join(path, "result.json"))),
}
# What a person reads in "Skipped runs" for some of them.
REASONS = {"no_flags": "no flags.txt", "empty_metrics": "metrics.csv holds no epoch",
           "fifo_metrics": "metrics.csv is not a regular file",
           "fifo_result": "result.json is not a regular file",
           "no_result": "no result.json", "result_is_a_directory": "result.json is a folder",
           "truncated_result": "result.json is not valid JSON",
           "binary_flags": "flags.txt is not text", "cut_metrics_row": "metrics.csv: line"}


@pytest.fixture(scope="module")
def damaged_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    sweep = dict(dataset="digits", model="mlp", loss="gradient_decay", study="p2_decay_sweep")
    for beta in (0.1, 1.0, 10.0):
        for seed in (0, 1, 2):
            write_synthetic_run(root / "good" / f"beta{beta}_seed{seed}", epochs=3, beta=beta,
                                seed=seed, **sweep)
    for index, (name, damage) in enumerate(DAMAGE.items()):
        # Each damaged run belongs to the sweep: loaded, it would enter its verdicts.
        path = write_synthetic_run(root / "damaged" / name, epochs=3, beta=0.1 * (index + 2),
                                   seed=index % 3, **sweep)
        damage(str(path))
    return root


def test_there_are_at_least_30_kinds_of_damage():
    assert len(DAMAGE) >= 30


def test_every_damaged_run_is_skipped_and_listed(damaged_root):
    results = load.load(str(damaged_root))
    skipped = {os.path.basename(path): problem
               for path, problem in zip(results.problems["run_dir"], results.problems["problem"])}
    assert set(skipped) == set(DAMAGE), set(DAMAGE) ^ set(skipped)
    assert all(problem for problem in skipped.values())
    for name, expected in REASONS.items():
        assert expected in skipped[name], (name, skipped[name])
    # Reasons in words: no exception's class name for a person to decode.
    assert not [problem for problem in skipped.values()
                if problem.split(":")[0].endswith(("Error", "Exception"))]
    assert len(results.runs) == 9 and (results.runs["status"] == "completed").all()


def test_the_report_survives_them_and_no_verdict_uses_one(damaged_root, tmp_path):
    # The report's command, as a user runs it (its absl flags stay out of this process).
    completed = run_python(["-m", "tc.analysis.report", f"--runs={damaged_root}",
                            f"--out={tmp_path}", "--flagfiles=", "--plan="])
    assert completed.returncode == 0, completed.stderr[-3000:]
    claims = pd.read_csv(tmp_path / "tables" / "claims.csv")
    assert len(claims) and (tmp_path / "REPORT.md").exists()
    used = ";".join(claims["runs"].fillna("").astype(str))
    assert "damaged" not in used
    assert not claims["effect"].fillna("").str.contains(r"\bnan\b|\binf\b", case=False).any()
    markdown = (tmp_path / "REPORT.md").read_text()
    assert f"{len(DAMAGE)} directories skipped" in markdown
    assert not pd.isna(claims["verdict"]).any()


def test_a_missing_runs_folder_is_an_error_not_an_empty_report(tmp_path):
    completed = run_python(["-m", "tc.analysis.report", f"--runs={tmp_path / 'nowhere'}",
                            f"--out={tmp_path / 'out'}", "--flagfiles="])
    assert completed.returncode == 1
    assert "nowhere: no such directory" in completed.stderr
    assert not (tmp_path / "out").exists()


def test_an_out_folder_under_a_file_is_one_line_naming_it(damaged_root, tmp_path):
    (tmp_path / "a_file").write_text("")
    completed = run_python(["-m", "tc.analysis.report", f"--runs={damaged_root / 'good'}",
                            f"--out={tmp_path / 'a_file' / 'report'}"])
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        f"tc.analysis.report: error: {tmp_path / 'a_file' / 'report'}: Not a directory "
        "(a part of the path is a file, not a folder: choose another path)."]
