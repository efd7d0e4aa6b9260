"""The commit point of a run's epochs, `checkpoints/state.json`: what it holds, and which epoch a
restarted run resumes from.

An epoch is committed when its state is written, after its checkpoint and its metrics rows
(`tc.runner.run_dir.RunDirectory.commit_epoch`). The state verifies itself and what it points
at: the SHA-256 of its checkpoint and of its metrics rows, the same for the epoch before it
(whose checkpoint is kept too), and `checksum`, the SHA-256 of its own other fields.

`find_resume_point` uses the last epoch only if all of them hold; otherwise it rolls back to the
epoch before and says why (`rolled_back`, which result.json records). A state that cannot be
read falls back to the newest checkpoint that reads whole (its zip CRCs) and has its metrics
rows. When nothing checks out it raises `DamagedRunError`, and nothing is deleted.
"""

import dataclasses
import hashlib
import json
import os
import re
import zipfile

from tc import run_files

__all__ = ["CHECKPOINT_FILE", "checkpoint_name", "DamagedRunError", "diverged_state", "epoch_state",
           "find_resume_point", "read_state", "ResumePoint", "STATE_FILE"]

STATE_FILE = "state.json"  # in the run's checkpoints/ folder


class DamagedRunError(ValueError):
    """A run directory whose state, checkpoints and metrics do not agree at any kept epoch."""


def checkpoint_name(completed_epochs):
    """The file name of the checkpoint after `completed_epochs` epochs (`CHECKPOINT_FILE`)."""
    return f"ckpt-{completed_epochs:05d}.npz"


# Any checkpoint file name `checkpoint_name` writes; its group is the epochs completed.
CHECKPOINT_FILE = re.compile(r"ckpt-(\d+)\.npz")


def _sealed(state):
    """`state` with `checksum`, the SHA-256 of its other fields."""
    fields = {key: value for key, value in state.items() if key != "checksum"}
    text = json.dumps(run_files.json_safe(fields), sort_keys=True)
    return {**fields, "checksum": hashlib.sha256(text.encode()).hexdigest()}


def read_state(path):
    """state.json's fields, or None when it cannot be read, lacks a field or fails its checksum.
    A state written before checksums existed (no `checksum`) is taken as it is."""
    try:
        with open(path) as handle:
            state = json.load(handle)
        completed = state["completed_epochs"]
        if not isinstance(completed, int) or completed < 0:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if "checksum" in state and _sealed(state)["checksum"] != state["checksum"]:
        return None
    return state


def epoch_state(checkpoint_dir, completed_epochs, rows, initial_logit_norm=None):
    """The sealed state that commits epoch `completed_epochs`: its checkpoint (already written
    in `checkpoint_dir`) and metrics `rows` with their SHA-256, and the previous epoch's
    fields when the state on disk is that epoch's."""
    name = checkpoint_name(completed_epochs)
    state = {"completed_epochs": completed_epochs, "checkpoint": name,
             "checkpoint_sha256": run_files.file_sha256(os.path.join(checkpoint_dir, name)),
             "metrics_sha256": run_files.rows_sha256(rows)}
    if initial_logit_norm is not None:
        state["initial_logit_norm"] = initial_logit_norm
    previous = read_state(os.path.join(checkpoint_dir, STATE_FILE))
    if previous and previous.get("completed_epochs") == completed_epochs - 1 > 0:
        state["previous"] = {key: previous[key] for key in (
            "completed_epochs", "checkpoint", "checkpoint_sha256", "metrics_sha256")
            if key in previous}
    return _sealed(state)


def diverged_state(checkpoint_dir, diverged_at):
    """The state on disk (or that of a run with no epoch committed), sealed again with
    `diverged_at`: a restarted run stays diverged instead of training again."""
    state = read_state(os.path.join(checkpoint_dir, STATE_FILE)) or {
        "completed_epochs": 0, "checkpoint": None}
    return _sealed({**state, "diverged_at": diverged_at})


