"""The wall between the public library (what `import tc` loads) and the runner (`tc.runner`).
The analysis (`tc.analysis`) reads run directories through the runner's files, as the entry
points do; neither is part of the library."""

import ast
import os

from tests.support import ROOT, run_python

ENTRY_POINTS = ("train.py", "tune.py", "bench.py")


def public_modules():
    """The public library's source files: everything in tc/ but the runner and entry points."""
    modules = []
    for folder, _, files in os.walk(os.path.join(ROOT, "tc")):
        relative = os.path.relpath(folder, ROOT)
        if relative.split(os.sep)[:2] in (["tc", "runner"], ["tc", "analysis"]):
            continue
        for name in files:
            if name.endswith(".py") and not (relative == "tc" and name in ENTRY_POINTS):
                modules.append(os.path.join(relative, name))
    return sorted(modules)


def imported_names(path):
    with open(os.path.join(ROOT, path)) as handle:
        tree = ast.parse(handle.read())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_of_the_public_library_imports_the_runner():
    modules = public_modules()
    assert "tc/losses.py" in modules and "tc/data/base.py" in modules
    offenders = {path: [name for name in imported_names(path)
                        if name == "tc.runner" or name.startswith("tc.runner.")]
                 for path in modules}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_wall_check_sees_a_runner_import(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("from tc.runner import assembly\nimport tc.runner.config\n")
    names = imported_names(str(source))
    assert "tc.runner.assembly" in names and "tc.runner.config" in names


def test_import_tc_loads_no_runner_module():
    completed = run_python("""
        import sys
        import tc
        print(sorted(name for name in sys.modules if name.startswith("tc.runner")))
    """)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_every_public_module_declares_its_surface_and_every_name_in_it_exists():
    import importlib

    for path in public_modules():
        name = path[:-3].replace(os.sep, ".").removesuffix(".__init__")
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), list), f"{path} has no __all__"
        missing = [item for item in module.__all__ if not hasattr(module, item)]
        assert not missing, (path, missing)
        assert len(set(module.__all__)) == len(module.__all__), path
