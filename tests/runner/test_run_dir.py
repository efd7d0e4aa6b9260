"""`tc.runner.run_dir`: atomic files, resuming a run from its directory (`tc.runner.resume`),
and what `--overwrite` may remove."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tc import run_files
from tc.runner import resume, run_dir
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
    run_files.atomic_write_arrays(str(tmp_path / "ours.npz"), arrays, compress=compress)
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
    run_files.atomic_write_text(str(path / "metrics.csv"), "epoch\n1\n")
    (path / ".tmp-leftover").write_text("")
    with pytest.raises(run_dir.RunDirectoryConflict, match="--overwrite"):
        directory.prepare("--beta=2.0\n")
    assert (path / "metrics.csv").exists()
    directory.prepare("--beta=2.0\n", overwrite=True)
    assert sorted(p.name for p in path.iterdir()) == [".lock", "checkpoints", "flags.txt"]
    assert (path / "flags.txt").read_text() == "--beta=2.0\n"


def test_flags_are_the_first_file_a_run_writes(tmp_path, monkeypatch):
    written = []
    original = run_files.atomic_write_text
    monkeypatch.setattr(run_files, "atomic_write_text",
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
    run_files.atomic_write_text(str(tmp_path / "m.csv"), run_files.rows_to_csv(rows))
    assert run_files.read_csv(str(tmp_path / "m.csv")) == [
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
    script = (f"import os; os.umask({umask}); from tc import run_files; "
              f"d = {str(tmp_path)!r}; "
              "run_files.atomic_write_text(os.path.join(d, 'flags.txt'), '--beta=1.0\\n'); "
              "run_files.atomic_write_json(os.path.join(d, 'result.json'), "
              "{'status': 'completed'}); "
              "run_files.atomic_write_arrays(os.path.join(d, 'a.npz'), {'x': [1.0]}, "
              "compress=True)")
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                               text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
    modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()}
    assert modes == {"flags.txt": mode, "result.json": mode, "a.npz": mode}


class ArraysSnapshot:
    """Stands for a `tc.runner.checkpoint.Snapshot`: what `commit_epoch` writes."""

    def __init__(self, epoch):
        self.values = {"weights": np.full((4, 3), float(epoch), np.float32),
                       "step": np.array(epoch * 10, np.int64)}

    def arrays(self):
        return self.values


def committed_run(path, epochs=3):
    """A run directory after `epochs` committed epochs (rows like tc's, with a NaN cell)."""
    directory = run_dir.RunDirectory(str(path))
    directory.prepare("--beta=1.0\n")
    rows = []
    for epoch in range(1, epochs + 1):
        rows.append({"epoch": epoch, "learning_rate": 0.1, "train/loss": 1.0 / epoch,
                     "val/ece": float("nan") if epoch == 2 else 0.01 * epoch,
                     "rank/features/effective": np.float32(5 + epoch)})
        directory.commit_epoch(ArraysSnapshot(epoch), rows, epoch)
    directory.wait()
    directory.unlock()
    return rows


def reopened(path):
    directory = run_dir.RunDirectory(str(path))
    state = directory.prepare("--beta=1.0\n")
    directory.unlock()
    return directory, state


def test_an_intact_run_resumes_from_its_last_epoch_with_the_two_last_checkpoints(tmp_path):
    committed_run(tmp_path / "run")
    directory, state = reopened(tmp_path / "run")
    assert state["completed_epochs"] == 3 and directory.rolled_back is None
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == [
        "ckpt-00002.npz", "ckpt-00003.npz", "state.json"]
    assert directory.checkpoint_at(3).endswith("ckpt-00003.npz")
    assert directory.checkpoint_at(2).endswith("ckpt-00002.npz")
    assert directory.checkpoint_at(1) is None  # not kept


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip_a_byte, os.remove])
def test_a_damaged_last_checkpoint_rolls_back_to_the_one_before(tmp_path, damage):
    committed_run(tmp_path / "run")
    damage(tmp_path / "run" / "checkpoints" / "ckpt-00003.npz")
    directory, state = reopened(tmp_path / "run")
    assert state["completed_epochs"] == 2
    assert directory.checkpoint_at(2).endswith("ckpt-00002.npz")
    assert directory.checkpoint_at(3) is None
    assert directory.rolled_back["from_epoch"] == 3 and directory.rolled_back["to_epoch"] == 2
    assert "ckpt-00003.npz" in directory.rolled_back["reason"]
    assert directory.metrics_rows(2)[-1]["epoch"] == 2


