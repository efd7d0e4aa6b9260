"""The package as pip installs it: its name, one version, console commands, and nothing else."""

import ast
import email
import json
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.support import ROOT as ROOT_TEXT

ROOT = pathlib.Path(ROOT_TEXT)

pytestmark = pytest.mark.backend_independent


def _source_tree(directory):
    """A private copy of what the build reads (pyproject.toml, README.md, tc/), for pip to build.

    pip builds a local directory in place, in its build/ and *.egg-info folders: builds of the
    checkout itself would share them with every other build there (another test, a developer's
    `pip install -e .`). CI once saw such a build fail halfway through copying tc/runner.
    """
    shutil.copytree(ROOT / "tc", directory / "tc",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, directory / name)
    return directory


def _declared_version():
    tree = ast.parse((ROOT / "tc" / "__init__.py").read_text())
    return next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and node.targets[0].id == "__version__")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("setuptools")  # the build backend, in the venv (no download)
    source = _source_tree(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "--no-build-isolation", str(source), "-w", str(out)],
                           capture_output=True, text=True, cwd=out, timeout=300)
    assert built.returncode == 0, built.stderr[-6000:]
    return zipfile.ZipFile(next(out.glob("*.whl")))


def test_the_wheel_holds_tc_alone_under_its_own_distribution_name(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    version = _declared_version()
    assert tops == {"tc", f"tc_temperature-{version}.dist-info"}  # no top-level `analysis`
    metadata = email.message_from_bytes(
        wheel.read(f"tc_temperature-{version}.dist-info/METADATA"))
    # `tc` on the package index is an unrelated project; the version is tc.__version__.
    assert metadata["Name"] == "tc-temperature" and metadata["Version"] == version
    required = {line.split(";")[0].split("<")[0].split(">")[0].strip()
                for line in metadata.get_all("Requires-Dist") if "extra ==" not in line}
    assert {"keras", "numpy", "scikit-learn", "pandas"} <= required  # digits, tc.load_run


def test_the_console_commands_run_the_entry_points(wheel):
    version = _declared_version()
    entry_points = wheel.read(f"tc_temperature-{version}.dist-info/entry_points.txt").decode()
    commands = {line.split(" = ")[0]: line.split(" = ")[1] for line in entry_points.splitlines()
                if " = " in line}
    assert commands == {"tc-train": "tc.train:run", "tc-tune": "tc.tune:run",
                        "tc-bench": "tc.bench:run", "tc-report": "tc.analysis.report:run"}
    assert "tc/analysis/report.py" in wheel.namelist()


def test_the_wheel_with_its_extras_in_a_fresh_environment_trains_and_reports(wheel, tmp_path):
    # A fresh virtual environment that reuses this one's installed dependencies (a .pth file
    # naming its site-packages), so that only tc itself is installed, from the built wheel.
    environment = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(environment)],
                   check=True, timeout=120)
    site_packages = next(environment.glob("lib/python*/site-packages"))
    (site_packages / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = environment / "bin" / "python"
    # The wheel with its extras, as the README installs it; --no-index: every dependency must
    # already be there (from this environment), none is downloaded.
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation",
         f"{wheel.filename}[tensorflow,analysis]"], capture_output=True, text=True, cwd=tmp_path,
        timeout=300)
    assert installed.returncode == 0, installed.stderr[-6000:]
    # tc comes from the new environment's own copy, not from the checkout.
    where = subprocess.run([str(python), "-c", "import tc; print(tc.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert where.stdout.strip().startswith(str(site_packages)), where.stdout + where.stderr
    output = tmp_path / "main"
    main_job = subprocess.run([str(environment / "bin" / "tc-train"), "--epochs=2",
                               f"--output_dir={output}"], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)
    assert main_job.returncode == 0, main_job.stderr[-2000:]
    assert "status: completed" in main_job.stdout
    assert json.loads((output / "result.json").read_text())["epochs_completed"] == 2
    helped = subprocess.run([str(environment / "bin" / "tc-train"), "--help"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert helped.returncode == 0 and "Traceback" not in helped.stderr, helped.stderr[-2000:]
    assert "train one model from absl flags" in helped.stdout
    assert "--beta: Inverse temperature" in helped.stdout and "--learning_rate" in helped.stdout
    # The report command, on the main job's run alone, outside the checkout: its default
    # --out is ./tc_report, and it says nothing of this repository's own campaign.
    report = subprocess.run([str(environment / "bin" / "tc-report"), f"--runs={output}"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "tc.analysis.report: 1 runs, 0 skipped" in report.stdout
    markdown = (tmp_path / "tc_report" / "REPORT.md").read_text()
    assert "Fashion-MNIST" not in markdown and "campaign" not in markdown
    assert "mlp on digits" in markdown
