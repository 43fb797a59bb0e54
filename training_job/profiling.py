"""The profile of a table: what `--preset auto` infers, the suggested preset, per-column statistics,
histograms and top levels, correlations, what cleaning would drop, and for a transaction log the
per-customer RFM features.

The result is a plain JSON-able dict laid out as the contract's ``DataProfile`` message
(proto/segmentation/v1/profile.proto, proto field names): the TrainingService converts it with
``google.protobuf.json_format.ParseDict`` and the training job stores it as is in the manifest
(``profile``). Every list is bounded (see the MAX_* constants), so a profile stays far below 1 MB.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import pandas as pd

from segmentation_core.derived import referenced_columns
from segmentation_core.parsing import parse_dates
from training_job.config import PRESETS, TrainingConfig, load_preset
from training_job.errors import ConfigError, DataError
from training_job.schema_inference import classify_columns, infer_schema, looks_like_transactions
from training_job.table_prep import prepare_table

__all__ = ["MAX_BINS", "MAX_COLUMNS", "MAX_CORRELATED", "MAX_LEVELS", "PREVIEW_ROWS", "profile_table",
           "suggest_preset"]

log = logging.getLogger(__name__)

MAX_COLUMNS = 100
"""Columns profiled; a wider table's further columns are left out (``columns_truncated``)."""
MAX_BINS = 50
MAX_LEVELS = 20
MAX_CORRELATED = 30
PREVIEW_ROWS = 20
MAX_CELL_CHARS = 80


def profile_table(frame: pd.DataFrame, *, name: str = "", dataset_id: str = "",
                  config: TrainingConfig | None = None) -> dict[str, Any]:
    """Profile ``frame`` (as read by read_table); ``config`` (else the suggested one) drives the cleaning preview."""
    started = time.monotonic()
    suggested = suggest_preset(frame)
    if config is None:
        config = _config_of(suggested, frame)
    schema, roles = _schema(frame, config)
    columns = list(frame.columns[:MAX_COLUMNS])
    profile: dict[str, Any] = {
        "dataset_id": dataset_id, "name": name, "rows": int(len(frame)), "column_count": int(len(frame.columns)),
        "suggested_preset": suggested, "schema": schema,
        "columns": [_column(frame[c], str(c), roles.get(str(c), "dropped")) for c in columns],
        "columns_truncated": len(frame.columns) > MAX_COLUMNS,
        "correlation": _correlation(frame, [c for c in columns if roles.get(str(c)) not in ("id", "date")]),
        "preview": _preview(frame, columns),
    }
    profile["cleaning"], features = _cleaning(frame, config)
    if config is not None and config.data.kind == "transactions" and features is not None:
        profile["rfm"] = [_column(features[c], str(c), "numeric") for c in features.columns]
        profile["rfm_correlation"] = _correlation(features, list(features.columns))
    profile["seconds"] = round(time.monotonic() - started, 3)
    return profile


def suggest_preset(frame: pd.DataFrame) -> str:
    """The preset whose columns the table has (the one using most of them), else "auto"."""
    best, best_used = "auto", 0
    for preset in PRESETS:
        used = _columns_of(load_preset(preset))
        if used and used <= set(map(str, frame.columns)) and len(used) > best_used:
            best, best_used = preset, len(used)
    if best == "auto" and looks_like_transactions(frame):
        return "transactions"
    return best


def _columns_of(config: TrainingConfig) -> set[str]:
    """The input columns a configuration reads: its plain columns and the sources of its [derived] expressions
    (a derived name such as "Total Spending" is computed, so the table never holds it)."""
    data = config.data
    if data.kind == "transactions":
        tx = config.transactions
        return {c for c in (tx.customer_id, tx.invoice, tx.date, tx.quantity, tx.price, tx.amount) if c}
    plain = {c for c in (data.id_column, *data.numeric, *data.categorical, *data.date_columns) if c}
    sources = {c for name, expression in config.derived.items() for c in referenced_columns(name, expression)}
    return (plain | sources) - set(config.derived)


