"""Transaction logs: clean them, then aggregate to one row of RFM and basket metrics per customer."""

from __future__ import annotations

import logging

import pandas as pd

from training_job.cleaning import TransactionReport, format_ids, strip_text, to_numeric
from training_job.config import TransactionsConfig
from training_job.dates import parse_dates
from training_job.errors import DataError

__all__ = ["BASKET_COLUMNS", "RFM_COLUMNS", "TRANSACTION_FEATURES", "aggregate_transactions"]

logger = logging.getLogger(__name__)

RECENCY, FREQUENCY, MONETARY = "Recency", "Frequency", "Monetary"
RFM_COLUMNS = (RECENCY, FREQUENCY, MONETARY)
"""Days since the last purchase (at the snapshot date), distinct purchases, total spend."""
BASKET_COLUMNS = ("AvgBasketValue", "AvgItemsPerPurchase", "TenureDays")
"""Spend per purchase, items per purchase (needs a quantity column), days from first to last purchase."""
TRANSACTION_FEATURES = RFM_COLUMNS + BASKET_COLUMNS


def aggregate_transactions(
    frame: pd.DataFrame, tx: TransactionsConfig, *, date_format: str = "auto", drop_duplicates: bool = True
) -> tuple[pd.DataFrame, TransactionReport]:
    """Clean a transaction log and return per-customer features (index: customer id as text) and a report.

    `drop_duplicates` drops exact duplicate lines (in Online Retail they are double-scanned items); turn it off
    for logs where identical lines are separate purchases (CDNOW has no invoice or time to tell them apart).
    """
    first_line = frame.attrs.get("first_data_line")
    _require_columns(frame, tx)
    report = TransactionReport(rows_in=len(frame))

    customer = format_ids(strip_text(frame[tx.customer_id]))
    dates = parse_dates(strip_text(frame[tx.date]), tx.date, date_format, first_line)
    quantity = to_numeric(strip_text(frame[tx.quantity]), tx.quantity, first_line) if tx.quantity else None
    if tx.amount:
        value = to_numeric(strip_text(frame[tx.amount]), tx.amount, first_line)
    else:
        value = quantity * to_numeric(strip_text(frame[tx.price]), tx.price, first_line)
    invoice = strip_text(frame[tx.invoice]).astype("string") if tx.invoice else None

    # Each rule sees only the rows the previous rules kept, so every removed row is counted exactly once.
    keep = pd.Series(True, index=frame.index)
    if invoice is not None and tx.cancellation_prefix:
        keep, report.cancellations = _drop(keep, invoice.str.startswith(tx.cancellation_prefix).fillna(False))
    if quantity is not None:
        keep, report.non_positive_quantity = _drop(keep, ~(quantity > 0))
    bad_value = ~(value >= 0) if tx.keep_zero_value else ~(value > 0)
    keep, report.non_positive_value = _drop(keep, bad_value)
    keep, report.missing_customer_id = _drop(keep, customer.isna())
    if drop_duplicates:
        repeated = frame.loc[keep].duplicated().reindex(frame.index, fill_value=False)
        keep, report.duplicate_rows = _drop(keep, repeated)
    report.rows_used = int(keep.sum())
    if report.rows_used == 0:
        raise DataError(f"no transactions left after cleaning ({_removed(report)})")

    lines = pd.DataFrame({"customer": customer[keep], "date": dates[keep], "value": value[keep]})
    if quantity is not None:
        lines["quantity"] = quantity[keep]
    # Without an invoice column, a customer's purchases on one day make one basket (CDNOW's convention).
    lines["purchase"] = invoice[keep] if invoice is not None else lines["date"].dt.normalize()

    snapshot = _snapshot(tx.snapshot_date, lines["date"])
    table = _aggregate(lines, snapshot)
    report.customers = len(table)
    report.purchases = int(table[FREQUENCY].sum())
    report.first_date = lines["date"].min().isoformat()
    report.last_date = lines["date"].max().isoformat()
    report.snapshot_date = snapshot.date().isoformat()
    per_customer = lines.groupby("customer", sort=False).size()
    report.rows_per_customer = {
        "min": int(per_customer.min()),
        "median": float(per_customer.median()),
        "mean": round(float(per_customer.mean()), 2),
        "max": int(per_customer.max()),
    }
    return table, report


def _aggregate(lines: pd.DataFrame, snapshot: pd.Timestamp) -> pd.DataFrame:
    by_customer = lines.groupby("customer", sort=True)
    first = by_customer["date"].min().dt.normalize()
    last = by_customer["date"].max().dt.normalize()
    frequency = lines.drop_duplicates(["customer", "purchase"]).groupby("customer", sort=True).size()
    monetary = by_customer["value"].sum()
    table = pd.DataFrame(
        {
            RECENCY: (snapshot - last).dt.days,
            FREQUENCY: frequency,
            MONETARY: monetary,
            "AvgBasketValue": monetary / frequency,
            "AvgItemsPerPurchase": (by_customer["quantity"].sum() / frequency) if "quantity" in lines else float("nan"),
            "TenureDays": (last - first).dt.days,
        }
    ).astype("float64")
    table.index = table.index.astype(object)
    table.index.name = "customer"
    return table


def _snapshot(setting: str, dates: pd.Series) -> pd.Timestamp:
    last = dates.max().normalize()
    if setting == "auto":
        return last + pd.Timedelta(days=1)
    snapshot = pd.Timestamp(setting).normalize()
    if snapshot <= last:
        raise DataError(
            f"transactions.snapshot_date {setting} is not after the last transaction ({last.date()}); "
            "Recency would be negative"
        )
    return snapshot


def _drop(keep: pd.Series, remove: pd.Series) -> tuple[pd.Series, int]:
    removed = keep & remove
    return keep & ~removed, int(removed.sum())


def _removed(report: TransactionReport) -> str:
    return (
        f"{report.rows_in} rows: {report.cancellations} cancellations, {report.non_positive_quantity} non-positive"
        f" quantity, {report.non_positive_value} non-positive value, {report.missing_customer_id} missing customer"
        f" id, {report.duplicate_rows} duplicates"
    )


def _require_columns(frame: pd.DataFrame, tx: TransactionsConfig) -> None:
    wanted = {
        "transactions.customer_id": tx.customer_id,
        "transactions.date": tx.date,
        "transactions.invoice": tx.invoice,
        "transactions.quantity": tx.quantity,
        "transactions.amount" if tx.amount else "transactions.price": tx.amount or tx.price,
    }
    missing = [f"{column!r} ({key})" for key, column in wanted.items() if column and column not in frame.columns]
    if missing:
        raise DataError(
            f"transaction log is missing required column(s) {', '.join(missing)}; "
            f"the file has: {', '.join(map(str, frame.columns))}"
        )