def test_a_last_metrics_row_that_differs_from_its_commit_rolls_back(tmp_path):
    committed_run(tmp_path / "run")
    metrics = tmp_path / "run" / "metrics.csv"
    lines = metrics.read_text().splitlines()
    lines[-1] = lines[-1].replace("0.03", "0.04")  # val/ece of epoch 3
    metrics.write_text("\n".join(lines) + "\n")
    directory, state = reopened(tmp_path / "run")
    assert state["completed_epochs"] == 2
    assert "metrics.csv differs" in directory.rolled_back["reason"]


@pytest.mark.parametrize("state_text", ["", '{"completed_epochs": 3', "\x00\x01garbage",
                                        '{"completed_epochs": "three"}'])
def test_an_unreadable_state_falls_back_to_the_newest_whole_checkpoint(tmp_path, state_text):
    committed_run(tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "state.json").write_text(state_text)
    _truncate(tmp_path / "run" / "checkpoints" / "ckpt-00003.npz")
    directory, state = reopened(tmp_path / "run")
    assert state["completed_epochs"] == 2
    assert directory.rolled_back["reason"] == "checkpoints/state.json could not be read"


def test_a_state_whose_fields_were_edited_fails_its_checksum(tmp_path):
    committed_run(tmp_path / "run")
    state_path = tmp_path / "run" / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    state["completed_epochs"] = 5  # and ckpt-00005 does not exist
    state_path.write_text(json.dumps(state))
    directory, state = reopened(tmp_path / "run")
    assert state["completed_epochs"] == 3  # recovered from the checkpoints themselves
    assert directory.rolled_back["to_epoch"] == 3


def test_a_state_that_disagrees_with_metrics_csv_is_refused_and_nothing_is_deleted(tmp_path):
    committed_run(tmp_path / "run")
    metrics = tmp_path / "run" / "metrics.csv"
    metrics.write_text("\n".join(metrics.read_text().splitlines()[:2]) + "\n")  # epoch 1 only
    before = sorted(str(path) for path in (tmp_path / "run").rglob("*"))
    with pytest.raises(resume.DamagedRunError, match="epochs 1-3.*epochs 1-2.*--overwrite"):
        reopened(tmp_path / "run")
    assert sorted(str(path) for path in (tmp_path / "run").rglob("*")) == before


def test_a_completed_run_is_returned_as_it_is(tmp_path):
    path = tmp_path / "run"
    committed_run(path)
    directory = run_dir.RunDirectory(str(path))
    assert directory.completed_result("--beta=1.0\n") is None  # no result.json yet
    completed = {"status": "completed", "run_dir": str(path), "seed": 0, "x": 1}
    run_files.atomic_write_json(str(path / "result.json"), completed)
    assert directory.completed_result("--beta=1.0\n") == completed
    assert directory.completed_result("--beta=2.0\n") is None  # another run's flags
    run_files.atomic_write_json(str(path / "result.json"), {**completed, "status": "interrupted"})
    assert directory.completed_result("--beta=1.0\n") is None
    # A result.json outside the schema is damaged, not a completed run.
    run_files.atomic_write_json(str(path / "result.json"), {"status": "completed"})
    assert directory.completed_result("--beta=1.0\n") is None


@pytest.mark.parametrize("keep", [0.05, 0.2, 0.5, 0.8])
def test_a_last_metrics_row_cut_inside_rolls_back_to_the_epoch_before(tmp_path, keep):
    committed_run(tmp_path / "run")
    metrics = tmp_path / "run" / "metrics.csv"
    text = metrics.read_text()
    last_row_start = text.rstrip("\n").rfind("\n") + 1
    cut = last_row_start + int(keep * (len(text) - last_row_start))
    metrics.write_text(text[:cut])  # the row stops mid-row
    header, last = text.splitlines()[0], text[last_row_start:cut]
    if last.count(",") < header.count(","):  # fewer cells than the header: damage, named
        with pytest.raises(ValueError, match=r"metrics.csv: line 4 has \d+ cells where the "):
            run_files.read_csv(str(metrics))
    directory, state = reopened(tmp_path / "run")
    assert state["completed_epochs"] == 2
    assert directory.rolled_back["from_epoch"] == 3 and directory.rolled_back["to_epoch"] == 2
    assert [row["epoch"] for row in directory.metrics_rows(2)] == [1, 2]


