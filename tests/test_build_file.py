"""BUILD stays a true map of the code: it is what `tests.bazel_build` derives from the imports,
and it covers every file (parsed with `ast`, since Starlark is Python syntax)."""

import ast
import pathlib

import pytest

from tests import bazel_build

# This module tests code that never calls Keras (numpy, pandas, files): CI runs it in one
# backend's leg only (.ci/run).
pytestmark = pytest.mark.backend_independent

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULES = ("py_library", "py_binary", "py_test", "test_suite")


def _literal(node):
    """A keyword's value; `glob([...]) + [...]` keeps only its literal list part."""
    if isinstance(node, ast.BinOp):
        return _literal(node.left) + _literal(node.right)
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "glob":
        return []  # patterns, checked by Bazel itself
    return ast.literal_eval(node)


def parse_targets(text):
    """`{name: {"rule", "srcs", "deps", "data", "main"}}` for every py_* rule call in `text`."""
    targets = {}
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in RULES):
            continue
        fields = {keyword.arg: _literal(keyword.value) for keyword in node.keywords}
        name = fields["name"]
        if name in targets:
            raise ValueError(f"BUILD defines target {name!r} twice.")
        targets[name] = {"rule": node.func.id, "srcs": fields.get("srcs", []),
                         "deps": fields.get("deps", []) + fields.get("tests", []),
                         "data": fields.get("data", []), "main": fields.get("main")}
    return targets


def problems(targets, root):
    """Every way the targets and the files under `root` disagree, as readable lines."""
    found = []
    library_sources = {src for t in targets.values() if t["rule"] != "py_test" for src in t["srcs"]}
    test_sources = {src for t in targets.values() if t["rule"] == "py_test" for src in t["srcs"]}
    for package in ("tc",):
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative not in library_sources:
                found.append(f"module {relative} has no py_library/py_binary target")
    for path in sorted((root / "tests").rglob("test_*.py")):
        relative = path.relative_to(root).as_posix()
        if relative not in test_sources:
            found.append(f"test file {relative} has no py_test target")
    for name, target in targets.items():
        for listed in target["srcs"] + target["data"] + ([target["main"]] if target["main"] else []):
            if not (root / listed).is_file():
                found.append(f"target {name!r} names missing file {listed}")
        for dep in target["deps"]:
            if dep.startswith(":") and dep[1:] not in targets:
                found.append(f"target {name!r} depends on undefined target {dep}")
    return found


def test_the_committed_build_is_the_one_the_imports_give():
    assert (ROOT / "BUILD").read_text() == bazel_build.render(), (
        "BUILD differs from the code's imports: run `python -m tests.bazel_build`.")


def test_build_file_covers_every_module_and_test():
    targets = parse_targets((ROOT / "BUILD").read_text())
    assert {"tc", "train", "train_main", "test_losses", "library_tests"} <= set(targets)
    assert problems(targets, ROOT) == []
    assert targets["test_losses"]["main"] == bazel_build.TEST_RUNNER


def test_deps_are_the_imports_and_the_packages_that_do_not_import_back(tmp_path):
    for name, text in {
            "tc/__init__.py": "from tc import a\n",
            "tc/a.py": "from tc.sub import b\n",
            "tc/sub/__init__.py": "",
            "tc/sub/b.py": "def f():\n    from tc import c  # a function-level import counts\n",
            "tc/c.py": "import numpy\n",
            "tc/cli.py": "from . import c\nif __name__ == '__main__':\n    pass\n",
            "tests/__init__.py": "", "tests/conftest.py": "", "tests/run_pytest.py": "",
            "tests/test_a.py": "from tc import a\n", "pyproject.toml": ""}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    needs = bazel_build.dependencies(tmp_path)
    assert needs["tc"] == ["tc.a"]
    # tc's __init__ imports a, so a leaves tc out; sub's __init__ imports nothing: b keeps it.
    assert needs["tc.a"] == ["tc.sub", "tc.sub.b"]
    assert needs["tc.sub.b"] == ["tc.c", "tc.sub"]
    assert needs["tc.cli"] == ["tc", "tc.c"]
    assert needs["tests.test_a"] == ["tc", "tc.a", "tests"]
    original = bazel_build.LIBRARY_TESTS
    bazel_build.LIBRARY_TESTS = ("test_a",)
    try:
        targets = parse_targets(bazel_build.render(tmp_path))
    finally:
        bazel_build.LIBRARY_TESTS = original
    assert targets["cli_main"]["rule"] == "py_binary" and targets["cli_main"]["main"] == "tc/cli.py"
    assert targets["test_a"]["deps"] == [":a", ":tc", ":tests", ":tests_conftest"]
    assert targets["sub_b"]["deps"] == [":c", ":sub"]
    assert problems(targets, tmp_path) == []


def test_checker_reports_missing_targets_and_files(tmp_path):
    (tmp_path / "tc").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tc" / "covered.py").write_text("")
    (tmp_path / "tc" / "orphan.py").write_text("")
    (tmp_path / "tests" / "test_orphan.py").write_text("")
    build = '''
py_library(name = "covered", srcs = ["tc/covered.py"], deps = [":nowhere"])
py_test(name = "test_gone", srcs = ["tests/test_gone.py"])
'''
    found = problems(parse_targets(build), tmp_path)
    assert "module tc/orphan.py has no py_library/py_binary target" in found
    assert "test file tests/test_orphan.py has no py_test target" in found
    assert "target 'test_gone' names missing file tests/test_gone.py" in found
    assert "target 'covered' depends on undefined target :nowhere" in found
    assert len(found) == 4


def test_duplicate_targets_are_an_error():
    with pytest.raises(ValueError, match="twice"):
        parse_targets('py_library(name = "a", srcs = [])\npy_library(name = "a", srcs = [])')
