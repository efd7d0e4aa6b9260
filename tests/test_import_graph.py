"""No import circle under tc/: the modules' imports, read with `ast` (function-level imports
included, as Bazel's deps must hold them too), form a graph without cycles."""

import ast
import pathlib

import pytest

pytestmark = pytest.mark.backend_independent  # source files only

ROOT = pathlib.Path(__file__).resolve().parent.parent


def module_graph(root=ROOT):
    """`{module: {tc modules it imports}}` of every module under tc/ (a package's imports of
    its own submodules included; `tc` itself, which re-exports the library, left out)."""
    files = {}
    for path in (root / "tc").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
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
                    found.add(full if full in files else module)
        graph[name] = {module for module in found if module in files and module not in (
            name, "tc")}
    return graph


def cycles(graph):
    """Every elementary cycle's members, found by depth-first search (each cycle once)."""
    found, seen = [], set()

    def visit(node, path):
        for target in sorted(graph[node]):
            if target in path:
                cycle = path[path.index(target):]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append(cycle + [target])
            else:
                visit(target, path + [target])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_the_graph_reader_finds_a_cycle_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_under_tc_is_part_of_an_import_cycle():
    graph = module_graph()
    assert {"tc.data.base", "tc.runner.config", "tc.analysis.report"} <= set(graph)
    assert "tc.data.order" in graph["tc.data.pipeline"]  # the reader sees real edges
    assert cycles(graph) == []
