"""The drift reference: what the training data looked like, on fixed bins, stored in the manifest.

Written by the training job (manifest key ``reference``), read by the scoring service, which counts its
live traffic on exactly the same bins (:class:`BinLayout`, the one place that turns values into bins):

- numeric feature: quantile bins of the training values (at most ``MAX_BINS``; cut points at the
  ``i/bins`` quantiles, duplicates merged, so a discrete feature gets fewer bins). Bin ``i`` holds
  ``edges[i-1] < x <= edges[i]``, the first and last bins are open. Missing values (NaN, or the column
  absent) are counted apart.
- categorical feature: the ``MAX_LEVELS`` most frequent training levels, one bin each, then "other"
  (the training's rarer levels), "unseen" (a level training never saw) and "missing".
- the segment counts; and baselines: mean confidence, mean distance, outlier rate, and per feature the
  missing-value rate and unseen-category rate of the training rows.

Counts, not shares, are stored, so the numbers are exact and shares follow. No pandas: the scoring
server imports this module.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from segmentation_core.features import FeatureSchema, _category_label
from segmentation_core.segment_model import SegmentModel

REFERENCE_FORMAT = 1
DEFAULT_BINS = 10
MAX_BINS = 50
MAX_LEVELS = 20
OTHER, UNSEEN, MISSING = "(other)", "(unseen)", "(missing)"


@dataclass(frozen=True)
class NumericReference:
    """A numeric feature's training histogram: ``len(edges) + 1`` bins, plus the missing count."""

    name: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    missing: int


@dataclass(frozen=True)
class CategoricalReference:
    """A categorical feature's training level counts: top levels, then other, unseen, missing."""

    name: str
    levels: tuple[str, ...]
    counts: tuple[int, ...]  # one per level
    other: int
    unseen: int
    missing: int


