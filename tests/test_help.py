"""`--help` of every command: the console command and its `python -m` form print the same full
help, which lists every flag the command defines with its default."""

import os
import re
import sys

import pytest

from tests.support import run_python

COMMANDS = {"tc-train": "tc.train", "tc-tune": "tc.tune", "tc-bench": "tc.bench",
            "tc-report": "tc.analysis.report"}
# A flag every command's help must list, and one of each's own (the module's flags).
OWN_FLAGS = {"tc.train": ("beta", "learning_rate", "betas", "output_dir"),
             "tc.tune": ("beta", "tuner", "grid_points", "objective"),
             "tc.bench": ("models", "figures", "batch_size", "out", "copies"),
             "tc.analysis.report": ("runs", "out", "notes", "plan", "flagfiles", "throughput",
                                    "num_bins")}


@pytest.mark.backend_independent  # absl's flag definitions: the same whichever backend loads
@pytest.mark.parametrize("command, module", COMMANDS.items())
def test_the_console_command_and_its_module_print_the_same_full_help(command, module):
    launcher = os.path.join(os.path.dirname(sys.executable), command)
    assert os.path.exists(launcher), f"{command} is not installed (pip install -e .)"
    by_module = run_python(["-m", module, "--help"], backend="jax")
    by_command = run_python([launcher, "--help"], backend="jax")
    for shown in (by_module, by_command):
        assert shown.returncode == 0 and shown.stderr == "", shown.stderr[-2000:]
    assert by_command.stdout == by_module.stdout
    text = by_module.stdout
    assert text.startswith(f"`python -m {module}")
    for flag in OWN_FLAGS[module]:
        entry = re.search(rf"^  --{flag}: .*?\n    \(default: [^\n]*\)$", text,
                          re.MULTILINE | re.DOTALL)
        assert entry, (module, flag)
    assert text.rstrip().endswith("--helpfull lists every flag, absl's own and the libraries' "
                                  "included.")
