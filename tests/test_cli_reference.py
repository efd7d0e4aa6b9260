"""The CLI reference pages (`tc.runner.command_line.markdown_reference`, which the docs build
runs): every flag a command defines is a row with its default and valid values as absl holds
them."""

import json
import re

import pytest

from tests.support import run_python

# Each command's flags as absl defines them, in a fresh process per command (their flags would
# clash in one): name, default, type and an enum's values; and the page.
PROBE = """
import importlib, json, sys
from absl import flags
from tc.runner import command_line
module_name = {module!r}
page = command_line.markdown_reference(module_name)
module = importlib.import_module(module_name)
owners = [module_name] + (["tc.runner.config"] if module_name in ("tc.train", "tc.tune") else [])
owners += ["tc.runner.search.settings"] if module_name == "tc.tune" else []
defined = [flag for owner in owners for flag in flags.FLAGS.flags_by_module_dict().get(owner, ())]
rows = [{{"name": flag.name, "default": flag.default, "type": flag.flag_type(),
         "enum": list(getattr(flag.parser, "enum_values", None) or [])}} for flag in defined]
print(json.dumps({{"page": page, "flags": rows}}))
"""


def _written(default):
    if isinstance(default, bool):
        return "true" if default else "false"
    if default in (None, ""):
        return "''"
    if isinstance(default, list):
        return ",".join(map(str, default))
    return str(default)


@pytest.mark.backend_independent  # absl's flag definitions: the same whichever backend loads
@pytest.mark.parametrize("module", ["tc.train", "tc.tune", "tc.bench", "tc.analysis.report"])
def test_every_flag_is_a_row_with_its_default_and_valid_values(module):
    completed = run_python(PROBE.format(module=module), backend="jax")
    assert completed.returncode == 0, completed.stderr[-3000:]
    probed = json.loads(completed.stdout.strip().splitlines()[-1])
    page, flags = probed["page"], probed["flags"]
    assert page.startswith(f"# {module}\n")
    rows = {}
    for line in page.splitlines():
        match = re.match(r"^\| `--(\w+)` \| `(.*?)` \| (.*?) \| (.*) \|$", line)
        if match:
            assert match.group(1) not in rows, f"--{match.group(1)} is listed twice"
            rows[match.group(1)] = match.groups()[1:]
    assert len(flags) >= {"tc.train": 50, "tc.tune": 60}.get(module, 5)
    assert {flag["name"] for flag in flags} == set(rows)
    for flag in flags:
        default, valid, help_text = rows[flag["name"]]
        assert default == _written(flag["default"]).replace("|", "\\|"), flag
        if flag["enum"]:
            assert valid == ", ".join(flag["enum"]), flag
            assert not help_text.startswith("<"), flag
        elif flag["type"] == "bool":
            assert valid == "true, false", flag
        else:
            words = {"int": "an integer", "float": "a number", "string": "text"}
            assert valid.startswith(words.get(flag["type"], flag["type"])), flag
