"""`tc.tune --local_workers`: a chief and N workers started on this host, one GPU each."""

import pytest

from tc import run_files
from tc.runner import local_workers, search

from tests.support import run_python


def test_auto_counts_the_visible_gpus_and_numbers_are_checked():
    assert local_workers.visible_gpus({"CUDA_VISIBLE_DEVICES": "0, 3"}) == ["0", "3"]
    assert local_workers.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert local_workers.visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert local_workers.worker_count("auto", ["0", "3"]) == 2
    assert local_workers.worker_count("auto", []) == 0
    assert local_workers.worker_count("4", []) == 4
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(ValueError, match=f"--local_workers='{bad}'.*valid values: auto"):
            local_workers.worker_count(bad, [])
    with pytest.raises(ValueError, match="--local_workers='x'"):
        search.SearchConfig(local_workers="x").validate()


def test_the_flag_is_dropped_from_the_workers_command_line():
    assert local_workers._without_local_workers(
        ["--local_workers=2", "--epochs=2", "--local_workers", "auto", "-local_workers=3",
         "--output_dir=x"]) == ["--epochs=2", "--output_dir=x"]


@pytest.mark.backend_independent  # pinned to JAX: the same processes on both backends
@pytest.mark.tensorflow_leg  # JAX processes: CI runs them in the TensorFlow leg, the shorter
def test_a_search_with_two_local_workers_runs_each_trial_once_and_exits(tmp_path):
    output = tmp_path / "search"
    completed = run_python(["-m", "tc.tune", "--local_workers=2", "--grid_points=3",
                            "--epochs=2", "--tensorboard=false", f"--output_dir={output}"],
                           backend="jax", timeout=400)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "tc.tune: a chief and 2 workers on 127.0.0.1:" in completed.stdout
    assert "best beta" in completed.stdout
    rows = run_files.read_csv(output / "trials.csv")
    trials = [row for row in rows if row["trial_id"] != search.BASELINE_ID]
    assert len(trials) == 3 and all(row["status"] == "completed" for row in trials)
    # "[tuner0] tc.tune: trial #1 (trials/0) (beta=...) runs on tuner0": the trial's folder.
    started = {worker: [line.split()[4] for line in completed.stdout.splitlines()
                        if line.startswith(f"[{worker}] tc.tune: trial")]
               for worker in ("tuner0", "tuner1")}
    # Every trial ran once, on one of the two workers (which one took how many is the oracle's).
    assert sorted(started["tuner0"] + started["tuner1"]) == sorted(
        f"(trials/{row['trial_id']})" for row in trials)
    assert completed.stdout.count("worker done; the chief writes trials.csv") == 2
