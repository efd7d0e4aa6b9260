"""The command line of tc's entry points (`tc.train`, `tc.tune`, `tc.bench`,
`tc.analysis.report` and their console commands `tc-train`, `tc-tune`, `tc-bench`, `tc-report`).

`run(main, module_name, help_groups)` is what each entry point's `run()` calls:
- `--help` prints the command's docstring, then its flags in named groups, each with its
  default and valid values; `--helpfull` stays absl's, with every flag of every module;
- bad input is one line on stderr, `<command>: error: <message>`, and exit code 1: a flag absl
  cannot parse, and every `CommandLineError` that `main` raises (tc's own validation, a refusal
  before training). Nothing else is printed, so the line that names the flag and the value is
  the last one, not buried under the flags' help; an OSError on a path (a full disk, a
  read-only folder) is such a line too, naming the path and what to do;
- the libraries' Python INFO logs are off unless `--verbosity` is given (TensorFlow's C++ logs:
  see `tc.console`).

The groups are the entry point's to give, from its `help_groups(module_name)`
(`tc.runner.config.HELP_GROUPS` for the run flags, `tc.runner.search.HELP_GROUP` for the search);
`module_groups` makes one group of the flags a module defines, for the commands whose flags are
few. The same groups make the command's page of the CLI reference (`markdown_reference`, which
the documentation site's build runs: `python -m tc.runner.command_line tc.train`).
"""

import functools
import os
import sys
import textwrap

from tc import console

HELP_ARGUMENTS = ("--help", "-help", "-h", "--h", "-?", "--helpshort", "-helpshort")
WIDTH = 80


class CommandLineError(Exception):
    """Bad input, found before anything was written: printed as one line, exit code 1."""


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


def valid_values(flag):
    """What a flag accepts, in words: an enum's values, true/false, or the parser's type."""
    parser = flag.parser
    if getattr(parser, "enum_values", None):
        return ", ".join(parser.enum_values)
    kind = flag.flag_type()
    if kind == "bool":
        return "true, false"
    lower, upper = getattr(parser, "lower_bound", None), getattr(parser, "upper_bound", None)
    words = {"int": "an integer", "float": "a number", "string": "text"}.get(kind, kind)
    if lower is not None or upper is not None:
        words += f" in [{'-inf' if lower is None else lower}, {'inf' if upper is None else upper}]"
    return words


def default_text(flag):
    """A flag's default as it is written on the command line (`''` for the empty string)."""
    default = flag.default
    if isinstance(default, bool):
        return "true" if default else "false"
    if default is None or default == "":
        return "''"
    if isinstance(default, (list, tuple)):
        return ",".join(map(str, default))
    return str(default)


def _own_help(flag):
    """The flag's help without the `<a|b|c>: ` that absl puts before an enum's."""
    text = flag.help or ""
    if getattr(flag.parser, "enum_values", None) and text.startswith("<"):
        return text.split(">: ", 1)[-1]
    return text


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown_reference(module_name):
    """The CLI reference page of the entry point `module_name` (e.g. `tc.train`): its
    docstring, then a table per help group of every flag with its default, valid values and
    help, read from the flags absl holds, so that the page cannot drift from the code."""
    import importlib

    from absl import flags

    module = importlib.import_module(module_name)
    console_command = COMMANDS[module_name]
    lines = [f"# {module_name}", "",
             f"`python -m {module_name}`, or the console command `{console_command}`. Generated "
             "from the flag definitions; `--help` prints the same groups.", "",
             (module.__doc__ or "").strip(), ""]
    for title, names in module.help_groups(module_name):
        defined = [flags.FLAGS[name] for name in names if name in flags.FLAGS]
        if not defined:
            continue
        lines += [f"## {title[0].upper()}{title[1:]}", "",
                  "| flag | default | valid values | what it sets |", "| --- | --- | --- | --- |"]
        for flag in defined:
            lines.append(f"| `--{flag.name}` | `{_cell(default_text(flag))}` | "
                         f"{_cell(valid_values(flag))} | {_cell(_own_help(flag))} |")
        lines.append("")
    return "\n".join(lines)


# Each entry point's module and its console command.
COMMANDS = {"tc.train": "tc-train", "tc.tune": "tc-tune", "tc.bench": "tc-bench",
            "tc.analysis.report": "tc-report"}


def module_groups(title, module_name):
    """`[(title, names)]` of the flags that module `module_name` defines, in definition order."""
    from absl import flags

    # absl files the flags of a module run as `python -m` under its path, sys.argv[0].
    name = sys.argv[0] if module_name == "__main__" else module_name
    defined = flags.FLAGS.flags_by_module_dict().get(name, ())
    return [(title, tuple(flag.name for flag in defined))]


