"""`python -m tc.tune`: a keras-tuner search over beta in which every trial is a tc run.

All `tc.train` flags set the runs, and the flags of `tc.runner.search` set the search. Example: 7 grid
points from 1e-2 to 10 (both included), 2 seeds each, on digits:

    python -m tc.tune --tuner=grid --grid_points=7 --executions_per_trial=2 \\
        --output_dir=tc_tune/digits

`--packed=4` trains 4 trials at a time as one packed program (grid and random tuners).

SIGTERM or SIGINT stops the search after the training step in flight (exit code 4); the same
command resumes it: the interrupted trial runs again from its runs' last committed epochs.

Distributed (keras-tuner's chief/worker mode): start the chief with
`KERASTUNER_TUNER_ID=chief KERASTUNER_ORACLE_IP=<ip> KERASTUNER_ORACLE_PORT=<port>` and each
worker with `KERASTUNER_TUNER_ID=tuner<i>` and the same address, all with the same flags.
On one host, `--local_workers=auto` starts them itself, one worker per GPU.
"""

import os
import sys

from absl import flags

from tc import data as data_lib
from tc.runner import assembly, command_line, interruption, local_workers, search
from tc.runner.command_line import CommandLineError
from tc.runner import config as config_lib

config_lib.define_flags()
search.define_flags()
FLAGS = flags.FLAGS
flags.adopt_module_key_flags(config_lib)


def main(argv):
    del argv  # every setting is a flag
    try:
        base = config_lib.from_flags(FLAGS, overwrite=False, output_dir="")
        search_settings = search.from_flags(FLAGS)
        if base.is_packed and set(base.sweep_axes) != {"init_logit_norm"}:
            raise ValueError("--betas, --learning_rates, --seeds and --readout_init_scales make "
                             "a packed tc.train sweep; tc.tune searches with --beta_min, "
                             "--beta_max, --lr_min, --lr_max and --executions_per_trial.")
    except ValueError as error:
        raise CommandLineError(error) from None
    if "KERASTUNER_TUNER_ID" not in os.environ:
        gpus = local_workers.visible_gpus()
        count = local_workers.worker_count(search_settings.local_workers, gpus)
        if count >= 2 or (count == 1 and search_settings.local_workers != "auto"):
            sys.exit(local_workers.launch(sys.argv[1:], count, gpus))
    try:
        with interruption.handling_signals():
            summary = search.search_beta(base, search_settings)
    except (assembly.ConfigurationError, data_lib.DatasetNotPreparedError) as error:
        raise CommandLineError(error) from None
    except interruption.Interrupted as stopped:
        print(f"\n{stopped}")
        sys.exit(assembly.STATUS_EXIT_CODES["interrupted"])
    if summary.get("worker"):
        print("\nworker done; the chief writes trials.csv")
        return
    best, baseline = summary["best"], summary["baseline"]
    trials = [row for row in summary["trials"] if row["trial_id"] != search.BASELINE_ID]
    extra = " and the beta = 1 baseline" if len(trials) < len(summary["trials"]) else ""
    print(f"\n{len(trials)} trials{extra}; trials.csv in {search_settings.output_dir}/")
    if summary["incomplete"]:
        print(f"no best beta: trials {', '.join(map(search.trial_name, summary['incomplete']))} "
              "did not finish for a "
              "reason outside training (their reasons are in trials.csv); run the same command "
              "again to retry them")
        sys.exit(1)
    if best is None:
        print("no trial completed")
        return
    print(f"best beta {best['beta']:.4g}: {search_settings.objective} = {best['score']:.4f}"
          + (f" (beta = 1: {baseline:.4f})" if baseline is not None else ""))
    if summary["passed_over"]:
        print(f"passed over for their accuracy (more than {search.ACCURACY_MARGIN:g} below the "
              "best trial's val/accuracy): trials "
              f"{', '.join(map(search.trial_name, summary['passed_over']))}")


def help_groups(module_name):
    """The flag groups of `--help` and of this command's CLI reference page."""
    return config_lib.HELP_GROUPS + (search.HELP_GROUP,)


def run():
    """The console command (`tc-tune`), the same as `python -m tc.tune`."""
    command_line.run(main, __name__, help_groups(__name__))


if __name__ == "__main__":
    run()
