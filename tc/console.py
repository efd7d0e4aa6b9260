"""A quiet console: TensorFlow's C++ logs stay off the terminal unless the user asks for them.

TensorFlow writes C++ log lines to stderr: on a machine without a GPU, `failed call to cuInit`
errors at start-up and `NodeDef mentions attribute ...` between the progress lines of a run;
on every machine, INFO lines (oneDNN, CPU features) written before its logger is initialized,
which `TF_CPP_MIN_LOG_LEVEL` does not reach. None of them is about the user's run.

`quiet_tensorflow()` (called by `import tc`, before Keras loads its backend):
- sets `TF_CPP_MIN_LOG_LEVEL=3` (fatal only) when the user has not set it; a user who sets it,
  to any value, gets exactly what TensorFlow prints at that level;
- and then, whenever TensorFlow is imported (by Keras as its backend, or later by `tf.data`
  under JAX), drops the INFO and WARNING lines it writes to stderr while it loads. Every other
  line of that moment (an error, a Python warning) is written through as it came.

Python exceptions are untouched: a real error still raises with its message.

`single_python_log()` (the entry points) stops TensorFlow's Python warnings from printing twice,
once by TensorFlow's own handler and once by absl's; `expected_retracing()` (a search) drops
TensorFlow's "triggered tf.function retracing" warning, which a search provokes by design: every
trial builds its own model, so its predict function is traced anew.
"""

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile

__all__ = ["expected_retracing", "filter_log_lines", "filtered_stderr", "LOG_LEVEL_VARIABLE",
           "quiet_tensorflow", "SET_BY_TC", "single_python_log"]

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# Set beside it when tc chose the level, so that tc's own subprocesses (search workers) quiet
# TensorFlow's start-up too, and a level the user set is never taken for tc's.
SET_BY_TC = "TC_QUIETED_TENSORFLOW"
# absl's C++ log prefix, "I0000 00:00:1796589982.491513    2915 port.cc:153] ...", of the INFO
# and WARNING severities, and the notice it prints before its logger is initialized.
_DROPPED = re.compile(r"^[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] |"
                      r"^WARNING: All log messages before absl::InitializeLog\(\) is called")
_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ ")


def filter_log_lines(text):
    """`text` without TensorFlow's C++ INFO / WARNING lines (and their continuation lines)."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        if _DROPPED.match(line):
            dropping = True
            continue
        if dropping and line.strip() and not _LOG_LINE.match(line):
            continue  # the second line of a multi-line INFO message (CPU features)
        dropping = False
        kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def filtered_stderr():
    """Runs the block with file descriptor 2 going to a temporary file, then writes what it
    received back to stderr through `filter_log_lines` (also when the block raises)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): nothing to filter
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = filter_log_lines(captured.read().decode("utf-8", "replace"))
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


class _FilteredLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run inside `filtered_stderr`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self.loader
        with filtered_stderr():
            self.loader.exec_module(module)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, with its loader wrapped in `_FilteredLoader`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader)
        return spec


def quiet_tensorflow():
    """Quiets TensorFlow's C++ logs as the module docstring says, unless the user set
    `TF_CPP_MIN_LOG_LEVEL`. Returns whether it did."""
    if LOG_LEVEL_VARIABLE in os.environ and os.environ.get(SET_BY_TC) != "1":
        return False
    os.environ[LOG_LEVEL_VARIABLE] = "3"
    os.environ[SET_BY_TC] = "1"
    if "tensorflow" not in sys.modules and not any(
            isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    return True


def single_python_log():
    """TensorFlow's Python log lines once: its logger has a handler of its own when absl's
    handler also sits on the root logger."""
    logger = logging.getLogger("tensorflow")
    if logger.handlers and logging.getLogger().handlers:
        logger.propagate = False


class _DropRetracing(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def expected_retracing():
    """Within the block, TensorFlow's retracing warning is not printed (see the docstring)."""
    logger, dropped = logging.getLogger("tensorflow"), _DropRetracing()
    logger.addFilter(dropped)
    try:
        yield
    finally:
        logger.removeFilter(dropped)
