"""A run directory: its layout, its lock, its commits, and refusing to mix two runs (its
files are written and read by `tc.run_files`).

Layout:

    flags.txt          the flagfile that reproduces the run
    metrics.csv        one row per completed epoch
    result.json        status and summary, written when the run stops
    predictions.npz    validation and test logits that the metrics scored, and labels (at the end)
    model.keras        the trained model with its tc loss and metrics (at the end; `tc.load_run`)
    checkpoints/       ckpt-<epochs>.npz (model + optimizer, see tc.runner.checkpoint) and state.json
    tensorboard/       metrics.csv's columns as TensorBoard scalars (tc.runner.epoch_scalars)
    example_learning.npz, example_learning/   per-example learning (--track_example_learning)
    .lock              held by the process that writes the run (see `RunDirectory.lock`)

Every file is written to a temporary name and renamed into place, so a run killed at any point
leaves the previous complete version. `checkpoints/state.json` is the commit point of an epoch:
it is written after that epoch's checkpoint and metrics row, and a restart resumes from the last
epoch whose state, checkpoint and rows check out (`tc.runner.resume`: the state's format, its
checksums and the rollback).
Commits run on a background thread (one for the whole process), one at a time, so training goes
on while they are written; `wait()` returns when the last one is on disk.

One process at a time writes a run directory: `prepare` takes an exclusive OS lock on `.lock`
(`flock`, which the kernel releases when the holder dies, however it dies), and a second process
is refused with a message naming the holder.
"""

import concurrent.futures
import csv
import os
import re
import socket
import sys
import tempfile

try:
    import fcntl
except ImportError:  # not a POSIX system: no lock
    fcntl = None


from tc import run_files
from tc.runner import resume


# One writer thread for every run directory of the process: the K copies of a packed sweep commit
# one after another, rather than K threads contending with the training thread for the
# interpreter lock.
_WRITER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tc-commit")


# What a run directory of tc holds; `--overwrite` removes these and nothing else.
LOCK = ".lock"
MODEL = "model.keras"
RUN_ENTRIES = (run_files.FLAGS_FILE, "metrics.csv", run_files.RESULT_FILE, "predictions.npz",
               MODEL, "checkpoints", "tensorboard", "example_learning.npz", "example_learning",
               LOCK)
# The files tc writes inside the run's folders: `--overwrite` removes these names and no others.
OWN_FILES = {"checkpoints": re.compile(
                 f"{resume.CHECKPOINT_FILE.pattern}|{re.escape(resume.STATE_FILE)}"),
             "tensorboard": re.compile(r"events\.out\.tfevents\..+\.tc"),
             "example_learning": re.compile(r"epoch_\d+\.npz")}


def _remove_own_files(folder, name):
    """Removes the files of `OWN_FILES[name]` (and temporaries) in `folder`, then the folder if
    nothing else is left; returns what was kept, as `name/entry`."""
    own = OWN_FILES.get(name)
    kept = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if (entry.startswith(run_files.TEMPORARY_PREFIX) or (own and own.fullmatch(entry))) and (
                os.path.isfile(path) or os.path.islink(path)):
            os.remove(path)
        else:
            kept.append(f"{name}/{entry}")
    if not kept:
        os.rmdir(folder)
    return kept


class RunDirectoryConflict(ValueError):
    """The output directory holds a different run, or files that are not a tc run's."""


def check_output_directory(path, flag="--output_dir"):
    """Raises ValueError unless `path` is a directory, or can be made one, that this process
    can write: the one path check of `tc.train` and `tc.tune`, made before anything is written."""
    target = os.path.abspath(path)
    existing = target
    while not os.path.exists(existing):  # the nearest ancestor that exists
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "is a file" if existing == target else f"is under {existing}, which is a file"
        raise ValueError(f"{flag}={path} {where}; give a directory.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}={path}: {existing} is not writable by this process; give a "
                         "directory you can write.")


