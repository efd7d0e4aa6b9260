"""tc.train killed (SIGKILL) or preempted (SIGTERM) at each of its fault points, then run again:
every rerun completes with the metrics of an uninterrupted run and leaves no temporary file.

The fault points (tests/fault_injection.py) are every phase of run start and of an epoch, and
before and after every file write, so a kill falls between every pair of writes. The runs are
pinned to JAX: what is tested is the run directory's files and the resume, which are the same
code on both backends (a TensorFlow kill and resume: tests/test_train.py).
"""

import json
import math
import signal

import pytest

from tc.runner import run_dir
from tests.support import run_python

pytestmark = pytest.mark.backend_independent

FLAGS = ["--epochs=2", "--batch_size=128", "--rank_probe_size=64"]
# SIGTERM only sets a flag that the run reads after each step, so one point per phase is enough;
# a SIGKILL stops wherever it falls.
TERM_PHASES = ("lock", "set-up before fit", "epoch start", "second training step", "epoch end",
               "rank activations", "epoch record", "results after training")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    output = tmp_path_factory.mktemp("uninterrupted") / "run"
    listed = run_python(["-m", "tests.fault_injection", "list", *FLAGS,
                         f"--output_dir={output}"], backend="jax")
    assert listed.returncode == 0, listed.stderr[-2000:]
    points = [line.split(": ", 1)[1] for line in listed.stdout.splitlines()
              if line.startswith("fault point ")]
    return output, points


def test_the_fault_points_cover_run_start_every_epoch_phase_and_every_file_write(uninterrupted):
    _, points = uninterrupted
    assert points[:3] == ["lock", "before writing flags.txt", "after writing flags.txt"]
    for epoch in (1, 2):
        for name in ("ckpt-0000{}.npz", "metrics.csv", "state.json"):
            name = name.format(epoch)
            writes = [point for point in points if point.endswith(name)]
            assert len(writes) >= 2 and writes[0].startswith("before"), name
    assert points.count("second training step") == 2 and points.count("epoch record") == 2
    assert points[-2:] == ["before writing result.json", "after writing result.json"]


def _rows(path):
    return run_dir.read_csv(str(path / "metrics.csv"))


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_a_run_killed_at_any_fault_point_resumes_to_the_uninterrupted_numbers(
        uninterrupted, tmp_path, signal_name):
    reference, points = uninterrupted
    # A point just before a write that follows another write leaves the files as the point
    # after that write does (the temporary file is made after it): killing there adds nothing.
    indices = [index for index, point in enumerate(points)
               if (signal_name == "SIGKILL" or point in TERM_PHASES)
               and not (point.startswith("before writing")
                        and points[index - 1].startswith("after writing"))]
    if signal_name == "SIGTERM":  # the second epoch's phases, and those outside the epochs
        second_epoch = [index for index, point in enumerate(points) if point == "epoch start"][1]
        indices = [index for index in indices if index >= second_epoch
                   or points[index] in ("lock", "set-up before fit")]
    jobs = [{"point": index, "signal": signal_name, "output_dir": str(tmp_path / f"p{index}")}
            for index in indices]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    completed = run_python(["-m", "tests.fault_injection", "kill", str(tmp_path / "jobs.json"),
                            *FLAGS], backend="jax", timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    outcomes = [json.loads(line) for line in completed.stdout.splitlines()
                if line.startswith("{")]
    assert [outcome["point"] for outcome in outcomes] == indices
    reference_rows = _rows(reference)
    for outcome in outcomes:
        where = f"{signal_name} at point {outcome['point']} ({points[outcome['point']]})"
        if signal_name == "SIGKILL":
            assert outcome["first_exit"] == -signal.SIGKILL, where
        else:
            assert outcome["first_exit"] in (0, 4), where  # 4: interrupted, resumable
        assert outcome["rerun_exit"] == 0, where
        output = tmp_path / f"p{outcome['point']}"
        result = json.loads((output / "result.json").read_text())
        assert result["status"] == "completed" and result["epochs_completed"] == 2, where
        rows = _rows(output)
        assert [row["epoch"] for row in rows] == [1, 2], where
        for row, expected in zip(rows, reference_rows):
            for key, value in expected.items():
                if isinstance(value, float) and math.isfinite(value):
                    assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (where, key)
        assert not list(output.rglob(".tmp-*")), where
