"""The drift reports of several scoring replicas made into one per model version.

Each replica counts only the rows it scored. Their reports of one version are combined by adding what
they counted (live rows per bin of every feature and of the segment mix, rows, row errors, binned rows,
confidence, distance and outlier sums) and assessing the sums again with the one implementation of PSI,
bands and verdict, ``segmentation_core.drift.assess_histograms``: the combined report is the report one
server would give for all that traffic. The window's slices of every replica are listed together in time
order (each slice is one replica's). Reports of different versions are never added: :func:`by_version`
groups them first.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from scoring_service.client.types import DriftReport, DriftVerdict, FeatureDrift, VersionDrift
from segmentation_core.drift import (INSUFFICIENT_DATA, MODERATE, RETRAIN, STABLE, Baseline, DriftThresholds,
                                     Histogram, HistogramDrift, assess_histograms)

__all__ = ["by_version", "combine"]

_VERDICTS = {STABLE: DriftVerdict.STABLE, MODERATE: DriftVerdict.MODERATE, RETRAIN: DriftVerdict.RETRAIN,
             INSUFFICIENT_DATA: DriftVerdict.INSUFFICIENT_DATA}


def by_version(answers: Sequence[tuple[str, DriftReport]]) -> list[VersionDrift]:
    """(replica, report) pairs grouped by model version, each group combined; the version on the most
    replicas first, then the newest."""
    groups: dict[tuple[str, str], list[tuple[str, DriftReport]]] = {}
    for replica, report in answers:
        groups.setdefault((report.model, report.version), []).append((replica, report))
    ordered = sorted(groups.items(), key=lambda item: (len(item[1]), item[0][1]), reverse=True)
    return [VersionDrift(combine([r for _name, r in group]), tuple(name for name, _r in group))
            for _key, group in ordered]


def _histogram(features: Sequence[FeatureDrift]) -> Histogram:
    """One feature's bins with the live counts of every replica added; ValueError when they differ."""
    first = features[0]
    live = np.zeros(len(first.bins), dtype=np.int64)
    for f in features:
        if f.feature != first.feature or f.bins != first.bins:
            raise ValueError(f"feature {first.feature!r}: the replicas' reports have different bins")
        if len(f.live_counts) != len(f.bins):
            raise ValueError(f"feature {f.feature!r}: a replica sent no live counts (a server older than "
                             "DriftReport's raw counts); its report cannot be combined")
        live += np.asarray(f.live_counts, dtype=np.int64)
    return Histogram(first.feature, first.kind, first.bins, np.asarray(first.training_share), live, first.edges)


def _feature(h: HistogramDrift) -> FeatureDrift:
    counts = tuple(int(c) for c in h.live_counts) if h.live_counts is not None else ()
    return FeatureDrift(h.name, h.kind, h.psi, h.band, h.labels, tuple(h.training.tolist()), tuple(h.live.tolist()),
                        tuple(h.edges), h.training_missing_rate, h.live_missing_rate, h.live_unseen_rate, counts)


def combine(reports: Sequence[DriftReport]) -> DriftReport:
    """One report of a model version from its replicas' reports (ValueError for reports of different
    versions or bins)."""
    first = reports[0]
    if any((r.model, r.version) != (first.model, first.version) for r in reports):
        raise ValueError("only reports of one model version combine; group them with by_version")
    if len(reports) == 1 or not first.has_reference:
        return first
    counted = [r for r in reports if r.segment_mix is not None]  # replicas that scored rows of this version
    rows, errors = sum(r.rows for r in reports), sum(r.row_errors for r in reports)
    window_rows_limit = sum(r.window_rows_limit for r in reports)
    if not counted:
        return replace(first, rows=rows, row_errors=errors, window_rows_limit=window_rows_limit)
    features = [_histogram([r.features[i] for r in counted]) for i in range(len(counted[0].features))]
    if any(len(r.features) != len(features) for r in counted):
        raise ValueError("the replicas' reports have different features")
    segments = _histogram([r.segment_mix for r in counted])  # type: ignore[misc]
    base = counted[0]
    binned = sum(r.sampled_rows for r in counted)
    assessment = assess_histograms(
        features, segments, Baseline(base.training_mean_confidence, base.training_mean_distance,
                                     base.training_outlier_rate),
        rows, sum(r.confidence_sum for r in counted), sum(r.distance_sum for r in counted),
        sum(r.outliers for r in counted), DriftThresholds(min_rows=max(r.min_rows for r in reports) or 1000),
        binned_rows=binned)
    return replace(
        base, verdict=_VERDICTS[assessment.verdict], reasons=assessment.reasons, rows=rows, row_errors=errors,
        sampled_rows=binned, window_start=min(r.window_start for r in counted),
        window_end=max(r.window_end for r in counted), window_rows_limit=window_rows_limit,
        features=tuple(_feature(h) for h in assessment.features), segment_mix=_feature(assessment.segments),
        mean_confidence=assessment.mean_confidence, mean_distance=assessment.mean_distance,
        outlier_rate=assessment.outlier_rate, slices=tuple(sorted((s for r in counted for s in r.slices),
                                                                  key=lambda s: (s.start_time, s.end_time))),
        confidence_sum=sum(r.confidence_sum for r in counted), distance_sum=sum(r.distance_sum for r in counted),
        outliers=sum(r.outliers for r in counted))
