"""`tc.runner.interruption`: a signal stops training after the step in flight, abandons the
unfinished epoch and leaves a run that the same command resumes."""

import json
import os
import signal

import keras
import pytest

from tc import run_files
from tc.runner import assembly, interruption



def read_rows(directory):
    return run_files.read_csv(os.path.join(directory, "metrics.csv"))


class SignalAt(keras.callbacks.Callback):
    """Sends `signal_number` to this process at training step `step` of epoch `epoch`."""

    def __init__(self, signal_number, epoch, step):
        super().__init__()
        self.signal_number, self.epoch, self.step = signal_number, epoch, step
        self.current_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.current_epoch, batch) == (self.epoch, self.step):
            os.kill(os.getpid(), self.signal_number)


def test_sigint_abandons_the_epoch_in_flight_and_the_rerun_resumes(small_config):
    config = small_config(epochs=3)
    reference = assembly.run_one(small_config("reference", epochs=3))
    with interruption.handling_signals():
        result = assembly.run_one(config, extra_callbacks=[SignalAt(signal.SIGINT, 1, 3)])
    assert not interruption.requested()  # cleared once the handlers are restored
    assert (result["status"], result["interrupted_by"]) == ("interrupted", "SIGINT")
    assert result["epochs_completed"] == 1 and len(read_rows(config.output_dir)) == 1
    with open(os.path.join(config.output_dir, "result.json")) as handle:
        assert json.load(handle)["status"] == "interrupted"
    state = os.path.join(config.output_dir, "checkpoints", "state.json")
    with open(state) as handle:
        assert json.load(handle)["completed_epochs"] == 1

    with interruption.handling_signals():
        resumed = assembly.run_one(config)
    assert resumed["status"] == "completed" and resumed["epochs_completed"] == 3
    assert (resumed["dataset"], resumed["model"]) == ("digits", "mlp")  # the default, resolved
    for row, expected in zip(read_rows(config.output_dir), read_rows(reference["run_dir"])):
        for key, value in expected.items():
            if isinstance(value, float):
                assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (row["epoch"], key)


def test_a_second_signal_stops_at_once_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="second SIGTERM"):
        with interruption.handling_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            assert interruption.requested() and interruption.signal_name() == "SIGTERM"
            with pytest.raises(interruption.Interrupted, match="SIGTERM received: the search"):
                interruption.raise_if_requested("the search")
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before and not interruption.requested()


def test_the_initial_logit_norm_is_recorded_and_survives_a_resume_and_a_rerun_says_so(
        small_config, capsys):
    config = small_config(epochs=2, init_logit_norm="3", verbose=1)
    with interruption.handling_signals():
        stopped = assembly.run_one(config, extra_callbacks=[SignalAt(signal.SIGTERM, 1, 2)])
    assert stopped["status"] == "interrupted"
    measured = stopped["initial_logit_norm"]
    # The readout was rescaled from what the initialization gave to the target, on the run's
    # rank-probe inputs (--rank_probe_size of the test split).
    assert measured["target"] == 3.0 and measured["examples"] == config.rank_probe_size == 128
    assert measured["after"] == pytest.approx(3.0, rel=1e-3)
    assert measured["before"] > 0 and abs(measured["before"] - 3.0) > 0.1
    with interruption.handling_signals():
        resumed = assembly.run_one(config)
    assert resumed["status"] == "completed" and resumed["initial_logit_norm"] == measured
    capsys.readouterr()
    again = assembly.run_one(config)
    assert again == resumed
    assert capsys.readouterr().out == (f"tc: {config.run_dir} already completed; nothing "
                                       "trained, nothing written (its result.json follows)\n")
