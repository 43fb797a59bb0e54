"""A transactions model's feature recipe: from a raw purchase log to one row of features per customer.

The recipe (column mapping, cleaning rules, the as-of rule, the time unit) is stored in the artefact
(manifest key ``recipe``), so that training, ``python -m training_job score``, the client CLI and the
dashboard turn a log into exactly the same per-customer numbers. It uses pandas: the scoring server never
imports it (callers aggregate on their side, then stream rows).

Per customer (index: the customer id as text):

- ``Recency`` (days from the last purchase day to the as-of date), ``Frequency`` (distinct purchases:
  invoices, or purchase days when the log has no invoice), ``Monetary`` (total spend);
- basket metrics: ``AvgBasketValue`` (spend per purchase), ``AvgItemsPerPurchase`` (needs a quantity),
  ``TenureDays`` (first to last purchase day), ``PurchaseIntervalDays`` (mean days between purchase days;
  missing for a customer who bought on one day only);
- the inputs of the CLV models, counted in purchase days (one transaction per customer-day, as in Fader,
  Hardie and Lee 2005) and timed in the recipe's ``time_unit``: ``RepeatPurchases`` (purchase days after
  the first), ``LastPurchaseTime`` (first to last purchase day), ``CustomerAge`` (first purchase day to the
  last observed day, the day before the as-of date) and ``AvgRepeatValue`` (spend per repeat purchase day,
  0 without one).
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from segmentation_core.clv import INPUTS
from segmentation_core.derived import evaluate
from segmentation_core.errors import DataError, RowLines
from segmentation_core.parsing import format_ids, parse_dates, strip_text, to_numeric
from segmentation_core.valid_range import outside_valid_range

__all__ = [
    "BASKET_COLUMNS",
    "CLV_INPUTS",
    "CUSTOMER_COLUMNS",
    "RFM_COLUMNS",
    "TIME_UNITS",
    "CleanLog",
    "Recipe",
    "TransactionReport",
    "aggregate",
    "check_features",
    "clean_log",
    "outside_range",
    "customer_table",
    "is_log_table",
    "parse_as_of",
    "resolve_snapshot",
]

RECENCY, FREQUENCY, MONETARY = "Recency", "Frequency", "Monetary"
RFM_COLUMNS = (RECENCY, FREQUENCY, MONETARY)
BASKET_COLUMNS = ("AvgBasketValue", "AvgItemsPerPurchase", "TenureDays", "PurchaseIntervalDays")
CLV_INPUTS = INPUTS
"""BG/NBD's x, t_x, T and Gamma-Gamma's m_x, in that order (defined beside the CLV math, which needs no pandas)."""
CUSTOMER_COLUMNS = RFM_COLUMNS + BASKET_COLUMNS + CLV_INPUTS
TIME_UNITS = {"days": 1, "weeks": 7}
"""Time unit of the CLV inputs -> days per unit (Recency, TenureDays and PurchaseIntervalDays are in days)."""


@dataclass(frozen=True)
class Recipe:
    """How a transaction log becomes per-customer features; stored in the manifest as ``recipe``."""

    customer_id: str = "CustomerID"
    date: str = "InvoiceDate"
    invoice: str | None = "InvoiceNo"
    """None: a customer's lines on one day form one purchase."""
    quantity: str | None = "Quantity"
    price: str | None = "UnitPrice"
    amount: str | None = None
    """Column holding the line value; when set, quantity * price is not used."""
    cancellation_prefix: str = "C"
    """Invoices starting with this are cancellations and dropped; "" to keep every invoice."""
    keep_zero_value: bool = False
    """Keep lines worth exactly 0; negative values and quantities are always dropped."""
    drop_duplicates: bool = True
    """Drop exact duplicate lines (double scans); off for logs where identical lines are separate orders."""
    date_format: str = "auto"
    """"auto", "dayfirst", "monthfirst" or a strftime format."""
    snapshot_date: str = "auto"
    """The as-of rule when none is given: "auto" (the day after the last purchase) or an ISO date."""
    time_unit: str = "days"
    """Unit of the CLV inputs' times: "days" or "weeks"."""
    derived: Mapping[str, str] = field(default_factory=dict)
    """The model's [derived] features: name -> expression over the per-customer columns (in order: a later
    one may use an earlier one), evaluated by segmentation_core.derived as training evaluated them."""
    valid_range: Mapping[str, Sequence[float | None]] = field(default_factory=dict)
    """Feature -> [low, high] (None: open) of the model's [cleaning.valid_range]: a customer's value outside is
    missing (imputed by the model), as in training."""

    def __post_init__(self) -> None:
        if self.time_unit not in TIME_UNITS:
            raise ValueError(f"recipe.time_unit: expected one of {', '.join(TIME_UNITS)}, got {self.time_unit!r}")
        if self.amount is None and (self.quantity is None or self.price is None):
            raise ValueError("recipe: set either `amount` or both `quantity` and `price`")
        if self.snapshot_date != "auto":
            parse_as_of(self.snapshot_date, "recipe.snapshot_date")

    @property
    def columns(self) -> dict[str, str]:
        """Recipe key -> the log column it names (only the keys that are set)."""
        named = {"customer_id": self.customer_id, "date": self.date, "invoice": self.invoice,
                 "quantity": self.quantity, "amount" if self.amount else "price": self.amount or self.price}
        return {key: column for key, column in named.items() if column}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy, as the manifest stores it."""
        data = asdict(self)
        data["derived"], data["valid_range"] = dict(self.derived), {k: list(v) for k, v in self.valid_range.items()}
        return data

    def features(self, table: pd.DataFrame) -> pd.DataFrame:
        """The per-customer table with the [derived] columns added and the values outside a valid range
        missing: what training made of the same customers."""
        if not self.derived and not self.valid_range:
            return table
        columns = {name: table[name] for name in table.columns}
        for name, expression in self.derived.items():
            columns[name] = evaluate(name, expression, columns, table.index)
        for name, (low, high) in self.valid_range.items():
            if name in columns:
                columns[name] = columns[name].mask(outside_range(columns[name], low, high))
        return pd.DataFrame(columns, index=table.index)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        """Rebuild a recipe from the manifest; unknown keys raise ValueError (a newer format)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"recipe: unknown key(s) {unknown}; this program knows {sorted(known)}")
        return cls(**dict(data))


