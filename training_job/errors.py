"""Errors raised by the training job's table preparation, with messages meant for the person who owns the data."""

from __future__ import annotations

from segmentation_core.errors import DataError, describe_row  # one error for unusable data, the table reader's too

__all__ = ["ConfigError", "DataError", "describe_row"]


class ConfigError(ValueError):
    """The training configuration is invalid; the message names the TOML key at fault."""
