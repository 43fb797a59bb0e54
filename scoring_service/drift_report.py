"""Conversion of a drift assessment (``segmentation_core.drift``) and its window to the DriftReport message."""
from __future__ import annotations

import math

from scoring_service.drift_window import WindowTotals
from segmentation.v1 import scoring_pb2 as pb
from segmentation_core.drift import INSUFFICIENT_DATA, MODERATE, RETRAIN, STABLE, DriftAssessment, HistogramDrift
from segmentation_core.reference import Reference

VERDICTS = {STABLE: pb.DRIFT_VERDICT_STABLE, MODERATE: pb.DRIFT_VERDICT_MODERATE, RETRAIN: pb.DRIFT_VERDICT_RETRAIN,
            INSUFFICIENT_DATA: pb.DRIFT_VERDICT_INSUFFICIENT_DATA}
NO_REFERENCE = ("no reference for this version: it was published before drift monitoring existed; "
                "retrain (or republish) the model to get one")
ACCOUNTING_OFF = "drift accounting is off on this server (--drift-window-rows 0)"


def _feature(h: HistogramDrift) -> pb.FeatureDrift:
    return pb.FeatureDrift(feature=h.name, kind=h.kind, psi=h.psi, band=h.band, bins=list(h.labels),
                           training_share=h.training.tolist(), live_share=h.live.tolist(), edges=list(h.edges),
                           training_missing_rate=h.training_missing_rate, live_missing_rate=h.live_missing_rate,
                           live_unseen_rate=h.live_unseen_rate,
                           live_counts=h.live_counts.tolist() if h.live_counts is not None else [])


def build(model: str, version: str, reference: Reference | None, assessment: DriftAssessment | None,
          totals: WindowTotals | None, window_rows: int, window_seconds: float, accounting_on: bool,
          min_rows: int = 0) -> pb.DriftReport:
    """The report of one version (``reference`` None: a version published without one; ``min_rows``: the
    verdict's least number of binned rows)."""
    report = pb.DriftReport(model=model, version=version, has_reference=reference is not None,
                            window_rows_limit=window_rows, window_seconds_limit=window_seconds, min_rows=min_rows)
    if reference is None:
        report.verdict = pb.DRIFT_VERDICT_NO_REFERENCE
        report.reasons.append(NO_REFERENCE)
        return report
    report.training_rows = reference.rows
    report.reference_bins = reference.bins
    if assessment is None or totals is None:
        report.verdict = pb.DRIFT_VERDICT_INSUFFICIENT_DATA
        report.reasons.append(ACCOUNTING_OFF if not accounting_on else "no rows scored yet")
        report.training_mean_confidence = reference.mean_confidence
        report.training_mean_distance = reference.mean_distance
        report.training_outlier_rate = reference.outlier_rate
        return report
    a = assessment
    report.verdict = VERDICTS[a.verdict]
    report.reasons.extend(a.reasons)
    report.rows, report.row_errors, report.sampled_rows = totals.rows, totals.errors, totals.binned
    report.confidence_sum, report.distance_sum = totals.confidence_sum, totals.distance_sum
    report.outliers = totals.outliers
    report.window_start, report.window_end = totals.start, totals.end
    report.features.extend(_feature(h) for h in a.features)
    report.segment_mix.CopyFrom(_feature(a.segments))
    report.mean_confidence, report.training_mean_confidence = a.mean_confidence, a.training_mean_confidence
    report.mean_distance, report.training_mean_distance = a.mean_distance, a.training_mean_distance
    report.outlier_rate, report.training_outlier_rate = a.outlier_rate, a.training_outlier_rate
    seg = slice(len(totals.counts) - len(reference.segment_counts), len(totals.counts))
    for s in totals.slices:
        report.slices.append(pb.DriftSlice(
            start_time=s.start, end_time=s.end, rows=s.rows, row_errors=s.errors,
            segment_rows=s.counts[seg].tolist(),
            mean_confidence=s.confidence_sum / s.rows if s.rows else math.nan,
            outlier_rate=s.outliers / s.rows if s.rows else math.nan))
    return report
