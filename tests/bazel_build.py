"""The BUILD file, derived from the code: one target per module, its deps its imports.

    python -m tests.bazel_build          # rewrites BUILD from the modules' imports

`tests/test_build_file.py` checks that the committed BUILD is what this writes, so BUILD cannot
drift from the code, and `tests/test_import_graph.py` that the imports have no cycle (Bazel would
refuse one too).

- Every module under `tc/` and every helper under `tests/` is a `py_library`; its deps are the
  modules it imports (at module level or inside a function: both run), and the packages around
  it, whose `__init__.py` Python runs first, unless that package's own imports reach the module
  (`tc/__init__.py` re-exports the library, so the library's modules leave it out and the
  targets that import them, the entry points and the tests, bring it).
- A module with a `__main__` block is also a `py_binary`, `<target>_main`.
- Every test file is a `py_test` whose `main` is `tests/run_pytest.py`, run on that file, with
  `tests/conftest.py` and pyproject.toml (pytest's settings) beside it.
- `:library_tests` lists the library's unit tests that need no file outside their runfiles and
  no subprocess: `bazel test //:library_tests` (what `.ci/run` runs).

Target names: `tc/__init__.py` is `tc`, `tc/a/b.py` is `a_b` (a package's `__init__.py` is the
package's name), `tests/x.py` is `tests_x`, and a test file `tests/[a/]test_x.py` is `[a_]test_x`.
"""

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("tc", "tests")
# The library's unit tests that `bazel test //:library_tests` runs.
LIBRARY_TESTS = ("test_calibration", "test_idx", "test_layers", "test_losses", "test_metrics",
                 "test_ood", "test_preprocessing", "test_run_files", "test_schedules",
                 "test_statistics", "test_theory")
TEST_RUNNER = "tests/run_pytest.py"
HEADER = '''# Generated from the modules' imports by `python -m tests.bazel_build`; edit the code, not this
# file (tests/test_build_file.py fails when they differ). Third-party packages (keras, jax,
# tensorflow, numpy, absl-py, scikit-learn, pytest) come from the Python that runs the targets:
# the environment of requirements-dev.txt, given with --python_path (see .ci/run).

load("@rules_python//python:defs.bzl", "py_binary", "py_library", "py_test")

package(default_visibility = ["//visibility:public"])

licenses(["notice"])
'''


def module_files(root=ROOT):
    """`{dotted module name: path}` of every module of the packages under `root`."""
    files = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imported_modules(name, path, known):
    """The modules of `known` that module `name` (at `path`) imports, anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            for alias in node.names:
                full = f"{module}.{alias.name}"
                found.add(full if full in known else module)
    return {module for module in found if module in known and module != name}


def import_graph(root=ROOT, packages=("tc",)):
    """`{module: {modules it imports}}` of the modules of `packages`, without the top-level
    package itself (`tc` re-exports the library; every module's import of it is implied)."""
    files = {name: path for name, path in module_files(root).items()
             if name.split(".")[0] in packages}
    return {name: imported_modules(name, path, files) - set(packages)
            for name, path in files.items() if name not in packages}


def _reaches(graph, start, goal):
    seen, stack = set(), [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(graph.get(node, ()))
    return False


def target_name(module):
    parts = module.split(".")
    if parts[0] == "tc":
        return "_".join(parts[1:]) or "tc"
    if parts[-1].startswith("test_"):
        return "_".join(parts[1:])
    return "_".join(parts)


def dependencies(root=ROOT):
    """`{module: sorted modules it needs}`: its imports, and its enclosing packages unless that
    package's imports reach it."""
    files = module_files(root)
    graph = {name: imported_modules(name, path, files) for name, path in files.items()}
    needs = {}
    for name in files:
        wanted = set(graph[name])
        for module in list(graph[name]) + [name]:
            parts = module.split(".")
            for length in range(1, len(parts)):
                package = ".".join(parts[:length])
                if package in files and package != name and not _reaches(graph, package, name):
                    wanted.add(package)
        needs[name] = sorted(wanted)
    return needs


def _list(values, indent="    "):
    if not values:
        return "[]"
    one_line = "[" + ", ".join(f'"{value}"' for value in values) + "]"
    if len(one_line) + len(indent) + 10 <= 100:
        return one_line
    inner = "".join(f'{indent}    "{value}",\n' for value in values)
    return f"[\n{inner}{indent}]"


def _rule(kind, fields):
    body = "".join(f"    {key} = {value},\n" for key, value in fields)
    return f"{kind}(\n{body})\n"


def render(root=ROOT):
    """The text of BUILD for the code under `root`."""
    files = module_files(root)
    needs = dependencies(root)
    parts = [HEADER]
    tests = []
    for name, path in files.items():
        source = path.relative_to(root).as_posix()
        deps = sorted(f":{target_name(module)}" for module in needs[name])
        is_test = path.name.startswith("test_")
        testonly = name.split(".")[0] == "tests"
        if is_test:
            tests.append(target_name(name))
            parts.append(_rule("py_test", [
                ("name", f'"{target_name(name)}"'), ("size", '"large"'),
                ("srcs", _list([source, TEST_RUNNER])), ("main", f'"{TEST_RUNNER}"'),
                ("args", _list([source])), ("data", _list(["pyproject.toml"])),
                ("deps", _list(sorted(set(deps) | {":tests_conftest", ":tests"})))]))
            continue
        fields = [("name", f'"{target_name(name)}"'), ("srcs", _list([source]))]
        if deps:
            fields.append(("deps", _list(deps)))
        if testonly:
            fields.append(("testonly", "True"))
        parts.append(_rule("py_library", fields))
        if "__main__" in path.read_text() and not testonly:
            parts.append(_rule("py_binary", [
                ("name", f'"{target_name(name)}_main"'), ("srcs", _list([source])),
                ("main", f'"{source}"'), ("deps", _list([f":{target_name(name)}", ":tc"]))]))
    missing = sorted(set(LIBRARY_TESTS) - set(tests))
    if missing:
        raise ValueError(f"LIBRARY_TESTS names {missing}, which are not test files.")
    parts.append(_rule("test_suite", [("name", '"library_tests"'),
                                      ("tests", _list([f":{name}" for name in LIBRARY_TESTS]))]))
    return "\n".join(parts)


if __name__ == "__main__":
    (ROOT / "BUILD").write_text(render())
    sys.exit(0)