@dataclass(frozen=True)
class Reference:
    """The training distribution of every feature, the segment counts and the baselines."""

    rows: int
    bins: int
    numeric: tuple[NumericReference, ...]
    categorical: tuple[CategoricalReference, ...]
    segment_counts: tuple[int, ...]
    mean_confidence: float
    mean_distance: float
    outlier_rate: float

    def training_counts(self) -> np.ndarray:
        """The training rows' counts in :attr:`layout` order."""
        parts: list[Sequence[int]] = []
        for f in self.numeric:
            parts += [f.counts, [f.missing]]
        for c in self.categorical:
            parts += [c.counts, [c.other, c.unseen, c.missing]]
        parts.append(self.segment_counts)
        return np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``reference`` value (JSON)."""
        return {
            "format": REFERENCE_FORMAT, "rows": self.rows, "bins": self.bins,
            "numeric": [{"name": f.name, "edges": list(f.edges), "counts": list(f.counts), "missing": f.missing}
                        for f in self.numeric],
            "categorical": [{"name": c.name, "levels": list(c.levels), "counts": list(c.counts), "other": c.other,
                             "unseen": c.unseen, "missing": c.missing} for c in self.categorical],
            "segments": {"counts": list(self.segment_counts)},
            "baseline": {"mean_confidence": self.mean_confidence, "mean_distance": self.mean_distance,
                         "outlier_rate": self.outlier_rate},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Reference":
        """Rebuild from :meth:`to_dict`; raises ValueError naming what is malformed or out of bounds."""
        try:
            if data.get("format") != REFERENCE_FORMAT:
                raise ValueError(f"reference format {data.get('format')!r} is not {REFERENCE_FORMAT}")
            numeric = tuple(NumericReference(str(f["name"]), tuple(float(e) for e in f["edges"]),
                                             tuple(int(c) for c in f["counts"]), int(f["missing"]))
                            for f in data["numeric"])
            categorical = tuple(CategoricalReference(str(c["name"]), tuple(str(v) for v in c["levels"]),
                                                     tuple(int(n) for n in c["counts"]), int(c["other"]),
                                                     int(c["unseen"]), int(c["missing"]))
                                for c in data["categorical"])
            base = data["baseline"]
            reference = cls(rows=int(data["rows"]), bins=int(data["bins"]), numeric=numeric, categorical=categorical,
                            segment_counts=tuple(int(n) for n in data["segments"]["counts"]),
                            mean_confidence=float(base["mean_confidence"]),
                            mean_distance=float(base["mean_distance"]), outlier_rate=float(base["outlier_rate"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed reference: {type(exc).__name__} {exc}") from exc
        reference.check()
        return reference

    def check(self) -> None:
        """Raise ValueError unless every histogram is consistent and within the bounds."""
        for f in self.numeric:
            if len(f.edges) + 1 > MAX_BINS or len(f.counts) != len(f.edges) + 1:
                raise ValueError(f"reference of {f.name!r}: {len(f.counts)} counts for {len(f.edges)} edges "
                                 f"(at most {MAX_BINS} bins)")
            if list(f.edges) != sorted(set(f.edges)) or not all(math.isfinite(e) for e in f.edges):
                raise ValueError(f"reference of {f.name!r}: edges are not finite and strictly increasing")
        for c in self.categorical:
            if len(c.levels) > MAX_LEVELS or len(c.counts) != len(c.levels):
                raise ValueError(f"reference of {c.name!r}: {len(c.counts)} counts for {len(c.levels)} levels "
                                 f"(at most {MAX_LEVELS})")
        if min(self.training_counts(), default=0) < 0:
            raise ValueError("reference holds a negative count")


class BinLayout:
    """Where each bin of each feature sits in one flat count vector, and how values are binned.

    Order: per numeric feature its value bins then "missing"; per categorical feature its top levels,
    "other", "unseen", "missing"; then one bin per segment. Training and serving both count through
    :meth:`count_batch` (and :meth:`row_bins` for one customer), so the bins cannot disagree.
    """

    def __init__(self, reference: Reference, schema: FeatureSchema) -> None:
        self.reference = reference
        self.schema = schema
        offset = 0
        self.numeric: list[tuple[str, np.ndarray, list[float], int]] = []  # name, edges + [inf], edges, offset
        for f in reference.numeric:
            self.numeric.append((f.name, np.array([*f.edges, math.inf]), list(f.edges), offset))
            offset += len(f.edges) + 2
        self.categorical: list[tuple[str, int, int]] = []  # name, offset, number of top levels
        for c in reference.categorical:
            self.categorical.append((c.name, offset, len(c.levels)))
            offset += len(c.levels) + 3
        self.segment_offset = offset
        self.size = offset + len(reference.segment_counts)
        widest = max((len(edges) for _n, _x, edges, _o in self.numeric), default=0)
        self._edge_matrix = np.full((len(self.numeric), widest), np.inf)  # rows padded with +inf: never below x
        for j, (_name, _ext, edges, _offset) in enumerate(self.numeric):
            self._edge_matrix[j, :len(edges)] = edges
        self._missing_bins = np.array([[len(edges) + 1] for _n, _x, edges, _o in self.numeric], dtype=np.int64)
        self._numeric_offsets = np.array([[offset] for *_rest, offset in self.numeric], dtype=np.int64)
        self._lookups = {name: self._code_lookup(name, offset, top) for name, offset, top in self.categorical}
        self._level_bins = {name: self._levels_to_bins(name, offset, top) for name, offset, top in self.categorical}

    def slices(self) -> list[tuple[str, str, slice]]:
        """(name, kind, slice of the count vector) for each feature and for the segments (kind "segment")."""
        out = [(name, "numeric", slice(off, off + len(edges) + 2)) for name, _e, edges, off in self.numeric]
        out += [(name, "categorical", slice(off, off + top + 3)) for name, off, top in self.categorical]
        out.append(("segment", "segment", slice(self.segment_offset, self.size)))
        return out

    def _schema_levels(self, name: str) -> tuple[str, ...]:
        return next((c.levels for c in self.schema.categorical if c.name == name), ())

    def _top_levels(self, name: str) -> dict[str, int]:
        ref = next(c for c in self.reference.categorical if c.name == name)
        return {level: i for i, level in enumerate(ref.levels)}

    def _code_lookup(self, name: str, offset: int, top: int) -> np.ndarray:
        """Bin of each transform code (see ``FeatureSchema.transform_columns``), at index ``code + 2``."""
        tops = self._top_levels(name)
        levels = self._schema_levels(name)
        lookup = np.empty(len(levels) + 2, dtype=np.int64)
        lookup[0] = offset + top + 2  # code -2: missing
        lookup[1] = offset + top + 1  # code -1: unseen
        for code, level in enumerate(levels):
            lookup[code + 2] = offset + tops.get(level, top)  # a training level beyond the top ones: other
        return lookup

    def _levels_to_bins(self, name: str, offset: int, top: int) -> dict[str | None, int]:
        """Bin of each label (None = missing) for :meth:`row_bins`; a label absent from it is unseen."""
        tops = self._top_levels(name)
        out: dict[str | None, int] = {level: offset + tops.get(level, top) for level in self._schema_levels(name)}
        out[None] = offset + top + 2
        return out

    def count_batch(self, numeric: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray], segment: np.ndarray,
                    n: int, keep: np.ndarray | None = None, sample: np.ndarray | slice | None = None,
                    segment_counts: np.ndarray | None = None) -> np.ndarray:
        """Counts of a batch of ``n`` rows: the segments of the ``keep`` rows (None: all; e.g. those without
        errors) and the features of the ``sample`` rows (None: the ``keep`` rows; row indices or a slice,
        a subset of ``keep``).

        ``numeric``: raw columns (NaN = missing; an absent feature is missing on every row); ``codes``: the
        category codes the transform returned; ``segment``: the segment of every row (``segment_counts``:
        the ``keep`` rows' counts per segment, when the caller has them already).
        """
        rows = keep if sample is None else sample
        binned = n if rows is None else len(range(n)[rows]) if isinstance(rows, slice) else len(rows)
        counts = np.zeros(self.size, dtype=np.int64)
        parts = []
        columns = [numeric.get(name) for name, *_ in self.numeric]
        if not binned:
            pass  # nothing sampled from this batch: its segments only
        elif self.numeric and all(c is not None for c in columns):
            parts.append(self._bin_numeric_block([c for c in columns if c is not None], rows, binned))
        else:
            parts += self._bin_numeric_columns(numeric, rows, binned, counts)
        for name, offset, top in self.categorical if binned else ():
            code = codes.get(name)
            if code is None:
                counts[offset + top + 2] += binned
                continue
            parts.append(self._lookups[name].take((code if rows is None else _rows_of(code, rows)) + 2))
        if parts:
            counts[:self.segment_offset] += np.bincount(np.concatenate(parts), minlength=self.segment_offset)
        if segment_counts is None:
            seg = segment if keep is None else segment.take(keep)
            segment_counts = np.bincount(seg, minlength=self.size - self.segment_offset)
        counts[self.segment_offset:] += segment_counts
        return counts

    def _bin_numeric_block(self, columns: list[np.ndarray], rows: np.ndarray | slice | None,
                           binned: int) -> np.ndarray:
        """Flat bin indices of every numeric feature of the ``rows``, branch-free.

        The bin of ``x`` is the number of edges below it (``searchsorted(edges, x, side="left")``), counted
        as a sum of comparisons against each edge over the whole features x rows block: a binary search
        per value mispredicts branches and cost about twice as much on changing data (measured). NaN
        compares False everywhere and is sent to the missing bin afterwards.
        """
        block = np.empty((len(columns), binned), dtype=np.float64)
        for j, col in enumerate(columns):
            if rows is None:
                block[j] = col
            elif isinstance(rows, slice):
                block[j] = col[rows]  # a strided copy: cheaper than a gather
            else:
                np.take(col, rows, out=block[j])
        acc = np.zeros(block.shape, dtype=np.uint8)  # at most MAX_BINS - 1 edges below a value
        above = np.empty(block.shape, dtype=np.bool_)
        for i in range(self._edge_matrix.shape[1]):
            np.greater(block, self._edge_matrix[:, i:i + 1], out=above)
            np.add(acc, above, out=acc)
        nan = np.isnan(block, out=above)
        if nan.any():
            np.copyto(acc, np.broadcast_to(self._missing_bins, acc.shape), where=nan, casting="unsafe")
        return np.add(acc, self._numeric_offsets, dtype=np.int64).reshape(-1)

    def _bin_numeric_columns(self, numeric: Mapping[str, np.ndarray], rows: np.ndarray | slice | None, binned: int,
                             counts: np.ndarray) -> list[np.ndarray]:
        """:meth:`_bin_numeric_block` one feature at a time, for a batch without some numeric feature."""
        parts = []
        for name, edges, _edges, offset in self.numeric:
            col = numeric.get(name)
            if col is None:
                counts[offset + len(edges)] += binned  # the missing bin
                continue
            idx = np.searchsorted(edges, col if rows is None else _rows_of(col, rows))  # NaN sorts last: missing
            idx += offset
            parts.append(idx)
        return parts

    def row_bins(self, numbers: Mapping[str, float], categories: Mapping[str, str], segment: int) -> list[int]:
        """The bins of one customer (pure Python, for the single-row path)."""
        bins = []
        for name, _ext, edges, offset in self.numeric:
            v = numbers.get(name)
            bins.append(offset + (len(edges) + 1 if v is None or v != v else bisect.bisect_left(edges, v)))
        for name, offset, top in self.categorical:
            bins.append(self._level_bins[name].get(_category_label(categories.get(name)), offset + top + 1))
        bins.append(self.segment_offset + segment)
        return bins


def _rows_of(values: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    return values[rows] if isinstance(rows, slice) else values.take(rows)


def quantile_edges(values: np.ndarray, bins: int) -> tuple[float, ...]:
    """Interior cut points at the ``i/bins`` quantiles of the present values, duplicates merged."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return ()
    cuts = np.quantile(present, np.arange(1, bins) / bins)
    return tuple(float(c) for c in np.unique(cuts))


def build_reference(schema: FeatureSchema, model: SegmentModel, numeric: Mapping[str, np.ndarray],
                    categorical: Mapping[str, Sequence[Any]], bins: int = DEFAULT_BINS) -> Reference:
    """The reference of the training rows (raw feature columns, as the service will receive them)."""
    if not 2 <= bins <= MAX_BINS:
        raise ValueError(f"bins={bins} should be in 2..{MAX_BINS}")
    n = len(next(iter(numeric.values()))) if numeric else len(next(iter(categorical.values())))
    numeric = {name: np.asarray(values, dtype=np.float64) for name, values in numeric.items()}
    codes: dict[str, np.ndarray] = {}
    x, errors = schema.transform_columns(numeric, categorical, n, category_codes=codes)
    if errors:
        row = min(errors)
        raise ValueError(f"row {row}: {errors[row]}")
    scores = model.score(x)
    skeleton = Reference(
        rows=n, bins=bins,
        numeric=tuple(NumericReference(f.name, quantile_edges(numeric[f.name], bins), (), 0) for f in schema.numeric),
        categorical=tuple(CategoricalReference(c.name, c.levels[:MAX_LEVELS], (), 0, 0, 0) for c in schema.categorical),
        segment_counts=(), mean_confidence=float(np.mean(scores.confidence)),
        mean_distance=float(np.mean(scores.distance)), outlier_rate=float(np.mean(scores.outlier)))
    layout = BinLayout(Reference(**{**skeleton.__dict__, "segment_counts": (0,) * model.k}), schema)
    counts = layout.count_batch(numeric, codes, scores.segment, n)
    slices = dict((name, s) for name, _kind, s in layout.slices())
    numeric_refs = tuple(NumericReference(f.name, f.edges, tuple(int(v) for v in counts[slices[f.name]][:-1]),
                                          int(counts[slices[f.name]][-1])) for f in skeleton.numeric)
    categorical_refs = []
    for c in skeleton.categorical:
        part = [int(v) for v in counts[slices[c.name]]]
        categorical_refs.append(CategoricalReference(c.name, c.levels, tuple(part[:-3]), *part[-3:]))
    reference = Reference(rows=n, bins=bins, numeric=numeric_refs, categorical=tuple(categorical_refs),
                          segment_counts=tuple(int(v) for v in counts[slices["segment"]]),
                          mean_confidence=skeleton.mean_confidence, mean_distance=skeleton.mean_distance,
                          outlier_rate=skeleton.outlier_rate)
    reference.check()
    return reference
