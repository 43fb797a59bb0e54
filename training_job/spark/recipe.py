"""A transactions model's recipe on the cluster: the twin of ``segmentation_core.recipe`` for logs too large
for one machine, with its semantics (one rule each, in the same order; the same columns per customer;
``recipe.resolve_snapshot`` for the as-of rule) and its report. Lines are cleaned and aggregated with
Spark DataFrame operations; only the report's figures come to the driver.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from segmentation_core.errors import DataError
from segmentation_core.recipe import (
    CUSTOMER_COLUMNS,
    FREQUENCY,
    TIME_UNITS,
    Recipe,
    TransactionReport,
    _removed,
    _require_columns,
    resolve_snapshot,
)
from training_job.spark import parsing
from training_job.spark.reading import columnar
from training_job.spark.session import scale_shuffle_partitions
from training_job.spark.statistics import quantiles

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

__all__ = ["CUSTOMER", "SparkLog", "aggregate", "clean_log", "customer_table"]

log = logging.getLogger(__name__)

CUSTOMER = "customer"
"""The id column of the per-customer table (text, as the pandas path's index)."""

# Removal reasons, in the order the rules apply (TransactionReport's field order).
_REASONS = ("kept", "cancellations", "non_positive_quantity", "non_positive_value", "missing_customer_id")


@dataclass(frozen=True)
class SparkLog:
    """The cleaned lines of a log on the cluster (customer, date, day, value, quantity?, purchase) and the report."""

    lines: "DataFrame"
    report: TransactionReport
    recipe: Recipe


def aggregate(frame: "DataFrame", recipe: Recipe, as_of: str | date | None = None
              ) -> tuple["DataFrame", TransactionReport]:
    """Clean a log and aggregate it per customer (CUSTOMER + CUSTOMER_COLUMNS) on the cluster."""
    return customer_table(clean_log(frame, recipe), as_of)


def clean_log(frame: "DataFrame", recipe: Recipe) -> SparkLog:
    """Check the columns, parse every cell and apply the cleaning rules; bad input raises DataError."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    _require_columns(frame, recipe)
    r = recipe
    # Every check below is a pass over the raw lines. Text (one gzipped file is one partition) is read and
    # decompressed once, spread over the cluster and kept on local disk; Parquet is scanned again (a columnar,
    # column-pruned scan costs less than caching it). Never in memory: cached blocks keep half of the
    # execution memory the de-duplication and aggregations need, which then spill into many small files.
    spark = frame.sparkSession
    parallelism = spark.sparkContext.defaultParallelism
    spread = frame.rdd.getNumPartitions() < parallelism
    if spread:
        frame = frame.repartition(parallelism)
    if spread or not columnar(frame):
        frame = frame.persist(StorageLevel.DISK_ONLY)
    # One job decides how the id and date columns read (from every value), as the pandas reader decides.
    decisions = [F.count(F.lit(1)).alias("rows"), *parsing.decide_ids(frame, r.customer_id),
                 *parsing.decide_dates(frame, r.date)]
    decision = frame.select(*decisions).first().asDict()
    rows_in = decision["rows"]
    if rows_in == 0:
        raise DataError("the transaction log has no rows")
    partitions = scale_shuffle_partitions(spark, rows_in)
    log.info("cleaning %d lines (%d input partitions, %d shuffle partitions)", rows_in,
             frame.rdd.getNumPartitions(), partitions)
    customer = parsing.customer_ids(frame, r.customer_id, decision)
    when = parsing.dates(frame, r.date, r.date_format, decision)
    quantity = parsing.numbers(frame, r.quantity) if r.quantity else None
    amount = parsing.numbers(frame, r.amount or r.price)  # a recipe without an amount has a price
    parsed = [p for p in (when, quantity, amount) if p is not None]
    value = amount.value if r.amount else quantity.value * amount.value  # type: ignore[union-attr]
    invoice = parsing.text(frame, r.invoice) if r.invoice else None

    def positive(column, strict: bool = True):
        test = column > 0 if strict else column >= 0
        return F.coalesce(test & ~F.isnan(column), F.lit(False))

    reason = F.when(F.lit(False), F.lit(None))
    if invoice is not None and r.cancellation_prefix:
        reason = reason.when(F.coalesce(invoice.startswith(r.cancellation_prefix), F.lit(False)), 1)
    if quantity is not None:
        reason = reason.when(~positive(quantity.value), 2)
    reason = reason.when(~positive(value, strict=not r.keep_zero_value), 3)
    reason = reason.when(customer.isNull(), 4).otherwise(0)
    # One pass: every unparseable cell (the first column with one is named) and the rules' counts.
    codes = range(len(_REASONS))
    row = parsing.check(frame, parsed, [F.count(F.when(reason == code, 1)).alias(f"reason{code}") for code in codes])
    counts = {code: row[f"reason{code}"] for code in codes}
    report = TransactionReport(rows_in=rows_in)
    for code, name in enumerate(_REASONS):
        if code:
            setattr(report, name, int(counts.get(code, 0)))
    kept = frame.where(reason == 0)
    kept_rows = int(counts.get(0, 0))
    if r.drop_duplicates and kept_rows:
        # Exact duplicates of the raw lines, found on the raw columns alone (a hash aggregation); every parsed
        # column is a function of them, so they are derived after. De-duplicating a frame that also carries
        # the parsed columns makes Spark keep one row of each group with first(), whose text buffers force a
        # sort-based aggregation of every line: it spilled into many files and ran out of heap merging them.
        kept = kept.distinct()
    lines = kept.select(
        customer.alias(CUSTOMER), when.value.alias("date"), F.to_date(when.value).alias("day"),
        value.alias("value"),
        *([quantity.value.alias("quantity")] if quantity is not None else []),
        # Without an invoice column, a customer's purchases on one day make one basket (CDNOW's convention).
        (F.coalesce(invoice, F.lit("\u0000missing")) if invoice is not None
         else when.value.cast("date").cast("string")).alias("purchase"),
    ).persist(StorageLevel.DISK_ONLY)
    report.rows_used = lines.count() if r.drop_duplicates else kept_rows
    frame.unpersist()
    report.duplicate_rows = kept_rows - report.rows_used
    if report.rows_used == 0:
        raise DataError(f"no transactions left after cleaning ({_removed(report)})")
    return SparkLog(lines=lines, report=report, recipe=recipe)


def customer_table(log: SparkLog, as_of: str | date | None = None) -> tuple["DataFrame", TransactionReport]:
    """Aggregate cleaned lines per customer as of a date (default: the recipe's rule), on the cluster."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    lines, report = log.lines, dataclasses.replace(log.report)
    span = lines.agg(F.min("day").alias("first"), F.max("day").alias("last"), F.min("date").alias("first_date"),
                     F.max("date").alias("last_date")).first()
    snapshot = resolve_snapshot(log.recipe, as_of, pd.Timestamp(span["first"]), pd.Timestamp(span["last"]))
    day = snapshot.date()
    if as_of is not None:
        report.after_as_of = lines.where(F.col("day") >= F.lit(day)).count()
        lines = lines.where(F.col("day") < F.lit(day))
    unit = float(TIME_UNITS[log.recipe.time_unit])
    days = lines.groupBy(CUSTOMER, "day").agg(F.sum("value").alias("day_value"))
    per_day = days.groupBy(CUSTOMER).agg(F.count(F.lit(1)).alias("purchase_days"),
                                         F.min_by("day_value", "day").alias("first_day_value"))
    has_quantity = "quantity" in lines.columns
    per_line = lines.groupBy(CUSTOMER).agg(
        F.min("day").alias("first"), F.max("day").alias("last"), F.sum("value").alias("monetary"),
        F.countDistinct("purchase").alias("frequency"), F.count(F.lit(1)).alias("lines"),
        (F.sum("quantity") if has_quantity else F.lit(None).cast("double")).alias("items"))
    t = per_line.join(per_day, CUSTOMER)
    repeats = (F.col("purchase_days") - 1).cast("double")
    tenure = F.datediff("last", "first").cast("double")
    some = F.when(repeats > 0, repeats)
    frequency = F.col("frequency").cast("double")
    table = t.select(
        F.col(CUSTOMER),
        F.datediff(F.lit(day), "last").cast("double").alias("Recency"),
        frequency.alias("Frequency"),
        F.col("monetary").alias("Monetary"),
        (F.col("monetary") / frequency).alias("AvgBasketValue"),
        (F.col("items") / frequency).alias("AvgItemsPerPurchase"),
        tenure.alias("TenureDays"),
        (tenure / some).alias("PurchaseIntervalDays"),
        repeats.alias("RepeatPurchases"),
        (tenure / unit).alias("LastPurchaseTime"),
        (F.datediff(F.date_sub(F.lit(day), 1), "first").cast("double") / unit).alias("CustomerAge"),
        F.coalesce((F.col("monetary") - F.col("first_day_value")) / some, F.lit(0.0)).alias("AvgRepeatValue"),
        F.col("lines").alias("_lines"),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    facts = table.agg(F.count(F.lit(1)).alias("customers"), F.sum(FREQUENCY).alias("purchases"),
                      F.min("_lines").alias("min"), F.avg("_lines").alias("mean"), F.max("_lines").alias("max"),
                      F.sum("_lines").alias("rows")).first()
    if not facts["customers"]:
        raise DataError("no customer has a purchase before the as-of date")
    dates = span if as_of is None else lines.agg(F.min("date").alias("first_date"),
                                                 F.max("date").alias("last_date")).first()
    report.rows_used = int(facts["rows"])
    report.customers = int(facts["customers"])
    report.purchases = int(facts["purchases"])
    report.first_date = pd.Timestamp(dates["first_date"]).isoformat()
    report.last_date = pd.Timestamp(dates["last_date"]).isoformat()
    report.snapshot_date = day.isoformat()
    median = quantiles(table, F.col("_lines"), [0.5], counts={0: report.customers}, median=True)[0][0]
    report.rows_per_customer = {"min": int(facts["min"]), "median": float(median),
                                "mean": round(float(facts["mean"]), 2), "max": int(facts["max"])}
    return table.select(CUSTOMER, *CUSTOMER_COLUMNS), report
