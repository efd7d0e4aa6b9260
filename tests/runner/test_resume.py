"""`tc.runner.resume`: the state that commits an epoch, checked against hashlib and json, and the
resume point found from it (the rollbacks through a run directory: tests/runner/test_run_dir.py)."""

import hashlib
import json
import os

import pytest

from tc import run_files
from tc.runner import resume

pytestmark = pytest.mark.backend_independent

ROWS = [{"epoch": 1, "train/loss": 0.9}, {"epoch": 2, "train/loss": 0.5}]


def _commit(checkpoint_dir, completed_epochs, rows, **kwargs):
    """What `RunDirectory.commit_epoch` writes: the checkpoint, then the state."""
    path = os.path.join(checkpoint_dir, resume.checkpoint_name(completed_epochs))
    with open(path, "wb") as handle:
        handle.write(f"checkpoint of epoch {completed_epochs}".encode())
    state = resume.epoch_state(checkpoint_dir, completed_epochs, rows, **kwargs)
    run_files.atomic_write_json(os.path.join(checkpoint_dir, resume.STATE_FILE), state)
    return state


def _own_checksum(state):
    fields = {key: value for key, value in state.items() if key != "checksum"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def test_an_epochs_state_holds_the_sha256_of_its_checkpoint_its_fields_and_the_epoch_before(
        tmp_path):
    first = _commit(str(tmp_path), 1, ROWS[:1])
    second = _commit(str(tmp_path), 2, ROWS, initial_logit_norm={"target": 3.0})
    checkpoint = (tmp_path / "ckpt-00002.npz").read_bytes()
    assert second["checkpoint"] == "ckpt-00002.npz" and second["completed_epochs"] == 2
    assert second["checkpoint_sha256"] == hashlib.sha256(checkpoint).hexdigest()
    assert second["checksum"] == _own_checksum(second)
    assert second["initial_logit_norm"] == {"target": 3.0}
    assert second["previous"] == {key: first[key] for key in (
        "completed_epochs", "checkpoint", "checkpoint_sha256", "metrics_sha256")}
    assert "previous" not in first  # no epoch 0 to fall back to


def test_a_state_read_back_is_refused_when_any_field_was_edited(tmp_path):
    _commit(str(tmp_path), 1, ROWS[:1])
    path = tmp_path / resume.STATE_FILE
    assert resume.read_state(str(path))["completed_epochs"] == 1
    state = json.loads(path.read_text())
    state["metrics_sha256"] = "0" * 64
    path.write_text(json.dumps(state))
    assert resume.read_state(str(path)) is None
    del state["checksum"]  # a state from before checksums: taken as it is
    path.write_text(json.dumps(state))
    assert resume.read_state(str(path)) == state


def test_a_diverged_run_keeps_its_state_and_stays_diverged(tmp_path):
    committed = _commit(str(tmp_path), 2, ROWS)
    diverged = resume.diverged_state(str(tmp_path), diverged_at={"epoch": 3, "step": 7})
    assert diverged["checksum"] == _own_checksum(diverged)
    assert {key: diverged[key] for key in committed if key != "checksum"} == {
        key: value for key, value in committed.items() if key != "checksum"}
    run_files.atomic_write_json(str(tmp_path / resume.STATE_FILE), diverged)
    point = resume.find_resume_point("run", str(tmp_path), ROWS)
    assert point.state["diverged_at"] == {"epoch": 3, "step": 7} and point.rolled_back is None
    nothing = resume.diverged_state(str(tmp_path / "empty"), diverged_at={"epoch": 1})
    assert (nothing["completed_epochs"], nothing["checkpoint"]) == (0, None)


def test_the_resume_point_of_an_intact_run_is_its_last_epoch_with_both_checkpoints_verified(
        tmp_path):
    assert resume.find_resume_point("run", str(tmp_path), []) is None  # a fresh run
    _commit(str(tmp_path), 1, ROWS[:1])
    _commit(str(tmp_path), 2, ROWS, initial_logit_norm={"after": 2.0})
    point = resume.find_resume_point("run", str(tmp_path), ROWS)
    assert point.state["completed_epochs"] == 2 and point.rolled_back is None
    assert point.verified == {epoch: str(tmp_path / resume.checkpoint_name(epoch))
                              for epoch in (1, 2)}
    assert point.initial_logit_norm == {"after": 2.0}


def test_a_checkpoint_that_changed_after_its_commit_rolls_back_and_says_which(tmp_path):
    _commit(str(tmp_path), 1, ROWS[:1])
    _commit(str(tmp_path), 2, ROWS)
    (tmp_path / "ckpt-00002.npz").write_bytes(b"checkpoint of epoch 2, changed")
    point = resume.find_resume_point("run", str(tmp_path), ROWS)
    assert point.state["completed_epochs"] == 1
    assert point.rolled_back == {"from_epoch": 2, "to_epoch": 1,
                                 "reason": "ckpt-00002.npz differs from what was committed"}
    assert list(point.verified) == [1]
    (tmp_path / "ckpt-00001.npz").unlink()
    with pytest.raises(resume.DamagedRunError, match=r"^run cannot be resumed \(epoch 2: "
                       r"ckpt-00002.npz differs .*; epoch 1: ckpt-00001.npz is missing\)"):
        resume.find_resume_point("run", str(tmp_path), ROWS)
