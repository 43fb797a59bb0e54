"""``python -m training_job score --engine spark``: batch scoring on a Spark cluster with a published artefact.

A transactions model's log is cleaned and aggregated per customer on the cluster (``training_job.spark.recipe``,
the as-of rule of ``segmentation_core.recipe``); a customer table is matched to the feature schema as the
pandas path matches it. Each partition is then scored by ``mapInPandas`` (Arrow batches) with the pandas
path's own function (``training_job.batch_score.score_columns``: ``FeatureSchema.transform_columns``,
``SegmentModel.score``, ``ClvModel.predict``, the service's math), so every row gets the numbers the scoring
service gives it. The result is written as Parquet (a folder of part files) under a temporary name, then
renamed into place: a failed run leaves no partial output.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from segmentation_core.artefact import read_artefact
from segmentation_core.errors import DataError
from segmentation_core.recipe import CUSTOMER_COLUMNS, Recipe, check_features
from segmentation_core.store import ModelStore
from training_job.batch_score import ScoreSummary, customer_columns, input_names, result_fields, score_columns
from training_job.spark import recipe
from training_job.spark.derived import add_derived, apply_valid_ranges
from training_job.spark.reading import read_source
from training_job.spark.session import build_session

__all__ = ["score_spark"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Plan:
    frame: Any
    columns: dict[str, str]
    id_column: str | None
    as_of: str | None


def score_spark(store: ModelStore, model: str, data: str, output: str, *, as_of: str | None = None,
                version: str | None = None, master: str | None = None,
                spark_conf: Sequence[str] | dict[str, str] | None = None) -> ScoreSummary:
    """Score ``data`` (any path or URI Spark reads) with ``model`` on Spark into ``output`` (a Parquet folder)."""
    from pyspark.sql import functions as F

    version = version or store.current(model)
    if version is None:
        raise DataError(f"model {model!r} has no published version in {store.root}")
    artefact = read_artefact(store.version_dir(model, version))
    spark = build_session(master, spark_conf)
    raw = read_source(spark, str(data))
    plan = _plan(artefact, raw, as_of)
    frame = plan.frame
    fields = result_fields(artefact, with_as_of=plan.as_of is not None)
    written = input_names(artefact.schema.feature_names)  # a feature named like a result column: input_<name>
    numeric = [written[f.name] for f in artefact.schema.numeric]
    categorical = [written[c.name] for c in artefact.schema.categorical]
    ddl = ", ".join(f"`{name}` {kind}" for name, kind in fields)
    columns, id_column, used_as_of = plan.columns, plan.id_column, plan.as_of

    def per_batch(batches: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd

        for batch in batches:
            if len(batch) == 0:
                continue
            ids = batch[id_column].to_numpy(dtype=object) if id_column else batch["_row"].to_numpy(dtype=object)
            result = score_columns(artefact, batch.reset_index(drop=True), columns, ids)
            for name in numeric:  # the values scored (text that is not a number was scored as missing)
                result[name] = pd.to_numeric(result[name], errors="coerce").astype("float64")
            for name in categorical:
                result[name] = result[name].astype(object).where(result[name].notna(), None).map(
                    lambda v: v if v is None else str(v))
            result["id"] = result["id"].map(lambda v: v if v is None else str(v))
            if used_as_of is not None:
                result["as_of"] = used_as_of
            yield result

    scored = frame.mapInPandas(per_batch, ddl)
    if artefact.recipe is not None:
        scored = scored.orderBy("id")
    _write(spark, scored, str(output))
    written = spark.read.parquet(str(output)).agg(F.count(F.lit(1)).alias("rows"),
                                                  F.count(F.when(F.col("segment_id") < 0, 1)).alias("errors")).first()
    return ScoreSummary(model=model, version=version, rows=int(written["rows"]), errors=int(written["errors"]),
                        as_of=used_as_of, output=Path(str(output)))


def _plan(artefact: Any, raw: Any, as_of: str | None) -> _Plan:
    from pyspark.sql import functions as F

    schema = artefact.schema
    if artefact.recipe is not None:
        rules = Recipe.from_dict(artefact.recipe)
        check_features(schema.feature_names, f"{artefact.manifest.get('model')} {artefact.version}", rules)
        table, report = recipe.aggregate(raw, rules, as_of)
        log.info("aggregated %d log rows to %d customers as of %s on the cluster (%d rows after the as-of date "
                 "left out)", report.rows_in, report.customers, report.snapshot_date, report.after_as_of)
        table = apply_valid_ranges(add_derived(table, rules.derived), rules.valid_range)  # Recipe.features
        return _Plan(table, {name: name for name in (*CUSTOMER_COLUMNS, *rules.derived)}, recipe.CUSTOMER,
                     report.snapshot_date)
    columns = customer_columns(artefact, list(raw.columns), as_of)
    id_column = _id_column(artefact, raw)
    if id_column is None:  # rows numbered 1.. in file order, as the pandas path numbers them
        numbered = raw.rdd.zipWithIndex().map(lambda pair: (*pair[0], str(pair[1] + 1)))
        frame = numbered.toDF([*raw.columns, "_row"])
    else:
        frame = raw.withColumn(id_column, F.trim(F.col(id_column).cast("string")))
    return _Plan(frame, dict(columns), id_column, None)


def _id_column(artefact: Any, raw: Any) -> str | None:
    from training_job.schema_inference import infer_id_column

    configured = (artefact.manifest.get("config", {}).get("data", {}) or {}).get("id_column")
    if configured in raw.columns:
        return configured
    head = raw.limit(10_000).toPandas()
    return infer_id_column(head)


def _write(spark: Any, scored: Any, output: str) -> None:
    """Write under a temporary sibling name, then rename into place (any Hadoop file system)."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    target = jvm.org.apache.hadoop.fs.Path(output)
    fs = target.getFileSystem(conf)
    temporary = jvm.org.apache.hadoop.fs.Path(target.getParent(), f".{target.getName()}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        scored.write.mode("error").parquet(temporary.toString())
        if fs.exists(target):
            fs.delete(target, True)
        if not fs.rename(temporary, target):
            raise DataError(f"{output}: cannot move the result into place")
    finally:
        if fs.exists(temporary):
            fs.delete(temporary, True)
