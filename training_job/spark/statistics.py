"""Statistics on the cluster, with the numbers numpy gives in memory.

Quantiles are exact: numpy's linear rule needs two order statistics per quantile, and they are found in two
passes whatever the size (no approximation is reported because none is left): ``percentile_approx`` (rank
error at most n / ``ACCURACY``) brackets each wanted rank, then the rows inside the brackets are counted by
distinct value (a few thousand values for 10^8 rows; ties make it fewer) and the rank is read off the
cumulative counts. Tables of up to ``SMALL`` rows skip the brackets and count every distinct value.
Moments are two-pass (mean first, then central sums), as numpy computes them; sums run in Spark's order, so
they differ from numpy's in the last bits (relative 1e-15 on the tables tested).

:class:`SparkStatistics` is ``segmentation_core.features.NumericStatistics`` on a cluster: the transform is
fitted by the one set of rules in ``segmentation_core.features.fit_numeric``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Callable, Hashable, Sequence

import numpy as np

from segmentation_core.features import ArrayStatistics, _skew_forward

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

__all__ = ["ACCURACY", "SparkStatistics", "column_stats", "numpy_lerp", "order_statistics", "quantiles"]

ACCURACY = 10_000
"""percentile_approx's accuracy for the brackets: rank error at most n / ACCURACY."""
SMALL = 200_000
"""Up to this many values a group's distinct values are counted outright (no brackets)."""
_MARGIN = 3.0 / ACCURACY


def _present(value: "Column") -> "Column":
    from pyspark.sql import functions as F

    return value.isNotNull() & ~F.isnan(value)


def numpy_lerp(a: float, b: float, t: float) -> float:
    """numpy's ``_lerp`` (the linear rule of np.percentile / np.quantile), for one pair."""
    diff = b - a
    return float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t)


def _positions(n: int, q: float) -> tuple[int, int, float]:
    """numpy's linear rule: the two ranks (0-based) a quantile interpolates between, and the weight."""
    virtual = (n - 1) * q
    if virtual >= n - 1:
        return n - 1, n - 1, 0.0
    previous = math.floor(virtual)
    return previous, previous + 1, virtual - previous


def order_statistics(frame: "DataFrame", value: "Column", ranks: dict[Hashable, Sequence[int]],
                     counts: dict[Hashable, int], group: "Column | None" = None) -> dict[Hashable, dict[int, float]]:
    """The values at the given 0-based ranks of each group's present values (sorted ascending)."""
    from pyspark.sql import functions as F

    key = group if group is not None else F.lit(0)
    data = frame.select(key.alias("g"), value.cast("double").alias("v")).where(_present(F.col("v")))
    found: dict[Hashable, dict[int, float]] = defaultdict(dict)
    small = [g for g in ranks if counts.get(g, 0) <= SMALL]
    large = [g for g in ranks if counts.get(g, 0) > SMALL]
    if small:
        rows = (data.where(F.col("g").isin(small)) if large else data).groupBy("g", "v").count().collect()
        by_group: dict[Hashable, list[tuple[float, int]]] = defaultdict(list)
        for row in rows:
            by_group[row["g"]].append((row["v"], row["count"]))
        for g in small:
            found[g].update(_walk(sorted(by_group[g]), 0, ranks[g]))
    if large:
        found.update(_bracketed(data, {g: ranks[g] for g in large}, counts))
    return dict(found)


def _walk(values: list[tuple[float, int]], start: int, ranks: Sequence[int]) -> dict[int, float]:
    """Ranks -> values, given (value, count) pairs sorted by value whose first row has rank ``start``."""
    out: dict[int, float] = {}
    wanted = sorted(set(ranks))
    position, i = start, 0
    for v, c in values:
        while i < len(wanted) and wanted[i] < position + c:
            if wanted[i] >= position:
                out[wanted[i]] = float(v)
            i += 1
        position += c
    return out


