"""`tc.runner.run_dir`: atomic files, the resume state, and what `--overwrite` may remove."""

import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tc.runner import run_dir
from tests.support import ROOT

# This module tests code that never calls Keras (numpy, pandas, files): CI runs it in one
# backend's leg only (.ci/run).
pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize("compress", [False, True])
def test_npz_files_hold_what_np_savez_would_write(tmp_path, compress):
    arrays = {"matrix": np.arange(12.0).reshape(3, 4).T, "scalar": np.array(3, np.int64),
              "empty": np.zeros((0, 5), np.float32), "flag": np.array(True),
              "weights": np.random.default_rng(0).normal(size=(300, 70)).astype(np.float32),
              "repeated": np.tile(np.arange(10, dtype=np.float32), 500)}
    run_dir.atomic_write_arrays(str(tmp_path / "ours.npz"), arrays, compress=compress)
    (np.savez_compressed if compress else np.savez)(tmp_path / "numpy.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "ours.npz") as archive:
        methods = {info.compress_type for info in archive.infolist()}
    assert methods == {zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED}
    size, reference_size = (os.path.getsize(tmp_path / name) for name in ("ours.npz", "numpy.npz"))
    assert abs(size - reference_size) < 0.01 * reference_size
    with np.load(tmp_path / "ours.npz") as ours, np.load(tmp_path / "numpy.npz") as reference:
        assert ours.files == reference.files
        for key in reference.files:
            assert ours[key].dtype == reference[key].dtype
            assert ours[key].shape == reference[key].shape
            np.testing.assert_array_equal(ours[key], reference[key])


def test_overwrite_replaces_a_run_but_never_removes_other_files(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    (path / "notes.txt").write_text("keep me")
    directory = run_dir.RunDirectory(str(path))
    for overwrite in (False, True):
        with pytest.raises(run_dir.RunDirectoryConflict, match="notes.txt") as error:
            directory.prepare("--beta=1.0\n", overwrite=overwrite)
        assert "never deletes" in str(error.value)
    assert (path / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in path.iterdir()) == ["notes.txt"]


def test_overwrite_removes_only_a_runs_own_files(tmp_path):
    path = tmp_path / "run"
    directory = run_dir.RunDirectory(str(path))
    assert directory.prepare("--beta=1.0\n") is None
    run_dir.atomic_write_text(str(path / "metrics.csv"), "epoch\n1\n")
    (path / ".tmp-leftover").write_text("")
    with pytest.raises(run_dir.RunDirectoryConflict, match="--overwrite"):
        directory.prepare("--beta=2.0\n")
    assert (path / "metrics.csv").exists()
    directory.prepare("--beta=2.0\n", overwrite=True)
    assert sorted(p.name for p in path.iterdir()) == [".lock", "checkpoints", "flags.txt"]
    assert (path / "flags.txt").read_text() == "--beta=2.0\n"


def test_flags_are_the_first_file_a_run_writes(tmp_path, monkeypatch):
    written = []
    original = run_dir.atomic_write_text
    monkeypatch.setattr(run_dir, "atomic_write_text",
                        lambda path, text: (written.append((path, (tmp_path / "run" /
                                            "checkpoints").exists())), original(path, text)))
    run_dir.RunDirectory(str(tmp_path / "run")).prepare("--beta=1.0\n")
    assert written == [(str(tmp_path / "run" / "flags.txt"), False)]


def test_a_directory_that_only_lost_its_flags_resumes_as_a_fresh_run(tmp_path):
    path = tmp_path / "run"
    (path / "checkpoints").mkdir(parents=True)  # killed before flags.txt (older versions)
    directory = run_dir.RunDirectory(str(path))
    assert directory.prepare("--beta=1.0\n") is None
    assert (path / "flags.txt").read_text() == "--beta=1.0\n"


def test_rows_round_trip_through_csv(tmp_path):
    rows = [{"epoch": 1, "train/loss": 0.5, "name": "a"}, {"epoch": 2, "train/loss": 1e-9}]
    run_dir.atomic_write_text(str(tmp_path / "m.csv"), run_dir.rows_to_csv(rows))
    assert run_dir.read_csv(str(tmp_path / "m.csv")) == [
        {"epoch": 1, "train/loss": 0.5, "name": "a"},
        {"epoch": 2, "train/loss": 1e-9, "name": None}]


def test_one_process_at_a_time_writes_a_run_directory(tmp_path):
    path = str(tmp_path / "run")
    first = run_dir.RunDirectory(path)
    assert first.prepare("--beta=1.0\n") is None
    with pytest.raises(run_dir.RunDirectoryConflict, match=f"tc process {os.getpid()} on "):
        run_dir.RunDirectory(path).prepare("--beta=1.0\n")
    first.unlock()
    assert run_dir.RunDirectory(path).prepare("--beta=1.0\n") is None
    assert sorted(os.listdir(path)) == [".lock", "checkpoints", "flags.txt"]


def test_the_lock_of_a_killed_process_is_released(tmp_path):
    path = str(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tc.runner import run_dir; "
         f"held = run_dir.RunDirectory({path!r}); held.prepare('--beta=1.0\\n'); "
         "print('locked', flush=True); "
         "time.sleep(600)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(run_dir.RunDirectoryConflict, match=f"tc process {holder.pid} on "):
            run_dir.RunDirectory(path).prepare("--beta=1.0\n")
    finally:
        holder.kill()
        holder.wait()
    assert run_dir.RunDirectory(path).prepare("--beta=1.0\n") is None


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_run_files_get_the_permissions_of_the_umask(tmp_path, umask, mode):
    # Under the usual umask 022 other users (workers, the analysis) can read every run file.
    script = (f"import os; os.umask({umask}); from tc.runner import run_dir; "
              f"d = {str(tmp_path)!r}; "
              "run_dir.atomic_write_text(os.path.join(d, 'flags.txt'), '--beta=1.0\\n'); "
              "run_dir.atomic_write_json(os.path.join(d, 'result.json'), {'status': 'completed'}); "
              "run_dir.atomic_write_arrays(os.path.join(d, 'a.npz'), {'x': [1.0]}, compress=True)")
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                               text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
    modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()}
    assert modes == {"flags.txt": mode, "result.json": mode, "a.npz": mode}
