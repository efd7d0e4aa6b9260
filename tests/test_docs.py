"""The documentation site's sources: every public module of the library has an API page, every
public function and class a docstring for it to show, every page and notebook is in the nav.
(`mkdocs build --strict` in .ci/run builds the site itself and executes the notebooks.)"""

import importlib
import inspect
import pathlib
import re
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "reference" / "api"
MKDOCS = (ROOT / "mkdocs.yml").read_text()

pytestmark = pytest.mark.backend_independent


def api_modules():
    return {match for page in API.glob("*.md")
            for match in re.findall(r"^::: ([\w.]+)$", page.read_text(), re.MULTILINE)}


def test_every_public_module_of_tc_has_an_api_page():
    import tc

    public = {f"tc.{name}" for name in tc.__all__
              if isinstance(getattr(tc, name), types.ModuleType)}
    assert public <= api_modules(), sorted(public - api_modules())


@pytest.mark.parametrize("module_name", sorted(api_modules()))
def test_every_public_function_and_class_has_a_docstring_to_show(module_name):
    module = importlib.import_module(module_name)
    assert module.__doc__ and module.__doc__.strip(), module_name
    names = getattr(module, "__all__", None)
    assert names, f"{module_name} declares no __all__"
    for name in names:
        value = getattr(module, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert inspect.getdoc(value), f"{module_name}.{name} has no docstring"


def test_every_page_and_notebook_is_in_the_nav_and_exists():
    listed = re.findall(r":\s+([\w./-]+\.(?:md|ipynb))\s*$", MKDOCS, re.MULTILINE)
    generated = {"results.md", "contributing.md"} | {
        f"reference/cli/{command}.md"
        for command in ("tc.train", "tc.tune", "tc.bench", "tc.analysis.report")}
    for page in listed:
        if page.endswith(".ipynb"):
            assert (ROOT / page).is_file(), page
        elif page not in generated:
            assert (ROOT / "docs" / page).is_file(), page
    written = {str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs").rglob("*.md")}
    assert written - set(listed) == set(), "pages left out of the nav"
    notebooks = {f"analysis/{path.name}" for path in (ROOT / "analysis").glob("*.ipynb")}
    assert len(notebooks) == 4 and notebooks <= set(listed)


def test_the_notebooks_are_committed_without_outputs():
    import json

    for path in (ROOT / "analysis").glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name
