"""The final model on every customer, on the cluster: Lloyd iterations started from the k search's centres,
and the serving math's labels, distances and calibration.

Why Lloyd from the sample's centres rather than MLlib's k-means||: the k search (on the driver's sample, as
the pandas path) already chose k and a model whose segments were named, repaired (split-and-merge) or
merged by the k rule; a fresh k-means|| start could land in another local optimum and lose that choice.
Lloyd from those centres refines the same segments with every customer (the pandas path does the same:
``algorithms.fit_from`` on every row), and when the sample is the whole table it converges in a pass or two
to the pandas model. Each iteration is one ``mapInPandas`` pass (the transform of ``segmentation_core``, then
per-partition sums per segment) and a k x d reduce on the driver. GMM and mini-batch k-means keep the
sample's fit (their full-data refinement is not done on the cluster: left for later).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterator

import numpy as np

from segmentation_core.features import FeatureSchema
from segmentation_core.segment_model import SegmentModel, centroid_distances

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame

__all__ = ["MAX_ITER", "TOLERANCE", "label_customers", "lloyd"]

log = logging.getLogger(__name__)

MAX_ITER = 300
TOLERANCE = 1e-4
"""scikit-learn's: converged when the centres move (squared, summed) by less than this x the mean variance."""


def _matrix(schema: FeatureSchema, batch: "pd.DataFrame") -> np.ndarray:
    import pandas as pd

    numeric = {f.name: pd.to_numeric(batch[f.name], errors="coerce").to_numpy(np.float64) for f in schema.numeric}
    categorical = {c.name: batch[c.name].tolist() for c in schema.categorical}
    x, errors = schema.transform_columns(numeric, categorical, len(batch))
    if errors:  # training rows were checked when the schema was fitted: none expected
        row = min(errors)
        raise ValueError(f"row {row}: {errors[row]}")
    return x


def lloyd(frame: "DataFrame", schema: FeatureSchema, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Lloyd's k-means on every row of ``frame`` (the schema's feature columns) from ``centres``; returns the
    final centres, each one's size under them, and the iterations run."""
    k, d = centres.shape
    columns = schema.feature_names
    data = frame.select(*columns)

    def sums(current: np.ndarray):
        def per_partition(batches: Iterator["pd.DataFrame"]) -> Iterator["pd.DataFrame"]:
            import pandas as pd

            total = np.zeros((k, d))
            count = np.zeros(k, dtype=np.int64)
            squares = np.zeros(d)
            plain = np.zeros(d)
            for batch in batches:
                if len(batch) == 0:
                    continue
                x = _matrix(schema, batch)
                # squared distances as scikit-learn's Lloyd ranks them
                dist = (x * x).sum(axis=1)[:, None] - 2.0 * x @ current.T + (current * current).sum(axis=1)[None, :]
                labels = dist.argmin(axis=1)
                np.add.at(total, labels, x)
                count += np.bincount(labels, minlength=k)
                plain += x.sum(axis=0)
                squares += (x * x).sum(axis=0)
            yield pd.DataFrame({"label": np.arange(k), "n": count, "sums": list(total),
                                "plain": [plain] * k, "squares": [squares] * k})
        rows = data.mapInPandas(per_partition, "label long, n long, sums array<double>, plain array<double>, "
                                               "squares array<double>").collect()
        total, count = np.zeros((k, d)), np.zeros(k, dtype=np.int64)
        plain, squares = np.zeros(d), np.zeros(d)
        for row in rows:
            total[row["label"]] += np.asarray(row["sums"])
            count[row["label"]] += row["n"]
            if row["label"] == 0:
                plain += np.asarray(row["plain"])
                squares += np.asarray(row["squares"])
        return total, count, plain, squares

    current = np.asarray(centres, dtype=np.float64).copy()
    tolerance = None
    for iteration in range(1, MAX_ITER + 1):
        total, count, plain, squares = sums(current)
        if tolerance is None:
            n = count.sum()
            mean = plain / n
            tolerance = TOLERANCE * float(np.mean(squares / n - mean * mean))
        updated = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], current)
        shift = float(((updated - current) ** 2).sum())
        log.info("Lloyd pass %d on the cluster: centres would move %.3g (tolerance %.3g)", iteration, shift, tolerance)
        if shift <= tolerance:
            # Converged: keep the centres this pass labelled by (a k-means fit on these very customers - the
            # driver's, when it saw them all - is kept exactly, not nudged by one more step).
            return current, count, iteration
        current = updated
    _total, sizes, _plain, _squares = sums(current)
    return current, sizes, MAX_ITER


def label_customers(frame: "DataFrame", schema: FeatureSchema, model: SegmentModel, keep: list[str]) -> "DataFrame":
    """``frame``'s ``keep`` columns with each row's ``segment`` (the serving math's) and ``distance`` to its
    centroid (as the calibration measures it)."""
    from pyspark.sql.types import DoubleType, IntegerType, StructField, StructType

    fields = [frame.schema[c] for c in keep]
    out_schema = StructType([*fields, StructField("segment", IntegerType()), StructField("distance", DoubleType())])
    columns = list(dict.fromkeys([*keep, *schema.feature_names]))

    def per_batch(batches: Iterator["pd.DataFrame"]) -> Iterator["pd.DataFrame"]:
        for batch in batches:
            if len(batch) == 0:
                continue
            x = _matrix(schema, batch)
            segment = model.score(x).segment.astype(np.int64)
            out = batch[keep].copy()
            out["segment"] = segment.astype(np.int32)
            out["distance"] = centroid_distances(x, segment, model.centroids)
            yield out

    return frame.select(*columns).mapInPandas(per_batch, out_schema)