def _whole_npz(path):
    """Whether the .npz at `path` reads completely (every member's zip CRC checks out)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _problem(state, rows, checkpoint_dir):
    """What is wrong with resuming from `state` given metrics.csv's `rows`, or None."""
    completed = state["completed_epochs"]
    kept = [row for row in rows
            if isinstance(row.get("epoch"), int) and row["epoch"] <= completed]
    if [row["epoch"] for row in kept] != list(range(1, completed + 1)):
        return f"metrics.csv does not hold exactly epochs 1-{completed}"
    if state.get("metrics_sha256") and run_files.rows_sha256(kept) != state["metrics_sha256"]:
        return "metrics.csv differs from what was committed"
    if completed == 0:
        return None
    path = os.path.join(checkpoint_dir, state["checkpoint"])
    if not os.path.exists(path):
        return f"{state['checkpoint']} is missing"
    if state.get("checkpoint_sha256"):
        if run_files.file_sha256(path) != state["checkpoint_sha256"]:
            return f"{state['checkpoint']} differs from what was committed"
    elif not _whole_npz(path):
        return f"{state['checkpoint']} does not read whole"
    return None


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """Where a restarted run resumes.

    `state`: the committed state it resumes from (`completed_epochs`, `checkpoint`, and
    `diverged_at` once the run diverged); `verified`: the checkpoints that checked out, path by
    epochs completed; `rolled_back`: `{"from_epoch", "to_epoch", "reason"}` when the last
    commit did not check out, else None; `initial_logit_norm`: what the run measured before its
    first step, as its state carries it.
    """

    state: dict
    verified: dict
    rolled_back: dict = None
    initial_logit_norm: dict = None


def find_resume_point(run_path, checkpoint_dir, rows):
    """The `ResumePoint` of the run at `run_path`, whose metrics.csv holds `rows`; None for a
    fresh run (no state.json).

    Raises:
        DamagedRunError: no kept epoch checks out (the directory is left as it is).
    """
    state_path = os.path.join(checkpoint_dir, STATE_FILE)
    if not os.path.exists(state_path):
        return None
    state = read_state(state_path)
    if state is None:
        return _recover_without_state(run_path, checkpoint_dir, rows)
    candidates = [state, *([state["previous"]] if state.get("previous") else [])]
    problems = [_problem(candidate, rows, checkpoint_dir) for candidate in candidates]
    good = [index for index, problem in enumerate(problems) if problem is None]
    if not good:
        found = "; ".join(f"epoch {candidate['completed_epochs']}: {problem}"
                          for candidate, problem in zip(candidates, problems))
        raise DamagedRunError(
            f"{run_path} cannot be resumed ({found}). Nothing was changed; rerun with "
            "--overwrite to train it from scratch.")
    verified = {candidates[index]["completed_epochs"]:
                os.path.join(checkpoint_dir, candidates[index]["checkpoint"])
                for index in good if candidates[index]["completed_epochs"] > 0}
    norm = state.get("initial_logit_norm")
    if good[0] == 0:
        return ResumePoint(state, verified, initial_logit_norm=norm)
    rolled_back = {"from_epoch": state["completed_epochs"],
                   "to_epoch": candidates[good[0]]["completed_epochs"], "reason": problems[0]}
    resumed = {**candidates[good[0]],
               **({"diverged_at": state["diverged_at"]} if state.get("diverged_at") else {})}
    return ResumePoint(resumed, verified, rolled_back, norm)


def _recover_without_state(run_path, checkpoint_dir, rows):
    """The newest kept checkpoint that reads whole and has its metrics rows, when state.json
    cannot be read."""
    names = sorted((name for name in os.listdir(checkpoint_dir)
                    if CHECKPOINT_FILE.fullmatch(name)), reverse=True)
    for name in names:
        completed = int(CHECKPOINT_FILE.fullmatch(name)[1])
        candidate = {"completed_epochs": completed, "checkpoint": name}
        if _problem(candidate, rows, checkpoint_dir) is None:
            return ResumePoint(candidate, {completed: os.path.join(checkpoint_dir, name)},
                               {"from_epoch": None, "to_epoch": completed,
                                "reason": "checkpoints/state.json could not be read"})
    raise DamagedRunError(
        f"{run_path} cannot be resumed: checkpoints/state.json cannot be read and no kept "
        "checkpoint reads whole with its metrics rows. Nothing was changed; rerun with "
        "--overwrite to train it from scratch.")
