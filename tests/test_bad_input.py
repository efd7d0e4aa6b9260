"""Bad input at the command line, as a user meets it: one line on stderr that names the flag and
the value (and the valid values or range), exit code 1, and nothing written.

Every input runs through the entry point's own `run()` (the console command's function), in one
subprocess per command with a fresh working directory per input; absl's flags are reset between
inputs. The checks are made on what the command wrote, not on exceptions.
"""

import json

import pytest

from tests.support import run_python

# (arguments, text the last line of stderr must contain). `{here}` is the input's working
# directory; `{file}` a regular file in it; `{other_run}` a run directory of other flags.
TRAIN = [
    (["--dataset=digitz"], "--dataset='digitz': Unknown dataset 'digitz'; valid datasets: digits"),
    (["--dataset=digitz"], "tfds:<name>"),
    (["--model=resnet19"], "--model=resnet19"),
    (["--model_options=depth=2;colour=red"], "takes no option(s) ['colour']"),
    (["--dataset_options=validation_size=5"], "--validation_size"),
    (["--dataset=synthetic", "--validation_size=100"],
     "--validation_size=100: dataset 'synthetic' has no held-out training examples to size; "
     "its validation split is --dataset_options=validation_samples=N."),
    (["--validation_size=-5"], "--validation_size=-5 is not valid: it must be an integer in [-1,"),
    (["--loss=focal"], "--loss=focal: value should be one of <temperature|gradient_decay>"),
    (["--beta=0"], "--beta=0.0 is not valid: it must be positive and finite"),
    (["--beta=abc"], "--beta=abc"),
    (["--beta=1e-400"], "--beta=1e-400"),
    (["--beta_schedule=linear"], "--beta_schedule=linear"),
    (["--beta_start=-1"], "--beta_start=-1.0"),
    (["--beta_warmup=0"], "--beta_warmup=0 is not valid"),
    (["--init_logit_norm=-2"], "--init_logit_norm='-2'"),
    (["--label_smoothing=1.5"], "--label_smoothing=1.5 must be in [0, 1)"),
    (["--optimizer=rmsprop"], "--optimizer=rmsprop: value should be one of"),
    (["--learning_rate=inf"], "--learning_rate=inf"),
    (["--momentum=1"], "--momentum=1.0 must be in [0, 1)"),
    (["--lr_schedule=linear"], "--lr_schedule=linear"),
    (["--lr_decay_epochs=3,,4"], "--lr_decay_epochs='3,,4'"),
    (["--lr_decay_factor=0"], "--lr_decay_factor=0.0 must be in (0, 1]"),
    (["--weight_decay=-1"], "--weight_decay=-1.0 must be >= 0"),
    (["--batch_size=0"], "--batch_size=0 is not valid: it must be an integer in [1, 1,000,000]"),
    (["--epochs=99999999999999999999"], "--epochs=99999999999999999999 is not valid"),
    (["--epochs=ten"], "--epochs=ten: invalid literal for int()"),
    (["--steps_per_call=0"], "--steps_per_call=0 is not valid: it must be an integer in [1, "),
    (["--steps_per_call=4", "--beta_schedule=log_linear", "--beta_warmup_unit=step"],
     "--steps_per_call=4 with --beta_warmup_unit=step: beta is set from the host between steps"),
    (["--seed=-5"], "--seed=-5 is not valid: it must be an integer in [0, 4,294,967,295]"),
    (["--betas=1,,2"], "--betas='1,,2' must be a comma-separated list of numbers (positive) "
                       "with no empty item"),
    (["--betas=1,-2"], "--betas='1,-2': [-2.0] not valid"),
    (["--seeds=0,x"], "--seeds='0,x' must be a comma-separated list of numbers"),
    (["--grid=cross"], "--grid=cross"),
    (["--data_order=random"], "--data_order=random"),
    (["--strategy=cluster"], "--strategy=cluster"),
    (["--mixed_precision=fp8"], "--mixed_precision=fp8"),
    (["--num_processes=2"], "--num_processes only apply to --strategy=multi_worker"),
    (["--track_rank_layers=dense0,,features"], "--track_rank_layers='dense0,,features'"),
    (["--probe_dataset=nowhere"], "--probe_dataset='nowhere'"),
    (["--far_ood=digits,mnist"], "--far_ood='digits,mnist': unknown far-OOD set 'mnist'"),
    (["--study=my-study!"], "--study='my-study!'"),
    (["--unknown_flag=1"], "Unknown command line flag 'unknown_flag'"),
    (["extra"], "unexpected arguments ['extra']"),
    (["--output_dir={file}"], "{file}"),
    (["--output_dir={other_run}"], "{other_run} holds a run with different flags"),
    (["--flagfile={here}/missing.cfg"], "missing.cfg"),
]
TUNE = [
    (["--tuner=annealing"], "--tuner=annealing: value should be one of"),
    (["--grid_points=0"], "--grid_points"),
    (["--beta_min=0"], "--beta_min"),
    (["--beta_min=10", "--beta_max=1"], "--beta_min"),
    (["--objective=val_f1"], "--objective=val_f1"),
    (["--executions_per_trial=0"], "--executions_per_trial"),
    (["--betas=0.1,1"], "--betas, --learning_rates, --seeds and --readout_init_scales make a "
                        "packed tc.train sweep"),
    (["--epochs=0"], "--epochs=0 is not valid"),
    (["--packed=0"], "--packed"),
    (["--seed=-1"], "--seed=-1 is not valid"),
    (["--lr_min=-1", "--tune_learning_rate"], "--lr_min"),
]

