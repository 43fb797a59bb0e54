"""Print the configuration reference (every flag and environment variable of every program) as Markdown.

`python deploy/config_reference.py --write docs/deployment.md` regenerates the reference section of the
deployment guide (between its BEGIN/END markers); without --write it prints the reference. A test checks
that the committed section equals this script's output. Nothing is hard-coded about the programs'
options: each program is run as `python -m <module>` (in-process, via runpy) with
`argparse.ArgumentParser.parse_known_args` patched to hand back the parser instead of parsing, and an
environment variable is listed only after it has been seen to change its flag's default.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import re
import runpy
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger("config_reference")


@dataclass(frozen=True)
class Program:
    """One command-line program of the platform."""

    module: str
    env_prefixes: tuple[str, ...]
    summary: str


PROGRAMS: tuple[Program, ...] = (
    Program("training_job", ("TRAINING_",), "trains a model version and publishes it into the store"),
    Program("scoring_service", ("SCORING_",), "serves the store's models over gRPC"),
    Program("scoring_service.client", ("SCORING_",), "batch-scores a file over PredictStream"),
    Program("dash_ui", ("DASH_", "DASHBOARD_"), "the dashboard (a gRPC client of the scoring service)"),
)


@dataclass(frozen=True)
class Option:
    """One flag or positional argument of one (sub-)command."""

    flags: tuple[str, ...]
    dest: str
    help: str
    default: Any
    required: bool
    positional: bool
    takes_value: bool
    choices: tuple[str, ...] | None
    type_name: str
    env: str | None = None


@dataclass
class Command:
    """A parser: the program itself, or one of its sub-commands (``path`` names it, e.g. ("train",))."""

    program: Program
    path: tuple[str, ...]
    description: str
    options: list[Option] = field(default_factory=list)

    @property
    def invocation(self) -> str:
        """How a user types it, e.g. ``python -m training_job train``."""
        return " ".join(["python -m", self.program.module, *self.path])

    def option(self, dest: str) -> Option | None:
        """The option whose argparse ``dest`` is ``dest``."""
        return next((o for o in self.options if o.dest == dest), None)


class _Captured(BaseException):
    """Raised from the patched parse method; a BaseException so that `except Exception` cannot eat it."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


