"""No import circle under tc/: the modules' imports, read with `ast` (function-level imports
included, as Bazel's deps must hold them too), form a graph without cycles."""

import pathlib

import pytest

from tests import bazel_build

pytestmark = pytest.mark.backend_independent  # source files only

ROOT = pathlib.Path(__file__).resolve().parent.parent


def module_graph(root=ROOT):
    """`{module: {tc modules it imports}}` of every module under tc/ (a package's imports of
    its own submodules included; `tc` itself, which re-exports the library, left out): the
    reader that BUILD's deps come from too."""
    return bazel_build.import_graph(root)


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