@dataclass
class TransactionReport:
    """What cleaning a transaction log removed and what the per-customer aggregation produced.

    Removal counts are sequential: a row is counted once, under the first rule (in field order) that removes it.
    """

    rows_in: int = 0
    cancellations: int = 0
    non_positive_quantity: int = 0
    non_positive_value: int = 0
    missing_customer_id: int = 0
    duplicate_rows: int = 0
    rows_used: int = 0
    after_as_of: int = 0
    """Cleaned lines dated on or after an explicitly given as-of date (left out of the features)."""
    customers: int = 0
    purchases: int = 0
    first_date: str | None = None
    last_date: str | None = None
    snapshot_date: str | None = None
    """The as-of date used: Recency counts days up to it; the last observed day is the day before."""
    rows_per_customer: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that json.dumps accepts."""
        return asdict(self)

    def history_days(self) -> int | None:
        """The days the log's used lines cover, first and last purchase day both counted (None before any)."""
        if not self.first_date or not self.last_date:
            return None
        return (date.fromisoformat(self.last_date[:10]) - date.fromisoformat(self.first_date[:10])).days + 1


@dataclass(frozen=True)
class CleanLog:
    """The cleaned lines of a log (customer, date, value, quantity?, purchase) and the report so far."""

    lines: pd.DataFrame
    report: TransactionReport
    recipe: Recipe


def parse_as_of(text: str | date, key: str = "--as-of") -> pd.Timestamp:
    """An as-of date from ISO text (or a date); a bad one raises DataError naming `key`."""
    try:
        return pd.Timestamp(date.fromisoformat(str(text)) if not isinstance(text, date) else text).normalize()
    except ValueError as exc:
        raise DataError(f"{key}: expected an ISO date such as 2011-12-10, got {text!r}") from exc


def aggregate(frame: pd.DataFrame, recipe: Recipe, as_of: str | date | None = None
              ) -> tuple[pd.DataFrame, TransactionReport]:
    """Clean a log and return per-customer features (CUSTOMER_COLUMNS and the recipe's [derived] columns,
    index: customer id) and a report."""
    table, report = customer_table(clean_log(frame, recipe), as_of)
    return recipe.features(table), report


