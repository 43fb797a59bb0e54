"""The domain's errors; each program maps them to its own surface (exit code, gRPC status)."""
from __future__ import annotations

import math
from numbers import Integral


class SegmentationError(Exception):
    """Base of every error the domain raises on purpose."""


class InputError(SegmentationError, ValueError):
    """Customer data that the feature schema cannot score; names the field and, for batches, the row."""

    def __init__(self, message: str, field: str | None = None, row: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.row = row


class ConfigError(SegmentationError, ValueError):
    """A configuration that is invalid (a training TOML, a recipe's rule); the message names the key at fault."""


class DataError(SegmentationError, ValueError):
    """A data file or table that cannot be used; the message names the file, column, row or value at fault."""


class ArtefactError(SegmentationError):
    """A model artefact that is missing, corrupt, tampered with or of an unknown format."""


class SignatureError(ArtefactError):
    """A version that is not signed, or not signed by the verify key, where signatures are required."""


class StoreError(SegmentationError):
    """A model store operation that cannot be done (unknown model or version, nothing to roll back to)."""


class NotFoundError(StoreError, LookupError):
    """An unknown model or version."""


QUOTE_LIMIT = 80  # characters of caller input an error message quotes


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters (with the full length), so no error echoes unbounded input."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, (str, bytes)) else len(text)
    return f"{text[:limit]}... ({size} characters)"


MESSAGE_LIMIT = 1000  # characters of an error message sent to a caller or logged


def bounded(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` cut to ``limit`` characters (with its full length): a status message must stay within gRPC's
    metadata limit and a log line bounded whatever input an error names."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message)} characters)"


def describe_row(label: object, first_data_line: int | None) -> str:
    """Say where a row is: its line in the source file when known, else its 1-based position."""
    if isinstance(label, Integral) and first_data_line is not None:
        return f"line {int(label) + first_data_line}"
    if isinstance(label, Integral):
        return f"row {int(label) + 1}"
    return f"row {label!r}"


def number_error(name: str, value: object) -> str:
    """The one wording for a numeric field's value that cannot be scored, whichever path met it: text that is no
    number ("Age: 'abc' is not a number"), an infinite value ("Age: inf is not a finite number", text as typed:
    "Age: '1e400' is not a finite number")."""
    shown = quoted(value) if isinstance(value, (str, bytes)) else str(value)
    try:
        number = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"{name}: {shown} is not a number"
    return f"{name}: {shown} is not a finite number" if number in (math.inf, -math.inf) else \
        f"{name}: {shown} is not a number"
