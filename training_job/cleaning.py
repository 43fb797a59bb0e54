"""Cleaning steps of customer tables, and the report that counts what table preparation did.

Cell parsing (text, numbers, ids, dates) lives in segmentation_core.parsing; a transaction log's cleaning
and aggregation in segmentation_core.recipe."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segmentation_core.parsing import format_ids
from segmentation_core.recipe import TransactionReport, outside_range

__all__ = ["CleaningReport", "apply_valid_ranges", "as_categorical"]

logger = logging.getLogger(__name__)


@dataclass
class CleaningReport:
    """A JSON-able account of what table preparation did to the input, for logs and the training report."""

    kind: str
    rows_in: int = 0
    rows_out: int = 0
    duplicate_rows_dropped: int = 0
    duplicate_ids_dropped: int = 0
    missing_ids_dropped: int = 0
    rows_dropped_for_missing: int = 0
    missing: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Feature column -> {"count": values missing (incl. implausible ones), "action": what was done}."""
    implausible: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Column -> {"count", "rule", "examples"}: values outside cleaning.valid_range, set missing."""
    recoded: dict[str, dict[str, int]] = field(default_factory=dict)
    """Column -> {"old -> new": rows}."""
    ignored_columns: list[str] = field(default_factory=list)
    constant_features: list[str] = field(default_factory=list)
    transactions: TransactionReport | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that json.dumps accepts."""
        return asdict(self)

    def log_summary(self, log: logging.Logger | None = None) -> None:
        """Log the report at INFO, one readable line per fact."""
        log = log or logger
        log.info("table preparation (%s): %d rows in, %d customers out", self.kind, self.rows_in, self.rows_out)
        if self.transactions is not None:
            t = self.transactions
            log.info(
                "transactions: %d rows; dropped %d cancellations, %d non-positive quantity, %d non-positive value,"
                " %d missing customer id, %d exact duplicates; %d rows used",
                t.rows_in, t.cancellations, t.non_positive_quantity, t.non_positive_value,
                t.missing_customer_id, t.duplicate_rows, t.rows_used,
            )
            log.info(
                "transactions: %d customers, %d purchases, %s to %s, snapshot %s, rows per customer %s",
                t.customers, t.purchases, t.first_date, t.last_date, t.snapshot_date, t.rows_per_customer,
            )
        for label, count in (
            ("exact duplicate rows dropped", self.duplicate_rows_dropped),
            ("rows with a repeated id dropped (first kept)", self.duplicate_ids_dropped),
            ("rows without an id dropped", self.missing_ids_dropped),
            ("rows dropped for missing values", self.rows_dropped_for_missing),
        ):
            if count:
                log.info("%s: %d", label, count)
        for column, changes in self.recoded.items():
            log.info("recoded %r: %s", column, ", ".join(f"{k} ({n})" for k, n in changes.items()))
        for column, info in self.implausible.items():
            if not info["count"]:
                continue
            log.info("implausible %r: %d value(s) %s, e.g. %s; set missing", column, info["count"], info["rule"],
                     info["examples"])
        for column, info in self.missing.items():
            log.info("missing %r: %d value(s), %s", column, info["count"], info["action"])
        if self.constant_features:
            log.warning("constant feature(s), which cannot separate segments: %s", self.constant_features)
        if self.ignored_columns:
            log.info("columns not used as features: %s", ", ".join(self.ignored_columns))


def as_categorical(values: pd.Series) -> pd.Series:
    """Categories as Python str with None for missing (numbers coded as categories keep no '.0').

    Booleans (from Excel or Parquet) become "TRUE"/"FALSE", the text Excel writes when it saves as CSV, so
    that one table gives the same categories whatever format it arrives in.
    """
    if pd.api.types.is_bool_dtype(values) or (
        values.dtype == object and values.map(lambda v: isinstance(v, bool | np.bool_) or v is None).all()
        and values.notna().any()
    ):
        values = values.map({True: "TRUE", False: "FALSE"}, na_action="ignore")
    if pd.api.types.is_float_dtype(values):
        return format_ids(values)
    text = values.astype("string")
    return text.astype(object).where(text.notna(), None)


def apply_valid_ranges(
    columns: dict[str, pd.Series],
    ranges: Mapping[str, tuple[float | None, float | None]],
    names: Iterable[str],
    report: CleaningReport,
) -> None:
    """Set values outside their column's valid range to NaN, counting them in the report (in place)."""
    for name in names:
        if name not in ranges or name not in columns:
            continue
        low, high = ranges[name]
        values = columns[name]
        outside = outside_range(values, low, high)
        if low is not None and high is not None:
            rule = f"outside [{low:g}, {high:g}]"
        else:
            rule = f"below {low:g}" if low is not None else f"above {high:g}"
        examples = sorted({float(v) for v in values[outside]})[:5]
        report.implausible[name] = {"count": int(outside.sum()), "rule": rule, "examples": examples}
        columns[name] = values.mask(outside)