def test_overwrite_trains_a_run_that_cannot_be_resumed_afresh(tmp_path):
    committed_run(tmp_path / "run")
    for name in ("ckpt-00002.npz", "ckpt-00003.npz"):
        _truncate(tmp_path / "run" / "checkpoints" / name)
    before = sorted(os.listdir(tmp_path / "run"))
    with pytest.raises(resume.DamagedRunError, match="--overwrite"):
        run_dir.RunDirectory(str(tmp_path / "run")).prepare("--beta=1.0\n")
    assert sorted(os.listdir(tmp_path / "run")) == before
    directory = run_dir.RunDirectory(str(tmp_path / "run"))
    assert directory.prepare("--beta=1.0\n", overwrite=True) is None
    assert sorted(os.listdir(tmp_path / "run")) == [".lock", "checkpoints", "flags.txt"]
    assert os.listdir(tmp_path / "run" / "checkpoints") == []


def test_a_runs_files_without_flags_are_refused_unless_overwrite(tmp_path):
    committed_run(tmp_path / "run")
    (tmp_path / "run" / "flags.txt").unlink()
    before = sorted(os.listdir(tmp_path / "run"))
    with pytest.raises(run_dir.RunDirectoryConflict, match="but no flags.txt") as refused:
        run_dir.RunDirectory(str(tmp_path / "run")).prepare("--beta=2.0\n")
    assert "checkpoints, metrics.csv" in str(refused.value)
    assert sorted(os.listdir(tmp_path / "run")) == before  # nothing deleted
    assert run_dir.RunDirectory(str(tmp_path / "run")).prepare("--beta=2.0\n",
                                                               overwrite=True) is None
    assert (tmp_path / "run" / "flags.txt").read_text() == "--beta=2.0\n"
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_overwrite_keeps_a_users_files_in_checkpoints_and_tensorboard_and_says_so(
        tmp_path, capsys):
    committed_run(tmp_path / "run")
    run = tmp_path / "run"
    (run / "checkpoints" / "notes.txt").write_text("mine")
    (run / "tensorboard").mkdir()
    ours = run / "tensorboard" / "events.out.tfevents.1796590000.host.123.tc"
    theirs = run / "tensorboard" / "events.out.tfevents.1796590000.host.456"
    ours.write_bytes(b"tc")
    theirs.write_bytes(b"another tool")
    run_dir.RunDirectory(str(run)).prepare("--beta=2.0\n", overwrite=True)
    assert sorted(os.listdir(run / "checkpoints")) == ["notes.txt"]
    assert sorted(os.listdir(run / "tensorboard")) == [theirs.name]
    assert (run / "checkpoints" / "notes.txt").read_text() == "mine"
    message = capsys.readouterr().err
    assert "--overwrite kept 2 file(s) tc did not write: checkpoints/notes.txt, " \
           f"tensorboard/{theirs.name}" in message


def test_temporary_files_name_their_writer_and_the_next_lock_holder_removes_them(tmp_path):
    import socket

    assert run_files.temporary_prefix() == f".tmp-{socket.gethostname()}-{os.getpid()}-"
    committed_run(tmp_path / "run")
    orphans = [tmp_path / "run" / ".tmp-deadhost-1-a1b2", tmp_path / "run" / "checkpoints" /
               ".tmp-deadhost-1-c3d4", tmp_path / "run" / ".tmp-deadhost-2-e5f6.keras"]
    for orphan in orphans:
        orphan.write_bytes(b"half a checkpoint")
    directory, state = reopened(tmp_path / "run")
    assert state["completed_epochs"] == 3
    assert not any(orphan.exists() for orphan in orphans)
    assert not list((tmp_path / "run").rglob(".tmp-*"))
