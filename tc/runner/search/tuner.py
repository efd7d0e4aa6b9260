"""The keras-tuner tuner whose trials are tc runs (`RunTuner`), and each trial's runs and score.

Imported when a search runs: keras-tuner comes with the `tensorflow` extra.
"""

import os
import threading
import time

import keras_tuner as kt
import numpy as np

from tc.runner import assembly, interruption
from tc.runner.search import oracles, settings
from tc.runner.search.trials import execution_configs, trial_name


def _trial_score(search, results):
    """The objective of a trial: the mean over its executions' results.

    Raises:
        keras_tuner.errors.FailedTrialError: an execution did not complete (with where and why).
    """
    for result in results:
        if result["status"] != "completed":
            where = result.get("diverged_at") or {}
            raise kt.errors.FailedTrialError(
                f"seed {result['seed']} {result['status']} at epoch {where.get('epoch')}, "
                f"step {where.get('step')}: {where.get('reason')}")
    return float(np.mean([result["final"][search.objective_metric] for result in results]))


class RunTuner(kt.engine.base_tuner.BaseTuner):
    """A keras-tuner tuner whose trials are tc runs of `base` (a RunConfig), searched as
    `search_config` (a SearchConfig) says: one trial at a time, or `--packed` trials as the
    copies of one program."""

    def __init__(self, base, search_config, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.base, self.search_config = base, search_config
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
            threading.Thread(target=oracles.watch_workers,
                             args=(self.oracle, self.search_config), daemon=True,
                             name="tc-worker-watch").start()
        if self.search_config.packed == 1 or chief:
            return super().search(*args, **kwargs)
        self.on_search_begin()
        while True:
            self.pre_create_trial()
            trials = []
            for slot in range(self.search_config.packed):
                # One tuner id per slot: the oracle hands each id one trial at a time.
                trial = self.oracle.create_trial(f"{self.tuner_id}{oracles.PACKED_SLOT}{slot}")
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
                    self.oracle.update_trial(trial.trial_id,
                                             {self.search_config.objective: score})
                    trial.status = kt.engine.trial.TrialStatus.COMPLETED
                else:
                    trial.status = kt.engine.trial.TrialStatus.FAILED
                    trial.message = failure
                self.on_trial_end(trial)
        self.on_search_end()

    def _run_packed(self, trials):
        """Trains `trials` as copies of one program per execution (seed); returns each
        trial's `(score, None)`, or `(None, why it failed)`."""
        executions = [list(execution_configs(self.base, self.search_config, trial.trial_id,
                                              trial.hyperparameters.values))
                      for trial in trials]
        print(f"tc.tune: trials {', '.join(trial_name(t.trial_id) for t in trials)} run "
              "packed on "
              f"{os.environ.get('KERASTUNER_TUNER_ID', 'this process')}", flush=True)
        outcomes = [[] for _ in trials]
        heartbeat = oracles.Heartbeat(self.oracle, [trial.trial_id for trial in trials])
        for execution in range(self.search_config.executions_per_trial):
            members = [configs[execution] for configs in executions]
            for index, result in enumerate(assembly.run(members[0], [heartbeat],
                                                        members=members)):
                outcomes[index].append(result)
            interruption.raise_if_requested("the search")
        scores = []
        for results in outcomes:
            try:
                scores.append((_trial_score(self.search_config, results), None))
            except kt.errors.FailedTrialError as error:
                scores.append((None, str(error)))
        return scores

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        print(f"tc.tune: trial {trial_name(trial.trial_id)} (beta={values['beta']:.4g}) runs on "
              f"{os.environ.get('KERASTUNER_TUNER_ID', 'this process')}", flush=True)
        results = []
        heartbeat = oracles.Heartbeat(self.oracle, [trial.trial_id])
        for config in execution_configs(self.base, self.search_config, trial.trial_id,
                                         trial.hyperparameters.values):
            results.append(assembly.run_one(config, [heartbeat]))
            # An interrupted trial is neither failed nor scored: the oracle retries it when
            # the search resumes, and its runs resume from their last committed epoch.
            interruption.raise_if_requested("the search")
            # Stops at the first seed that did not complete.
            _trial_score(self.search_config, results)
        return {self.search_config.objective: _trial_score(self.search_config, results)}

    def save_model(self, trial_id, model, step=0):
        del trial_id, model, step  # each run checkpoints itself

    def load_model(self, trial):
        raise ValueError("tc trials keep their models in their run directories.")


def make_tuner(base, search):
    """A keras-tuner BaseTuner whose trials are tc runs (see the package docstring)."""
    return RunTuner(base, search,
                    oracle=oracles.build_oracle(search, settings.search_space(search), base.epochs),
                    directory=search.output_dir, project_name="tuner",
                    overwrite=search.overwrite)
