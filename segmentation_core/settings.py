"""One typed settings mechanism for every program: a frozen dataclass whose fields declare flag, env, default, help.

```python
@dataclass(frozen=True)
class Settings:
    port: int = option(50051, "gRPC port; 0 picks a free one")
    store: Path = option(Path("./model-store"), "model store folder")

settings = parse(Settings, argparse.ArgumentParser(prog="python -m x"), argv, env_prefix="X_")
```
Each field is a flag (``--port``) and an environment variable (``X_PORT``); precedence: flag, then variable,
then default. The field's type converts both; a bad value ends the program with one line naming the flag or
the variable and exit code 2 (argparse's usage-error code), never a traceback. A bad variable counts only
where it is used: not when its flag is given, nor for a sub-command without that option. ``--help`` shows
each help text with its variable and default; ``internal=True`` fields work but are left out of ``--help``.

The standard library only (argparse): the scoring server imports this, and ``./run.sh --help`` runs it
before any virtualenv exists. Chosen over pydantic-settings for that reason: no new dependency in three
images, nothing added to the scoring server's start-up, and subcommands stay plain argparse.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NoReturn, Sequence, TypeVar

__all__ = ["option", "add_options", "from_namespace", "parse", "fail", "at_least", "refuse_bad_variables"]

T = TypeVar("T")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
_TYPE_WORDS = {int: "a whole number", float: "a number", Path: "a path", str: "text"}


@dataclass(frozen=True)
class _Spec:
    help: str
    env: str | None  # an explicit variable name, or None: <prefix><FIELD>
    choices: tuple[str, ...] | None
    internal: bool
    positional: bool
    required: bool
    metavar: str | None
    short: str | None
    check: Callable[[Any], Any] | None


def option(default: Any = None, help: str = "", *, env: str | None = None, choices: Sequence[str] | None = None,
           internal: bool = False, positional: bool = False, required: bool = False, metavar: str | None = None,
           short: str | None = None, check: Callable[[Any], Any] | None = None) -> Any:
    """A settings field: its default, its help, and optionally its variable name, choices, a value check
    (raises ValueError naming what is wrong) and whether it is internal (hidden from --help)."""
    spec = _Spec(help, env, tuple(choices) if choices else None, internal, positional, required, metavar, short,
                 check)
    return dataclasses.field(default=default, metadata={"setting": spec})


def at_least(minimum: float) -> Callable[[Any], None]:
    """A check: the value is >= ``minimum``."""
    def check(value: Any) -> None:
        if value < minimum:
            raise ValueError(f"{value} should be >= {minimum}")
    return check


def fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """End the program with one line naming the bad setting, exit code 2."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


class _BadVariable:
    """The default of an option whose environment variable did not convert: an error once the parsed command
    turns out to use it (``refuse_bad_variables``), not before."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        self.parser, self.message = parser, message

    def __str__(self) -> str:
        return "invalid"


def refuse_bad_variables(namespace: argparse.Namespace) -> None:
    """End the program (exit 2, one line) if an option the parsed command uses took a bad variable's value."""
    for value in vars(namespace).values():
        if isinstance(value, _BadVariable):
            fail(value.parser, value.message)


