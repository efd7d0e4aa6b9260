"""A keras-tuner search over beta (and optionally the learning rate) where every trial is a tc run.

The space is `hp.Float("beta", beta_min, beta_max, sampling="log")` (a grid search uses
`grid_points` log-spaced values that include both endpoints). With `tune_learning_rate`, the
learning rate is searched too; `lr_scaling="inverse_beta_squared"` searches
`eta_tilde` and trains at `eta = eta_tilde / beta^2`, paper 1's curvature scaling (the largest
stable SGD step falls as `beta^-2`), which makes the 2-D sweep nearly 1-D.

Each execution of a trial is `tc.runner.assembly.run` with its own run directory,
`<output_dir>/trials/<trial_id>/seed<k>`, so trials resume like runs and analysis sees ordinary
run directories. A diverged run marks its trial FAILED (with the reason) and the search goes on.
The oracle state lives in `<output_dir>/tuner/`: rerunning the same command resumes the search
without repeating finished trials. Setting keras-tuner's `KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` runs it distributed (one chief, many workers).

The package: `settings` (SearchConfig, its flags and its space), `oracles` (keras-tuner's
oracles, resumable and watched), `tuner` (the tuner whose trials are runs, imported once a
search runs), `trials` (trials on disk and trials.csv) and `run` (`search_beta`: the search,
its best trial and the beta = 1 baseline).
"""

from tc.runner.search.run import (ACCURACY_MARGIN, BASELINE_ID, accurate_enough, is_worker,
                                  search_beta)
from tc.runner.search.settings import (CHOICES, FLAG_HELP, HELP_GROUP, LR_SCALINGS, OBJECTIVES,
                                       PACKABLE_TUNERS, SHARED_RUN_FLAGS, TUNERS, SearchConfig,
                                       define_flags, from_flags, grid_values, log_grid,
                                       search_space, trial_learning_rate)
from tc.runner.search.oracles import TRIAL_RETRIES
from tc.runner.search.trials import trial_name, trial_rows, trial_table

__all__ = ["ACCURACY_MARGIN", "BASELINE_ID", "CHOICES", "FLAG_HELP", "HELP_GROUP",
           "LR_SCALINGS", "OBJECTIVES", "PACKABLE_TUNERS", "SHARED_RUN_FLAGS", "TRIAL_RETRIES",
           "TUNERS", "SearchConfig", "accurate_enough", "define_flags", "from_flags",
           "grid_values", "is_worker", "log_grid", "search_beta", "search_space",
           "trial_learning_rate", "trial_name", "trial_rows", "trial_table"]
