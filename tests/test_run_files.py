"""`tc.run_files`: one rule for a run directory's flags.txt and result.json, the same in the
runner's config, `tc.load_run` and `tc.analysis`; booleans by absl's own parser."""

import json

import pytest
from absl import flags

from tc import run_files, saved_runs
from tc.analysis import load
from tc.runner import config as config_lib

pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize("text", ["true", "True", "t", "1", "false", "FALSE", "f", "0"])
def test_booleans_read_as_absl_reads_them(text):
    assert run_files.parse_bool(text) == flags.BooleanParser().parse(text)


@pytest.mark.parametrize("text", ["yes", "no", "on", "", "2", "truee"])
def test_anything_else_is_not_a_boolean_here_nor_for_absl(text):
    with pytest.raises(ValueError, match="is not a boolean"):
        run_files.parse_bool(text)
    with pytest.raises(ValueError):
        flags.BooleanParser().parse(text)


def test_flag_lines_comments_and_blank_lines():
    text = "# a comment\n\n  --beta=0.5  \n--dataset_options=classes=0,1;augment=none\n--study=\n"
    assert run_files.flag_values(text) == {"beta": "0.5", "study": "",
                                           "dataset_options": "classes=0,1;augment=none"}
    for bad in ("beta=0.5", "--beta", "--=1", "-beta=1"):
        with pytest.raises(ValueError, match="is not a flag"):
            run_files.flag_values(f"--seed=1\n{bad}\n")


def test_typed_values():
    assert [run_files.typed_value(text) for text in ("true", "False", "3", "0.25", "1e-3", "mlp")] \
        == [True, False, 3, 0.25, 0.001, "mlp"]


def test_result_json_is_one_object_that_follows_the_schema(tmp_path):
    path = tmp_path / "result.json"
    minimal = {"status": "completed", "run_dir": "r", "seed": 0}
    path.write_text(json.dumps(minimal))
    assert run_files.read_result(path) == minimal
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="holds list, not an object"):
        run_files.read_result(path)
    path.write_text('{"status": ')
    with pytest.raises(json.JSONDecodeError):
        run_files.read_result(path)
    for change, message in (
            ({"status": "done"}, "status 'done' is not one of completed, diverged, failed"),
            ({"seed": True}, "'seed' is True, not int"),
            ({"seed": 1.5}, "'seed' is 1.5, not int"),
            ({"final": [0.9]}, "'final' is \\[0.9\\], not dict or null"),
            ({"examples_per_second": "fast"}, "'examples_per_second' is 'fast', not int or "
                                               "float or null")):
        with pytest.raises(ValueError, match=message):
            run_files.check_result({**minimal, **change})
    with pytest.raises(ValueError, match="has no 'run_dir'"):
        run_files.check_result({"status": "failed", "seed": 0})


def test_the_three_readers_read_a_written_flagfile_alike(tmp_path):
    config = config_lib.RunConfig(output_dir=str(tmp_path / "run"), save_predictions=False,
                                  tensorboard=True, beta=0.3, seed=7)
    text = config.to_flagfile()
    (tmp_path / "flags.txt").write_text(text)
    by_config = config_lib.RunConfig.from_flagfile(text)
    by_library = saved_runs.read_flags(tmp_path / "flags.txt")
    by_analysis = load.parse_flagfile(text)
    for name in ("save_predictions", "tensorboard", "beta", "seed", "dataset"):
        assert by_library[name] == by_analysis[name] == getattr(by_config, name), name
    assert by_library["save_predictions"] is False and by_library["tensorboard"] is True


def test_a_boolean_none_of_them_would_read_is_refused_by_each(tmp_path):
    text = config_lib.RunConfig(output_dir=str(tmp_path / "run")).to_flagfile().replace(
        "--save_predictions=true", "--save_predictions=yes")
    assert "--save_predictions=yes" in text
    with pytest.raises(ValueError, match="'yes' is not a boolean"):
        config_lib.RunConfig.from_flagfile(text)
    with pytest.raises(ValueError, match="'yes' is not a boolean"):
        load.parse_flagfile(text)


def _reads_in(path):
    """`line: what` for each place in the module at `path` that names a run file by its literal
    name, parses flag lines (`.startswith("--")`), or json-loads in a function that names
    `RESULT_FILE`: the reading only `tc.run_files` does."""
    import ast

    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in ("flags.txt", "result.json"):
            found.append(f"{node.lineno}: {node.value!r}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "removeprefix") and node.args
              and isinstance(node.args[0], ast.Constant) and node.args[0].value == "--"):
            found.append(f"{node.lineno}: a flag line parsed")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = {getattr(inner, "attr", getattr(inner, "id", None))
                     for inner in ast.walk(node)}
            if "RESULT_FILE" in names and names & {"load", "loads"}:
                found.append(f"{node.lineno}: {node.name} json-loads a result")
    return found


def test_one_flagfile_parser_and_one_result_reader_under_tc(tmp_path):
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent / "tc"
    readers = {str(path.relative_to(root.parent)): _reads_in(path)
               for path in sorted(root.rglob("*.py")) if path != root / "run_files.py"}
    assert len(readers) > 50
    assert {path: found for path, found in readers.items() if found} == {}
    # What the check finds in code that reads the way tc.run_files alone may.
    sample = tmp_path / "reads_by_hand.py"
    sample.write_text(
        "import json\nfrom tc.run_files import RESULT_FILE\n"
        "def flags(text):\n    return [l for l in text.splitlines() if l.startswith('--')]\n"
        "def result(folder):\n    return json.load(open(folder + '/' + RESULT_FILE))\n"
        "NAME = 'flags.txt'\n")
    assert sorted(item.split(": ", 1)[1] for item in _reads_in(sample)) == [
        "'flags.txt'", "a flag line parsed", "result json-loads a result"]


def test_a_commands_flagfile_reads_its_bare_booleans_as_absl_does():
    values = flags.FlagValues()
    flags.DEFINE_boolean("tune_learning_rate", False, "", flag_values=values)
    flags.DEFINE_integer("grid_points", 7, "", flag_values=values)
    text = "# python -m tc.tune\n--grid_points=3\n--tune_learning_rate\n"
    read = run_files.flag_values(text, bare_booleans=True)
    assert read == {"grid_points": "3", "tune_learning_rate": "true"}
    values(["tc.tune", "--grid_points=3", "--tune_learning_rate"])
    assert run_files.parse_bool(read["tune_learning_rate"]) is values.tune_learning_rate is True
    with pytest.raises(ValueError, match="is not a flag"):
        run_files.flag_values(text)  # a run's flags.txt has no bare flag
