"""The search's settings: `SearchConfig`, its flags, and the space it searches.

`SearchConfig` says how to search (the tuner, the beta range, the objective, packing, workers);
the run settings themselves are a `tc.runner.config.RunConfig`. `search_space` and `grid_values`
are the keras-tuner hyperparameters and the grid they span.
"""

import dataclasses
import math

import numpy as np

from tc.runner import config as config_lib
from tc.runner import local_workers, run_dir

TUNERS = ("random", "bayesian", "hyperband", "grid")
OBJECTIVES = {"val_accuracy": ("val/accuracy", "max"), "val_ece": ("val/ece", "min"),
              "val_nll": ("val/nll", "min")}
LR_SCALINGS = config_lib.LR_SCALINGS
PACKABLE_TUNERS = ("grid", "random")
PACKABLE_TUNERS_WHY = ("bayesian search proposes each trial from the scores of the ones before "
                       "it, and hyperband gives trials different epoch budgets, while a packed "
                       "program trains its copies together for the same epochs.")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """How to search; the run settings themselves come from a `tc.runner.config.RunConfig`."""

    output_dir: str = "tc_tune/search"
    tuner: str = "grid"
    beta_min: float = 1e-2
    beta_max: float = 10.0
    grid_points: int = 7
    max_trials: int = 10
    executions_per_trial: int = 1
    objective: str = "val_accuracy"
    tune_learning_rate: bool = False
    lr_min: float = 1e-3
    lr_max: float = 1.0
    lr_grid_points: int = 4
    lr_scaling: str = "none"
    init_logit_norms: str = ""
    packed: int = 1
    worker_timeout: float = 600.0
    local_workers: str = "0"
    overwrite: bool = False

    def validate(self):
        for name, choices in (("tuner", TUNERS), ("objective", tuple(OBJECTIVES)),
                              ("lr_scaling", LR_SCALINGS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"--{name}={getattr(self, name)!r} is not valid; valid values: "
                                 f"{', '.join(choices)}.")
        for low, high in (("beta_min", "beta_max"), ("lr_min", "lr_max")):
            low_value, high_value = getattr(self, low), getattr(self, high)
            if not (math.isfinite(low_value) and low_value > 0 and math.isfinite(high_value)):
                raise ValueError(f"--{low}={low_value!r} and --{high}={high_value!r} must be "
                                 "positive and finite.")
            if low_value >= high_value:
                raise ValueError(f"--{low}={low_value!r} must be below --{high}={high_value!r}.")
        for name, minimum in (("grid_points", 2), ("max_trials", 1),
                              ("executions_per_trial", 1), ("lr_grid_points", 2)):
            if getattr(self, name) < minimum:
                raise ValueError(f"--{name}={getattr(self, name)!r} must be >= {minimum}.")
        if self.packed < 1:
            raise ValueError(f"--packed={self.packed!r} must be >= 1 (1: one trial at a time).")
        if self.local_workers != "auto":
            local_workers.worker_count(self.local_workers, [])
        run_dir.check_output_directory(self.output_dir)
        if self.packed > 1 and self.tuner not in PACKABLE_TUNERS:
            raise ValueError(f"--packed={self.packed} works with --tuner=grid or random, not "
                             f"{self.tuner!r}: {PACKABLE_TUNERS_WHY}")
        if self.lr_scaling != "none" and not self.tune_learning_rate:
            raise ValueError("--lr_scaling needs --tune_learning_rate.")
        try:
            norms = self.logit_norms
        except ValueError:
            norms = None
        if norms is not None and not all(math.isfinite(n) and n > 0 for n in norms):
            norms = None
        if norms is None:
            raise ValueError(f"--init_logit_norms={self.init_logit_norms!r} must be a comma-"
                             "separated list of positive numbers (or empty).")
        return self

    @property
    def logit_norms(self):
        """The `||beta z0||` values searched (paper 1's second knob); empty: not searched."""
        return tuple(float(v) for v in self.init_logit_norms.split(",") if v.strip())

    @property
    def objective_metric(self):
        return OBJECTIVES[self.objective][0]

    @property
    def direction(self):
        return OBJECTIVES[self.objective][1]

    @property
    def learning_rate_name(self):
        return "eta_tilde" if self.lr_scaling != "none" else "learning_rate"


FLAG_HELP = {
    "tuner": "keras-tuner search algorithm.",
    "beta_min": "Smallest beta searched.",
    "beta_max": "Largest beta searched.",
    "grid_points": "Grid tuner: log-spaced beta values, both endpoints included.",
    "max_trials": "Trials of random / bayesian search.",
    "executions_per_trial": "Seeds per trial (--seed, --seed + 1, ...); the score is their mean.",
    "objective": "What the search optimizes, at the final epoch. Under val_ece or val_nll, only "
                 "trials within 0.02 of the most accurate trial's val/accuracy can be named best "
                 "(a model that predicts one class can be perfectly calibrated).",
    "tune_learning_rate": "Search the learning rate jointly with beta.",
    "lr_min": "Smallest learning rate (or eta_tilde) searched.",
    "lr_max": "Largest learning rate (or eta_tilde) searched.",
    "lr_grid_points": "Grid tuner: log-spaced learning rates.",
    "packed": "Trials trained together as one packed tc.train program (grid and random "
              "tuners); 1 = one trial at a time.",
    "worker_timeout": "Distributed search: seconds without a word from a worker (each reports "
                      "at every epoch end) after which the chief gives its trial to another "
                      "worker and stops waiting for it.",
    "local_workers": "A distributed search on this host: a chief and this many workers, each "
                     "with one GPU; auto = one per GPU of the host (one GPU or none: no "
                     "workers); 0 = none (tc.runner.local_workers).",
}
# Flags of tc.train that the search reads as its own: with --lr_scaling it searches eta_tilde,
# and --init_logit_norms become a searched axis instead of a packed sweep's.
SHARED_RUN_FLAGS = ("lr_scaling", "init_logit_norms")
HELP_GROUP = ("search (tc.tune): keras-tuner over beta, and the learning rate if asked",
              tuple(FLAG_HELP))
CHOICES = {"tuner": TUNERS, "objective": tuple(OBJECTIVES)}


def define_flags(flag_values=None):
    """Defines the search flags (the run flags come from `tc.runner.config.define_flags`)."""
    from tc.runner import config as config_lib

    defaults = SearchConfig()
    for name, help_text in FLAG_HELP.items():
        config_lib.define_flag(name, getattr(defaults, name), help_text, CHOICES.get(name),
                               flag_values, module_name=__name__)


def from_flags(flag_values=None):
    """The validated SearchConfig of parsed flags (`--output_dir` names the search directory)."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    values = {name: flag_values[name].value for name in (*FLAG_HELP, *SHARED_RUN_FLAGS)}
    return SearchConfig(output_dir=flag_values["output_dir"].value or "tc_tune/search",
                        overwrite=flag_values["overwrite"].value, **values).validate()


def log_grid(low, high, points):
    """`points` log-spaced values from `low` to `high`, both endpoints exactly included."""
    values = list(np.geomspace(low, high, points))
    values[0], values[-1] = low, high
    return [float(v) for v in values]


def search_space(search):
    """The keras-tuner HyperParameters of a SearchConfig."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    if search.tuner == "grid":
        hp.Choice("beta", log_grid(search.beta_min, search.beta_max, search.grid_points),
                  ordered=True)
    else:
        hp.Float("beta", search.beta_min, search.beta_max, sampling="log")
    if search.tune_learning_rate:
        name = search.learning_rate_name
        if search.tuner == "grid":
            hp.Choice(name, log_grid(search.lr_min, search.lr_max, search.lr_grid_points),
                      ordered=True)
        else:
            hp.Float(name, search.lr_min, search.lr_max, sampling="log")
    if search.logit_norms:
        hp.Choice("init_logit_norm", list(search.logit_norms), ordered=True)
    return hp


def trial_learning_rate(base, search, values):
    """The learning rate a trial trains at (paper 1's scaling with --lr_scaling)."""
    if not search.tune_learning_rate:
        return base.learning_rate
    return config_lib.scaled_learning_rate(values[search.learning_rate_name], values["beta"],
                                           search.lr_scaling)


def grid_values(search, betas=None):
    """Every point of the grid search, in order: betas (`betas`, or the searched grid), then
    learning rates, then logit norms."""
    if betas is None:
        betas = log_grid(search.beta_min, search.beta_max, search.grid_points)
    points = [{"beta": beta} for beta in betas]
    if search.tune_learning_rate:
        rates = log_grid(search.lr_min, search.lr_max, search.lr_grid_points)
        points = [{**point, search.learning_rate_name: rate} for point in points
                  for rate in rates]
    if search.logit_norms:
        points = [{**point, "init_logit_norm": norm} for point in points
                  for norm in search.logit_norms]
    return points
