"""`tc.train` killed at its fault points, then run again (tests/test_fault_injection.py).

    python -m tests.fault_injection list <tc.train flags...>
    python -m tests.fault_injection kill <jobs.json> <tc.train flags...>

The fault points, in the order a run passes them: taking the directory's lock; before, while
(its temporary file written, not yet renamed into place) and after every file the run directory
writes (model.keras: before and after); the set-up before `fit`; the start of each epoch, its second training
step, its end, the rank activations and the epoch's record; the results after training. Commits
are made synchronous here, so the points come in the same order in every run.

`list` runs `tc.train` once, printing `fault point <i>: <name>` as each point passes. `kill`
takes jobs `[{"point": i, "signal": "SIGKILL" or "SIGTERM", "output_dir": ...}, ...]`; for
each, a child process runs `tc.train` and sends itself the signal at point i. Then one more
child runs every job's command again, untouched, one after the other. It prints one JSON line
per job with both exit codes and the status of each result.json the killed run left. A packed
sweep (`--betas=...`) is killed and rerun the same way: its points name each copy's files.
The parent imports everything once and forks the children before any backend is initialized.
Under JAX the children read the persistent compilation cache of the test session
(tests/conftest.py), so each compiles its steps only once.
"""

import functools
import json
import os
import signal
import sys

from absl import app
# Imported by a run on first use (tc.data.digits, tc.runner.epoch_scalars): imported here once,
# before the children fork, so that no child imports them again.
from sklearn import datasets, model_selection  # noqa: F401
from tensorboard.compat.proto import event_pb2  # noqa: F401
from tensorboard.summary.writer import record_writer  # noqa: F401

from tc import compat, run_files
from tc import train
from tc.runner import assembly, callbacks, results, run_dir
from tc.runner import command_line


def install_fault_points(output_dir, target, signal_name):
    passed = []

    def point(name):
        passed.append(name)
        if target < 0:
            print(f"fault point {len(passed) - 1}: {name}", flush=True)
        elif len(passed) - 1 == target:
            os.kill(os.getpid(), getattr(signal, signal_name))

    def before(owner, attribute, name=None):
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def wrapped(*args, **kwargs):
            point(name or attribute)
            return original(*args, **kwargs)

        setattr(owner, attribute, wrapped)

    def around_write(path, write):
        name = os.path.relpath(path, output_dir)
        point(f"before writing {name}")
        write()
        point(f"after writing {name}")

    def writing(path, write):
        # Inside the write: the temporary file holds the content, not yet renamed into place.
        def written(handle):
            write(handle)
            handle.flush()
            point(f"while writing {os.path.relpath(path, output_dir)}")
        return written

    original_write = run_files._atomic_write
    run_files._atomic_write = lambda path, write, mode: around_write(
        path, lambda: original_write(path, writing(path, write), mode))
    original_write_model = run_dir.RunDirectory.write_model
    run_dir.RunDirectory.write_model = lambda self, model: around_write(
        self.file(run_dir.MODEL), lambda: original_write_model(self, model))
    original_commit = run_dir.RunDirectory.commit_epoch

    def commit_now(self, *args, **kwargs):
        original_commit(self, *args, **kwargs)
        self.wait()

    run_dir.RunDirectory.commit_epoch = commit_now
    before(run_dir.RunDirectory, "lock")
    before(assembly, "_start", "set-up before fit")
    before(callbacks.EpochEnd, "on_epoch_begin", "epoch start")
    before(callbacks.EpochEnd, "on_epoch_end", "epoch end")
    before(callbacks.RankActivations, "take", "rank activations")
    before(callbacks.EpochRecorder, "record", "epoch record")
    before(results, "after_training", "results after training")
    original_batch_end = compat.StepQuietCallbackList.on_train_batch_end

    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            point("second training step")
        return original_batch_end(self, batch, logs)

    compat.StepQuietCallbackList.on_train_batch_end = on_train_batch_end


def run_train(flags):
    try:
        app.run(train.main, argv=["tc.train", *flags],
                flags_parser=command_line.parse_command_line)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return 0


def in_child(work):
    """Runs `work()` in a forked child; returns its exit code, or -signal if a signal ended it."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            sys.stdout = sys.stderr = open(os.devnull, "w")
            code = work()
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def rerun_all(commands):
    """Runs `tc.train` with each flag list in turn, all in one forked child; returns their exit
    codes. One warm process runs them as a user's fresh rerun of each would (every run seeds
    itself), without tracing and loading the same programs once per job; a run that crashes the
    child leaves it and the runs after it with the child's exit code."""
    read_end, write_end = os.pipe()

    def reruns():
        for flags in commands:
            os.write(write_end, f"{run_train(flags)}\n".encode())
        return 0

    crashed = in_child(reruns)  # a few bytes a job: the pipe holds them until the child ends
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        codes = [int(line) for line in reader]
    return codes + [crashed or 1] * (len(commands) - len(codes))


def main():
    mode = sys.argv[1]
    if mode == "list":
        flags = sys.argv[2:]
        install_fault_points(output_dir_of(flags), -1, "")
        sys.exit(run_train(flags))
    with open(sys.argv[2]) as handle:
        jobs = json.load(handle)
    common = sys.argv[3:]
    commands, killed = [], []
    for job in jobs:
        flags = [*common, f"--output_dir={job['output_dir']}"]

        def killed_run(job=job, flags=flags):
            install_fault_points(job["output_dir"], job["point"], job["signal"])
            return run_train(flags)

        first = in_child(killed_run)
        killed.append({**job, "first_exit": first,
                       "results_left": results_left(job["output_dir"])})
        commands.append(flags)
    for outcome, again in zip(killed, rerun_all(commands)):
        print(json.dumps({**outcome, "rerun_exit": again}), flush=True)


def results_left(output_dir):
    """{run folder: (status, interrupted_by)} of each result.json the killed run left."""
    left = {}
    for folder, _, files in os.walk(output_dir):
        if "result.json" in files:
            with open(os.path.join(folder, "result.json")) as handle:
                result = json.load(handle)
            left[os.path.relpath(folder, output_dir)] = (result["status"],
                                                         result.get("interrupted_by"))
    return left


def output_dir_of(flags):
    return next(flag.split("=", 1)[1] for flag in flags if flag.startswith("--output_dir="))


if __name__ == "__main__":
    main()
