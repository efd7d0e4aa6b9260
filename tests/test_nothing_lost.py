"""Nothing lost, on either backend: a metrics.csv cut inside its last row rolls back and resumes
to the uninterrupted run's numbers; a full disk at any write of a run is a one-line message that
names the path, leaves the run as it was, and the rerun once there is space equals the
uninterrupted run; `--overwrite` always works on a damaged run."""

import errno
import json
import os
import signal

import pytest

from tc import run_files
from tc.runner import assembly, command_line, interruption
from tests.runner.test_interruption import SignalAt
from tests.support import run_python

FAST = dict(epochs=2, batch_size=128, rank_probe_size=64)


def _rows(path):
    return run_files.read_csv(os.path.join(path, "metrics.csv"))


def _assert_same_numbers(path, reference):
    rows, expected = _rows(path), _rows(reference)
    assert [row["epoch"] for row in rows] == [row["epoch"] for row in expected]
    for row, want in zip(rows, expected):
        for key, value in want.items():
            if isinstance(value, float):
                assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (row["epoch"], key)


@pytest.fixture
def reference(small_config):
    result = assembly.run_one(small_config("reference", **FAST))
    assert result["status"] == "completed"
    return result["run_dir"]


def test_a_cut_last_metrics_row_rolls_back_and_resumes_to_the_uninterrupted_numbers(
        small_config, tmp_path):
    three = dict(FAST, epochs=3)
    reference = assembly.run_one(small_config("reference3", **three))["run_dir"]
    for keep in (0.1, 0.5, 0.9):  # cut points inside epoch 2's row, the last one committed
        config = small_config(f"cut{keep}", **three)
        with interruption.handling_signals():  # stopped in epoch 3
            stopped = assembly.run_one(config, extra_callbacks=[SignalAt(signal.SIGTERM, 2, 1)])
        assert stopped["status"] == "interrupted" and stopped["epochs_completed"] == 2
        metrics = tmp_path / f"cut{keep}" / "metrics.csv"
        text = metrics.read_text()
        row_start = text.rstrip("\n").rfind("\n") + 1
        metrics.write_text(text[:row_start + int(keep * (len(text) - row_start))])
        result = assembly.run_one(config)
        assert result["status"] == "completed", keep
        assert (result["rolled_back"]["from_epoch"], result["rolled_back"]["to_epoch"]) == (
            2, 1), keep
        _assert_same_numbers(config.run_dir, reference)


def test_a_full_disk_at_any_write_is_a_message_naming_the_path_and_the_rerun_is_whole(
        small_config, reference, tmp_path, monkeypatch):
    writes = []
    original_write = run_files._atomic_write
    monkeypatch.setattr(run_files, "_atomic_write",
                        lambda path, write, mode: (writes.append(path),
                                                   original_write(path, write, mode))[1])
    assembly.run_one(small_config("counted", **FAST))
    count = len(writes)
    assert count >= 9  # flags, 3 files per epoch, predictions, result and more
    for full_at in range(count):
        config = small_config(f"full{full_at}", **FAST)
        seen = []

        def write(path, function, mode, full_at=full_at, seen=seen):
            seen.append(path)
            if len(seen) - 1 == full_at:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
            return original_write(path, function, mode)

        monkeypatch.setattr(run_files, "_atomic_write", write)
        with pytest.raises(OSError) as full:
            assembly.run_one(config)
        message = command_line.os_error_message(full.value)
        assert message.startswith(f"{seen[full_at]}: No space left on device (the disk is full"), (
            full_at, message)
        result_path = os.path.join(config.run_dir, "result.json")
        if os.path.exists(result_path):  # only a write after the result itself
            with open(result_path) as handle:
                assert json.load(handle)["status"] != "failed", full_at
        monkeypatch.setattr(run_files, "_atomic_write", original_write)
        rerun = assembly.run_one(config)
        assert rerun["status"] == "completed", full_at
        _assert_same_numbers(config.run_dir, reference)
        assert not [name for _, _, names in os.walk(config.run_dir) for name in names
                    if name.startswith(run_files.TEMPORARY_PREFIX)], full_at


@pytest.mark.backend_independent  # the command's message; the write points are tested above
def test_the_command_reports_a_full_disk_in_one_line_and_exits_1(tmp_path):
    output = tmp_path / "run"
    completed = run_python(f"""
        import errno, os, sys
        from tc import train
        from tc import run_files
        original = run_files._atomic_write
        def write(path, function, mode):
            if path.endswith("metrics.csv"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
            return original(path, function, mode)
        run_files._atomic_write = write
        sys.argv = ["tc.train", "--epochs=2", "--verbose=0", "--output_dir={output}"]
        train.run()
    """, backend="jax")
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        f"tc.train: error: {output}/metrics.csv: No space left on device (the disk is full: free "
        "space there, then run the same command again (it resumes from the last committed "
        "epoch))."]


@pytest.mark.backend_independent  # the command's message; the rollback is tested above
def test_the_command_refuses_a_run_that_cannot_be_resumed_in_one_line_and_changes_nothing(
        tmp_path):
    output = tmp_path / "run"
    completed = run_python(f"""
        import os, sys
        from absl import flags
        from tc import train
        arguments = ["tc.train", "--dataset=digits", "--model=mlp", "--epochs=2", "--verbose=0",
                     "--output_dir={output}"]
        sys.argv = arguments
        try:
            train.run()
        except SystemExit as stop:
            assert stop.code == 0, stop.code
        os.remove("{output}/result.json")  # as if killed before its result was written
        for name in os.listdir("{output}/checkpoints"):
            if name.startswith("ckpt-"):  # both kept checkpoints cut short
                path = os.path.join("{output}/checkpoints", name)
                os.truncate(path, os.path.getsize(path) // 2)
        print(sorted(os.listdir("{output}")), file=sys.stderr)
        flags.FLAGS.unparse_flags()
        sys.argv = arguments
        train.run()
    """, backend="jax")
    assert completed.returncode == 1, completed.stderr[-2000:]
    before, message = completed.stderr.strip().splitlines()[-2:]
    assert message.startswith(f"tc.train: error: {output} cannot be resumed (epoch 2: ")
    assert "ckpt-00002.npz differs from what was committed" in message
    assert message.endswith("Nothing was changed; rerun with --overwrite to train it from "
                            "scratch.")
    assert before == str(sorted(os.listdir(output)))  # the refusal wrote and removed nothing


def test_repairing_a_completed_runs_lost_result_keeps_its_model_file(small_config, tmp_path):
    config = small_config("repaired", **FAST)
    assert assembly.run_one(config)["status"] == "completed"
    model = tmp_path / "repaired" / "model.keras"
    written = (model.read_bytes(), model.stat().st_mtime_ns)
    (tmp_path / "repaired" / "result.json").write_text("{ damaged")
    repaired = assembly.run_one(config)
    assert repaired["status"] == "completed" and repaired["epochs_completed"] == 2
    assert (model.read_bytes(), model.stat().st_mtime_ns) == written  # not written again
    with open(tmp_path / "repaired" / "result.json") as handle:
        assert json.load(handle)["status"] == "completed"