@contextlib.contextmanager
def _environment(values: Mapping[str, str], clear_prefixes: Sequence[str]) -> Iterator[None]:
    """os.environ with every variable of the given prefixes removed, then ``values`` set; restored after."""
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.startswith(tuple(clear_prefixes)):
                del os.environ[name]
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def capture_parser(module: str, env: Mapping[str, str] | None = None,
                   clear_prefixes: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The top-level parser that ``python -m module`` builds, under the given environment."""
    original = argparse.ArgumentParser.parse_known_args

    def grab(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _Captured(self)

    argv = sys.argv
    argparse.ArgumentParser.parse_known_args = grab  # type: ignore[method-assign]
    # The program may log or print while it starts: keep that out of the generated Markdown.
    sink = io.StringIO()
    try:
        with _environment(env or {}, clear_prefixes), contextlib.redirect_stdout(sink), \
                warnings.catch_warnings():
            # runpy warns when the module was imported before (the parsers are read again and again).
            warnings.filterwarnings("ignore", category=RuntimeWarning, message=".*found in sys.modules.*")
            sys.argv = ["python -m " + module]
            runpy.run_module(module, run_name="__main__", alter_sys=False)
    except _Captured as captured:
        return captured.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original  # type: ignore[method-assign]
        sys.argv = argv
    raise RuntimeError(f"python -m {module} never parsed its command line")


def _type_name(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "flag"
    kind = action.type
    if kind is None:
        return "str"
    return getattr(kind, "__name__", str(kind))


def _walk(program: Program, parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[Command]:
    command = Command(program, path, parser.description or "")
    subcommands: list[Command] = []
    for action in parser._actions:  # noqa: SLF001 - argparse has no public way to list them
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:  # noqa: SLF001
            continue  # internal options (hidden from --help) are not documented either
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases share one parser
                    seen.add(id(sub))
                    subcommands.extend(_walk(program, sub, path + (name,)))
            continue
        choices = tuple(str(c) for c in action.choices) if action.choices else None
        command.options.append(Option(
            flags=tuple(action.option_strings) or (action.metavar or action.dest,),
            dest=action.dest, help=action.help or "", default=action.default, required=bool(action.required),
            positional=not action.option_strings, takes_value=action.nargs != 0, choices=choices,
            type_name=_type_name(action)))
    yield command
    yield from subcommands


def _commands(program: Program, env: Mapping[str, str] | None = None) -> list[Command]:
    parser = capture_parser(program.module, env, program.env_prefixes)
    return list(_walk(program, parser, ()))


def _probe_value(option: Option) -> str:
    """A value for the option's environment variable that its parser accepts and that differs from its default."""
    if not option.takes_value:
        return "1"
    if option.choices:
        return next((c for c in option.choices if c != str(option.default)), option.choices[0])
    if option.type_name == "int":
        return "4243" if option.default != 4243 else "4244"
    if option.type_name == "float":
        return "0.125" if option.default != 0.125 else "0.25"
    return "probe-value"


def _env_candidates(program: Program, option: Option) -> list[str]:
    names = [prefix + option.dest.upper() for prefix in program.env_prefixes]
    names += [n for n in re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", option.help)
              if n.startswith(program.env_prefixes)]
    return list(dict.fromkeys(names))


def _reads_env(program: Program, path: tuple[str, ...], option: Option, name: str) -> bool:
    try:
        probed = _commands(program, {name: _probe_value(option)})
    except (SystemExit, ValueError, TypeError):
        return False
    command = next((c for c in probed if c.path == path), None)
    changed = command.option(option.dest) if command else None
    return changed is not None and changed.default != option.default


def program_commands(program: Program) -> list[Command]:
    """Every (sub-)command of a program with its options, each option's environment variable verified."""
    commands = _commands(program)
    for command in commands:
        for i, option in enumerate(command.options):
            if option.positional:
                continue
            env = next((n for n in _env_candidates(program, option)
                        if _reads_env(program, command.path, option, n)), None)
            command.options[i] = Option(**{**option.__dict__, "env": env})
    return commands


def all_commands() -> dict[str, list[Command] | str]:
    """Program module -> its commands, or the reason it could not be read (a program still missing)."""
    result: dict[str, list[Command] | str] = {}
    for program in PROGRAMS:
        try:
            result[program.module] = program_commands(program)
        except (ImportError, RuntimeError) as exc:
            result[program.module] = f"could not be read: {exc}"
    return result


# ---------------------------------------------------------------------------------------------------
# Markdown

_ENV_NOTE = re.compile(r"\s*[\[(](?:env|environment)\b[^\])]*[\])]", re.IGNORECASE)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(option: Option) -> str:
    if option.required:
        return "*required*"
    if option.default is None or option.default == "" or option.default is argparse.SUPPRESS:
        return "—"
    if option.default is False and not option.takes_value:
        return "off"
    return f"`{option.default}`"


def _flag(option: Option) -> str:
    name = ", ".join(f"`{f}`" for f in option.flags)
    if option.choices:
        name += " " + "\\|".join(option.choices)
    return name


BEGIN = "<!-- BEGIN configuration reference: generated by deploy/config_reference.py, do not edit -->"
END = "<!-- END configuration reference -->"


def render(commands: Mapping[str, list[Command] | str], level: int = 1) -> str:
    """The Markdown reference of the given programs; ``level`` is the heading level of its title."""
    h = "#" * level
    lines = [f"{h} Configuration reference", "",
             "Generated by `python deploy/config_reference.py` from the programs' own argument parsers; do not",
             "edit by hand (a test checks this file equals the script's output). Precedence: command-line flag,",
             "then environment variable, then default. An environment variable is listed only when the script",
             "has seen it change the flag's default. Every program declares its options once, with the shared",
             "`segmentation_core/settings.py`; a value that does not parse (e.g. `SCORING_PORT=abc`) stops the",
             "program with one line naming the flag or variable and exit code 2.", ""]
    for program in PROGRAMS:
        found = commands.get(program.module)
        lines += [f"{h}# `python -m {program.module}`", "", f"What it does: {program.summary}.", ""]
        if isinstance(found, str) or found is None:
            lines += [f"*{found or 'not found'}*", ""]
            continue
        for command in found:
            if not command.options:
                continue
            if command.path:
                lines += [f"{h}## `{command.invocation}`", ""]
            lines += ["| Flag | Environment variable | Default | Description |", "| --- | --- | --- | --- |"]
            for option in command.options:
                env = f"`{option.env}`" if option.env else "—"
                lines.append(f"| {_flag(option)} | {env} | {_cell(_default(option))} | "
                             f"{_cell(_ENV_NOTE.sub('', option.help))} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def embedded(document: str) -> str:
    """The reference section of a document: the text between the BEGIN and END markers."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError("the document has no BEGIN/END configuration reference markers")
    return document[start + len(BEGIN):end].strip("\n") + "\n"


def embed(document: str, reference: str) -> str:
    """The document with its reference section replaced."""
    embedded(document)  # raises when the markers are missing
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{reference}{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the reference, or with --write FILE replace FILE's reference section (level-2 headings)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="Markdown file whose marked section to replace")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, str(ROOT))
    # Run from the repository root so that relative defaults (./model-store) read the same everywhere.
    os.chdir(ROOT)
    if args.write:
        path = args.write.resolve()
        path.write_text(embed(path.read_text(), render(all_commands(), level=2)))
    else:
        sys.stdout.write(render(all_commands()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
