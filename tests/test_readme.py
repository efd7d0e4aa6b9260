"""The README's and the guides' snippets run, their commands use valid flags, the two commands
are the ones CI uses, and the README stays one screen of what tc is, not its history."""

import ast
import json
import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
GUIDES = {path.name: path.read_text() for path in sorted((ROOT / "docs" / "guides").glob("*.md"))}


def python_blocks(section_title):
    section = README.split(f"## {section_title}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def guide_python_blocks(guide):
    return re.findall(r"```python\n(.*?)```", GUIDES[guide], flags=re.DOTALL)


def test_usage_snippet_runs_and_does_what_it_says(capsys):
    (snippet,) = python_blocks("Use tc in your own model")
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "beta per epoch: [0.1   0.215 0.464 1.   ]" in printed
    np.testing.assert_allclose(namespace["warmup_history"].history["beta"],
                               [0.1, 0.1 ** (2 / 3), 0.1 ** (1 / 3), 1.0], rtol=1e-5)
    assert namespace["history"].history["loss"][-1] < namespace["history"].history["loss"][0]
    rank = int(re.search(r"numerical rank: (\d+)", printed).group(1))
    assert 1 <= rank <= 64
    for name in ("TemperatureCrossEntropy", "GradientDecayCrossEntropy", "LogLinearWarmup",
                 "BetaScheduler", "InverseTemperature", "TemperatureSoftmax",
                 "set_initial_logit_norm", "ExpectedCalibrationError",
                 "MaximumCalibrationError", "NegativeLogLikelihood", "LogitNorm",
                 "numerical_rank", "effective_rank"):
        assert name in snippet, f"the README snippet does not show {name}"


def test_data_and_models_snippet_trains_digits(capsys):
    (snippet,) = guide_python_blocks("datasets.md")
    exec(compile(snippet, "README.md", "exec"), {})
    logs = ast.literal_eval(capsys.readouterr().out.strip().splitlines()[-1])
    assert logs["accuracy"] >= 0.9


def test_analysis_snippet_reads_the_committed_results(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    (snippet,) = guide_python_blocks("report.md")
    exec(compile(snippet, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "final/test/ece/mean" in printed and "0.01" in printed


def readme_commands(entry_point):
    """The `python -m <entry_point>` commands of the README's and the guides' sh blocks."""
    blocks = [block for text in (README, *GUIDES.values())
              for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)]
    commands = []
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            if f"python -m {entry_point}" in command:
                commands.append(command.split(f"python -m {entry_point}", 1)[1].split())
    return commands


def test_readme_commands_use_valid_flags(monkeypatch):
    from absl import flags

    from tc.runner import config as config_lib
    from tc.runner import search

    monkeypatch.chdir(ROOT)  # flagfiles are named relative to the repository root
    train_commands, tune_commands = readme_commands("tc.train"), readme_commands("tc.tune")
    assert len(train_commands) >= 4 and [] in train_commands  # the main job runs with no flags
    assert len(tune_commands) >= 3
    for entry_point, commands in (("tc.train", train_commands), ("tc.tune", tune_commands)):
        for arguments in commands:
            values = flags.FlagValues()
            config_lib.define_flags(values)
            if entry_point == "tc.tune":
                search.define_flags(values)
            values([entry_point, *(a.replace('"', "") for a in arguments)])
            config_lib.from_flags(values)  # raises on an invalid combination
            if entry_point == "tc.tune":
                search.from_flags(values)


COLLECT_MARKERS = """
import json, pytest

class Markers:
    def pytest_collection_modifyitems(self, items):
        self.found = {item.nodeid: sorted({mark.name for mark in item.iter_markers()})
                      for item in items}

markers = Markers()
code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests"], plugins=[markers])
print(json.dumps({"code": int(code), "markers": markers.found}))
"""


def test_readme_test_command_is_ci_and_ci_runs_every_test():
    from _pytest.mark.expression import Expression

    from tests.support import run_python

    assert "\n   .ci/run\n" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "requirements-dev.txt" in ci
    legs = re.findall(r'^suite (\w+) "([^"]+)"$', ci, flags=re.MULTILINE)
    assert [backend for backend, _ in legs] == ["tensorflow", "jax"]
    # Each leg: its tests on two processes, then its two-device tests on one.
    runs = re.findall(r'KERAS_BACKEND=\$1 python -m pytest -q -n (\d) -m "\(\$2\) and '
                      r'(not )?two_devices"', ci)
    assert sorted(runs) == [("0", ""), ("2", "not ")]
    completed = run_python(COLLECT_MARKERS, backend="jax", timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    collected = json.loads(completed.stdout.strip().splitlines()[-1])
    assert collected["code"] == 0 and len(collected["markers"]) > 500
    for test, names in collected["markers"].items():
        in_legs = [Expression.compile(expression).evaluate(lambda name: name in names)
                   for _, expression in legs]
        assert any(in_legs), f"CI runs {test} in neither leg"
        if "backend_independent" not in names:
            assert all(in_legs), f"CI runs {test}, which uses Keras, under one backend only"


def test_the_pinned_stack_is_the_one_installed_and_the_package_admits_it():
    # requirements.txt pins the stack the README's commands install; the suite runs under it.
    from importlib import metadata

    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    assert {"tensorflow", "keras", "tensorflow-datasets", "keras-tuner"} <= set(pins)
    for name, version in pins.items():
        assert metadata.version(name) == version, name
    keras_range = re.search(r'"keras>=([\d.]+),<([\d.]+)"',
                            (ROOT / "pyproject.toml").read_text())
    low, high = (tuple(int(part) for part in bound.split(".")) for bound in keras_range.groups())
    assert low <= tuple(int(part) for part in pins["keras"].split(".")) < high


def test_the_readme_results_are_what_the_report_generates():
    import pandas as pd

    from tc.analysis import summary as summary_lib

    block = README.split("<!-- results: runs/results/SUMMARY.md -->\n", 1)[1].split(
        "<!-- end of results -->", 1)[0]
    summary = (ROOT / "runs" / "results" / "SUMMARY.md").read_text()
    assert block == summary
    claims = pd.read_csv(ROOT / "runs" / "results" / "tables" / "claims.csv",
                         keep_default_na=False)
    assert summary_lib.results_summary(claims) == summary


def test_the_readme_is_one_screen_of_what_tc_is():
    assert len(README.splitlines()) <= 200
    for section in ("## Install", "## The two commands", "## Train from the command line",
                    "## Use tc in your own model", "## Results", "## Documentation"):
        assert section in README, section
    # Sentences about how the project got here belong in the history of git, not in its pages.
    history = ("roadmap", "how this was found", "before the label checks", "first version",
               "no longer", "used to ", "was rewritten", "next:")
    for name, text in {"README.md": README, **GUIDES}.items():
        for phrase in history:
            assert phrase not in text.lower(), (name, phrase)


def test_every_relative_link_of_the_readme_names_a_file_of_the_repository():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), target
