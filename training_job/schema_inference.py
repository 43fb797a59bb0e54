"""`--preset auto`: infer the id, numeric, categorical and date columns of an unknown customer table."""

from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, kruskal

from segmentation_core.parsing import looks_like_dates, strip_text
from training_job.config import DataConfig, TrainingConfig, load_preset
from training_job.errors import DataError

__all__ = ["ColumnRoles", "classify_columns", "infer_id_column", "infer_schema", "looks_like_transactions"]

logger = logging.getLogger(__name__)

# "ID", "CustomerID", "customer_id", "Customer ID", "client_no", "user key" ...
_ID_NAME = re.compile(r"(^|[\s_\-.])(id|no|key|number|code)$|^id([\s_\-.]|$)|^id$|[a-z]id$", re.IGNORECASE)
# Names that say "identifier" beyond doubt ("id", "Customer ID", "customer_id", "CustomerID", "client_no"):
# such a column is never a feature, unique or not (a repeated or partly missing id is still an id).
_CLEAR_ID_NAME = re.compile(r"(^|[\s_\-.])id$|^id([\s_\-.]|$)|(customer|client|user|account|member|cust)"
                            r"[\s_\-.]*(id|no|nr|number|key|code)$", re.IGNORECASE)
_REPEATED_IDS = "values repeat an id"
_MAX_CATEGORIES = 20
# A categorical column whose strongest association with any other column is below this is dropped under
# auto: 0.01 is Cohen's "small" effect for a share of variance explained.
MIN_ASSOCIATION = 0.01
_TRANSACTION_MARKERS = ("InvoiceNo", "Quantity", "UnitPrice", "CustomerID", "InvoiceDate")


def infer_id_column(frame: pd.DataFrame) -> str | None:
    """The customer id column: unique and id-like by name, else a unique text column, else None."""
    unique = [c for c in frame.columns if frame[c].notna().all() and frame[c].is_unique]
    by_name = [c for c in unique if _ID_NAME.search(str(c).strip())]
    if by_name:
        return by_name[0]
    # A clear id whose present values are unique once exact duplicate rows are left out (a file appended
    # twice) and with few missing: cleaning drops those rows and counts them.
    named = [c for c in frame.columns if _CLEAR_ID_NAME.search(str(c).strip())]
    if named:
        distinct = frame.drop_duplicates()
        loose = [c for c in named if distinct[c].notna().mean() >= 0.9 and distinct[c].dropna().is_unique]
        if loose:
            return loose[0]
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
        elif _CLEAR_ID_NAME.search(str(column).strip()):
            repeats = len(present) - distinct
            dropped[column] = "an identifier by its name" + (
                f", but {repeats:,} of its {len(present):,} {_REPEATED_IDS} (rows of a transaction log? "
                f"train on it with a [transactions] config or the 'transactions' preset)" if repeats else "")
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
    for column, reason in _unrelated_categoricals(frame, numeric, categorical).items():
        categorical.remove(column)
        dropped[column] = reason
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


def _unrelated_categoricals(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict[str, str]:
    """Categorical columns unrelated to every other column, with the reason (see MIN_ASSOCIATION).

    A category that no numeric column and no other category varies with carries no segment structure;
    one-hot encoded, it would still split every segment by its levels (gender on the mall data doubles
    the segments). Association with a numeric column is the bias-corrected rank effect size epsilon^2 of
    the Kruskal-Wallis test (the share of rank variance the levels explain); with another category,
    the bias-corrected Cramer's V. A column is dropped when both stay below ``MIN_ASSOCIATION``.
    """
    out: dict[str, str] = {}
    if not numeric and len(categorical) < 2:
        return out
    numbers = {c: pd.to_numeric(frame[c], errors="coerce") for c in numeric}
    for column in categorical:
        levels = strip_text(frame[column]).astype("object")
        effects = {c: _rank_effect(levels, values) for c, values in numbers.items()}
        effects.update({c: _cramers_v(levels, strip_text(frame[c]).astype("object"))
                        for c in categorical if c != column})
        strongest = max(effects, key=effects.get) if effects else None
        if strongest is None or effects[strongest] < MIN_ASSOCIATION:
            out[column] = (f"unrelated to the other columns (strongest association {effects[strongest]:.3f} with "
                           f"{strongest!r}, below {MIN_ASSOCIATION}): it would split segments by its levels alone")
    return out


def _rank_effect(levels: pd.Series, values: pd.Series) -> float:
    """Bias-corrected epsilon^2 of a Kruskal-Wallis test of ``values`` across ``levels`` (0 = unrelated)."""
    ok = levels.notna() & values.notna()
    groups = [g.to_numpy() for _, g in values[ok].groupby(levels[ok]) if len(g) > 1]
    n = int(sum(len(g) for g in groups))
    if len(groups) < 2 or n <= len(groups) or all(np.ptp(g) == 0 for g in groups):
        return 0.0
    h = float(kruskal(*groups).statistic)
    return (h - len(groups) + 1) / (n - len(groups)) if np.isfinite(h) else 0.0


def _cramers_v(a: pd.Series, b: pd.Series) -> float:
    """Bias-corrected Cramer's V of two categorical columns (Bergsma 2013; 0 = unrelated)."""
    ok = a.notna() & b.notna()
    table = pd.crosstab(a[ok], b[ok]).to_numpy()
    n = table.sum()
    r, c = table.shape
    if n < 3 or r < 2 or c < 2:
        return 0.0
    chi2 = chi2_contingency(table, correction=False)[0]
    phi2 = max(0.0, chi2 / n - (r - 1) * (c - 1) / (n - 1))
    rows, cols = r - (r - 1) ** 2 / (n - 1), c - (c - 1) ** 2 / (n - 1)
    return float(np.sqrt(phi2 / max(1e-12, min(rows - 1, cols - 1))))


def _log_inferred(id_column, numeric, categorical, dates, dropped) -> None:
    logger.info("auto schema: id column: %s", id_column if id_column else "none (ids are row numbers)")
    logger.info("auto schema: numeric (%d): %s", len(numeric), ", ".join(numeric) or "-")
    logger.info("auto schema: categorical (%d): %s", len(categorical), ", ".join(categorical) or "-")
    if dates:
        logger.info("auto schema: date columns (not used; derive features from them in a config): %s",
                    ", ".join(dates))
    for column, reason in dropped.items():
        level = logging.WARNING if _REPEATED_IDS in reason else logging.INFO
        logger.log(level, "auto schema: dropped %r: %s", column, reason)