def command_name():
    """How the running command calls itself in its messages: `tc-train`, or `tc.train` for
    `python -m tc.train`."""
    launcher = os.path.basename(sys.argv[0]) if sys.argv else "tc"
    if launcher.endswith(".py"):
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        return spec.name if spec is not None else launcher
    return launcher


# What to do about an OS error on a path, by its errno name.
_REMEDIES = {
    "ENOSPC": "the disk is full: free space there, then run the same command again (it resumes "
              "from the last committed epoch)",
    "EDQUOT": "the disk quota is used up: free space, then run the same command again",
    "EACCES": "permission denied: make it writable (or choose another --output_dir), then run "
              "the same command again",
    "EPERM": "permission denied: make it writable (or choose another --output_dir), then run "
             "the same command again",
    "EROFS": "the file system is read-only: choose another --output_dir",
    "ENOTDIR": "a part of the path is a file, not a folder: choose another path",
    "EISDIR": "it is a folder where a file belongs: move it away or choose another path",
    "ENOENT": "it does not exist",
}


def os_error_message(error):
    """One line on an OSError: the path, what happened, and what to do."""
    import errno

    name = errno.errorcode.get(error.errno, "")
    where = error.filename if error.filename is not None else "a file"
    what = error.strerror or str(error)
    remedy = _REMEDIES.get(name, "fix the path, then run the same command again")
    return f"{where}: {what} ({remedy})."


def fail(message):
    """Writes `<command>: error: <message>` as the one line on stderr and exits with code 1."""
    sys.stdout.flush()
    text = " ".join(str(message).split())
    sys.stderr.write(f"{command_name()}: error: {text}\n")
    sys.stderr.flush()
    sys.exit(1)


def parse_command_line(argv, help_groups=()):
    """absl's flag parsing (`app.run(main, flags_parser=...)`), with the grouped `--help` of
    `help_groups` (`(title, flag names)` pairs), and a flag absl refuses as one line naming the
    flag and the value."""
    from absl import flags

    if wants_help(argv):
        sys.stdout.write(render(sys.modules["__main__"].__doc__, help_groups, flags.FLAGS))
        sys.stdout.flush()
        sys.exit(0)
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        fail(error)
    except UnicodeDecodeError as error:
        named = [argument.split("=", 1)[1] for argument in argv[1:]
                 if argument.startswith(("--flagfile=", "-flagfile="))]
        unreadable = [path for path in named if not _is_text(path)]
        fail(f"--flagfile={unreadable[0] if unreadable else '...'} is not a text file of flags "
             f"(byte {error.start} is not UTF-8); a flagfile holds one --flag=value per line.")


def _is_text(path):
    try:
        with open(path, encoding="utf-8") as file:
            file.read()
        return True
    except (OSError, UnicodeDecodeError):
        return False


def help_as_main_module(module_name):
    """Makes a console command's `--help` (`tc-train`, `tc-tune`) show what `python -m` shows:
    the module's docstring and its key flags. absl files both under the main module, which for
    a console command is the launcher script that pip wrote, not the module."""
    from absl import flags

    module = sys.modules[module_name]
    for flag in flags.FLAGS.get_key_flags_for_module(module):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    launcher = sys.modules["__main__"]
    if launcher is not module:
        launcher.__doc__ = module.__doc__


def run(main, module_name, help_groups=()):
    """Runs an entry point's `main(argv)` under absl, as described in the module docstring.

    `main` may raise `CommandLineError` for bad input; positional arguments are refused before
    it is called.
    """
    from absl import app

    help_as_main_module(module_name)

    def guarded(argv):
        from absl import flags, logging

        if not flags.FLAGS["verbosity"].present:
            # Python-side INFO lines of the libraries (JAX's "Unable to initialize backend
            # 'tpu'") are not the command's output; --verbosity=0 brings them back.
            logging.set_verbosity(logging.WARNING)
        console.single_python_log()
        try:
            if len(argv) > 1:
                raise CommandLineError(f"unexpected arguments {argv[1:]}: every setting is a "
                                       "--flag=value (see --help)")
            return main(argv)
        except CommandLineError as error:
            fail(error)
        except OSError as error:  # a full disk, a read-only folder: no traceback for those
            fail(os_error_message(error))

    app.run(guarded, flags_parser=functools.partial(parse_command_line,
                                                    help_groups=help_groups))


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python -m tc.runner.command_line {{{','.join(COMMANDS)}}}")
    sys.stdout.write(markdown_reference(sys.argv[1]) + "\n")
