"""`python -m tc.tune`: a keras-tuner search over beta in which every trial is a tc run.

All `tc.train` flags set the runs; the flags below set the search. Example, 7 grid points from
1e-2 to 10 (both included), 2 seeds each, on digits:

    python -m tc.tune --tuner=grid --grid_points=7 --executions_per_trial=2 \\
        --output_dir=tc_tune/digits

Distributed (keras-tuner's chief/worker mode): start the chief with
`KERASTUNER_TUNER_ID=chief KERASTUNER_ORACLE_IP=<ip> KERASTUNER_ORACLE_PORT=<port>` and each
worker with `KERASTUNER_TUNER_ID=tuner<i>` and the same address, all with the same flags.
"""

import dataclasses

from absl import app, flags

from tc import config as config_lib
from tc import data as data_lib
from tc import experiment, search

config_lib.define_flags()
_DEFAULTS = search.SearchConfig()
flags.DEFINE_enum("tuner", _DEFAULTS.tuner, search.TUNERS, "keras-tuner search algorithm.")
flags.DEFINE_float("beta_min", _DEFAULTS.beta_min, "Smallest beta searched.")
flags.DEFINE_float("beta_max", _DEFAULTS.beta_max, "Largest beta searched.")
flags.DEFINE_integer("grid_points", _DEFAULTS.grid_points,
                     "Grid tuner: log-spaced beta values, both endpoints included.")
flags.DEFINE_integer("max_trials", _DEFAULTS.max_trials, "Trials of random / bayesian search.")
flags.DEFINE_integer("executions_per_trial", _DEFAULTS.executions_per_trial,
                     "Seeds per trial (--seed, --seed + 1, ...); the score is their mean.")
flags.DEFINE_enum("objective", _DEFAULTS.objective, list(search.OBJECTIVES),
                  "What the search optimizes, at the final epoch.")
flags.DEFINE_bool("tune_learning_rate", _DEFAULTS.tune_learning_rate,
                  "Search the learning rate jointly with beta.")
flags.DEFINE_float("lr_min", _DEFAULTS.lr_min, "Smallest learning rate (or eta_tilde) searched.")
flags.DEFINE_float("lr_max", _DEFAULTS.lr_max, "Largest learning rate (or eta_tilde) searched.")
flags.DEFINE_integer("lr_grid_points", _DEFAULTS.lr_grid_points,
                     "Grid tuner: log-spaced learning rates.")
flags.DEFINE_enum("lr_scaling", _DEFAULTS.lr_scaling, search.LR_SCALINGS,
                  "inverse_beta_squared: search eta_tilde, train at eta_tilde / beta^2 (paper 1).")
FLAGS = flags.FLAGS


def search_config():
    values = {field.name: FLAGS[field.name].value for field in dataclasses.fields(
        search.SearchConfig) if field.name not in ("output_dir", "overwrite")}
    return search.SearchConfig(output_dir=FLAGS.output_dir or "tc_tune/search",
                               overwrite=FLAGS.overwrite, **values).validate()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        base = config_lib.from_flags(FLAGS, overwrite=False, output_dir="")
        search_settings = search_config()
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    try:
        summary = search.search_beta(base, search_settings)
    except (experiment.ConfigurationError, data_lib.DatasetNotPreparedError) as error:
        raise app.UsageError(str(error)) from None
    if summary.get("worker"):
        print("\nworker done; the chief writes trials.csv")
        return
    best, baseline = summary["best"], summary["baseline"]
    print(f"\n{len(summary['trials'])} trials; trials.csv in {search_settings.output_dir}/")
    if best is None:
        print("no trial completed")
        return
    print(f"best beta {best['beta']:.4g}: {search_settings.objective} = {best['score']:.4f}"
          + (f" (beta = 1: {baseline:.4f})" if baseline is not None else ""))


if __name__ == "__main__":
    app.run(main)