def is_log_table(recipe: Recipe, features: Sequence[str], columns: Sequence[object]) -> bool:
    """Whether a table with ``columns`` is a raw log for ``recipe`` (it has the log's customer id and date columns)
    rather than a table of the model's numeric ``features`` (an already aggregated RFM table, scored as any customer
    table). The one rule of every scoring path: ``training_job score``, the client CLI and the Batch page."""
    names = {str(c) for c in columns}
    return recipe.customer_id in names and recipe.date in names and not set(features) <= names


def outside_range(values: pd.Series, low: float | None, high: float | None) -> pd.Series:
    """Which values fall outside [low, high] (None: that side open); NaN is not outside. The definition scoring
    applies too (:func:`segmentation_core.valid_range.outside_valid_range`)."""
    outside = pd.Series(False, index=values.index)
    outside |= outside_valid_range(values, low, high)
    return outside


def check_features(features: Sequence[str], model: str, recipe: Recipe | None = None) -> None:
    """Raise DataError when a transactions model (``model``: its name and version, for the message) uses
    features a log is not turned into here: CUSTOMER_COLUMNS and the ``recipe``'s [derived] ones (``recipe``
    None: an engine that computes no [derived] column). A model published before recipes carried [derived]
    lacks them; scoring without the feature would impute it on every customer (other segments than
    training's)."""
    derived = tuple(recipe.derived) if recipe is not None else ()
    unknown = [name for name in features if name not in CUSTOMER_COLUMNS and name not in derived]
    if unknown:
        why = ("the model was published before recipes carried [derived] columns; retrain it" if recipe is not None
               else "[derived] columns are not computed by this engine")
        raise DataError(f"model {model} uses feature(s) {', '.join(map(repr, unknown))} that its recipe does not "
                        f"compute from a log here ({why}; computed: {', '.join([*CUSTOMER_COLUMNS, *derived])}), "
                        "or score its per-customer table")


def clean_log(frame: pd.DataFrame, recipe: Recipe) -> CleanLog:
    """Check the columns, parse every cell, and apply the cleaning rules; bad input raises DataError."""
    if frame is None or len(frame) == 0:
        raise DataError("the transaction log has no rows")
    first_line = RowLines.of(frame.attrs)
    _require_columns(frame, recipe)
    report = TransactionReport(rows_in=len(frame))
    r = recipe
    customer = format_ids(strip_text(frame[r.customer_id]))
    dates = parse_dates(strip_text(frame[r.date]), r.date, r.date_format, first_line)
    quantity = to_numeric(strip_text(frame[r.quantity]), r.quantity, first_line) if r.quantity else None
    if r.amount:
        value = to_numeric(strip_text(frame[r.amount]), r.amount, first_line)
    else:  # a recipe without an amount has a quantity and a price (Recipe checks it)
        assert r.price is not None and quantity is not None
        value = quantity * to_numeric(strip_text(frame[r.price]), r.price, first_line)
    invoice = strip_text(frame[r.invoice]).astype("string") if r.invoice else None

    # Each rule sees only the rows the previous rules kept, so every removed row is counted exactly once.
    keep = pd.Series(True, index=frame.index)
    if invoice is not None and r.cancellation_prefix:
        keep, report.cancellations = _drop(keep, invoice.str.startswith(r.cancellation_prefix).fillna(False))
    if quantity is not None:
        keep, report.non_positive_quantity = _drop(keep, ~(quantity > 0))
    bad_value = ~(value >= 0) if r.keep_zero_value else ~(value > 0)
    keep, report.non_positive_value = _drop(keep, bad_value)
    keep, report.missing_customer_id = _drop(keep, customer.isna())
    if r.drop_duplicates:
        repeated = frame.loc[keep].duplicated().reindex(frame.index, fill_value=False)
        keep, report.duplicate_rows = _drop(keep, repeated)
    report.rows_used = int(keep.sum())
    if report.rows_used == 0:
        raise DataError(f"no transactions left after cleaning ({_removed(report)})")

    lines = pd.DataFrame({"customer": customer[keep], "date": dates[keep], "value": value[keep]})
    if quantity is not None:
        lines["quantity"] = quantity[keep]
    lines["day"] = lines["date"].dt.normalize()
    # Without an invoice column, a customer's purchases on one day make one basket (CDNOW's convention).
    lines["purchase"] = invoice[keep] if invoice is not None else lines["day"]
    return CleanLog(lines=lines, report=report, recipe=recipe)


