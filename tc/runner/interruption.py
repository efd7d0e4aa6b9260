"""SIGTERM and SIGINT: the current step finishes, the unfinished epoch is abandoned, and the run
says it was interrupted.

A scheduler preempts a job with SIGTERM; a person stops one with Ctrl-C (SIGINT). While
`handling_signals()` is active, either signal only records itself: training stops after the step
in flight, nothing of the unfinished epoch is committed (the last committed epoch stays the
point a rerun resumes from), each run directory's result.json says "interrupted", and
`tc.train` exits with code 4. Running the same command again resumes. A second signal stops at
once (KeyboardInterrupt): the files on disk are still whole, since every file is written
atomically.
"""

import contextlib
import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """Raised between units of work (trials, programs) once a signal asked to stop.

    A KeyboardInterrupt, so that code catching Exception (keras-tuner's trial loop) lets it
    through.
    """


_received = []


def requested():
    """True once SIGTERM or SIGINT arrived while signals were handled."""
    return bool(_received)


def signal_name():
    """The name of the first signal received ("SIGTERM"), or None."""
    return signal.Signals(_received[0]).name if _received else None


def _record(signum, frame):
    if _received:
        raise KeyboardInterrupt(f"a second {signal.Signals(signum).name}: stopping at once")
    _received.append(signum)


@contextlib.contextmanager
def handling_signals():
    """Records SIGTERM and SIGINT instead of dying, while active (main thread only; elsewhere,
    as in a thread of a test, the process's handlers stay as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _record) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _received.clear()


def raise_if_requested(what):
    """Raises `Interrupted` naming `what` was stopped, if a signal asked to stop."""
    if requested():
        raise Interrupted(f"{signal_name()} received: {what} stopped; run the same command "
                          "again to resume.")
