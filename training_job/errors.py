"""Errors raised by the training job's table preparation, with messages meant for the person who owns the data."""

from __future__ import annotations

from numbers import Integral

from segmentation_core.errors import DataError  # one error for unusable data, the table reader's too

__all__ = ["ConfigError", "DataError"]


class ConfigError(ValueError):
    """The training configuration is invalid; the message names the TOML key at fault."""


def describe_row(label: object, first_data_line: int | None) -> str:
    """Say where a row is: its line in the source file when known, else its 1-based position."""
    if isinstance(label, Integral) and first_data_line is not None:
        return f"line {int(label) + first_data_line}"
    if isinstance(label, Integral):
        return f"row {int(label) + 1}"
    return f"row {label!r}"
