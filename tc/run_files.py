"""The text files of a run directory, read by one rule wherever they are read.

A run directory's `flags.txt` is an absl flagfile that reproduces the run: one `--name=value`
per line; blank lines and lines starting with `#` are skipped. Its `result.json` is one JSON
object. The runner writes both (`tc.runner.config`, `tc.runner.results`); the runner's config,
`tc.load_run` and `tc.analysis` read them through this module, so a run written by one is read
alike by the others:

- `flag_values(text)`: `{name: text}` of a flagfile's lines, or a ValueError naming the first
  line that is not `--name=value`;
- `parse_bool(text)`: a boolean flag's value, by absl's rule (`true`, `t`, `1` / `false`, `f`,
  `0`, any case), or a ValueError;
- `typed_value(text)`: a value whose flag is unknown to the reader, as the Python value it
  reads as (a boolean, then an int, then a float, else the text);
- `read_result(path)` / `parse_result(text)`: result.json as a dict, or a ValueError that says
  what is wrong with it;
- `check_result(result)`: result.json's schema (`RESULT_SCHEMA`), which the runner checks
  before it writes a result and every reader after it parses one.
"""

import json

__all__ = ["FLAGS_FILE", "RESULT_FILE", "RESULT_SCHEMA", "STATUSES", "check_result",
           "flag_values", "parse_bool", "parse_result", "read_result", "typed_value"]

FLAGS_FILE = "flags.txt"
RESULT_FILE = "result.json"
# How a run ended: it trained every epoch, a copy's loss or weights became non-finite, it raised,
# or a signal stopped it (resumable).
STATUSES = ("completed", "diverged", "failed", "interrupted")
_NUMBER = (int, float)
_NULL = type(None)
# result.json's fields that readers use: `{field: (JSON types it may hold, every result has it)}`
# (an int field holds no bool; a result may hold more fields, such as its package versions).
RESULT_SCHEMA = {
    "status": ((str,), True),
    "run_dir": ((str,), True),
    "seed": ((int,), True),
    "error": ((str,), False),
    "dataset": ((str,), False),
    "model": ((str,), False),
    "loss": ((str,), False),
    "beta": (_NUMBER, False),
    "learning_rate": (_NUMBER, False),
    "epochs": ((int,), False),
    "epochs_completed": ((int,), False),
    "final": ((dict, _NULL), False),
    "best_validation": ((dict, _NULL), False),
    "diverged_at": ((dict, _NULL), False),
    "interrupted_by": ((str, _NULL), False),
    "wall_seconds": (_NUMBER, False),
    "examples_per_second": (_NUMBER + (_NULL,), False),
    "backend": ((str,), False),
    "predictions": ((str, _NULL), False),
    "linear_probe": ((dict,), False),
    "ood_detection": ((dict,), False),
    "far_ood_detection": ((dict,), False),
}
_TRUE = ("true", "t", "1")
_FALSE = ("false", "f", "0")


def flag_values(text):
    """`{name: value text}` of the `--name=value` lines of flagfile `text`, in file order.

    Raises:
        ValueError: a line that is neither blank, a `#` comment nor `--name=value`.
    """
    values = {}
    for line in filter(None, (line.strip() for line in text.splitlines())):
        if line.startswith("#"):
            continue
        name, separator, value = line.removeprefix("--").partition("=")
        if not line.startswith("--") or not separator or not name:
            raise ValueError(f"{line!r} is not a flag (--name=value).")
        values[name] = value
    return values


def parse_bool(text):
    """The boolean a flag's `text` says, by absl's rule; ValueError for anything else."""
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (true or false).")


def typed_value(text):
    """`text` as the value it reads as: `true`/`false` as a bool, then an int, a float, or the
    text itself (for a reader that has no schema of the flags)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_result(text):
    """The result.json text `text` as a dict.

    Raises:
        ValueError: it is not JSON (json.JSONDecodeError is a ValueError), or does not follow
            the schema (`check_result`).
    """
    return check_result(json.loads(text))


def check_result(result):
    """`result` if it follows `RESULT_SCHEMA` and its status is one of `STATUSES`.

    Raises:
        ValueError: naming the first field that is missing or holds the wrong type.
    """
    if not isinstance(result, dict):
        raise ValueError(f"result.json holds {type(result).__name__}, not an object")
    for field, (kinds, required) in RESULT_SCHEMA.items():
        if field not in result:
            if required:
                raise ValueError(f"result.json has no {field!r}")
            continue
        value = result[field]
        if isinstance(value, bool) or not isinstance(value, kinds):
            names = " or ".join("null" if kind is _NULL else kind.__name__ for kind in kinds)
            raise ValueError(f"result.json's {field!r} is {value!r}, not {names}")
    if result["status"] not in STATUSES:
        raise ValueError(f"result.json's status {result['status']!r} is not one of "
                         f"{', '.join(STATUSES)}")
    return result


def read_result(path):
    """result.json at `path` as a dict (see `parse_result`).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not UTF-8 JSON, or does not follow the schema.
    """
    with open(path, encoding="utf-8") as handle:
        return parse_result(handle.read())
