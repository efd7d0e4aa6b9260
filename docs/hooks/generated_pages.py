"""The documentation site's generated pages, made at build time from the code and the
committed results, so that none of them can drift:

- `reference/cli/<command>.md`: each command's flags, from their definitions
  (`python -m tc.runner.command_line <command>`, one process per command: their absl flags
  would clash in one);
- `results.md`: the verdicts table the report writes (`runs/results/SUMMARY.md`);
- `contributing.md`: the repository's CONTRIBUTING.md;
- `analysis/*.ipynb`: the analysis notebooks, rendered by mkdocs-jupyter;
- in any page, `<!-- bench: <file>.json -->` becomes a table of that benchmark file's figures
  (`runs/results/<file>.json`).
"""

import json
import os
import re
import subprocess
import sys

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMANDS = ("tc.train", "tc.tune", "tc.bench", "tc.analysis.report")
NOTEBOOKS = ("paper1_temperature_check.ipynb", "paper2_gradient_decay.ipynb",
             "paper3_unpacking_softmax.ipynb", "your_runs.ipynb")


def _cli_page(command):
    environment = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"))
    completed = subprocess.run([sys.executable, "-m", "tc.runner.command_line", command],
                               cwd=ROOT, env=environment, capture_output=True, text=True,
                               check=False)
    if completed.returncode:
        raise RuntimeError(f"the CLI reference of {command} failed:\n{completed.stderr}")
    return completed.stdout


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return handle.read()


# Before the plugins' own on_files: mkdocs-jupyter turns the notebooks added here into pages.
@event_priority(100)
def on_files(files, config):
    for command in COMMANDS:
        files.append(File.generated(config, f"reference/cli/{command}.md",
                                    content=_cli_page(command)))
    files.append(File.generated(
        config, "results.md",
        content="# Results\n\nThe verdicts of the committed runs, as the reproduction report "
                "writes them (`runs/results/SUMMARY.md`); the numbers, rules and notes of each "
                "are in `runs/results/REPORT.md`. They are exploratory, at a short training "
                "budget: see [the reproduction method](guides/method.md).\n\n"
                + _read("runs", "results", "SUMMARY.md")))
    contributing = re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", _read("CONTRIBUTING.md"))
    files.append(File.generated(config, "contributing.md", content=contributing))
    for notebook in NOTEBOOKS:
        files.append(File(f"analysis/{notebook}", src_dir=ROOT, dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, path + (str(key),))
    elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            yield from _leaves(item, path + (f"[{index}]",))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def bench_table(name):
    """Every number of `runs/results/<name>` as a row: where it sits in the file, its value."""
    payload = json.loads(_read("runs", "results", name))
    settings = payload.get("settings", {}) if isinstance(payload, dict) else {}
    rows = [f"| {' / '.join(path)} | {_number(value)} |"
            for path, value in _leaves({k: v for k, v in payload.items() if k != "settings"})]
    described = ", ".join(f"{key} {value}" for key, value in settings.items())
    return "\n".join([f"`runs/results/{name}`" + (f" ({described})" if described else "") + ":",
                      "", "| figure | value |", "| --- | --- |", *rows, ""])


def on_page_markdown(markdown, page, config, files):
    return re.sub(r"<!-- bench: ([\w.-]+\.json) -->", lambda match: bench_table(match.group(1)),
                  markdown)