def _config_of(preset: str, frame: pd.DataFrame) -> TrainingConfig | None:
    try:
        return infer_schema(frame) if preset == "auto" else load_preset(preset)
    except (DataError, ConfigError) as exc:
        log.info("profile: no configuration to preview cleaning with: %s", exc)
        return None


def _schema(frame: pd.DataFrame, config: TrainingConfig | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The InferredSchema dict and each column's role."""
    if config is not None and config.data.kind == "transactions":
        tx = config.transactions
        roles = {c: "numeric" for c in (tx.quantity, tx.price, tx.amount) if c}
        roles |= {tx.customer_id: "id", tx.date: "date"}
        if tx.invoice:
            roles[tx.invoice] = "id"
        dropped = [{"column": str(c), "reason": "not used by the per-customer aggregation"}
                   for c in frame.columns if c not in roles]
        schema = {"kind": "transactions", "id_column": tx.customer_id, "numeric": list(config.data.numeric),
                  "dates": [tx.date], "dropped": dropped}
        return schema, roles
    found = classify_columns(frame)
    roles = {str(c): "numeric" for c in found.numeric} | {str(c): "categorical" for c in found.categorical}
    roles |= {str(c): "date" for c in found.dates}
    if found.id_column is not None:
        roles[str(found.id_column)] = "id"
    schema = {"kind": "customers", "id_column": str(found.id_column or ""), "numeric": list(map(str, found.numeric)),
              "categorical": list(map(str, found.categorical)), "dates": list(map(str, found.dates)),
              "dropped": [{"column": str(c), "reason": r} for c, r in found.dropped.items()]}
    if config is not None and config.source != "auto":  # a preset: its columns are the features
        used = set(config.data.numeric) | set(config.data.categorical)
        for column in frame.columns:
            c = str(column)
            if roles.get(c) in ("numeric", "categorical") and c not in used:
                roles[c] = "dropped"
                schema["dropped"].append({"column": c, "reason": "not used by the preset"})
        schema["numeric"] = list(config.data.numeric)
        schema["categorical"] = list(config.data.categorical)
    return schema, roles


def _finite(value: Any) -> float | str:
    """A float for JSON: "NaN" / "Infinity" strings for non-finite values (as protobuf's JSON mapping writes them)."""
    value = float(value)
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _column(values: pd.Series, name: str, role: str) -> dict[str, Any]:
    """The ColumnProfile of one column."""
    if role == "date":
        dated = _date_column(values, name)
        if dated is not None:
            return dated
    n = len(values)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    present = values.dropna()
    if not numeric:  # read_table has stripped the text cells; an Excel cell may hold a date or a number
        if not pd.api.types.is_string_dtype(present):
            present = present.astype(str)
        present = present[present != ""]
    missing = n - len(present)
    out: dict[str, Any] = {"name": name, "role": role, "dtype": "number" if numeric else "text",
                           "missing": int(missing), "missing_share": _finite(missing / n if n else 0.0),
                           "distinct": int(present.nunique())}
    if numeric:
        x = present.to_numpy(dtype=np.float64)
        x = x[np.isfinite(x)]
        if len(x):
            q25, median, q75 = np.percentile(x, [25, 50, 75])
            out["summary"] = {"count": int(len(x)), "mean": _finite(x.mean()),
                              "std": _finite(x.std(ddof=1) if len(x) > 1 else 0.0), "min": _finite(x.min()),
                              "q25": _finite(q25), "median": _finite(median), "q75": _finite(q75),
                              "max": _finite(x.max())}
            bins = int(min(MAX_BINS, max(1, out["distinct"])))
            counts, edges = np.histogram(x, bins=bins)
            out["histogram"] = {"edges": [_finite(e) for e in edges], "counts": [int(c) for c in counts]}
    else:
        counts = present.value_counts()
        top = counts.iloc[:MAX_LEVELS]
        out["top_levels"] = [{"level": str(level)[:MAX_CELL_CHARS], "count": int(c)} for level, c in top.items()]
        out["other_count"] = int(counts.iloc[MAX_LEVELS:].sum())
    return out


#: The periods a date column's rows are counted by: the finest that gives at most MAX_LEVELS of them.
DATE_PERIODS = ("M", "Q", "Y")


def _date_column(values: pd.Series, name: str) -> dict[str, Any] | None:
    """The ColumnProfile of a date column (``dtype`` "date"): its rows per month, oldest first (per quarter or
    year when there are more than MAX_LEVELS months; past MAX_LEVELS years, the oldest in ``other_count``);
    None when its values do not all read as dates (then it is profiled as what it is stored as)."""
    try:
        dates = parse_dates(values, name)
    except DataError:
        return None
    present = dates.dropna()
    missing = len(values) - len(present)
    periods = present.dt.to_period(DATE_PERIODS[0])
    for freq in DATE_PERIODS[1:]:
        if periods.nunique() <= MAX_LEVELS:
            break
        periods = present.dt.to_period(freq)
    counts = periods.value_counts().sort_index()
    return {"name": name, "role": "date", "dtype": "date", "missing": int(missing),
            "missing_share": _finite(missing / len(values) if len(values) else 0.0),
            "distinct": int(present.nunique()),
            "top_levels": [{"level": str(period), "count": int(c)} for period, c in counts.iloc[-MAX_LEVELS:].items()],
            "other_count": int(counts.iloc[:-MAX_LEVELS].sum())}


def _correlation(frame: pd.DataFrame, columns: list) -> dict[str, Any]:
    """Pearson correlations of the numeric ones among ``columns`` (the first MAX_CORRELATED)."""
    numeric = [c for c in columns
               if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    numeric = numeric[:MAX_CORRELATED]
    if len(numeric) < 2:
        return {"columns": [str(c) for c in numeric], "values": [1.0] * len(numeric)}
    matrix = frame[numeric].astype(np.float64).corr().to_numpy()
    return {"columns": [str(c) for c in numeric], "values": [_finite(v) for v in matrix.ravel()]}


def _preview(frame: pd.DataFrame, columns: list) -> dict[str, Any]:
    head = frame[columns].head(PREVIEW_ROWS)
    rows = [{"values": ["" if pd.isna(v) else str(v)[:MAX_CELL_CHARS] for v in row]}
            for row in head.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in columns], "rows": rows}


_CUSTOMER_STEPS = (("duplicate_rows_dropped", "exact duplicate row"),
                   ("duplicate_ids_dropped", "repeated customer id (first kept)"),
                   ("missing_ids_dropped", "missing customer id"),
                   ("rows_dropped_for_missing", "missing feature values"))
_TRANSACTION_STEPS = (("cancellations", "cancelled invoice"), ("non_positive_quantity", "quantity <= 0"),
                      ("non_positive_value", "line value <= 0"), ("missing_customer_id", "missing customer id"),
                      ("duplicate_rows", "exact duplicate line"))


def _cleaning(frame: pd.DataFrame, config: TrainingConfig | None) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """The CleaningPreview dict and the per-customer features (None when cleaning fails)."""
    if config is None:
        return {"rows_in": int(len(frame)), "error": "no usable feature columns were found"}, None
    try:
        table = prepare_table(frame, config)
    except (DataError, ConfigError) as exc:
        return {"rows_in": int(len(frame)), "error": str(exc)}, None
    report = table.report
    steps = [{"reason": label, "rows": int(getattr(report, key))} for key, label in _CUSTOMER_STEPS
             if getattr(report, key)]
    if report.transactions is not None:
        steps += [{"reason": label, "rows": int(getattr(report.transactions, key))}
                  for key, label in _TRANSACTION_STEPS if getattr(report.transactions, key)]
    for column, info in report.implausible.items():
        if info.get("count"):
            steps.append({"reason": f"{column}: {info['count']} value(s) {info['rule']} set missing",
                          "rows": int(info["count"])})
    for column, info in report.missing.items():
        if info.get("count"):
            steps.append({"reason": f"{column}: missing, {info['action']}", "rows": int(info["count"])})
    preview = {"rows_in": int(report.rows_in), "customers": int(len(table.features)), "steps": steps}
    numeric = table.features[table.numeric] if table.numeric else None
    return preview, numeric
