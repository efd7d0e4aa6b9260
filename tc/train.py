"""`python -m tc.train`: train one model from absl flags (`python -m tc.train --help` lists them).

With no flags it runs the main job: an MLP on the bundled digits at beta = 1, in under a
minute on a laptop CPU. `--betas=0.01,0.1,1` trains one copy per beta in one program (see
`tc.runner.packing`). Exit codes: 0 completed, 3 diverged (any copy), 4 interrupted by SIGTERM or
SIGINT (the same command resumes; see `tc.runner.interruption`), 1 failed or bad flags.
"""

import os
import sys

from absl import flags

from tc import data as data_lib
from tc import run_files
from tc.runner import assembly
from tc.runner import config as config_lib
from tc.runner import command_line, distribute
from tc.runner import interruption
from tc.runner.command_line import CommandLineError
from tc.runner.resume import DamagedRunError
from tc.runner.run_dir import RunDirectoryConflict

config_lib.define_flags()
flags.adopt_module_key_flags(config_lib)  # --help lists the run flags, not only --helpfull
FLAGS = flags.FLAGS


def describe(result):
    final = result["final"] or {}
    lines = [f"\nstatus: {result['status']}"]
    if result["status"] == "interrupted":
        lines.append(f"interrupted by {result.get('interrupted_by') or 'a signal'} after "
                     f"{result['epochs_completed']} of {result['epochs']} epochs; run the same "
                     "command again to resume")
    if result["diverged_at"]:
        where = result["diverged_at"]
        lines.append(f"diverged at epoch {where['epoch']}, step {where['step']}: "
                     f"{where['reason']}")
    if final:
        lines.append(f"test accuracy {final.get('test/accuracy', float('nan')):.4f}, "
                     f"test ECE {final.get('test/ece', float('nan')):.4f} "
                     f"(scoring {result['scored_probabilities']}), "
                     f"{result['epochs_completed']}/{result['epochs']} epochs")
    if result.get("linear_probe"):
        probe = result["linear_probe"]
        lines.append(f"linear probe on {probe['dataset']} ({probe['layer']}): accuracy "
                     f"{probe['accuracy']:.4f}")
    # The files the run directory holds now (a run stopped before its first epoch has no
    # metrics.csv; one stopped before it started, no directory).
    names = [run_files.FLAGS_FILE, "metrics.csv", run_files.RESULT_FILE, result.get("model_file"),
             result.get("predictions"), "checkpoints/", "tensorboard/"]
    files = [name for name in names
             if name and os.path.exists(os.path.join(result["run_dir"], name))]
    if files:
        lines.append(f"outputs: {result['run_dir']}/ ({', '.join(files)})")
    else:
        lines.append(f"nothing was written to {result['run_dir']}")
    return "\n".join(lines)


def main(argv):
    with distribute.failing_fast():
        _main(argv)


def _main(argv):
    del argv  # every setting is a flag
    try:
        run_config = config_lib.from_flags(FLAGS)
    except ValueError as error:
        raise CommandLineError(error) from None
    try:
        with interruption.handling_signals():
            results = assembly.run(run_config)
    except (assembly.ConfigurationError, data_lib.DatasetNotPreparedError,
            RunDirectoryConflict, DamagedRunError) as error:
        # Bad input found before training: nothing was written. Errors while training propagate
        # with their traceback, and result.json says "failed".
        raise CommandLineError(error) from None
    for result in results:
        if len(results) > 1:
            print(f"\nbeta = {result['beta']:g}", end="")
        print(describe(result))
    sys.exit(max(assembly.STATUS_EXIT_CODES[result["status"]] for result in results))


def help_groups(module_name):
    """The flag groups of `--help` and of this command's CLI reference page."""
    return config_lib.HELP_GROUPS


def run():
    """The console command (`tc-train`), the same as `python -m tc.train`."""
    command_line.run(main, __name__, help_groups(__name__))


if __name__ == "__main__":
    run()
