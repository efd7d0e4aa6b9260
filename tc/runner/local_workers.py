"""`tc.tune --local_workers=N|auto`: a distributed search on one host, one worker per GPU.

keras-tuner's chief/worker mode (see `tc.runner.search`) is started here for the user: a chief
that only keeps the oracle, on 127.0.0.1 and a free port, and N workers, each with one GPU of
this host (`CUDA_VISIBLE_DEVICES`) and the same flags. `auto` is the number of GPUs this host
shows (`CUDA_VISIBLE_DEVICES` when set, else `nvidia-smi -L`); a host with one GPU or none runs
the search in the process itself, as without the flag.

The chief's output is this command's; each worker's line follows, prefixed `[tuner<i>]`.
SIGTERM or SIGINT is passed on to every process, which stop as a search does (the same command
resumes). The exit code is the chief's, or a worker's when the chief succeeded and it did not.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading


def visible_gpus(environ=None):
    """The ids of this host's GPUs that a process may use: `CUDA_VISIBLE_DEVICES`'s entries when
    it is set, else the GPUs `nvidia-smi -L` lists, else none."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [entry.strip() for entry in environ["CUDA_VISIBLE_DEVICES"].split(",")
                if entry.strip() and entry.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return [str(index) for index, line in enumerate(listed.stdout.splitlines())
            if line.startswith("GPU ")]


def worker_count(value, gpus):
    """The number of workers of `--local_workers=value`: `auto` (one per GPU in `gpus`) or an
    integer >= 0 (0: no local workers)."""
    if value == "auto":
        return len(gpus)
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise ValueError(f"--local_workers={value!r} is not valid; valid values: auto (one "
                         "worker per GPU of this host) or a number of workers >= 0.")
    return count


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _without_local_workers(arguments):
    kept, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument in ("--local_workers", "-local_workers"):
            skip = True
        elif not argument.lstrip("-").startswith("local_workers="):
            kept.append(argument)
    return kept


def _relay(stream, prefix):
    for line in stream:
        sys.stdout.write(f"{prefix} {line}")
        sys.stdout.flush()


def launch(arguments, count, gpus):
    """Runs `python -m tc.tune arguments...` as a chief and `count` workers on this host (worker
    i on GPU `gpus[i % len(gpus)]` when there are GPUs); returns the exit code."""
    command = [sys.executable, "-m", "tc.tune", *_without_local_workers(arguments)]
    port = _free_port()
    base = {name: value for name, value in os.environ.items()
            if not name.startswith("KERASTUNER_")}
    base.update(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port))
    print(f"tc.tune: a chief and {count} workers on 127.0.0.1:{port}"
          + (f"; the workers' GPUs: {', '.join(gpus[index % len(gpus)] for index in range(count))}"
             if gpus else ""), flush=True)
    # The chief trains nothing: it gets no GPU, so that none of a worker's memory goes to it.
    chief = subprocess.Popen(command, env=dict(base, KERASTUNER_TUNER_ID="chief",
                                               CUDA_VISIBLE_DEVICES=""))
    workers, relays = [], []
    try:
        for index in range(count):
            env = dict(base, KERASTUNER_TUNER_ID=f"tuner{index}")
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
            # Only the chief acts on --overwrite: a worker starting as it clears the search
            # directory must not clear it again (the last flag given wins in absl).
            workers.append(subprocess.Popen([*command, "--nooverwrite"], env=env,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True))
            relays.append(threading.Thread(target=_relay, daemon=True,
                                           args=(workers[-1].stdout, f"[tuner{index}]")))
            relays[-1].start()
        processes = [chief, *workers]
        previous = {number: signal.signal(number, lambda received, _: [
            process.send_signal(received) for process in processes if process.poll() is None])
            for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            codes = [process.wait() for process in processes]
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
    finally:
        for process in [chief, *workers]:
            if process.poll() is None:
                process.kill()
                process.wait()
        for relay in relays:
            relay.join(timeout=10)
    failed = [code for code in codes[1:] if code != 0]
    return codes[0] if codes[0] != 0 or not failed else failed[0]
