"""prepare_table: from a raw table (customers or transactions) to a clean per-customer feature table."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import pandas as pd

from segmentation_core import derived as derived_columns
from segmentation_core.errors import RowLines
from segmentation_core.parsing import format_ids, parse_dates, strip_text, to_numeric
from segmentation_core.recipe import RFM_COLUMNS, CleanLog, clean_log, customer_table
from training_job.cleaning import CleaningReport, apply_valid_ranges, as_categorical
from training_job.config import TrainingConfig
from training_job.errors import DataError, describe_row
from training_job.schema_inference import infer_id_column

__all__ = ["PreparedTable", "prepare_table"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedTable:
    """One row per customer: the feature columns, the aligned ids, and what cleaning did."""

    features: pd.DataFrame
    """numeric columns (float64, NaN = missing) then categorical ones (object: str or None)."""
    ids: pd.Series
    """Customer ids as str, aligned with `features` (same RangeIndex)."""
    numeric: list[str]
    categorical: list[str]
    report: CleaningReport
    customers: pd.DataFrame | None = None
    """Transaction logs only: every per-customer column of the recipe (basket metrics, CLV inputs), aligned."""
    log: CleanLog | None = None
    """Transaction logs only: the cleaned lines (the CLV fit re-aggregates them up to its calibration end)."""

    def log_summary(self, log: logging.Logger | None = None) -> None:
        """Log the cleaning report at INFO."""
        self.report.log_summary(log)


def prepare_table(frame: pd.DataFrame, config: TrainingConfig) -> PreparedTable:
    """Clean `frame` as `config` says and return the per-customer feature table; bad data raises DataError."""
    if frame is None or len(frame) == 0:
        raise DataError("the table has no rows")
    if config.data.kind == "transactions":
        return _prepare_transactions(frame, config)
    return _prepare_customers(frame, config)


def _prepare_transactions(frame: pd.DataFrame, config: TrainingConfig) -> PreparedTable:
    report = CleaningReport(kind="transactions", rows_in=len(frame))
    log = clean_log(frame, config.recipe())
    table, report.transactions = customer_table(log)
    numeric = list(config.data.numeric) or list(RFM_COLUMNS)
    if config.data.categorical:
        raise DataError(
            f"data.categorical {list(config.data.categorical)}: a transaction log yields numeric per-customer "
            f"features only ({', '.join(table.columns)})"
        )
    ids = pd.Series(table.index, index=table.index)
    columns = {name: table[name] for name in table.columns}
    columns |= _derive(config, columns, table.index, report)
    _require(columns, numeric, "data.numeric", table.columns)
    if "AvgItemsPerPurchase" in numeric and config.transactions.quantity is None:
        raise DataError("AvgItemsPerPurchase needs transactions.quantity; the config has no quantity column")
    apply_valid_ranges(columns, config.cleaning.valid_range, numeric, report)
    prepared = _finish(columns, ids, numeric, [], config, report, first_data_line=None)
    customers = table.loc[prepared.ids.to_numpy()].reset_index(drop=True)
    return dataclasses.replace(prepared, customers=customers, log=log)


def _prepare_customers(frame: pd.DataFrame, config: TrainingConfig) -> PreparedTable:
    data, cleaning = config.data, config.cleaning
    first_line = RowLines.of(frame.attrs)
    report = CleaningReport(kind="customers", rows_in=len(frame))
    numeric, categorical = list(data.numeric), list(data.categorical)
    if not numeric and not categorical:
        raise DataError("no feature columns configured: list them in [data] numeric/categorical, or use --preset auto")

    id_column = infer_id_column(frame) if data.id_column == "auto" else data.id_column
    raw_numeric = [c for c in numeric if c not in config.derived]
    references = _derived_references(config)
    required = {
        "data.id_column": [id_column] if id_column else [],
        "data.numeric": raw_numeric,
        "data.categorical": categorical,
        "data.date_columns": list(data.date_columns),
        "[derived]": references,
        "cleaning.valid_range": [c for c in cleaning.valid_range if c not in config.derived],
        "cleaning.recode": list(cleaning.recode),
    }
    for key, names in required.items():
        _require(frame, names, key, frame.columns)
    report.ignored_columns = [str(c) for c in frame.columns if c not in {id_column, *numeric, *categorical}]

    # Exact duplicates are judged on every column of the file, before anything is changed.
    if cleaning.duplicates == "drop":
        repeated = frame.duplicated()
        report.duplicate_rows_dropped = int(repeated.sum())
        frame = frame.loc[~repeated]

    used = list(dict.fromkeys([*([id_column] if id_column else []), *raw_numeric, *categorical,
                               *data.date_columns, *references, *required["cleaning.valid_range"]]))
    columns = {name: strip_text(frame[name]) for name in used}
    _recode(columns, cleaning.recode, report)

    if id_column:
        ids = format_ids(columns[id_column])
        missing_id = ids.isna()
        report.missing_ids_dropped = int(missing_id.sum())
        repeated_id = ids.duplicated() & ~missing_id if cleaning.duplicates == "drop" else pd.Series(False, ids.index)
        if not cleaning.duplicates == "drop" and ids[~missing_id].duplicated().any():
            label = ids[~missing_id].duplicated().idxmax()
            raise DataError(
                f"id column {id_column!r}: {ids[label]!r} repeats at {describe_row(label, first_line)}; "
                "set cleaning.duplicates = \"drop\" to keep the first row of each id"
            )
        report.duplicate_ids_dropped = int(repeated_id.sum())
        keep = ~(missing_id | repeated_id)
        ids = ids[keep]
        columns = {name: values[keep] for name, values in columns.items()}
    else:
        ids = pd.Series([str(i + 1) for i in range(len(frame))], index=frame.index, dtype=object)

    for name in data.date_columns:
        columns[name] = parse_dates(columns[name], name, data.date_format, first_line)
    for name in dict.fromkeys([*raw_numeric, *references, *required["cleaning.valid_range"]]):
        if name not in data.date_columns and name not in cleaning.recode and name not in categorical:
            columns[name] = to_numeric(columns[name], name, first_line)

    apply_valid_ranges(columns, cleaning.valid_range, list(columns), report)
    columns |= _derive(config, columns, ids.index, report)
    return _finish(columns, ids, numeric, categorical, config, report, first_data_line=first_line)


def _derive(config: TrainingConfig, columns: dict[str, pd.Series], index: pd.Index,
            report: CleaningReport) -> dict[str, pd.Series]:
    """Evaluate [derived] in order (later expressions may use earlier ones), then check their valid ranges."""
    new: dict[str, pd.Series] = {}
    for name, expression in config.derived.items():
        new[name] = derived_columns.evaluate(name, expression, columns | new, index)
    apply_valid_ranges(new, config.cleaning.valid_range, list(new), report)
    return new


def _finish(columns: dict[str, pd.Series], ids: pd.Series, numeric: list[str], categorical: list[str],
            config: TrainingConfig, report: CleaningReport, *, first_data_line: RowLines | None) -> PreparedTable:
    features = pd.DataFrame(
        {**{name: columns[name].astype("float64") for name in numeric},
         **{name: as_categorical(columns[name]) for name in categorical}},
        index=ids.index,
    )
    for name in features.columns:
        present = features[name].notna()
        if not present.any():
            raise DataError(f"column {name!r}: all {len(features)} values are missing (after cleaning)")
        if features[name][present].nunique() == 1:
            report.constant_features.append(name)

    drop_rows = pd.Series(False, index=features.index)
    for name in features.columns:
        missing = features[name].isna()
        if not missing.any():
            continue
        rule = config.cleaning.missing_rule(name)
        report.missing[name] = {
            "count": int(missing.sum()),
            "action": "rows dropped" if rule == "drop" else "left missing for the feature transform to impute",
        }
        if rule == "drop":
            drop_rows |= missing
    # A row missing every feature has nothing to cluster (and would be refused by the feature transform).
    empty = features.isna().all(axis=1)
    if empty.any():
        logger.warning("%d row(s) have no feature value at all: dropped", int(empty.sum()))
        drop_rows |= empty
    report.rows_dropped_for_missing = int(drop_rows.sum())
    features, ids = features.loc[~drop_rows], ids.loc[~drop_rows]
    if len(features) == 0:
        raise DataError(f"no rows left after cleaning: {report.to_dict()}")
    report.rows_out = len(features)
    features = features.reset_index(drop=True)
    ids = ids.reset_index(drop=True).astype(object).rename("id")
    return PreparedTable(features, ids, list(numeric), list(categorical), report)


def _recode(columns: dict[str, pd.Series], recode, report: CleaningReport) -> None:
    for name, table in recode.items():
        values = columns[name]
        changes = {}
        for old, new in table.items():
            hit = values == old
            if hit.any():
                changes[f"{old} -> {new}"] = int(hit.sum())
        columns[name] = values.replace(dict(table))
        report.recoded[name] = changes


def _derived_references(config: TrainingConfig) -> list[str]:
    names: list[str] = []
    for name, expression in config.derived.items():
        names += derived_columns.referenced_columns(name, expression)
    return [n for n in dict.fromkeys(names) if n not in config.derived]


def _require(available, names: list[str], key: str, columns) -> None:
    missing = [n for n in names if n not in available]
    if missing:
        raise DataError(
            f"missing required column(s) {', '.join(map(repr, missing))} (named in {key}); "
            f"the table has: {', '.join(map(str, columns))}"
        )
