"""A quiet console (tc.console) and `import tc` without a backend: what a user sees first."""

import os
import subprocess
import sys

import pytest

from tc import console
from tests.support import ROOT

# stderr of `import tensorflow` and of a tc.train run on a CPU machine, as TensorFlow 2.21
# writes it (the numbers shortened).
TENSORFLOW_STDERR = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796590003.098563    3106 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1796590003.141380    3106 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
W0000 00:00:1796590003.2    3106 gpu_device.cc:2342] Cannot dlopen some GPU libraries.
E0000 00:00:1796589945.883824    2758 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error
/site-packages/keras/src/trainers/trainer.py:1: UserWarning: a warning of Python's
  warnings.warn(
"""


def test_the_filter_drops_info_and_warning_log_lines_and_keeps_everything_else():
    kept = console.filter_log_lines(TENSORFLOW_STDERR)
    assert kept == ("E0000 00:00:1796589945.883824    2758 cuda_platform.cc:52] failed call to "
                    "cuInit: INTERNAL: CUDA error\n"
                    "/site-packages/keras/src/trainers/trainer.py:1: UserWarning: a warning of "
                    "Python's\n  warnings.warn(\n")
    assert console.filter_log_lines("Traceback (most recent call last):\n") == (
        "Traceback (most recent call last):\n")


def _python(arguments, **environment):
    env = {key: value for key, value in os.environ.items()
           if key not in (console.LOG_LEVEL_VARIABLE, console.SET_BY_TC)}
    env.update(environment)
    return subprocess.run([sys.executable, *arguments], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.backend_independent
@pytest.mark.tensorflow_leg
def test_the_main_job_on_tensorflow_prints_no_log_line_unless_the_user_asks_for_them(tmp_path):
    run = _python(["-m", "tc.train", "--epochs=1", "--verbose=2", "--tensorboard=false",
                   f"--output_dir={tmp_path / 'run'}"], KERAS_BACKEND="tensorflow")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "status: completed" in run.stdout
    assert run.stderr == ""  # no cuInit, oneDNN, NodeDef or absl INFO line
    # A level the user sets is TensorFlow's to apply: at 0, its INFO lines come through.
    loud = _python(["-c", "import tc"], KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="0")
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert "I0000" in loud.stderr or "oneDNN" in loud.stderr or "cuda" in loud.stderr


@pytest.mark.backend_independent
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_import_tc_without_its_backend_is_one_line_naming_the_extra(backend):
    missing = f"""
import sys
class Missing:  # as if the backend were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == {backend!r}:
            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)
sys.meta_path.insert(0, Missing())
import tc
"""
    run = _python(["-c", missing], KERAS_BACKEND=backend)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last == (f"ImportError: tc needs a Keras backend, and Keras's backend {backend!r} is "
                    "not installed: pip install 'tc-temperature[tensorflow]' (or install jax "
                    "and set KERAS_BACKEND=jax).")
