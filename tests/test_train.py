"""`python -m tc.train`: the command, its exit codes, its messages, preemption and multi-worker."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

from tc import run_files
from tc.runner import assembly
from tests.support import ROOT, free_ports, run_python, start_python

BACKEND = keras.backend.backend()


def read_rows(path):
    return run_files.read_csv(path / "metrics.csv")


def test_default_main_job_completes_with_well_formed_outputs(tmp_path):
    output = tmp_path / "main"
    completed = run_python(["-m", "tc.train", f"--output_dir={output}"])  # the README's command
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "status: completed" in completed.stdout and str(output) in completed.stdout
    assert "predictions.npz" in completed.stdout and (output / "predictions.npz").exists()
    assert "model.keras" in completed.stdout and (output / "model.keras").exists()
    result = json.loads((output / "result.json").read_text())
    assert result["status"] == "completed" and result["epochs_completed"] == 30
    assert result["final"]["test/accuracy"] >= 0.95
    assert result["scored_probabilities"] == "softmax(beta*z)"
    assert result["backend"] == BACKEND and result["examples_per_second"] > 0
    assert {"keras", "numpy", "tc"} <= set(result["versions"])
    rows = read_rows(output)
    assert [row["epoch"] for row in rows] == list(range(1, 31))
    for column in ("train/loss", "train/accuracy", "train/nll", "train/ece", "train/mce",
                   "train/logit_norm", "train/beta_logit_norm", "val/loss", "val/accuracy",
                   "test/loss", "test/accuracy", "test/ece", "test/mce", "learning_rate",
                   "beta", "rank/features/numerical", "rank/features/effective"):
        assert all(row[column] is not None and math.isfinite(row[column]) for row in rows), column
    # flags.txt is a flagfile that reproduces the run.
    flags_text = (output / "flags.txt").read_text()
    assert f"--output_dir={output}\n" in flags_text and "--beta=1.0\n" in flags_text
    checkpoints = os.listdir(output / "checkpoints")
    assert "state.json" in checkpoints and "ckpt-00030.npz" in checkpoints
    # The progress line, not a terminal here: one line per epoch with the epoch's values.
    epoch_lines = [line for line in completed.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split("  ")[0] for line in epoch_lines] == [f"epoch {n}/30" for n in
                                                               range(1, 31)]
    assert f"val_accuracy {rows[-1]['val/accuracy']:.4g}" in epoch_lines[-1]
    # TensorBoard: every metrics.csv column, as classic scalars at metrics.csv's epochs.
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    accumulator = event_accumulator.EventAccumulator(str(output / "tensorboard"))
    accumulator.Reload()
    assert set(accumulator.Tags()["scalars"]) == set(rows[0]) - {"epoch"}
    for column in ("test/accuracy", "rank/features/effective", "learning_rate"):
        events = accumulator.Scalars(column)
        assert [event.step for event in events] == list(range(1, 31))
        assert [event.value for event in events] == pytest.approx(
            [row[column] for row in rows], rel=1e-6)


SWEEP_FLAGS = ["-m", "tc.train", "--epochs=6", "--batch_size=8", "--verbose=0",
               "--tensorboard=false", "--rank_probe_size=64", "--betas=0.5,2"]


@pytest.fixture(scope="module")
def uninterrupted_sweep(tmp_path_factory):
    """The sweep of SWEEP_FLAGS run through, in this process (the command's run assembly)."""
    from tc.runner import config as config_lib

    output = tmp_path_factory.mktemp("uninterrupted")
    config = config_lib.RunConfig.from_flagfile("\n".join(SWEEP_FLAGS[2:]),
                                                output_dir=str(output))
    assert [result["status"] for result in assembly.run(config)] == ["completed"] * 2
    return output


def test_a_preempted_packed_sweep_resumes_to_the_uninterrupted_result(tmp_path,
                                                                      uninterrupted_sweep):
    # The SIGTERM of a preemption of a packed sweep of two copies (a single run is the same
    # assembly with one member) after epoch 2, on this backend, then the same command: every
    # copy's rows equal the uninterrupted sweep's. SIGTERM stops after the step in flight,
    # commits nothing of the unfinished epoch and says so in result.json, the exit code and the
    # last line. (SIGKILL and SIGTERM at every fault point: tests/test_fault_injection.py.)
    output = tmp_path / "killed"
    command = [sys.executable, *SWEEP_FLAGS, f"--output_dir={output}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    state_file = output / "beta0.5" / "checkpoints" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if state_file.exists() and json.loads(state_file.read_text())["completed_epochs"] >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=120)
    killed_at = json.loads(state_file.read_text())["completed_epochs"]
    assert 2 <= killed_at < 6
    assert process.returncode == assembly.STATUS_EXIT_CODES["interrupted"] == 4
    assert "run the same command again to resume" in stdout
    for copy in ("beta0.5", "beta2"):
        result = json.loads((output / copy / "result.json").read_text())
        assert (result["status"], result["interrupted_by"]) == ("interrupted", "SIGTERM")
        assert result["epochs_completed"] == len(read_rows(output / copy))
        assert not [path for path in (output / copy).rglob(".tmp-*")]

    resumed = run_python(SWEEP_FLAGS + [f"--output_dir={output}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for copy in ("beta0.5", "beta2"):
        rows, reference_rows = read_rows(output / copy), read_rows(uninterrupted_sweep / copy)
        assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5, 6]
        for row, expected in zip(rows, reference_rows):
            for key, value in expected.items():
                if isinstance(value, float):
                    assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (
                        copy, row["epoch"], key)
        assert json.loads((output / copy / "result.json").read_text())["status"] == "completed"


# Pinned to JAX: the command's exit code and message; each backend's divergence is detected in
# tests/runner/test_assembly.py.
@pytest.mark.backend_independent
def test_divergence_exit_code_is_distinct(tmp_path):
    completed = run_python(["-m", "tc.train", "--beta=1000", "--learning_rate=10000",
                            "--optimizer=sgd", "--epochs=3", "--verbose=0", "--tensorboard=false",
                            f"--output_dir={tmp_path / 'diverged'}"], backend="jax")
    assert completed.returncode == assembly.STATUS_EXIT_CODES["diverged"] == 3
    assert "status: diverged" in completed.stdout and "diverged at epoch" in completed.stdout


# Flags are checked before any Keras code runs: the same on both backends.
@pytest.mark.backend_independent
@pytest.mark.parametrize("flag, message", [
    ("--beta=0", "--beta=0.0"), ("--dataset=cifar11", "valid datasets: digits"),
    ("--model=resnet19", "resnet50"), ("--epochs=0", "--epochs=0"),
])
def test_bad_flags_exit_nonzero_with_the_flag_and_valid_values(tmp_path, flag, message):
    output = tmp_path / "never"
    completed = run_python(["-m", "tc.train", flag, f"--output_dir={output}"], backend="jax")
    assert completed.returncode != 0
    assert message in completed.stderr
    assert not output.exists()


@pytest.mark.skipif(BACKEND != "tensorflow", reason="MultiWorkerMirroredStrategy is TensorFlow's")
def test_two_workers_finish_a_run_together_with_one_devices_metrics(tmp_path, small_config):
    ports = free_ports(2)
    output = tmp_path / "cluster"
    workers = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                     "task": {"type": "worker", "index": index}}
        workers.append(start_python(
            ["-m", "tc.train", "--strategy=multi_worker", "--epochs=1", "--batch_size=32",
             "--verbose=0", "--tensorboard=false", "--rank_probe_size=128",
             f"--output_dir={output}"], TF_CONFIG=json.dumps(tf_config)))
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
        assert "status: completed" in stdout
    result = json.loads((output / "result.json").read_text())  # written by worker 0 only
    assert (result["strategy"], result["replicas"]) == ("multi_worker", 2)
    one = assembly.run_one(small_config("one", strategy="one_device", epochs=1))
    for key, value in one["final"].items():
        if isinstance(value, float) and not key.startswith("rank/"):
            assert result["final"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


# Process 1 of the first start: killed by SIGKILL as epoch 1 ends, before its epoch-end work.
KILLED_AT_EPOCH_1_END = """
import os, signal, sys
from tc.runner import callbacks
from tc import train

on_epoch_end = callbacks.EpochEnd.on_epoch_end

def killed_at_epoch_1_end(self, epoch, logs=None):
    if epoch == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return on_epoch_end(self, epoch, logs)

callbacks.EpochEnd.on_epoch_end = killed_at_epoch_1_end
sys.argv = ["tc.train", *sys.argv[1:]]
train.run()
"""


@pytest.mark.backend_independent  # JAX processes, whichever backend the suite runs
def test_two_jax_processes_match_one_device_and_resume_after_one_is_killed(tmp_path,
                                                                           small_config):
    """Multi-process JAX on 127.0.0.1, one CPU device per process. Process 1 is SIGKILLed at
    the end of epoch 1; process 0, which evaluates and commits epoch 1 on its own (evaluation
    needs no other process), fails at the first step of epoch 2 and exits at once; both started
    again finish the run with one device's metrics."""
    flags = ["--epochs=3", "--batch_size=32", "--verbose=0", "--tensorboard=false",
             "--rank_probe_size=128"]  # small_config's
    # One device per process (the last of a repeated XLA flag holds), compiled as in this one.
    env = dict(KERAS_BACKEND="jax", XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
               + " --xla_force_host_platform_device_count=1")
    if BACKEND == "jax":  # the reference: one device, in this process (CI's JAX leg)
        assembly.run_one(small_config("one", strategy="one_device"))
    else:
        reference = run_python(["-m", "tc.train", *flags, "--strategy=one_device",
                                f"--output_dir={tmp_path / 'one'}"], backend="jax")
        assert reference.returncode == 0, reference.stderr[-3000:]
    output = tmp_path / "processes"

    def start_processes(process_1=("-m", "tc.train")):
        port, = free_ports(1)
        return [start_python([*(process_1 if index else ("-m", "tc.train")), *flags,
                              "--strategy=multi_worker", f"--output_dir={output}",
                              f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                              f"--process_id={index}"], **env) for index in range(2)]

    first = start_processes(process_1=("-c", KILLED_AT_EPOCH_1_END))
    first[1].communicate(timeout=240)
    assert first[1].returncode == -signal.SIGKILL
    stdout, stderr = first[0].communicate(timeout=120)  # not JAX's 5-minute shutdown barrier
    assert first[0].returncode == 1, stderr[-3000:]
    assert json.loads((output / "result.json").read_text())["status"] == "failed"
    state = json.loads((output / "checkpoints" / "state.json").read_text())
    assert state["completed_epochs"] == 1

    again = start_processes()
    for process in again:
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr[-3000:]
        assert "status: completed" in stdout
    result = json.loads((output / "result.json").read_text())  # process 0's
    assert (result["status"], result["strategy"], result["replicas"]) == (
        "completed", "multi_process[2 processes]", 2)
    rows, expected_rows = read_rows(output), read_rows(tmp_path / "one")
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    for row, expected in zip(rows, expected_rows):
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (row["epoch"], key)


# What the data and the MLP learn, not what a backend does (both train digits end to end in
# test_default_main_job_completes_with_well_formed_outputs): run once, by JAX.
@pytest.mark.backend_independent
def test_an_mlp_on_fashion_mnist_reaches_85_percent_in_three_epochs(tmp_path):
    # Real data: Debian's dataset-fashion-mnist, which CI installs (.ci/run).
    output = tmp_path / "fashion"
    completed = run_python(["-m", "tc.train", "--dataset=fashion_mnist", "--model=mlp",
                            "--epochs=3", "--verbose=0", "--tensorboard=false",
                            f"--output_dir={output}"], backend="jax")
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((output / "result.json").read_text())
    assert result["final"]["test/accuracy"] >= 0.85, result["final"]
    assert "--dataset=fashion_mnist" in (output / "flags.txt").read_text()


def _help_group(text, title):
    """{flag: its entry} of the group `title` of a grouped --help (None if it is absent)."""
    if f"\n{title}:\n" not in text:
        return None
    block = "\n" + text.split(f"\n{title}:\n")[1].split("\n\n")[0]
    return {entry.split(":")[0]: entry for entry in block.split("\n  --")[1:]}


@pytest.mark.backend_independent  # absl's help text: the same whichever backend Keras loads
def test_help_lists_the_run_flags_in_groups_with_defaults_and_the_search_flags_apart():
    from tc.runner import config as config_lib
    from tc.runner import search

    titles = [title for title, _ in config_lib.HELP_GROUPS]
    grouped = [name for _, names in config_lib.HELP_GROUPS for name in names]
    assert sorted(grouped) == sorted(field.name for field in dataclasses.fields(
        config_lib.RunConfig))  # every run flag in exactly one group
    assert [title.split(":")[0] for title in titles] == [
        "data and model", "loss", "optimization", "packed sweep", "run control and measurements"]
    train = run_python(["-m", "tc.train", "--help"], backend="jax")
    assert train.returncode == 0 and "Traceback" not in train.stderr, train.stderr[-2000:]
    assert train.stdout.startswith("`python -m tc.train`: train one model")
    groups = {title: _help_group(train.stdout, title) for title in titles}
    assert [sorted(groups[title]) for title in titles] == [
        sorted(names) for _, names in config_lib.HELP_GROUPS]
    for flag, group, default in (("beta", 1, "'1.0'"), ("dataset", 0, "'digits'"),
                                 ("model", 0, "''"), ("learning_rate", 2, "'0.05'")):
        assert f"(default: {default})" in groups[titles[group]][flag], flag
    assert "<temperature|gradient_decay>" in groups["loss"]["loss"]  # the valid values
    assert _help_group(train.stdout, search.HELP_GROUP[0]) is None
    tune = run_python(["-m", "tc.tune", "--help"], backend="jax")
    assert tune.returncode == 0 and "Traceback" not in tune.stderr, tune.stderr[-2000:]
    search_group = _help_group(tune.stdout, search.HELP_GROUP[0])
    assert set(search_group) == set(search.FLAG_HELP) and "beta_min" in search_group
    assert "learning_rate" in _help_group(tune.stdout, "optimization")
    # absl's --helpfull: every module's flags.
    full = run_python(["-m", "tc.train", "--helpfull"], backend="jax")
    assert "--beta:" in full.stdout and "--flagfile:" in full.stdout


@pytest.mark.backend_independent  # the summary's text: no Keras code runs
def test_the_outputs_line_lists_only_the_files_the_run_directory_holds(tmp_path):
    # In a subprocess: tc.train's flags would clash with tc.bench's in a worker importing both.
    (tmp_path / "diverged" / "checkpoints").mkdir(parents=True)
    (tmp_path / "diverged" / "flags.txt").write_text("--beta=1\n")
    shown = run_python(f"""
        from tc import train
        stopped = dict(status="interrupted", interrupted_by="SIGTERM", epochs_completed=0,
                       epochs=3, diverged_at=None, final=None, run_dir={str(tmp_path / 'new')!r})
        print(train.describe(stopped).splitlines()[-1])
        diverged = dict(stopped, status="diverged", interrupted_by=None,
                        run_dir={str(tmp_path / 'diverged')!r},
                        diverged_at=dict(epoch=1, step=3, reason="loss is nan"))
        print(train.describe(diverged).splitlines()[-1])
    """, backend="jax")
    assert shown.returncode == 0, shown.stderr[-2000:]
    # Stopped before its directory existed: nothing to list. Diverged in its first epoch:
    # flags and checkpoints/, no metrics.csv.
    assert shown.stdout.splitlines()[-2:] == [
        f"nothing was written to {tmp_path}/new",
        f"outputs: {tmp_path}/diverged/ (flags.txt, checkpoints/)"]
