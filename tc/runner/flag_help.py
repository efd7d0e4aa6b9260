"""`--help` of tc's entry points: the command's docstring, then tc's own flags in named groups
(data and model, loss, optimization, packed sweep, run control, and search for `tc.tune`), each
with its default and valid values. `--helpfull` stays absl's, with every flag of every module.

The groups are `tc.runner.config.HELP_GROUPS` and `tc.runner.search.HELP_GROUP`; a test checks
that each flag is in exactly one.
"""

import sys
import textwrap

HELP_ARGUMENTS = ("--help", "-help", "-h", "--h", "-?", "--helpshort", "-helpshort")
WIDTH = 80


def wants_help(argv):
    """Whether the command line asks for `--help` (absl's spellings of it, `--helpfull` aside)."""
    return any(argument in HELP_ARGUMENTS for argument in argv[1:])


def render(doc, groups, flag_values):
    """The help text: `doc`, then each `(title, flag names)` group of `flag_values` that is
    defined, flag by flag."""
    lines = [(doc or "").strip(), ""]
    for title, names in groups:
        defined = [name for name in names if name in flag_values]
        if not defined:
            continue
        lines.append(f"{title}:")
        for name in defined:
            lines.extend(_entry(flag_values[name]))
        lines.append("")
    lines.append("--helpfull lists every flag, absl's own and the libraries' included.")
    return "\n".join(lines) + "\n"


def _entry(flag):
    # absl puts an enum's values at the start of its help: "<a|b|c>: ...".
    lines = textwrap.wrap(f"--{flag.name}: {flag.help or ''}", WIDTH, initial_indent="  ",
                          subsequent_indent="    ", break_on_hyphens=False)
    lines.append(f"    (default: {flag.default_as_str})")
    return lines


def print_help_and_exit(groups, flag_values, stream=None):
    """Prints the help of the running command (its `__main__` docstring) and exits with 0."""
    stream = sys.stdout if stream is None else stream
    stream.write(render(sys.modules["__main__"].__doc__, groups, flag_values))
    stream.flush()
    sys.exit(0)
