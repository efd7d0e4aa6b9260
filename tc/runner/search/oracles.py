"""keras-tuner's oracles as the search uses them: resumable grids, state written atomically, and
a chief that hands a silent worker's trial to another (`_watched`, `watch_workers`)."""

import json
import time

import keras

from tc import compat, run_files
from tc.runner.search import settings
from tc.runner.search.trials import trial_name

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
            for point in settings.grid_values(search):
                if not any(all(values.get(k) == v for k, v in point.items()) for values in taken):
                    return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": point}
            return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}

    return LogGridOracle(max_trials=len(settings.grid_values(search)), **common)


PACKED_SLOT = "-packed"  # a packed worker asks for trials as `<tuner id>-packed<slot>`


def watch_workers(oracle, search):
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
    (`hand_back_silent`). Its length is the class it makes: a subclass of the oracle class
    chosen at run time, defined here so that keras-tuner is imported only by a search."""
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
            run_files.atomic_write_text(compat.oracle_files(self), json.dumps(self.get_state()))

        def _save_trial(self, trial):
            run_files.atomic_write_text(compat.oracle_files(self, trial.trial_id),
                                        json.dumps(trial.get_state()))

    WatchedOracle.__name__ = f"Watched{oracle_class.__name__}"
    return WatchedOracle


def build_oracle(search, hp, max_epochs):
    """The keras-tuner oracle of `--tuner` over the search space `hp`, its state files written
    atomically and its workers watched (`_watched`)."""
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
