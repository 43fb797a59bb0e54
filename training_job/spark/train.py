"""``python -m training_job train --engine spark``: the training run with the heavy parts on a Spark cluster.

On the cluster (every customer): reading, cleaning and the recipe's aggregation (``training_job.spark.recipe``),
the valid ranges and missing-value rules, the transform's statistics (``training_job.spark.statistics``,
exact), the final model (``training_job.spark.kmeans``: Lloyd from the k search's centres), each customer's
segment and distance, the calibration (sigma2, the per-segment 99th-percentile outlier thresholds, exact),
and the base / segment / basket statistics.

On the driver, with the pandas path's own code, on a sample of at most ``DRIVER_ROWS`` customers (every
customer when there are fewer, ordered by id as the pandas path orders them, so the numbers are the
pandas path's): the k search, the confidence temperature, the stability score, the quality indices, the
segment names, the plot sample, the drift reference, the comparison with the served version, the CLV fit and
its per-segment figures; the data profile reads the first ``PROFILE_ROWS`` lines of the raw table. The
artefact is written by ``train.publish_version``, the same store code: the scoring service serves it as
any other version and never needs Spark.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from segmentation_core.features import FeatureSchema, FitOptions
from segmentation_core.recipe import BASKET_COLUMNS, CUSTOMER_COLUMNS, RFM_COLUMNS
from segmentation_core.reference import build_reference
from segmentation_core.segment_model import OUTLIER_PERCENTILE, calibrated
from segmentation_core.sklearn_pipeline import build_pipeline
from segmentation_core.store import ModelStore, validate_model_name
from training_job.algorithms import algorithm_named
from training_job.cleaning import CleaningReport
from training_job.clv_fit import customer_figures, segment_summary
from training_job.comparison import compare_with_current
from training_job.confidence import fit_temperature
from training_job.config import TrainingConfig
from training_job.errors import DataError
from training_job.k_selection import stability_score
from training_job.naming import describe_segments
from training_job.profiling import profile_table
from training_job.progress import Stages
from training_job.segments import plot_sample, profile_entries, segment_order_by_size
from training_job.spark import kmeans, recipe
from training_job.spark.derived import add_derived
from training_job.spark.reading import read_source
from training_job.spark.session import build_session
from training_job.spark.statistics import SparkStatistics, column_stats, quantiles
from training_job.train import (
    TrainingListener,
    TrainingResult,
    _quality,
    choose_k,
    build_manifest,
    history_days,
    job_warnings,
    fit_clv_summary,
    log_features,
    publish_version,
)

__all__ = ["DRIVER_ROWS", "PROFILE_ROWS", "read_head", "train_spark"]

log = logging.getLogger(__name__)

DRIVER_ROWS = 100_000
"""Customers brought to the driver for the k search and the other driver-side steps (all, when fewer)."""
PROFILE_ROWS = 100_000
"""Raw lines the data profile reads."""
SAMPLE_SEED = 20_251_204


def train_spark(data: str, config: TrainingConfig, store: ModelStore, model_name: str = "customers", keep: int = 10,
                *, master: str | None = None, spark_conf: Sequence[str] | dict[str, str] | None = None,
                publish: bool = True, listener: TrainingListener | None = None, signer: Any = None,
                allow_breaking_schema: bool = False) -> TrainingResult:
    """Train on ``data`` (any path or URI Spark reads) with Spark and publish through the store (a version whose
    input schema would break the served version's callers is kept, not published, unless
    ``allow_breaking_schema``: see ``train.train``)."""
    validate_model_name(model_name)
    if config.data.kind != "transactions":
        raise DataError("--engine spark trains on transaction logs (a [data] kind = \"transactions\" preset or "
                        "config); customer tables train with --engine pandas")
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    listener = listener or TrainingListener()
    stages = Stages(listener.on_stage, on_tick=listener.on_tick)
    started = time.monotonic()
    spark = build_session(master, spark_conf)
    name = Path(str(data).rstrip("/")).name or str(data)
    with stages("read"):
        raw = read_source(spark, str(data))
    with stages("clean"):
        slog = recipe.clean_log(raw, config.recipe())
        table, transactions = recipe.customer_table(slog)
        report = CleaningReport(kind="transactions", rows_in=transactions.rows_in, transactions=transactions)
        customers, numeric = _prepare(table, config, report)
        customers = customers.persist(StorageLevel.MEMORY_AND_DISK)
        report.log_summary()
    n = report.rows_out
    with stages("features"):
        local = _driver_sample(customers, n)
        pre = config.preprocessing
        options = FitOptions(skew=pre.skew, outliers=pre.outliers, categorical_weight=pre.categorical_weight)
        stats = {f: SparkStatistics(customers, f, recipe.CUSTOMER, lambda f=f: local[f].to_numpy(np.float64))
                 for f in numeric}
        try:
            # values cleaning set missing as implausible are missing at scoring too
            schema = FeatureSchema.fit_statistics(stats, {}, options).with_valid_ranges(
                config.cleaning.valid_range)
            x = schema.transform_frame(local[numeric])
        except ValueError as exc:
            raise DataError(str(exc)) from exc
        log_features(schema)
    search, business = choose_k(config, x, n, stages, listener, schema)
    k = search.chosen_k
    history = history_days(report)
    warnings = job_warnings(n, k, history)
    algorithm, seed = config.model.algorithm, config.model.seed
    with stages("fit"):
        estimator = search.chosen_model
        algo = algorithm_named(algorithm)
        if algorithm == "kmeans":
            centres, sizes, passes = kmeans.lloyd(customers, schema, np.asarray(algo.centres(estimator)))
            log.info("final k-means on all %d customers on the cluster: %d Lloyd pass(es)", n, passes)
            estimator.cluster_centers_ = centres
        else:
            centres = np.asarray(algo.centres(estimator))
            sizes = np.bincount(estimator.predict(x), minlength=k)
        order = segment_order_by_size(np.asarray(sizes), np.asarray(centres))
        gmm_params = algo.reorder(estimator, order)
        centroids = np.asarray(algo.centres(estimator))
        provisional = calibrated(algorithm, centroids, 1.0, np.zeros(k), gmm_params)
        carried = [recipe.CUSTOMER, *[c for c in (*CUSTOMER_COLUMNS, *config.derived) if c in customers.columns]]
        scored = kmeans.label_customers(customers, schema, provisional, carried).persist(StorageLevel.MEMORY_AND_DISK)
        counts = dict(scored.groupBy("segment").count().collect())
        mean_square = scored.agg(F.avg(F.col("distance") * F.col("distance"))).first()[0]
        thresholds = quantiles(scored, F.col("distance"), [OUTLIER_PERCENTILE / 100], F.col("segment"), counts)
        model = calibrated(algorithm, centroids, float(mean_square / centroids.shape[1]),
                           np.array([thresholds.get(j, [0.0])[0] for j in range(k)]), gmm_params)
        segment = model.score(x).segment
    with stages("confidence"):
        confidence = fit_temperature(x, k, algorithm, seed, centroids)
        model = dataclasses.replace(model, temperature=confidence.temperature, smoothing=confidence.smoothing)
    with stages("stability"):
        stability = stability_score(x, k, algorithm=algorithm, seed=seed) if k >= 2 else float("nan")
    features = local[numeric]
    with stages("describe"):
        quality = {**_quality(x, segment, seed), "stability": float(stability)}
        descriptions = describe_segments(features, segment, numeric, [], style=config.naming.style,
                                         overrides=dict(config.naming.names),
                                         display_labels=dict(config.naming.labels), history_days=history)
        per_segment = column_stats(scored, numeric, F.col("segment"))
        empty = {f: _no_stats() for f in numeric}
        profiles = profile_entries([int(counts.get(j, 0)) for j in range(k)], schema, centroids,
                                   [per_segment.get(j, empty) for j in range(k)], [{} for _ in range(k)])
        for profile, description, threshold in zip(profiles, descriptions, model.outlier_threshold):
            profile.update(description.to_dict())
            profile["outlier_distance"] = float(threshold)
        sample = plot_sample(features, local[recipe.CUSTOMER], x, segment, centroids, schema, seed)
        reference = build_reference(schema, model, {f: features[f].to_numpy(np.float64) for f in numeric}, {})
    with stages("profile"):
        data_profile = _profile(raw, name, config, transactions.rows_in)
    with stages("compare"):
        comparison = compare_with_current(store, model_name, features, segment)
    base = {"stats": column_stats(customers, numeric)[0], "categories": {}}
    manifest = build_manifest(
        model_name=model_name, data={"path": str(data), "name": name, "fingerprint": _fingerprint(raw),
                                     "rows_in": int(transactions.rows_in), "customers": int(n), "engine": "spark"},
        config=config, schema=schema, estimator=estimator, search=search, business=business, quality=quality,
        confidence=confidence, cleaning=report.to_dict(), base=base, profiles=profiles,
        reference=reference.to_dict(), data_profile=data_profile, comparison=comparison, warnings=warnings)
    manifest["recipe"] = config.recipe().to_dict()
    basket_columns = [c for c in BASKET_COLUMNS if c in local.columns and local[c].notna().any()]
    if basket_columns:
        manifest["base"]["basket"] = column_stats(customers, basket_columns)[0]
        baskets = column_stats(scored, basket_columns, F.col("segment"))
        for j, profile in enumerate(profiles):
            # A metric no customer of the segment has is left out, as on the pandas path.
            profile["basket"] = {c: stats for c, stats in baskets.get(j, {}).items() if not np.isnan(stats["mean"])}
    with stages("clv"):
        clv = fit_clv_summary(
            config, lambda as_of: _driver_sample(recipe.customer_table(slog, as_of)[0], None),
            local, lambda fitted, seg, k: {**segment_summary(customer_figures(fitted, local), seg, k),
                                           "customers": len(local)}, segment, k, profiles)
    pipeline = build_pipeline(schema, estimator, model)
    with stages("publish"):
        version, refusal = publish_version(store, model_name, manifest, model, sample, pipeline, clv, keep=keep,
                                           publish=publish, signer=signer, allow_breaking_schema=allow_breaking_schema)
    path = store.version_dir(model_name, version)
    published = publish and not refusal
    log.info("%s %s %s (k=%d, Spark) to %s in %.1f s", "published" if published else "kept (not CURRENT)",
             model_name, version, k, path, time.monotonic() - started)
    scored.unpersist()
    customers.unpersist()
    slog.lines.unpersist()
    return TrainingResult(model=model_name, version=version, path=path, k=int(k),
                          segment_names=[p["name"] for p in profiles], manifest=manifest, published=published,
                          refusal=refusal)


def _no_stats() -> dict[str, float]:
    return {"mean": float("nan"), "median": float("nan"), "min": float("nan"), "max": float("nan"), "std": float("nan")}


def _prepare(table: Any, config: TrainingConfig, report: CleaningReport) -> tuple[Any, list[str]]:
    """The per-customer features as the pandas path's table preparation leaves them (valid ranges, missing
    values), on the cluster; returns the table and the numeric feature names."""
    from pyspark.sql import functions as F

    numeric = list(config.data.numeric) or list(RFM_COLUMNS)
    if config.data.categorical:
        raise DataError(
            f"data.categorical {list(config.data.categorical)}: a transaction log yields numeric per-customer "
            f"features only ({', '.join(CUSTOMER_COLUMNS)})")
    table = add_derived(table, config.derived)  # on the unranged columns, as the pandas path derives them
    missing = [c for c in numeric if c not in table.columns]
    if missing:
        raise DataError(f"missing required column(s) {', '.join(map(repr, missing))} (named in data.numeric); "
                        f"the table has: {', '.join(c for c in table.columns if c != recipe.CUSTOMER)}")
    if "AvgItemsPerPurchase" in numeric and config.transactions.quantity is None:
        raise DataError("AvgItemsPerPurchase needs transactions.quantity; the config has no quantity column")
    columns = {c: F.col(c) for c in table.columns}
    ranges = config.cleaning.valid_range
    checks = []
    for name in numeric:
        if name not in ranges:
            continue
        low, high = ranges[name]
        outside = F.lit(False)
        if low is not None:
            outside = outside | (F.col(name) < low)
        if high is not None:
            outside = outside | (F.col(name) > high)
        checks.append((name, low, high, F.coalesce(outside, F.lit(False))))
        columns[name] = F.when(~F.coalesce(outside, F.lit(False)), F.col(name))
    for name, low, high, outside in checks:
        examples = sorted(r[0] for r in table.where(outside).select(name).distinct().orderBy(name).limit(5).collect())
        if low is not None and high is not None:
            rule = f"outside [{low:g}, {high:g}]"
        else:
            rule = f"below {low:g}" if low is not None else f"above {high:g}"
        count = table.where(outside).count()
        report.implausible[name] = {"count": int(count), "rule": rule, "examples": [float(v) for v in examples]}
    table = table.select(*[columns[c].alias(c) for c in table.columns])
    facts = table.agg(F.count(F.lit(1)).alias("rows"),
                      *[F.count(F.col(c)).alias(f"n_{c}") for c in numeric],
                      *[F.countDistinct(F.col(c)).alias(f"d_{c}") for c in numeric]).first()
    drop = F.lit(False)
    for name in numeric:
        if facts[f"n_{name}"] == 0:
            raise DataError(f"column {name!r}: all {facts['rows']} values are missing (after cleaning)")
        if facts[f"d_{name}"] == 1:
            report.constant_features.append(name)
        absent = facts["rows"] - facts[f"n_{name}"]
        if absent:
            rule = config.cleaning.missing_rule(name)
            report.missing[name] = {"count": int(absent), "action": "rows dropped" if rule == "drop"
                                    else "left missing for the feature transform to impute"}
            if rule == "drop":
                drop = drop | F.col(name).isNull()
    kept = table.where(~drop)
    report.rows_out = kept.count() if report.missing else int(facts["rows"])
    report.rows_dropped_for_missing = int(facts["rows"]) - report.rows_out
    if report.rows_out == 0:
        raise DataError(f"no rows left after cleaning: {report.to_dict()}")
    return kept, numeric


def _driver_sample(frame: Any, n: int | None) -> pd.DataFrame:
    """At most DRIVER_ROWS rows of a per-customer table on the driver, ordered by customer id (all when fewer)."""
    if n is None:
        n = frame.count()
    if n > DRIVER_ROWS:
        log.info("driver-side steps on a random sample of %d of %d customers", DRIVER_ROWS, n)
        frame = frame.sample(fraction=min(1.0, 1.05 * DRIVER_ROWS / n), seed=SAMPLE_SEED).orderBy(recipe.CUSTOMER) \
            .limit(DRIVER_ROWS)
    local = frame.orderBy(recipe.CUSTOMER).toPandas()
    local[recipe.CUSTOMER] = local[recipe.CUSTOMER].astype(object)
    for column in local.columns:
        if column != recipe.CUSTOMER:
            local[column] = local[column].astype("float64")
    return local.reset_index(drop=True)


def _profile(raw: Any, name: str, config: TrainingConfig, rows: int) -> dict[str, Any]:
    """The data profile of the raw table's first PROFILE_ROWS lines, read as the pandas reader reads text."""
    head = _typed_head(raw)
    profile = profile_table(head, name=name, config=config)
    profile["profiled_rows"] = profile.get("rows")
    profile["rows"] = int(rows)
    return profile


def _fingerprint(raw: Any) -> str:
    """The input files' names and sizes (hashing every byte of a data lake is not the point of Spark)."""
    import hashlib

    files = sorted(raw.inputFiles())
    digest = hashlib.sha256("\n".join(files).encode())
    return "files-sha256:" + digest.hexdigest()


def read_head(data: str, master: str | None = None, spark_conf: Sequence[str] | None = None) -> pd.DataFrame:
    """The first PROFILE_ROWS lines of ``data`` as the pandas reader would type them (``--preset auto`` infers
    the schema from them)."""
    return _typed_head(read_source(build_session(master, spark_conf), str(data)))


def _typed_head(raw: Any) -> pd.DataFrame:
    from segmentation_core.tables import _convert_numeric_columns

    head = raw.limit(PROFILE_ROWS).toPandas()
    if all(not pd.api.types.is_numeric_dtype(dtype) for dtype in head.dtypes):
        head = _convert_numeric_columns(head.astype("string"))
    return head
