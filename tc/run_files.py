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
  before it writes a result and every reader after it parses one;
- the writers of every file of a run (`atomic_write_text`, `atomic_write_json`,
  `atomic_write_arrays`): each written to a temporary name (`temporary_prefix`) and renamed into
  place, so a process killed at any point leaves the previous complete version;
- metrics.csv's rows (`rows_to_csv`, `read_csv`, `parse_cell`) and the checksums a resume
  verifies (`file_sha256`, `rows_sha256`).
"""

import csv
import hashlib
import io
import json
import math
import os
import socket
import tempfile
import zipfile

import numpy as np

__all__ = ["FILE_MODE", "FLAGS_FILE", "RESULT_FILE", "RESULT_SCHEMA", "STATUSES",
           "TEMPORARY_PREFIX", "atomic_write_arrays", "atomic_write_json", "atomic_write_text",
           "check_result", "file_sha256", "flag_values", "json_safe", "parse_bool", "parse_cell",
           "parse_result", "read_csv", "read_result", "rows_sha256", "rows_to_csv",
           "temporary_prefix", "typed_value", "write_npz"]

FLAGS_FILE = "flags.txt"
RESULT_FILE = "result.json"
# Every temporary file tc writes starts with this, so that `--overwrite` and a resume know it.
TEMPORARY_PREFIX = ".tmp-"
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


def flag_values(text, bare_booleans=False):
    """`{name: value text}` of the `--name=value` lines of flagfile `text`, in file order.

    A run's flags.txt has only `--name=value` lines. A command's flagfile (the campaigns'
    `.cfg` files) may also set a boolean as absl reads it, `--name` for true: with
    `bare_booleans`, such a line reads as `"true"`.

    Raises:
        ValueError: a line that is neither blank, a `#` comment nor `--name=value` (nor, with
            `bare_booleans`, `--name`).
    """
    values = {}
    for line in filter(None, (line.strip() for line in text.splitlines())):
        if line.startswith("#"):
            continue
        name, separator, value = line.removeprefix("--").partition("=")
        if bare_booleans and not separator and name.isidentifier():
            separator, value = "=", "true"
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


def temporary_prefix():
    """The prefix of this process's temporary files: `.tmp-<host>-<pid>-`, so that a leftover
    file names the writer that left it."""
    return f"{TEMPORARY_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def _process_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once, at import, before any writer thread: os.umask can only be read by setting it.
FILE_MODE = 0o666 & ~_process_umask()


def _atomic_write(path, write, mode):
    """Writes `path` through a temporary file renamed into place, with the permissions an
    ordinary file gets under the process's umask (0644 under 022), not mkstemp's 0600: run
    directories on a shared filesystem are read by other users (workers, the analysis)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=temporary_prefix())
    try:
        os.chmod(temporary, FILE_MODE)
        with os.fdopen(descriptor, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def atomic_write_text(path, text):
    """Writes `text` to `path` through a temporary file renamed into place."""
    _atomic_write(path, lambda handle: handle.write(text), "w")


def write_npz(handle, arrays, compress=False):
    """`np.savez(handle, **arrays)` (`np.savez_compressed` when `compress`), writing each array
    from its own memory.

    `np.savez` copies arrays into 16 MiB byte strings before writing them, holding Python's
    interpreter lock for each copy. Checkpoints are written by a thread while the training
    thread dispatches steps, and every lock it holds can delay a step; checksums and writes of
    large buffers release it. The same format: `np.load` reads both alike.
    """
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(handle, "w", method, allowZip64=True) as archive:
        for name, array in arrays.items():
            array = np.require(array, requirements="C")
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(
                    member, np.lib.format.header_data_from_array_1_0(array))
                member.write(array.reshape(-1).view(np.uint8).data)


def atomic_write_arrays(path, arrays, compress=False):
    """Writes `{name: array}` as an `.npz` file, atomically.

    Checkpoints are written as they are, for speed; results that are kept (logits, per-example
    margins) are compressed: logits of a bf16 model take under half the space deflated.
    """
    _atomic_write(path, lambda handle: write_npz(handle, arrays, compress), "wb")


def json_safe(value):
    """`value` with every non-finite float as its text (`"nan"`, `"inf"`), which JSON cannot
    hold as a number."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def atomic_write_json(path, payload):
    """Writes `payload` as indented JSON (keys sorted, non-finite floats as text), atomically."""
    atomic_write_text(path, json.dumps(json_safe(payload), indent=2, sort_keys=True) + "\n")


def rows_to_csv(rows):
    """CSV text of dict rows; columns in first-seen order, missing cells empty."""
    columns = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _format(value) for key, value in row.items()})
    return buffer.getvalue()


def _format(value):
    return repr(value) if isinstance(value, float) else value


def read_csv(path, intact_prefix=False):
    """The rows of a CSV file that tc wrote (metrics.csv, trials.csv), cells parsed to numbers.

    A row whose cells do not match the header (a file cut short inside its last row, a stray
    comma) is damage: a ValueError that names the file and the line, or, with `intact_prefix`,
    the end of what is returned (the rows before it), for a resume whose checksums then judge
    what is left.
    """
    rows = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                if None in row or None in row.values():
                    raise ValueError(f"{path}: line {reader.line_num} has "
                                     f"{len([v for v in row.values() if v is not None])} cells "
                                     f"where the header has {len(reader.fieldnames)}")
                rows.append({key: parse_cell(value) for key, value in row.items()})
        except (ValueError, csv.Error) as error:
            if intact_prefix:
                return rows
            raise ValueError(str(error)) from None
    return rows


def parse_cell(text):
    """A CSV cell as tc wrote it: None when empty, an int, a float, else the text."""
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


def file_sha256(path):
    """The SHA-256 of the file at `path`, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rows_sha256(rows):
    """SHA-256 of metrics rows as metrics.csv gives them back (empty cells left out): the same
    for the rows a commit wrote and for those read back from the file, whatever other columns
    or later rows the file holds."""
    parsed = csv.DictReader(io.StringIO(rows_to_csv(rows)))
    canonical = [{key: json_safe(parse_cell(text)) for key, text in row.items() if text != ""}
                 for row in parsed]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