def _read_text(path):
    """The file's text, or None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


class RunDirectory:
    """The files of one run under `path`; only the chief process writes."""

    def __init__(self, path, writable=True, keep_checkpoints=2):
        self.path = path
        self.writable = writable
        # The last two: a damaged last checkpoint falls back to the one before, and a packed
        # sweep killed between two copies' commits of one epoch resumes every copy from the
        # earlier of the two.
        self.keep_checkpoints = keep_checkpoints
        self._pending_commit = None
        self._lock = None
        # Set by `resume_state`: the checkpoints that checked out, by epochs completed, and
        # what was rolled back ({"from_epoch", "to_epoch", "reason"}), if anything.
        self._verified = {}
        self.rolled_back = None
        # An `epoch_scalars.EpochScalars`, given each complete set of rows after metrics.csv.
        self.scalars = None
        # What the run measured before its first step (`--init_logit_norm`'s ||beta z0||
        # before and after rescaling): carried in every state.json, so a resumed run still
        # reports it.
        self.initial_logit_norm = None

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def checkpoint_dir(self):
        return self.file("checkpoints")

    @property
    def _state_path(self):
        return os.path.join(self.checkpoint_dir, resume.STATE_FILE)

    def prepare(self, flagfile, overwrite=False):
        """Starts or resumes the run whose flags are `flagfile`; returns the resume state or None.

        `flags.txt` is the first file written, so a directory is recognisably a tc run from its
        first byte. `overwrite` replaces a run with other flags, or one that cannot be resumed,
        removing only the files tc wrote (`remove_run`).

        Raises:
            RunDirectoryConflict: the directory holds a run with other flags, or tc's files
                without a flags.txt, and `overwrite` is False; or it holds files that are not a
                tc run's (never removed).
            tc.runner.resume.DamagedRunError: the run cannot be resumed and `overwrite` is False.
        """
        flags_path = self.file(run_files.FLAGS_FILE)
        if self.writable:
            self._refuse_foreign_files(flagfile)  # before the lock file is written
            if not overwrite:  # as is another run: its directory gets no lock file
                self._refuse_other_run(_read_text(flags_path), flagfile)
            self.lock()
            self.remove_temporaries()
        existing = _read_text(flags_path)
        if not self.writable:
            # Another process (the chief) checks and prepares the directory. This one resumes
            # only a run of the same flags, which the chief resumes too (it found them before
            # it could write anything); a cluster must share the output directory to resume.
            return self.resume_state() if existing == flagfile else None
        if existing != flagfile and self._run_entries():
            if not overwrite:
                self._refuse_other_run(existing, flagfile)
            self._replace_run()
        if not os.path.exists(flags_path):
            run_files.atomic_write_text(flags_path, flagfile)
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        try:
            return self.resume_state()
        except resume.DamagedRunError:
            if not overwrite:
                raise
        self._replace_run()
        run_files.atomic_write_text(flags_path, flagfile)
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        return None

    def _replace_run(self):
        kept = self.remove_run()
        if kept:
            print(f"tc: {self.path}: --overwrite kept {len(kept)} file(s) tc did not write: "
                  f"{', '.join(kept[:5])}{', ...' if len(kept) > 5 else ''}", file=sys.stderr,
                  flush=True)

    def _run_entries(self):
        """The directory's entries a run writes that hold something: the lock, temporary
        files and empty folders aside."""
        if not os.path.isdir(self.path):
            return []
        return sorted(entry for entry in os.listdir(self.path)
                      if entry in RUN_ENTRIES and entry != LOCK
                      and not (os.path.isdir(self.file(entry)) and not os.listdir(self.file(entry))))

    def _refuse_other_run(self, existing, flagfile):
        if existing is not None and existing != flagfile:
            raise RunDirectoryConflict(
                f"{self.path} holds a run with different flags; choose another --output_dir "
                "or pass --overwrite to replace it.")
        entries = self._run_entries() if existing is None else []
        if entries:
            raise RunDirectoryConflict(
                f"{self.path} holds a run's files ({', '.join(entries[:4])}) but no flags.txt, "
                "so whose run it is cannot be told; choose another --output_dir or pass "
                "--overwrite to replace them.")

    def _refuse_foreign_files(self, flagfile):
        if _read_text(self.file(run_files.FLAGS_FILE)) == flagfile:
            return
        foreign = self.foreign_entries()
        if foreign:
            raise RunDirectoryConflict(
                f"{self.path} holds files that are not a tc run's ({', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}); tc never deletes them, even with "
                "--overwrite. Choose another --output_dir.")

    def lock(self):
        """Takes the directory's exclusive lock (creating the directory), held until `unlock`
        or the process's end.

        Raises:
            RunDirectoryConflict: another process holds it (named by its pid and host).
        """
        if self._lock is not None or fcntl is None:
            return
        os.makedirs(self.path, exist_ok=True)
        if os.path.isdir(self.file(LOCK)):
            raise RunDirectoryConflict(f"{self.file(LOCK)} is a directory; tc keeps its lock "
                                       "file there. Choose another --output_dir.")
        handle = open(self.file(LOCK), "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunDirectoryConflict(
                f"{self.path} is being written by {holder}; one process at a time writes a run "
                "directory. Wait for it to stop, or choose another --output_dir.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"tc process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._lock = handle

    def close_scalars(self):
        """Closes the TensorBoard event file once the last commit is written."""
        if self.scalars is not None:
            if self._pending_commit is not None:
                concurrent.futures.wait([self._pending_commit])
            self.scalars.close()
            self.scalars = None

    def unlock(self):
        """Releases the lock taken by `lock` (the file stays, as the directory's mark)."""
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def foreign_entries(self):
        """The directory's entries that a tc run does not write, sorted."""
        if not os.path.isdir(self.path):
            return []
        return sorted(entry for entry in os.listdir(self.path)
                      if entry not in RUN_ENTRIES
                      and not entry.startswith(run_files.TEMPORARY_PREFIX))

    def remove_run(self):
        """Removes the files tc wrote, by name (`RUN_ENTRIES`; inside checkpoints/,
        tensorboard/ and example_learning/ only the names of `OWN_FILES`), and leftover
        temporaries. A folder that still holds another file is kept with it. Returns the kept
        files, relative to the directory."""
        kept = []
        for entry in sorted(os.listdir(self.path)):
            target = self.file(entry)
            if entry == LOCK:
                continue  # held by this process: removing it would let another take a new one
            if entry.startswith(run_files.TEMPORARY_PREFIX):
                os.remove(target)
            elif entry in RUN_ENTRIES:
                if os.path.isdir(target) and not os.path.islink(target):
                    kept.extend(_remove_own_files(target, entry))
                else:
                    os.remove(target)
        return kept

    def remove_temporaries(self):
        """Removes the temporary files of writers that did not finish (killed mid-write): the
        process that holds the lock is the only writer of the directory, so every temporary
        file in it is an orphan. Returns their paths."""
        removed = []
        for folder in (self.path, *(self.file(name) for name in OWN_FILES)):
            if not os.path.isdir(folder):
                continue
            for entry in os.listdir(folder):
                if entry.startswith(run_files.TEMPORARY_PREFIX):
                    os.remove(os.path.join(folder, entry))
                    removed.append(os.path.join(folder, entry))
        return removed

    def completed_result(self, flagfile):
        """The result.json of this directory's run, if it is a completed run of `flagfile`;
        else None. A completed run is kept as it is: a rerun returns this and writes nothing."""
        if self.recorded_flags() != flagfile:
            return None
        try:
            result = run_files.read_result(self.file(run_files.RESULT_FILE))
        except (OSError, ValueError):
            return None
        return result if result["status"] == "completed" else None

    def recorded_flags(self):
        """The flags.txt of the run in this directory, or None."""
        return _read_text(self.file(run_files.FLAGS_FILE))

    def resume_state(self):
        """The state of the last committed epoch that checks out (`completed_epochs`,
        `checkpoint`, and `diverged_at` once the run diverged), or None for a fresh run; sets
        `rolled_back` when the last commit did not check out (`tc.runner.resume`).

        Raises:
            tc.runner.resume.DamagedRunError: no kept epoch checks out (the directory is left
                as it is).
        """
        self._verified, self.rolled_back = {}, None
        try:
            rows = self.metrics_rows()
        except (OSError, ValueError, csv.Error):
            rows = []
        point = resume.find_resume_point(self.path, self.checkpoint_dir, rows)
        if point is None:
            return None
        self._verified, self.rolled_back = point.verified, point.rolled_back
        if point.initial_logit_norm is not None:
            self.initial_logit_norm = point.initial_logit_norm
        return point.state

    def checkpoint_at(self, completed_epochs):
        """The path of the checkpoint after `completed_epochs` epochs, or None unless
        `resume_state` found it whole and as committed."""
        return self._verified.get(completed_epochs)

    def metrics_rows(self, completed_epochs=None):
        """The metrics rows on disk, cut to the first `completed_epochs` epochs."""
        path = self.file("metrics.csv")
        if not os.path.exists(path):
            return []
        # A damaged row ends what is read: the state's checksums decide what can be resumed.
        rows = run_files.read_csv(path, intact_prefix=True)
        if completed_epochs is not None:
            rows = [row for row in rows if row["epoch"] <= completed_epochs]
        return rows

    def commit_epoch(self, snapshot, rows, completed_epochs, finish_row=None):
        """Writes a `tc.runner.checkpoint.Snapshot`, then metrics.csv, then the state that points at
        both, on a background thread.

        `finish_row`, if given, returns more columns of the last row (the ranks); it runs on
        that thread first. Waits for the previous commit first; `wait()` waits for this one.
        """
        if not self.writable:
            return  # nor the rank columns: the SVDs would delay this process's next step
        self.wait()
        self._pending_commit = _WRITER.submit(self._commit, snapshot, list(rows),
                                              completed_epochs, finish_row)

    def commit_divergence(self, diverged_at):
        """Records in state.json (on the commit thread) that the run diverged at `diverged_at`,
        so a restarted run stays diverged instead of training again."""
        if not self.writable:
            return
        self.wait()
        self._pending_commit = _WRITER.submit(self._mark_diverged, diverged_at)

    def _mark_diverged(self, diverged_at):
        run_files.atomic_write_json(self._state_path,
                                    resume.diverged_state(self.checkpoint_dir, diverged_at))

    def wait(self):
        """Returns when no commit is being written; raises the error of a failed one."""
        pending, self._pending_commit = self._pending_commit, None
        if pending is not None:
            pending.result()

    def _commit(self, snapshot, rows, completed_epochs, finish_row):
        if finish_row is not None:
            rows[-1].update(finish_row())
        run_files.atomic_write_arrays(
            os.path.join(self.checkpoint_dir, resume.checkpoint_name(completed_epochs)),
            snapshot.arrays())
        run_files.atomic_write_text(self.file("metrics.csv"), run_files.rows_to_csv(rows))
        if self.scalars is not None:
            self.scalars.write(rows)
        run_files.atomic_write_json(self._state_path, resume.epoch_state(
            self.checkpoint_dir, completed_epochs, rows, self.initial_logit_norm))
        kept = {resume.checkpoint_name(completed_epochs - back)
                for back in range(self.keep_checkpoints)}
        for other in os.listdir(self.checkpoint_dir):
            if other.startswith("ckpt-") and other not in kept:
                os.remove(os.path.join(self.checkpoint_dir, other))

    def checkpoint_path(self, state):
        return os.path.join(self.checkpoint_dir, state["checkpoint"])

    def write_predictions(self, arrays):
        if self.writable:
            run_files.atomic_write_arrays(self.file("predictions.npz"), arrays, compress=True)

    def write_model(self, model):
        """Saves the trained Keras `model` as model.keras, atomically (Keras writes the
        temporary file; it is renamed into place)."""
        if not self.writable:
            return
        from tc import compat  # Keras, which the readers of run directories do without

        descriptor, temporary = tempfile.mkstemp(dir=self.path,
                                                 prefix=run_files.temporary_prefix(),
                                                 suffix=".keras")
        os.close(descriptor)
        try:
            compat.save_model(model, temporary)
            os.chmod(temporary, run_files.FILE_MODE)
            os.replace(temporary, self.file(MODEL))
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise

    def write_result(self, result):
        """Writes result.json once the last commit is on disk (a failed one is left to wait())."""
        if self._pending_commit is not None:
            concurrent.futures.wait([self._pending_commit])
        run_files.check_result(result)  # a malformed result is a bug: never written
        if self.writable:
            run_files.atomic_write_json(self.file(run_files.RESULT_FILE), result)
