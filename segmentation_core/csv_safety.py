"""Downloads: CSV that a spreadsheet opens as data, never as formulas (CSV/formula injection).

A text cell starting with = + - @ tab or carriage return is prefixed with a single quote (OWASP's
advice), so Excel, LibreOffice and Google Sheets show it as text. Numbers are written as numbers: a
negative number is data, not a formula, and only text cells are rewritten; a text cell that is a negative
number (``-500``, ``-3.5``, ``-1e3``, in a column that also holds text) is data too and stays as it is
(``-2+3`` is a formula and is quoted; ``+1`` too, which keeps a phone number's ``+`` in a spreadsheet).
Column names are text too.
Used by every CSV a person may open: the dashboard's downloads and the client CLI's scored files.
"""
from __future__ import annotations

import re
from typing import Any

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = r"-(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?"
_FORMULA = f"^(?!{_PLAIN_NUMBER}$)[=+\\-@\t\r]"  # a formula start, unless the cell is a negative number


def neutralize_cell(value: Any) -> Any:
    """`value` with a quote in front when it is text that a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not re.fullmatch(_PLAIN_NUMBER, value):
        return "'" + value
    return value


def neutralize_series(series: pd.Series) -> pd.Series:
    """`series` with its formula-starting text cells quoted (vectorised; numbers and booleans as they are)."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    text = series.astype("string") if series.dtype != object else series
    starts = text.str.match(_FORMULA, na=False)
    if isinstance(starts, pd.Series) and starts.astype(bool).any():
        series = series.where(~starts.astype(bool), "'" + text.astype(str))
    return series


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells and column names cannot start a formula."""
    safe = frame.copy()
    for column in safe.columns:
        safe[column] = neutralize_series(safe[column])
    safe.columns = [neutralize_cell(str(c)) for c in safe.columns]
    return safe


def to_safe_csv(frame: pd.DataFrame) -> str:
    """`frame` as CSV text (no index), safe against formula injection."""
    return csv_safe_frame(frame).to_csv(index=False)