def _bracketed(data: "DataFrame", ranks: dict[Hashable, Sequence[int]], counts: dict[Hashable, int]
               ) -> dict[Hashable, dict[int, float]]:
    from pyspark.sql import functions as F

    fractions = sorted({min(1.0, max(0.0, f)) for g, rs in ranks.items() for r in rs
                        for f in (r / counts[g] - _MARGIN, (r + 1) / counts[g] + _MARGIN)})
    approx = {row["g"]: row["q"] for row in data.where(F.col("g").isin(list(ranks))).groupBy("g").agg(
        F.percentile_approx("v", fractions, ACCURACY).alias("q")).collect()}
    brackets = []
    for g, rs in ranks.items():
        q = dict(zip(fractions, approx[g]))
        for r in rs:
            low = q[min(1.0, max(0.0, r / counts[g] - _MARGIN))]
            high = q[min(1.0, max(0.0, (r + 1) / counts[g] + _MARGIN))]
            brackets.append((g, r, float(low), float(high)))
    spark = data.sparkSession
    table = spark.createDataFrame(brackets, "g " + data.schema["g"].dataType.simpleString()
                                  + ", r long, low double, high double")
    joined = data.join(F.broadcast(table), "g")
    below = {(row["g"], row["r"]): row["n"] for row in joined.groupBy("g", "r").agg(
        F.count(F.when(F.col("v") < F.col("low"), 1)).alias("n")).collect()}
    inside = joined.where((F.col("v") >= F.col("low")) & (F.col("v") <= F.col("high")))
    windows: dict[tuple[Hashable, int], list[tuple[float, int]]] = defaultdict(list)
    for row in inside.groupBy("g", "r", "v").count().collect():
        windows[(row["g"], row["r"])].append((row["v"], row["count"]))
    out: dict[Hashable, dict[int, float]] = defaultdict(dict)
    for g, r, _low, _high in brackets:
        got = _walk(sorted(windows[(g, r)]), below[(g, r)], [r])
        if r not in got:  # the bracket missed the rank (not expected): count every distinct value of the group
            everything = data.where(F.col("g") == g).groupBy("v").count().collect()
            got = _walk(sorted((row["v"], row["count"]) for row in everything), 0, [r])
        out[g][r] = got[r]
    return out