def customer_table(log: CleanLog, as_of: str | date | None = None) -> tuple[pd.DataFrame, TransactionReport]:
    """Aggregate cleaned lines to per-customer features as of a date (default: the recipe's rule).

    An explicit `as_of` leaves out lines dated on or after it (scoring a log "as it was then"); the recipe's
    own rule must fall after the last purchase, as in training.
    """
    lines, report = log.lines, dataclasses.replace(log.report)
    first, last = lines["day"].min(), lines["day"].max()
    snapshot = resolve_snapshot(log.recipe, as_of, first, last)
    if as_of is not None:
        later = lines["day"] >= snapshot
        report.after_as_of = int(later.sum())
        lines = lines.loc[~later]
    table = _aggregate(lines, snapshot, TIME_UNITS[log.recipe.time_unit])
    report.rows_used = len(lines)
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


def resolve_snapshot(recipe: Recipe, as_of: str | date | pd.Timestamp | None, first: pd.Timestamp,
                     last: pd.Timestamp) -> pd.Timestamp:
    """The as-of date of an aggregation of lines dated ``first``..``last`` (days): ``as_of`` (which must fall
    after the first day; lines on or after it are then left out), else the recipe's rule (which must fall after the
    last); a bad one raises DataError."""
    if as_of is None:
        return _snapshot(recipe.snapshot_date, last)
    snapshot = parse_as_of(as_of) if not isinstance(as_of, pd.Timestamp) else as_of.normalize()
    if snapshot <= first:
        raise DataError(f"as-of date {snapshot.date()} is not after the first transaction ({first.date()}): "
                        "no customer has a purchase before it")
    return snapshot


def _aggregate(lines: pd.DataFrame, snapshot: pd.Timestamp, unit_days: int) -> pd.DataFrame:
    by_customer = lines.groupby("customer", sort=True)
    first = by_customer["day"].min()
    last = by_customer["day"].max()
    frequency = lines.drop_duplicates(["customer", "purchase"]).groupby("customer", sort=True).size()
    monetary = by_customer["value"].sum()
    # One transaction per customer-day for the CLV models: the day's spend, days in order.
    days = lines.groupby(["customer", "day"], sort=True)["value"].sum()
    purchase_days = days.groupby(level="customer", sort=True).size()
    first_day_value = days.groupby(level="customer", sort=True).first()
    repeats = (purchase_days - 1).astype("float64")
    tenure = (last - first).dt.days.astype("float64")
    repeat_value = (monetary - first_day_value) / repeats.where(repeats > 0)
    table = pd.DataFrame(
        {
            RECENCY: (snapshot - last).dt.days,
            FREQUENCY: frequency,
            MONETARY: monetary,
            "AvgBasketValue": monetary / frequency,
            "AvgItemsPerPurchase": (by_customer["quantity"].sum() / frequency) if "quantity" in lines else np.nan,
            "TenureDays": tenure,
            "PurchaseIntervalDays": tenure / repeats.where(repeats > 0),
            "RepeatPurchases": repeats,
            "LastPurchaseTime": tenure / unit_days,
            "CustomerAge": ((snapshot - pd.Timedelta(days=1)) - first).dt.days / unit_days,
            "AvgRepeatValue": repeat_value.fillna(0.0),
        }
    ).astype("float64")
    table.index = table.index.astype(object)
    table.index.name = "customer"
    return table


def _snapshot(setting: str, last: pd.Timestamp) -> pd.Timestamp:
    if setting == "auto":
        return last + pd.Timedelta(days=1)
    snapshot = parse_as_of(setting, "recipe.snapshot_date")
    if snapshot <= last:
        raise DataError(
            f"transactions.snapshot_date {setting} is not after the last transaction ({last.date()}); "
            "Recency would be negative (give an as-of date to score the log as it was on an earlier day)"
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


def _require_columns(frame: pd.DataFrame, recipe: Recipe) -> None:
    missing = [f"{column!r} (transactions.{key})" for key, column in recipe.columns.items()
               if column not in frame.columns]
    if missing:
        raise DataError(
            f"transaction log is missing required column(s) {', '.join(missing)}; "
            f"the file has: {', '.join(map(str, frame.columns))}"
        )
