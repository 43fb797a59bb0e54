"""Drift measures: live counts against the training reference -> PSI per feature, segment mix, rates, verdict.

PSI (population stability index) of a histogram: ``sum_i (a_i - e_i) * ln(a_i / e_i)`` over the bins,
``e`` the training shares and ``a`` the live shares; a share of 0 counts as ``PSI_FLOOR`` (as Evidently and
most PSI implementations do) so an empty bin gives a large but finite term. Every feature's histogram
includes its "missing" bin (and for categories "other" and "unseen"), so a feature that goes missing or
meets new levels drifts too. Usual bands: below 0.1 stable, 0.1 to 0.25 moderate, 0.25 and above major.

The verdict, from the most to the least serious:
- ``insufficient_data``: fewer than ``min_rows`` rows were binned (PSI of a few rows is noise);
- ``retrain``: some feature's or the segment mix's PSI is major, or the outlier rate has more than doubled
  (and risen by at least ``outlier_rise`` absolute), or the mean confidence dropped by ``confidence_drop``;
- ``moderate``: some PSI is moderate, or a categorical feature meets unseen levels on ``unseen_rate`` of rows;
- ``stable``: none of these.
Each reason is one sentence naming the feature and the figures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from segmentation_core.number_format import format_number, number_kind

if TYPE_CHECKING:  # the server's windows only: combining replicas' reports (the client) needs numpy alone
    from segmentation_core.reference import BinLayout, Reference

PSI_FLOOR = 1e-4
MODERATE_PSI = 0.1
MAJOR_PSI = 0.25
STABLE, MODERATE, RETRAIN, INSUFFICIENT_DATA = "stable", "moderate", "retrain", "insufficient_data"


@dataclass(frozen=True)
class DriftThresholds:
    """When the verdict changes (see the module docstring)."""

    min_rows: int = 1000
    moderate_psi: float = MODERATE_PSI
    major_psi: float = MAJOR_PSI
    confidence_drop: float = 0.1
    outlier_rise: float = 0.02
    unseen_rate: float = 0.05


@dataclass(frozen=True)
class HistogramDrift:
    """One feature's (or the segment mix's) live and training histograms and their PSI."""

    name: str
    kind: str  # numeric | categorical | segment
    labels: tuple[str, ...]
    training: np.ndarray  # shares, summing to 1
    live: np.ndarray  # shares (all 0 before any row)
    psi: float
    band: str
    edges: tuple[float, ...] = ()
    training_missing_rate: float = 0.0
    live_missing_rate: float = 0.0
    live_unseen_rate: float = 0.0
    live_counts: np.ndarray | None = None  # the live rows per bin (None: not known)


@dataclass(frozen=True)
class DriftAssessment:
    """Everything a drift report says about one window of live rows."""

    rows: int
    features: tuple[HistogramDrift, ...]
    segments: HistogramDrift
    mean_confidence: float
    training_mean_confidence: float
    mean_distance: float
    training_mean_distance: float
    outlier_rate: float
    training_outlier_rate: float
    verdict: str
    reasons: tuple[str, ...]


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts as shares of their total (zeros when the total is 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two histograms over the same bins (counts or shares); NaN when either is empty."""
    e, a = shares(expected), shares(actual)
    if not e.any() or not a.any():
        return math.nan
    e = np.where(e > 0, e, PSI_FLOOR)
    a = np.where(a > 0, a, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def band(value: float, thresholds: DriftThresholds = DriftThresholds()) -> str:
    """"stable", "moderate" or "major" for a PSI (NaN: "stable", nothing to compare yet)."""
    if value >= thresholds.major_psi:
        return "major"
    return "moderate" if value >= thresholds.moderate_psi else "stable"


def numeric_labels(edges: Sequence[float], name: str = "") -> tuple[str, ...]:
    """Bin labels of the numeric feature ``name``: ``<= e1``, ``e1 - e2`` ..., ``> e_last``, then the missing
    bin; the edges written as the dashboard writes numbers (a year-like feature's without separators)."""
    from segmentation_core.reference import MISSING

    if not edges:
        return ("all", MISSING)
    kind = number_kind(name, edges)
    written = [format_number(edge, kind) for edge in edges]
    inner = [f"{lo} - {hi}" for lo, hi in zip(written, written[1:])]
    return (f"<= {written[0]}", *inner, f"> {written[-1]}", MISSING)


@dataclass(frozen=True)
class Histogram:
    """One feature's (or the segment mix's) bins: training counts or shares, live counts."""

    name: str
    kind: str  # numeric | categorical | segment
    labels: tuple[str, ...]
    training: np.ndarray
    live: np.ndarray
    edges: tuple[float, ...] = ()


@dataclass(frozen=True)
class Baseline:
    """The training figures the live rates are compared with."""

    mean_confidence: float
    mean_distance: float
    outlier_rate: float


def assess(reference: Reference, layout: BinLayout, counts: np.ndarray, rows: int, confidence_sum: float,
           distance_sum: float, outliers: int, segment_names: Sequence[str],
           thresholds: DriftThresholds = DriftThresholds(), binned_rows: int | None = None) -> DriftAssessment:
    """Compare live counts (in ``layout`` order, over ``rows`` rows, of which ``binned_rows`` had their
    features binned: all by default) with the reference."""
    from segmentation_core.reference import MISSING, OTHER, UNSEEN

    training = reference.training_counts()
    features = []
    for (name, kind, part), ref in zip(layout.slices(), [*reference.numeric, *reference.categorical]):
        if kind == "numeric":
            features.append(Histogram(name, kind, numeric_labels(ref.edges, name), training[part], counts[part],
                                      tuple(ref.edges)))
        else:
            features.append(Histogram(name, kind, (*ref.levels, OTHER, UNSEEN, MISSING), training[part], counts[part]))
    part = layout.slices()[-1][2]
    k = part.stop - part.start
    names = tuple(segment_names[i] if i < len(segment_names) else f"segment {i}" for i in range(k))
    segments = Histogram("segment", "segment", names, training[part], counts[part])
    baseline = Baseline(reference.mean_confidence, reference.mean_distance, reference.outlier_rate)
    return assess_histograms(features, segments, baseline, rows, confidence_sum, distance_sum, outliers,
                             thresholds, binned_rows)


def assess_histograms(features: Sequence[Histogram], segments: Histogram, baseline: Baseline, rows: int,
                      confidence_sum: float, distance_sum: float, outliers: int,
                      thresholds: DriftThresholds = DriftThresholds(), binned_rows: int | None = None
                      ) -> DriftAssessment:
    """The assessment of live histograms and sums against training ones: what :func:`assess` computes for one
    server's window, and what combining the windows of several replicas (their counts added) computes."""
    drifts = []
    for h in features:
        e, a = np.asarray(h.training, dtype=np.float64), np.asarray(h.live)
        value = psi(e, a)
        extra = {"edges": h.edges} if h.kind == "numeric" else {"live_unseen_rate": float(shares(a)[-2])}
        drifts.append(HistogramDrift(name=h.name, kind=h.kind, labels=h.labels, training=shares(e), live=shares(a),
                                     psi=value, band=band(value, thresholds),
                                     training_missing_rate=float(shares(e)[-1]),
                                     live_missing_rate=float(shares(a)[-1]), live_counts=a, **extra))
    seg_psi = psi(segments.training, segments.live)
    mix = HistogramDrift(name="segment", kind="segment", labels=segments.labels, training=shares(segments.training),
                         live=shares(segments.live), psi=seg_psi, band=band(seg_psi, thresholds),
                         live_counts=np.asarray(segments.live))
    live_conf = confidence_sum / rows if rows else math.nan
    live_dist = distance_sum / rows if rows else math.nan
    live_outliers = outliers / rows if rows else math.nan
    binned = rows if binned_rows is None else binned_rows
    verdict, reasons = _verdict(baseline, drifts, mix, binned, live_conf, live_outliers, thresholds)
    return DriftAssessment(rows=rows, features=tuple(drifts), segments=mix, mean_confidence=live_conf,
                           training_mean_confidence=baseline.mean_confidence, mean_distance=live_dist,
                           training_mean_distance=baseline.mean_distance, outlier_rate=live_outliers,
                           training_outlier_rate=baseline.outlier_rate, verdict=verdict, reasons=tuple(reasons))


def _verdict(baseline: Baseline, features: Sequence[HistogramDrift], segments: HistogramDrift, rows: int,
             confidence: float, outlier_rate: float, t: DriftThresholds) -> tuple[str, list[str]]:
    if rows < t.min_rows:
        return INSUFFICIENT_DATA, [f"only {rows} rows in the window's histograms; the verdict needs at least "
                                   f"{t.min_rows}"]
    major, moderate = [], []
    for h in [*sorted(features, key=lambda h: -h.psi), segments]:
        what = "segment mix" if h.kind == "segment" else f"feature {h.name!r}"
        if h.band == "major":
            major.append(f"{what}: PSI {h.psi:.3f} >= {t.major_psi} (major shift)")
        elif h.band == "moderate":
            moderate.append(f"{what}: PSI {h.psi:.3f} >= {t.moderate_psi} (moderate shift)")
    base_outliers = baseline.outlier_rate
    if outlier_rate > 2 * base_outliers and outlier_rate - base_outliers >= t.outlier_rise:
        major.append(f"outlier rate {outlier_rate:.1%} against {base_outliers:.1%} in training")
    if baseline.mean_confidence - confidence >= t.confidence_drop:
        major.append(f"mean confidence {confidence:.3f} against {baseline.mean_confidence:.3f} in training")
    for h in features:
        if h.kind == "categorical" and h.live_unseen_rate >= t.unseen_rate:
            moderate.append(f"feature {h.name!r}: {h.live_unseen_rate:.1%} of rows have a level training never saw")
    if major:
        return RETRAIN, major + moderate
    if moderate:
        return MODERATE, moderate
    return STABLE, [f"every PSI below {t.moderate_psi}; outlier rate and confidence as in training"]