DRIVER = """
import contextlib, io, json, os, sys, tempfile
from absl import flags
from tc import {module} as entry

def listing(root):
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, dirs, files in os.walk(root) for name in dirs + files)

outcomes = []
for arguments, _ in json.loads({cases!r}):
    here = tempfile.mkdtemp()
    os.chdir(here)
    with open("a_file", "w") as handle:
        handle.write("not a directory\\n")
    os.makedirs("other_run")
    with open("other_run/flags.txt", "w") as handle:
        handle.write("--dataset=synthetic\\n")
    names = dict(here=here, file=os.path.join(here, "a_file"),
                 other_run=os.path.join(here, "other_run"))
    before = listing(here)
    sys.argv = ["tc.{module}", *[argument.format(**names) for argument in arguments]]
    flags.FLAGS.unparse_flags()
    stderr, stdout = io.StringIO(), io.StringIO()
    code = "returned"
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            entry.run()
        except SystemExit as stop:
            code = stop.code
        except BaseException as error:
            code = f"raised {{type(error).__name__}}: {{error}}"
    outcomes.append(dict(code=code, stderr=stderr.getvalue(), stdout=stdout.getvalue(),
                         names=names, new=sorted(set(listing(here)) - set(before)),
                         changed=listing(here) != before))
print(json.dumps(outcomes))
"""


@pytest.mark.backend_independent  # flags are checked before any Keras code runs
@pytest.mark.parametrize("module, cases", [("train", TRAIN), ("tune", TUNE)])
def test_bad_input_is_one_line_naming_the_value_exit_1_and_nothing_written(module, cases):
    completed = run_python(DRIVER.format(module=module, cases=json.dumps(cases)),
                           backend="jax", timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcomes = json.loads(completed.stdout.strip().splitlines()[-1])
    assert len(outcomes) == len(cases)
    for (arguments, expected), outcome in zip(cases, outcomes):
        lines = outcome["stderr"].splitlines()
        assert outcome["code"] == 1, (arguments, outcome)
        assert len(lines) == 1, (arguments, lines)  # the message alone
        assert lines[0].startswith(f"tc.{module}: error: "), (arguments, lines)
        assert expected.format(**outcome["names"]) in lines[0], (arguments, lines)
        assert not outcome["changed"], (arguments, outcome["new"])  # nothing written
    assert len(TRAIN) + len(TUNE) >= 30
