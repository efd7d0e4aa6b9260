"""tc.train killed (SIGKILL) or preempted (SIGTERM) at each of its fault points, then run again:
every rerun completes with the metrics of an uninterrupted run and leaves no temporary file. The
same for a packed sweep of two copies, whose points name each copy's files.

The fault points (tests/fault_injection.py) are every phase of run start and of an epoch, and
before, while and after every file write. A SIGTERM comes at every phase; a SIGKILL between every
pair of writes, where the files it leaves differ, and inside the writes of the checkpoints and
of result.json, which leave a temporary file that the rerun must remove. The runs are
pinned to JAX: what is tested is the run directory's files and the resume, which are the same
code on both backends (a TensorFlow preemption and resume: tests/test_train.py).
"""

import json
import math
import signal

import pytest

from tc import run_files
from tests.support import run_python

pytestmark = pytest.mark.backend_independent

FLAGS = ["--epochs=2", "--batch_size=128", "--rank_probe_size=64"]
# The packed sweep: two copies, each with its own beta, seed (data order, initialisation) and
# Adam moments, all of which a resume must restore per copy.
RUNS = {"single": ([], ["."]),
        "packed": (["--betas=0.5,2", "--seeds=0,1", "--grid=zip", "--optimizer=adam",
                    "--learning_rate=0.003"], ["beta0.5_seed0", "beta2_seed1"])}
# SIGTERM only sets a flag that the run reads after each step, so one point per phase is enough;
# a SIGKILL stops wherever it falls, and what it leaves is the files written so far.
TERM_PHASES = ("lock", "set-up before fit", "epoch start", "second training step", "epoch end",
               "rank activations", "epoch record", "results after training")


# The packed sweep's kills run in CI's TensorFlow leg (its subprocesses are JAX's all the same),
# which balances the two legs' times.
@pytest.fixture(scope="module", params=[pytest.param("packed", marks=pytest.mark.tensorflow_leg),
                                        "single"])
def uninterrupted(request, tmp_path_factory):
    kind = request.param
    output = tmp_path_factory.mktemp(f"uninterrupted-{kind}") / "run"
    listed = run_python(["-m", "tests.fault_injection", "list", *FLAGS, *RUNS[kind][0],
                         f"--output_dir={output}"], backend="jax")
    assert listed.returncode == 0, listed.stderr[-2000:]
    points = [line.split(": ", 1)[1] for line in listed.stdout.splitlines()
              if line.startswith("fault point ")]
    return kind, output, points


def test_the_fault_points_cover_run_start_every_epoch_phase_and_every_file_write(uninterrupted):
    kind, _, points = uninterrupted
    copies = RUNS[kind][1]
    prefix = "" if kind == "single" else f"{copies[0]}/"
    assert points[:4] == ["lock", f"before writing {prefix}flags.txt",
                          f"while writing {prefix}flags.txt", f"after writing {prefix}flags.txt"]
    for copy in copies:
        folder = "" if copy == "." else f"{copy}/"
        for epoch in (1, 2):
            for name in ("checkpoints/ckpt-0000{}.npz", "metrics.csv", "checkpoints/state.json"):
                name = folder + name.format(epoch)
                writes = [point for point in points if point.endswith(" " + name)]
                assert len(writes) >= 2 and writes[0].startswith("before"), name
        for name in ("flags.txt", "model.keras", "predictions.npz", "result.json"):
            assert f"before writing {folder}{name}" in points, name
    assert points.count("second training step") == 2
    assert points.count("epoch record") == 2 * len(copies)
    assert points[-1] == f"after writing {copies[-1]}/result.json".replace("./", "")


def _rows(path):
    return run_files.read_csv(str(path / "metrics.csv"))


def _points_to_kill(points, signal_name):
    if signal_name == "SIGKILL":
        # Only the files on disk outlive a SIGKILL, and they change only when the lock is taken
        # (point 0 comes before it) and at each write, whose temporary file is made after its
        # "before writing" point. Every point from one "after writing" to the next "before
        # writing" leaves the same files: one kill per such stretch covers every state a kill
        # can leave (commits are synchronous here).
        # Killed inside a write, a temporary file is left: those of the checkpoints (the
        # largest files) and of result.json (the last) must be gone after the rerun.
        return [index for index, point in enumerate(points)
                if index <= 1 or point.startswith("after writing") or (
                    point.startswith("while writing") and (
                        "checkpoints/ckpt-" in point or point.endswith("result.json")))]
    indices = [index for index, point in enumerate(points) if point in TERM_PHASES]
    # The second epoch's phases, and those outside the epochs.
    second_epoch = [index for index, point in enumerate(points) if point == "epoch start"][1]
    return [index for index in indices
            if index >= second_epoch or points[index] in ("lock", "set-up before fit")]


# The SIGKILL points are split in two halves (every other point), which two pytest workers share.
@pytest.mark.parametrize("signal_name,half", [("SIGKILL", 0), ("SIGKILL", 1), ("SIGTERM", None)])
def test_a_run_killed_at_any_fault_point_resumes_to_the_uninterrupted_numbers(
        uninterrupted, tmp_path, signal_name, half):
    kind, reference, points = uninterrupted
    flags, copies = RUNS[kind]
    indices = _points_to_kill(points, signal_name)
    if half is not None:
        indices = indices[half::2]
    jobs = [{"point": index, "signal": signal_name, "output_dir": str(tmp_path / f"p{index}")}
            for index in indices]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    completed = run_python(["-m", "tests.fault_injection", "kill", str(tmp_path / "jobs.json"),
                            *FLAGS, *flags], backend="jax", timeout=900)
    assert completed.returncode == 0, completed.stderr[-2000:]
    outcomes = [json.loads(line) for line in completed.stdout.splitlines()
                if line.startswith("{")]
    assert [outcome["point"] for outcome in outcomes] == indices
    for outcome in outcomes:
        where = f"{signal_name} at point {outcome['point']} ({points[outcome['point']]})"
        if signal_name == "SIGKILL":
            assert outcome["first_exit"] == -signal.SIGKILL, where
        elif outcome["first_exit"] == 4:  # interrupted, resumable: every copy says so
            assert outcome["results_left"] == {
                copy: ["interrupted", "SIGTERM"] for copy in copies}, where
        else:  # the signal came after the last step: the run completed
            assert outcome["first_exit"] == 0, where
        assert outcome["rerun_exit"] == 0, where
        for copy in copies:
            output = tmp_path / f"p{outcome['point']}" / copy
            result = json.loads((output / "result.json").read_text())
            assert result["status"] == "completed" and result["epochs_completed"] == 2, where
            rows = _rows(output)
            assert [row["epoch"] for row in rows] == [1, 2], where
            for row, expected in zip(rows, _rows(reference / copy)):
                for key, value in expected.items():
                    if isinstance(value, float) and math.isfinite(value):
                        assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (
                            where, copy, key)
        assert not list((tmp_path / f"p{outcome['point']}").rglob(".tmp-*")), where
