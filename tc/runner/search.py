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
"""

import dataclasses
import json
import math
import os
import threading
import time

import keras
import numpy as np

from tc import compat, console, run_files
from tc.runner import assembly, interruption, local_workers, run_dir
from tc.runner import config as config_lib

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


def _grid_oracle(search, **common):
    """A grid oracle that resumes cleanly: it proposes the first grid point no trial has taken.

    keras-tuner's own GridSearchOracle loses its place when a search is killed mid-trial (its
    ordering list misses the running trial); this one keeps no order state at all.
    """
    import keras_tuner as kt

    class LogGridOracle(_watched(kt.Oracle)):
        def populate_space(self, trial_id):
            taken = [trial.hyperparameters.values for trial in self.trials.values()
                     if trial.trial_id != trial_id]
            for point in grid_values(search):
                if not any(all(values.get(k) == v for k, v in point.items()) for values in taken):
                    return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": point}
            return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}

    return LogGridOracle(max_trials=len(grid_values(search)), **common)


PACKED_SLOT = "-packed"  # a packed worker asks for trials as `<tuner id>-packed<slot>`


def _watch_workers(oracle, search):
    """The chief's watch: every few seconds, hands back the trials of workers not heard from
    for `--worker_timeout` seconds (see `_watched`)."""
    while True:
        time.sleep(min(5.0, search.worker_timeout / 4))
        for tuner, trial_id in oracle.hand_back_silent(search.worker_timeout):
            print(f"tc.tune: no word from {tuner} for {search.worker_timeout:g} s; "
                  + (f"trial {trial_name(trial_id)} goes to the next worker that asks" if trial_id
                     else "no longer waiting for it"), flush=True)


class Heartbeat(keras.callbacks.Callback):
    """Tells the oracle (the chief's, in a distributed search) at every epoch end that this
    worker's trials are alive."""

    def __init__(self, oracle, trial_ids):
        super().__init__()
        self.oracle = oracle
        self.trial_ids = list(trial_ids)

    def on_epoch_end(self, epoch, logs=None):
        for trial_id in self.trial_ids:
            self.oracle.get_trial(trial_id)


def _watched(oracle_class):
    """`oracle_class` whose state files are written atomically and which notes when it last
    heard from each tuner (`heard`), so the chief can give a dead worker's trial to another
    (`hand_back_silent`)."""
    import keras_tuner as kt

    class WatchedOracle(oracle_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.heard = {}

        def _note(self, trial_id=None, tuner_id=None):
            if tuner_id is None:
                running, _ = compat.running_trials(self)
                tuner_id = next((tuner for tuner, trial in running.items() if trial == trial_id),
                                None)
            if tuner_id is not None:
                self.heard[tuner_id] = time.monotonic()

        @kt.synchronized
        def create_trial(self, tuner_id):
            self._note(tuner_id=tuner_id)
            trial = super().create_trial(tuner_id)
            running, _ = compat.running_trials(self)
            if (trial.status == kt.engine.trial.TrialStatus.STOPPED
                    and PACKED_SLOT not in tuner_id
                    and any(other != tuner_id for other in running)):
                # Another worker's trial may yet come back (if that worker dies): this worker
                # waits and asks again, instead of stopping. A packed worker's slots stop as
                # before (one slot told to wait would hold the chief until its timeout); a
                # trial handed back then waits for a rerun of the search.
                compat.keep_waiting_for(self, tuner_id)
                trial.status = kt.engine.trial.TrialStatus.IDLE
            return trial

        @kt.synchronized
        def update_trial(self, trial_id, metrics, step=0):
            self._note(trial_id)
            return super().update_trial(trial_id, metrics, step)

        def get_trial(self, trial_id):
            self._note(trial_id)
            return super().get_trial(trial_id)

        @kt.synchronized
        def hand_back_silent(self, timeout):
            """Hands back the trials of tuners not heard from for `timeout` seconds; returns
            `[(tuner id, trial id or None)]`."""
            running, waiting_for = compat.running_trials(self)
            now = time.monotonic()
            silent = [tuner for tuner in waiting_for | set(running)
                      if now - self.heard.setdefault(tuner, now) > timeout]
            return [(tuner, compat.hand_back_trial(self, tuner)) for tuner in silent]

        def save(self):
            run_dir.atomic_write_text(compat.oracle_files(self), json.dumps(self.get_state()))

        def _save_trial(self, trial):
            run_dir.atomic_write_text(compat.oracle_files(self, trial.trial_id),
                                      json.dumps(trial.get_state()))

    WatchedOracle.__name__ = f"Watched{oracle_class.__name__}"
    return WatchedOracle


def _oracle(search, hp, max_epochs):
    import keras_tuner as kt

    objective = kt.Objective(search.objective, direction=search.direction)
    # A trial whose run raised (a full disk, a lost file system) runs again, up to
    # TRIAL_RETRIES times; a trial that diverged is a result, and is not retried.
    common = dict(objective=objective, hyperparameters=hp, tune_new_entries=False,
                  allow_new_entries=False, max_consecutive_failed_trials=10**6,
                  max_retries_per_trial=TRIAL_RETRIES)
    if search.tuner == "grid":
        return _grid_oracle(search, **common)
    if search.tuner == "random":
        return _watched(kt.oracles.RandomSearchOracle)(max_trials=search.max_trials, **common)
    if search.tuner == "bayesian":
        return _watched(kt.oracles.BayesianOptimizationOracle)(max_trials=search.max_trials,
                                                               **common)
    return _watched(kt.oracles.HyperbandOracle)(max_epochs=max_epochs, **common)


TRIAL_RETRIES = 2


def trial_name(trial_id):
    """A trial as the console names it: keras-tuner's own number (`Trial #1` is trial id 0),
    with its directory under trials/, e.g. `#1 (trials/0)`."""
    try:
        return f"#{int(trial_id) + 1} (trials/{trial_id})"
    except ValueError:
        return f"{trial_id} (trials/{trial_id})"


def _execution_configs(base, search, trial_id, values, root="trials"):
    """The run of each seed of a trial, in `<search>/<root>/<trial_id>/seed<k>`."""
    # Hyperband gives each trial its bracket's epoch budget (trained from scratch).
    epochs = values.get("tuner/epochs", base.epochs)
    for execution in range(search.executions_per_trial):
        yield dataclasses.replace(
            base, beta=float(values["beta"]),
            learning_rate=float(trial_learning_rate(base, search, values)),
            init_logit_norm=(repr(float(values["init_logit_norm"]))
                             if "init_logit_norm" in values else base.init_logit_norm),
            lr_scaling="none", init_logit_norms="",  # searched here, not by the run
            seed=base.seed + execution, epochs=int(epochs), verbose=0, overwrite=False,
            output_dir=os.path.join(search.output_dir, root, trial_id, f"seed{execution}"))


def _trial_score(search, results):
    """The objective of a trial: the mean over its executions' results.

    Raises:
        keras_tuner.errors.FailedTrialError: an execution did not complete (with where and why).
    """
    import keras_tuner as kt

    for result in results:
        if result["status"] != "completed":
            where = result.get("diverged_at") or {}
            raise kt.errors.FailedTrialError(
                f"seed {result['seed']} {result['status']} at epoch {where.get('epoch')}, "
                f"step {where.get('step')}: {where.get('reason')}")
    return float(np.mean([result["final"][search.objective_metric] for result in results]))


def make_tuner(base, search):
    """A keras-tuner BaseTuner whose trials are tc runs (see the module docstring)."""
    import keras_tuner as kt

    class RunTuner(kt.engine.base_tuner.BaseTuner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._asking_again = False
            create_trial = self.oracle.create_trial

            def create_trial_noting_idle(tuner_id):
                trial = create_trial(tuner_id)
                self._asking_again = trial.status == kt.engine.trial.TrialStatus.IDLE
                return trial

            self.oracle.create_trial = create_trial_noting_idle

        def pre_create_trial(self):
            if self._asking_again:  # told to wait for another worker's trial
                time.sleep(2.0)

        def search(self, *args, **kwargs):
            chief = os.environ.get("KERASTUNER_TUNER_ID", "").startswith("chief")
            if chief:
                threading.Thread(target=_watch_workers, args=(self.oracle, search),
                                 daemon=True, name="tc-worker-watch").start()
            if search.packed == 1 or chief:
                return super().search(*args, **kwargs)
            self.on_search_begin()
            while True:
                self.pre_create_trial()
                trials = []
                for slot in range(search.packed):
                    # One tuner id per slot: the oracle hands each id one trial at a time.
                    trial = self.oracle.create_trial(f"{self.tuner_id}{PACKED_SLOT}{slot}")
                    if trial.status != kt.engine.trial.TrialStatus.RUNNING:
                        break
                    trials.append(trial)
                if not trials:
                    if self._asking_again:
                        continue
                    break
                for trial in trials:
                    self.on_trial_begin(trial)
                for trial, (score, failure) in zip(trials, self._run_packed(trials)):
                    # Each trial's status is set just before it ends: the oracle ranks the
                    # completed trials by score whenever one ends.
                    if failure is None:
                        self.oracle.update_trial(trial.trial_id, {search.objective: score})
                        trial.status = kt.engine.trial.TrialStatus.COMPLETED
                    else:
                        trial.status = kt.engine.trial.TrialStatus.FAILED
                        trial.message = failure
                    self.on_trial_end(trial)
            self.on_search_end()

        def _run_packed(self, trials):
            """Trains `trials` as copies of one program per execution (seed); returns each
            trial's `(score, None)`, or `(None, why it failed)`."""
            executions = [list(_execution_configs(base, search, trial.trial_id,
                                                  trial.hyperparameters.values))
                          for trial in trials]
            print(f"tc.tune: trials {', '.join(trial_name(t.trial_id) for t in trials)} run "
                  "packed on "
                  f"{os.environ.get('KERASTUNER_TUNER_ID', 'this process')}", flush=True)
            outcomes = [[] for _ in trials]
            heartbeat = Heartbeat(self.oracle, [trial.trial_id for trial in trials])
            for execution in range(search.executions_per_trial):
                members = [configs[execution] for configs in executions]
                for index, result in enumerate(assembly.run(members[0], [heartbeat],
                                                            members=members)):
                    outcomes[index].append(result)
                interruption.raise_if_requested("the search")
            scores = []
            for results in outcomes:
                try:
                    scores.append((_trial_score(search, results), None))
                except kt.errors.FailedTrialError as error:
                    scores.append((None, str(error)))
            return scores

        def run_trial(self, trial, *args, **kwargs):
            values = trial.hyperparameters.values
            print(f"tc.tune: trial {trial_name(trial.trial_id)} (beta={values['beta']:.4g}) runs on "
                  f"{os.environ.get('KERASTUNER_TUNER_ID', 'this process')}", flush=True)
            results = []
            heartbeat = Heartbeat(self.oracle, [trial.trial_id])
            for config in _execution_configs(base, search, trial.trial_id,
                                             trial.hyperparameters.values):
                results.append(assembly.run_one(config, [heartbeat]))
                # An interrupted trial is neither failed nor scored: the oracle retries it when
                # the search resumes, and its runs resume from their last committed epoch.
                interruption.raise_if_requested("the search")
                _trial_score(search, results)  # stops at the first seed that did not complete
            return {search.objective: _trial_score(search, results)}

        def save_model(self, trial_id, model, step=0):
            del trial_id, model, step  # each run checkpoints itself

        def load_model(self, trial):
            raise ValueError("tc trials keep their models in their run directories.")

    return RunTuner(oracle=_oracle(search, search_space(search), base.epochs),
                    directory=search.output_dir, project_name="tuner",
                    overwrite=search.overwrite)


def trial_rows(search):
    """One row per trial and seed directory on disk: hyperparameters, status and metrics."""
    trials_dir = os.path.join(search.output_dir, "tuner")
    rows = []
    if not os.path.isdir(trials_dir):
        return rows
    for name in sorted(os.listdir(trials_dir)):
        trial_file = os.path.join(trials_dir, name, "trial.json")
        if not (name.startswith("trial_") and os.path.exists(trial_file)):
            continue
        with open(trial_file) as handle:
            trial = json.load(handle)
        values = trial["hyperparameters"]["values"]
        row = {"trial_id": trial["trial_id"], "status": trial["status"].lower(),
               "beta": values["beta"], "score": trial.get("score")}
        for name in (search.learning_rate_name, "init_logit_norm"):
            if name in values:
                row[name] = values[name]
        rows.append(row)
    return rows


def _run_results(search, trial_id):
    """`(relative run directories, their result.json contents)` of a trial's executions."""
    root = os.path.join(search.output_dir, "trials", trial_id)
    directories, results = [], []
    for seed_dir in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, seed_dir, run_files.RESULT_FILE)
        if os.path.exists(path):
            results.append(run_files.read_result(path))
            directories.append(os.path.join("trials", trial_id, seed_dir))
    return directories, results


def trial_table(search):
    """The rows of `trials.csv`: each trial's hyperparameters, status, runs and mean metrics."""
    rows = []
    for trial in trial_rows(search):
        directories, results = _run_results(search, trial["trial_id"])
        row = dict(trial)
        row["run_dirs"] = ";".join(directories)
        row["seeds"] = ";".join(str(r.get("seed")) for r in results)
        row["learning_rate"] = results[0].get("learning_rate") if results else None
        failed = [r for r in results if r.get("status") != "completed"]
        row["reason"] = ("; ".join(json.dumps(r.get("diverged_at") or r.get("error"))
                                   for r in failed) if failed else "")
        # Diverged: a result of the trial's beta, not a failure to get one.
        row["diverged"] = bool(failed) and all(r.get("status") == "diverged" for r in failed)
        row.update(_mean_finals(results))
        rows.append(row)
    return rows


def _mean_finals(results):
    """The mean over `results` of each final val/ and test/ metric."""
    finals = [r["final"] for r in results if r.get("final")]
    return {key: float(np.mean([final[key] for final in finals if key in final]))
            for key in sorted({k for final in finals for k in final
                               if k.startswith(("val/", "test/"))})}


def is_worker():
    """True in a keras-tuner worker process (distributed mode, not the chief)."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    return tuner_id is not None and not tuner_id.startswith("chief")


def search_beta(base, search, baseline=True):
    """Runs (or resumes) the search; returns `{"trials": rows, "best": row, "baseline": ...}`.

    With `baseline`, a beta = 1 run with the same settings is trained (or found among the trials)
    so the best beta's score can be compared with the untuned default.
    """
    base.validate()
    search.validate()
    tuner = make_tuner(base, search)
    if not is_worker():  # the chief or a lone process owns the oracle
        compat.retry_trials(tuner.oracle, [row["trial_id"] for row in trial_table(search)
                                           if row["status"] != "completed"
                                           and not row["diverged"]])
    with console.expected_retracing():
        tuner.search()
    if is_worker():  # the chief exports once every worker is done
        return {"trials": None, "best": None, "baseline": None, "worker": True}
    rows = trial_table(search)
    completed = [row for row in rows if row["status"] == "completed" and row["score"] is not None]
    # A trial that did not finish for a reason outside training (its runs raised, or never
    # ran) could have been the best: with one missing, no best is named.
    incomplete = [row["trial_id"] for row in rows
                  if row["status"] != "completed" and not row["diverged"]]
    contenders, passed_over = accurate_enough(search, completed)
    best = _best(search, contenders) if contenders and not incomplete else None
    summary = {"trials": rows, "best": best, "baseline": None, "incomplete": incomplete,
               "passed_over": passed_over}
    if baseline:
        baseline_row = _baseline(base, search, completed)
        if baseline_row is not None:
            summary["baseline"] = baseline_row["score"]
            if baseline_row["trial_id"] == BASELINE_ID:
                rows.append(baseline_row)
    run_dir.atomic_write_text(os.path.join(search.output_dir, "trials.csv"),
                              run_dir.rows_to_csv(rows) if rows else "")
    run_dir.atomic_write_json(os.path.join(search.output_dir, "summary.json"), summary)
    return summary


# A model that predicts one class for everything can be perfectly calibrated: under a
# calibration objective (val_ece, val_nll), only trials whose mean validation accuracy is within
# this of the most accurate trial's can be named best.
ACCURACY_MARGIN = 0.02
BASELINE_ID = "baseline"


def accurate_enough(search, rows):
    """`(rows that can be named best, ids of those passed over for their accuracy)`."""
    if search.objective == "val_accuracy" or not rows:
        return rows, []
    floor = max(row.get("val/accuracy", -1.0) for row in rows) - ACCURACY_MARGIN
    kept = [row for row in rows if row.get("val/accuracy", -1.0) >= floor]
    return kept, [row["trial_id"] for row in rows if row not in kept]


def _best(search, rows):
    sign = 1 if search.direction == "max" else -1
    return max(rows, key=lambda row: sign * row["score"])


def _baseline(base, search, completed):
    """beta = 1 scored as a trial is: its best over the searched learning rates (logit norms),
    each the mean over the trial's seeds. From the trials when the search had beta = 1, else
    trained under `baseline_beta1/`, and returned as a trials.csv row (`trial_id` "baseline")."""
    at_one = [row for row in completed if row["beta"] == 1.0]
    if at_one:
        return _best(search, at_one)
    candidates = []
    for index, values in enumerate(grid_values(search, betas=[1.0])):
        configs = list(_execution_configs(base, search, f"point{index}", values,
                                          root="baseline_beta1"))
        results = [assembly.run_one(config) for config in configs]
        if any(result["status"] != "completed" for result in results):
            continue
        row = {"trial_id": BASELINE_ID, "status": "completed", "beta": 1.0,
               **{name: value for name, value in values.items() if name != "beta"},
               "score": float(np.mean([result["final"][search.objective_metric]
                                       for result in results])),
               "run_dirs": ";".join(os.path.relpath(config.output_dir, search.output_dir)
                                    for config in configs),
               "seeds": ";".join(str(result.get("seed")) for result in results),
               "learning_rate": results[0].get("learning_rate"), **_mean_finals(results)}
        candidates.append(row)
    return _best(search, candidates) if candidates else None
