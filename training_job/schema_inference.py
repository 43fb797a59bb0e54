"""`--preset auto`: infer the id, numeric, categorical and date columns of an unknown customer table."""

from __future__ import annotations

import dataclasses
import logging
import re

import pandas as pd

from segmentation_core.parsing import looks_like_dates, strip_text
from training_job.config import DataConfig, TrainingConfig, load_preset
from training_job.errors import DataError

__all__ = ["ColumnRoles", "classify_columns", "infer_id_column", "infer_schema", "looks_like_transactions"]

logger = logging.getLogger(__name__)

# "ID", "CustomerID", "customer_id", "Customer ID", "client_no", "user key" ...
_ID_NAME = re.compile(r"(^|[\s_\-.])(id|no|key|number|code)$|^id([\s_\-.]|$)|^id$|[a-z]id$", re.IGNORECASE)
_MAX_CATEGORIES = 20
_TRANSACTION_MARKERS = ("InvoiceNo", "Quantity", "UnitPrice", "CustomerID", "InvoiceDate")


def infer_id_column(frame: pd.DataFrame) -> str | None:
    """The customer id column: unique and id-like by name, else a unique text column, else None."""
    unique = [c for c in frame.columns if frame[c].notna().all() and frame[c].is_unique]
    by_name = [c for c in unique if _ID_NAME.search(str(c).strip())]
    if by_name:
        return by_name[0]
    # Unique text (e.g. emails, account codes) identifies customers; unique numbers may just be amounts.
    text = [c for c in unique if not pd.api.types.is_numeric_dtype(frame[c]) and not looks_like_dates(frame[c])]
    if text:
        return text[0]
    first = frame.columns[0] if len(frame.columns) else None
    if first in unique and pd.api.types.is_integer_dtype(frame[first]):
        return first  # a unique integer first column is a row key in every export we have seen
    return None


@dataclasses.dataclass(frozen=True)
class ColumnRoles:
    """What each column of a customer table is for, as `--preset auto` sees it."""

    id_column: str | None
    numeric: list[str]
    categorical: list[str]
    dates: list[str]
    dropped: dict[str, str]
    """Column -> why it is not a feature."""


def classify_columns(frame: pd.DataFrame) -> ColumnRoles:
    """Sort the columns of a customer table into id, numeric, categorical, date and dropped ones."""
    id_column = infer_id_column(frame)
    numeric, categorical, dates, dropped = [], [], [], {}
    for column in frame.columns:
        if column == id_column:
            continue
        values = strip_text(frame[column])
        present = values.dropna()
        distinct = present.nunique()
        if present.empty:
            dropped[column] = "all values missing"
        elif distinct <= 1:
            dropped[column] = f"constant (always {present.iloc[0]})"
        elif pd.api.types.is_bool_dtype(values):
            categorical.append(column)
        elif pd.api.types.is_numeric_dtype(values):
            numeric.append(column)
        elif pd.api.types.is_datetime64_any_dtype(values) or looks_like_dates(values):
            dates.append(column)
        elif pd.to_numeric(present, errors="coerce").notna().mean() >= 0.95:
            numeric.append(column)  # a numeric column with a few stray words: prepare_table will name them
        elif distinct <= max(_MAX_CATEGORIES, min(50, len(present) // 20)):
            categorical.append(column)
        else:
            dropped[column] = f"free text ({distinct} distinct values)"
    return ColumnRoles(id_column, numeric, categorical, dates, dropped)


def looks_like_transactions(frame: pd.DataFrame) -> bool:
    """True when the table has the columns of a transaction log in the Online Retail layout."""
    return all(c in frame.columns for c in _TRANSACTION_MARKERS)


def infer_schema(frame: pd.DataFrame) -> TrainingConfig:
    """Infer a TrainingConfig for a table (a transaction log with the standard columns gets the RFM preset)."""
    if len(frame) == 0:
        raise DataError("cannot infer a schema from a table with no rows")
    if looks_like_transactions(frame):
        logger.info("auto schema: columns %s look like a transaction log; using the 'transactions' preset",
                    ", ".join(_TRANSACTION_MARKERS))
        return dataclasses.replace(load_preset("transactions"), source="auto")

    roles = classify_columns(frame)
    id_column, numeric, categorical = roles.id_column, roles.numeric, roles.categorical
    dates, dropped = roles.dates, roles.dropped
    if not numeric and not categorical:
        raise DataError(
            "auto schema found no usable feature columns"
            + (f" (dropped: {'; '.join(f'{c}: {r}' for c, r in dropped.items())})" if dropped else "")
        )
    _log_inferred(id_column, numeric, categorical, dates, dropped)
    data = DataConfig(
        kind="customers",
        id_column=id_column,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        date_columns=(),  # found dates are reported, but raw dates are not features without a [derived] rule
        drop=tuple(dropped),
    )
    return TrainingConfig(data=data, source="auto")


def _log_inferred(id_column, numeric, categorical, dates, dropped) -> None:
    logger.info("auto schema: id column: %s", id_column if id_column else "none (ids are row numbers)")
    logger.info("auto schema: numeric (%d): %s", len(numeric), ", ".join(numeric) or "-")
    logger.info("auto schema: categorical (%d): %s", len(categorical), ", ".join(categorical) or "-")
    if dates:
        logger.info("auto schema: date columns (not used; derive features from them in a config): %s",
                    ", ".join(dates))
    for column, reason in dropped.items():
        logger.info("auto schema: dropped %r: %s", column, reason)