def quantiles(frame: "DataFrame", value: "Column", probabilities: Sequence[float], group: "Column | None" = None,
              counts: dict[Hashable, int] | None = None, median: bool = False) -> dict[Hashable, list[float]]:
    """Per group, np.quantile(values, probabilities) of the present values, exactly (``median``: np.median's
    mean of the two middle values instead of the linear rule)."""
    from pyspark.sql import functions as F

    if counts is None:
        key = group if group is not None else F.lit(0)
        counts = {row["g"]: row["n"] for row in frame.where(_present(value)).groupBy(key.alias("g"))
                  .agg(F.count(F.lit(1)).alias("n")).collect()}
    plans = {g: [_positions(n, q) for q in probabilities] for g, n in counts.items() if n > 0}
    ranks = {g: sorted({r for lo, hi, _t in plan for r in (lo, hi)}) for g, plan in plans.items()}
    values = order_statistics(frame, value, ranks, counts, group)
    out: dict[Hashable, list[float]] = {}
    for g, plan in plans.items():
        if median:
            n = counts[g]
            a, b = values[g][(n - 1) // 2], values[g][n // 2]
            out[g] = [float(np.mean([a, b])) if n % 2 == 0 else a]
        else:
            out[g] = [numpy_lerp(values[g][lo], values[g][hi], t) for lo, hi, t in plan]
    return out


def column_stats(frame: "DataFrame", columns: Sequence[str], group: "Column | None" = None
                 ) -> dict[Hashable, dict[str, dict[str, float]]]:
    """Per group and column: mean, median, min, max and std (ddof 0) of the present values, as
    ``training_job.segments`` reports them (NaN for a column with no value)."""
    from pyspark.sql import functions as F

    key = group if group is not None else F.lit(0)
    data = frame.select(key.alias("g"), *[F.col(c).cast("double").alias(c) for c in columns])
    aggs = []
    for c in columns:
        v = F.when(_present(F.col(c)), F.col(c))
        aggs += [F.count(v).alias(f"n_{c}"), F.sum(v).alias(f"s_{c}"), F.min(v).alias(f"lo_{c}"),
                 F.max(v).alias(f"hi_{c}")]
    first = {row["g"]: row for row in data.groupBy("g").agg(*aggs).collect()}
    means = {g: {c: (row[f"s_{c}"] / row[f"n_{c}"]) if row[f"n_{c}"] else math.nan for c in columns}
             for g, row in first.items()}
    spread_aggs = []
    mean_of = F.create_map(*[x for g in means for x in (F.lit(g), F.array(*[F.lit(means[g][c]) for c in columns]))])
    for i, c in enumerate(columns):
        centred = F.when(_present(F.col(c)), F.col(c) - mean_of[F.col("g")][i])
        spread_aggs.append(F.sum(centred * centred).alias(f"m2_{c}"))
    second = {row["g"]: row for row in data.groupBy("g").agg(*spread_aggs).collect()}
    out: dict[Hashable, dict[str, dict[str, float]]] = {}
    # Every column's medians in one job: the columns stacked, grouped by (group, column).
    stacked = data.select(F.col("g"), F.explode(F.array(*[F.struct(F.lit(i).alias("c"), F.col(c).alias("v"))
                                                          for i, c in enumerate(columns)])).alias("s"))
    stacked = stacked.select(F.concat_ws("|", F.col("g").cast("string"), F.col("s.c").cast("string")).alias("key"),
                             F.col("s.v").alias("v"))
    keyed = quantiles(stacked, F.col("v"), [0.5], F.col("key"),
                      {f"{g}|{i}": first[g][f"n_{c}"] for g in first for i, c in enumerate(columns)}, median=True)
    medians = {c: {g: keyed.get(f"{g}|{i}", [math.nan]) for g in first} for i, c in enumerate(columns)}
    for g, row in first.items():
        out[g] = {}
        for c in columns:
            n = row[f"n_{c}"]
            if not n:
                out[g][c] = {"mean": math.nan, "median": math.nan, "min": math.nan, "max": math.nan, "std": math.nan}
                continue
            out[g][c] = {"mean": float(means[g][c]), "median": float(medians[c][g][0]), "min": float(row[f"lo_{c}"]),
                         "max": float(row[f"hi_{c}"]), "std": float(math.sqrt(second[g][f"m2_{c}"] / n))}
    return out


class SparkStatistics:
    """``segmentation_core.features.NumericStatistics`` of one column of a (cached) Spark DataFrame.

    ``order``: the column that orders rows as the pandas path holds them (the first 5,000 rows decide
    whether a skewed column is more than two-valued). ``sample``: the column's values on the driver's sample,
    for the Yeo-Johnson lambda (a likelihood maximisation; every value when the table fits the sample).
    """

    def __init__(self, frame: "DataFrame", column: str, order: str, sample: Callable[[], np.ndarray]) -> None:
        from pyspark.sql import functions as F

        self.frame, self.column, self.order, self._sample = frame, column, order, sample
        self.value = F.col(column).cast("double")
        self._rows: int | None = None

    def _filled(self, median: float) -> "Column":
        from pyspark.sql import functions as F

        return F.when(_present(self.value), self.value).otherwise(F.lit(float(median)))

    def present(self) -> tuple[int, int, int, float, float]:
        from pyspark.sql import functions as F

        v = F.when(_present(self.value), self.value)
        row = self.frame.select(F.count(F.lit(1)).alias("rows"), F.count(v).alias("n"),
                                F.count(F.when(v.isin(float("inf"), float("-inf")), 1)).alias("inf"),
                                F.min(v).alias("lo"), F.max(v).alias("hi")).first()
        self._rows, self._present = row["rows"], row["n"]
        self._extremes = (row["lo"], row["hi"])
        if not row["n"]:
            return row["rows"], 0, 0, math.nan, math.nan
        return row["rows"], row["n"], row["inf"], float(row["lo"]), float(row["hi"])

    def median(self) -> float:
        return quantiles(self.frame, self.value, [0.5], counts={0: self._present}, median=True)[0][0]

    def _moments(self, value: "Column") -> tuple[int, float, float, float]:
        from pyspark.sql import functions as F

        first = self.frame.select(F.count(F.lit(1)).alias("n"), F.sum(value).alias("s")).first()
        n = first["n"]
        mean = first["s"] / n
        centred = value - F.lit(mean)
        second = self.frame.select(F.sum(centred * centred).alias("m2"), F.sum(centred * centred * centred)
                                   .alias("m3")).first()
        return n, float(mean), float(second["m2"]), float(second["m3"])

    def filled_skewness(self, median: float) -> float:
        n, _mean, m2, m3 = self._moments(self._filled(median))
        sd = math.sqrt(m2 / n)
        return 0.0 if sd == 0 else float((m3 / n) / sd ** 3)

    def head_has_more_than_two_values(self, median: float) -> bool:
        from pyspark.sql import functions as F

        head = self.frame.orderBy(self.order).limit(5000).select(self._filled(median).alias("v"))
        return head.agg(F.countDistinct("v")).first()[0] > 2

    def yeojohnson_lambda(self, median: float) -> float:
        return ArrayStatistics(self._sample()).yeojohnson_lambda(median)

    def _range(self, median: float) -> tuple[float, float]:
        low, high = (float(v) for v in self._extremes)
        if self._present < (self._rows or 0):  # the imputed median joins the values
            low, high = min(low, median), max(high, median)
        return low, high

    def transformed_range(self, median: float, method: str, lam: float) -> tuple[float, float]:
        # The skew transforms are increasing: the transformed extremes are the extremes transformed.
        low, high = _skew_forward(np.array(self._range(median)), method, lam)
        return float(low), float(high)

    def transformed_quartiles(self, median: float, method: str, lam: float) -> tuple[float, float]:
        # Increasing, so the order statistics of the transformed column are those of the column, transformed
        # (by numpy, as the pandas path transforms them); then numpy's interpolation in the transformed space.
        n = self._rows or 0
        plan = [_positions(n, q) for q in (0.25, 0.75)]
        ranks = sorted({r for lo, hi, _t in plan for r in (lo, hi)})
        found = order_statistics(self.frame, self._filled(median), {0: ranks}, {0: n})[0]
        transformed = dict(zip(ranks, _skew_forward(np.array([found[r] for r in ranks]), method, lam)))
        q1, q3 = (numpy_lerp(transformed[lo], transformed[hi], t) for lo, hi, t in plan)
        return q1, q3

    def final_moments(self, median: float, low: float, high: float, method: str, lam: float) -> tuple[float, float]:
        from pyspark.sql import functions as F

        clipped = F.least(F.greatest(self._filled(median), F.lit(low)), F.lit(high))
        n, mean, m2, _m3 = self._moments(_forward(clipped, method, lam))
        return mean, math.sqrt(m2 / n)


def _forward(value: "Column", method: str, lam: float) -> "Column":
    """The skew transform as a Spark expression (the formulas of segmentation_core.features)."""
    from pyspark.sql import functions as F

    if method == "log1p":
        return F.log1p(value)
    if method == "yeo-johnson":
        positive = F.log1p(value) if abs(lam) < 1e-12 else (F.pow(value + 1.0, F.lit(lam)) - 1.0) / lam
        negative = (-F.log1p(-value) if abs(lam - 2.0) < 1e-12
                    else -(F.pow(1.0 - value, F.lit(2.0 - lam)) - 1.0) / (2.0 - lam))
        return F.when(value >= 0, positive).otherwise(negative)
    return value