def add_options(parser: argparse.ArgumentParser, cls: type, env_prefix: str,
                environ: Mapping[str, str] | None = None) -> None:
    """Add one argument per field of the dataclass ``cls`` to ``parser``, its default read from the environment."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("setting")
        if spec is None:
            continue
        kind = _base_type(hints[f.name])
        variable = spec.env or env_prefix + f.name.upper()
        convert = _converter(kind, spec)
        default = f.default
        if spec.positional:  # an operand, not a setting: no variable
            parser.add_argument(f.name, type=convert, help=spec.help, metavar=spec.metavar or f.name.upper())
            continue
        raw = environ.get(variable)
        if raw is not None and (raw != "" or kind is bool):
            try:
                default = _bool(raw) if kind is bool else convert(raw)
                if spec.choices and default not in spec.choices:
                    raise ValueError(f"should be one of {', '.join(spec.choices)}")
            except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
                default = _BadVariable(parser, f"{variable}={raw!r}: {_reason(exc, kind, spec)}")
        required = spec.required and default is None
        shown = "off" if default is False else ("none" if default in (None, "") else default)
        origin = f"env {variable}; required" if required else f"env {variable}; default {shown}"
        text = f"{spec.help} ({origin})" if spec.help else f"({origin})"
        help_text = argparse.SUPPRESS if spec.internal else text
        flags = [*([spec.short] if spec.short else []), "--" + f.name.replace("_", "-")]
        if kind is bool:
            parser.add_argument(*flags, dest=f.name, action="store_true", default=default, help=help_text)
            continue
        parser.add_argument(*flags, dest=f.name, type=convert, default=default, choices=spec.choices,
                            required=required, metavar=spec.metavar, help=help_text)


def from_namespace(cls: type[T], namespace: argparse.Namespace) -> T:
    """The dataclass ``cls`` from the parsed arguments (fields absent from the namespace keep their default)."""
    refuse_bad_variables(namespace)
    fields = dataclasses.fields(typing.cast(Any, cls))
    values = {f.name: getattr(namespace, f.name) for f in fields if hasattr(namespace, f.name)}
    return cls(**values)


def parse(cls: type[T], parser: argparse.ArgumentParser, argv: Sequence[str] | None, env_prefix: str,
          environ: Mapping[str, str] | None = None) -> T:
    """Build ``parser`` from ``cls``, parse ``argv`` and return the typed settings; a bad value exits 2."""
    add_options(parser, cls, env_prefix, environ)
    namespace = parser.parse_args(argv)
    try:
        return from_namespace(cls, namespace)
    except ValueError as exc:  # a check in the dataclass's __post_init__
        fail(parser, str(exc))


def _base_type(hint: Any) -> type:
    """int for ``int``, str for ``str | None``, Path for ``Path``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0]
    return hint


def _converter(kind: type, spec: _Spec) -> Callable[[str], Any]:
    base: Callable[[str], Any] = kind if kind in (int, float, str, Path) else str

    def convert(text: str) -> Any:
        value = base(text.strip() if kind in (int, float) else text)
        if spec.check is not None:
            try:
                spec.check(value)
            except ValueError as exc:  # argparse prints an ArgumentTypeError's own words
                raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    convert.__name__ = getattr(base, "__name__", "str")  # argparse names the type in its own messages
    return convert


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"should be one of {', '.join(_TRUE + _FALSE[:-1])}")


def _reason(exc: BaseException, kind: type, spec: _Spec) -> str:
    text = str(exc)
    if isinstance(exc, ValueError) and (text.startswith("invalid literal") or text.startswith("could not convert")):
        return f"should be {_TYPE_WORDS.get(kind, 'text')}"
    return text or f"should be {_TYPE_WORDS.get(kind, 'text')}"


MAX_TOKEN_FILE_BYTES = 4096


def read_token(token_file: str, environ_value: str = "") -> str:
    """The bearer token: from ``token_file`` when one is named, else ``environ_value``; "" means auth off.

    A named file that is blank (or holds only whitespace) or over 4 KiB raises ValueError naming it: a
    server started with --token-file must not silently accept every caller.
    """
    if not token_file:
        return environ_value.strip()
    with open(token_file, "rb") as fh:
        data = fh.read(MAX_TOKEN_FILE_BYTES + 1)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ValueError(f"--token-file {token_file}: over {MAX_TOKEN_FILE_BYTES} bytes; it should hold one token")
    token = data.decode("utf-8", errors="replace").strip()
    if not token:
        raise ValueError(f"--token-file {token_file} is blank: it should hold the bearer token (refusing to start "
                         "with every call open)")
    return token
