"""Errors raised by the training job's table preparation, with messages meant for the person who owns the data."""

from __future__ import annotations

# one error for unusable data (the table reader's too), one for an invalid configuration (the recipe's too)
from segmentation_core.errors import ConfigError, DataError, describe_row

__all__ = ["ConfigError", "DataError", "describe_row"]
